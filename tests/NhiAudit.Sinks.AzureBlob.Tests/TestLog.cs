using System.Buffers;
using System.Text.Json;
using Azure.Storage.Blobs;
using NhiAudit.Audit;
using NhiAudit.Audit.Sinks;

namespace NhiAudit.Sinks.AzureBlob.Tests;

/// <summary>A real <see cref="FileAuditLog"/> in a temp directory, plus the helpers the sink tests share.</summary>
public sealed class TestLog : IAsyncDisposable
{
    private FileAuditLog? _log;
    private int _counter;

    private TestLog(string directory)
    {
        Directory = directory;
    }

    public string Directory { get; }

    public FileAuditLog Log => _log ?? throw new InvalidOperationException("the log is closed");

    public static TestLog Open()
    {
        var directory = Path.Combine(Path.GetTempPath(), "nhiaudit-blob-log-" + Guid.NewGuid().ToString("N"));
        var log = new TestLog(directory);
        log.Reopen();
        return log;
    }

    public static string NewTempDirectory(string what) =>
        System.IO.Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), $"nhiaudit-blob-{what}-" + Guid.NewGuid().ToString("N"))).FullName;

    /// <summary>Opens the log (again): every open starts a new segment that continues the chain.</summary>
    public void Reopen() => _log = FileAuditLog.Open(new AuditOptions { Directory = Directory, Replica = "test" });

    public async Task CloseAsync()
    {
        if (_log is not null)
        {
            await _log.DisposeAsync();
            _log = null;
        }
    }

    public async Task<long> AppendQueriesAsync(int count)
    {
        long last = 0;
        for (var i = 0; i < count; i++)
        {
            last = await Log.AppendAsync(QueryBody(++_counter));
        }

        return last;
    }

    public Task<long> AppendAsync(ReadOnlyMemory<byte> body) => Log.AppendAsync(body).AsTask();

    public static byte[] QueryBody(int n)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("type", "pg.query");
            json.WriteString("sql", "select 1");
            json.WriteNumber("n", n);
            json.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    public static byte[] CheckpointBody(AuditCheckpoint checkpoint)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("type", "log.checkpoint");
            json.WritePropertyName("checkpoint");
            checkpoint.WriteTo(json);
            json.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Every complete record of the log, read as a pump would.</summary>
    public List<AuditLogEntry> ReadAll()
    {
        using var cursor = new AuditLogCursor(Directory);
        var entries = new List<AuditLogEntry>();
        while (cursor.TryRead(out var entry))
        {
            entries.Add(entry);
        }

        return entries;
    }

    public string[] SegmentFiles() =>
        System.IO.Directory.GetFiles(Directory, "audit-*.jsonl").Order(StringComparer.Ordinal).ToArray();

    public AuditSinkPump StartPump(IAuditSink sink, string replica, int maxBatchRecords = 1000)
    {
        var pump = new AuditSinkPump(sink, new AuditSinkPumpOptions
        {
            Directory = Directory,
            Replica = replica,
            MaxBatchRecords = maxBatchRecords,
            PollInterval = TimeSpan.FromMilliseconds(50),
            MinRetryDelay = TimeSpan.FromMilliseconds(50),
            MaxRetryDelay = TimeSpan.FromMilliseconds(500),
        });
        pump.Start();
        return pump;
    }

    /// <summary>Asserts that the replica's blobs are exactly the log's segment files, byte for byte, and nothing else.</summary>
    public async Task AssertBlobsEqualSegmentsAsync(BlobContainerClient container, string replica)
    {
        var segments = SegmentFiles();
        var blobs = new List<string>();
        await foreach (var item in container.GetBlobsAsync(new Azure.Storage.Blobs.Models.GetBlobsOptions { Prefix = replica + "/" }))
        {
            if (!item.Name.EndsWith("/checkpoints.jsonl", StringComparison.Ordinal))
            {
                blobs.Add(item.Name);
            }
        }

        Assert.Equal(segments.Select(path => replica + "/" + Path.GetFileName(path)), blobs.Order(StringComparer.Ordinal));
        foreach (var path in segments)
        {
            var content = (await container.GetBlobClient(replica + "/" + Path.GetFileName(path)).DownloadContentAsync()).Value.Content.ToArray();
            var local = await File.ReadAllBytesAsync(path);
            Assert.True(local.AsSpan().SequenceEqual(content), $"{Path.GetFileName(path)}: the blob ({content.Length} bytes) differs from the local segment ({local.Length} bytes)");
        }
    }

    public static async Task WaitUntilAsync(Func<bool> condition, string what, TimeSpan? timeout = null)
    {
        using var cancel = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(120));
        while (!condition())
        {
            if (cancel.IsCancellationRequested)
            {
                throw new TimeoutException("gave up waiting for: " + what);
            }

            await Task.Delay(25, CancellationToken.None);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await CloseAsync();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // Best effort.
        }
    }
}
