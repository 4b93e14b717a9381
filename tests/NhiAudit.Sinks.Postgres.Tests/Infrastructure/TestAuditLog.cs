using System.Buffers;
using System.Text.Json;
using NhiAudit.Audit;

namespace NhiAudit.Sinks.Postgres.Tests.Infrastructure;

/// <summary>A real <see cref="FileAuditLog"/> (WriteAhead) in a fresh temporary directory, removed on dispose.</summary>
public sealed class TestAuditLog : IAsyncDisposable
{
    private TestAuditLog(string directory, string replica, FileAuditLog log)
    {
        Directory = directory;
        Replica = replica;
        Log = log;
    }

    public string Directory { get; }

    public string Replica { get; }

    public FileAuditLog Log { get; }

    public static TestAuditLog Open(string? replica = null)
    {
        var directory = Path.Combine(Path.GetTempPath(), "nhiaudit-pgsink-tests", Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(directory);
        replica ??= "replica-" + Guid.NewGuid().ToString("N")[..8];
        var log = FileAuditLog.Open(new AuditOptions { Directory = directory, Durability = AuditDurability.WriteAhead, Replica = replica });
        return new TestAuditLog(directory, replica, log);
    }

    /// <summary>Appends one <c>pg.query</c> record and returns its seq.</summary>
    public ValueTask<long> AppendQueryAsync(int number) =>
        Log.AppendAsync(Body(json =>
        {
            json.WriteString("type", "pg.query");
            json.WriteString("sql", "select 1");
            json.WriteNumber("n", number);
        }));

    /// <summary>Appends <paramref name="count"/> <c>pg.query</c> records and returns the last seq.</summary>
    public async Task<long> AppendQueriesAsync(int count)
    {
        long last = 0;
        for (var i = 0; i < count; i++)
        {
            last = await AppendQueryAsync(i);
        }

        return last;
    }

    /// <summary>Appends a <c>log.checkpoint</c> record carrying <paramref name="checkpoint"/>.</summary>
    public ValueTask<long> AppendCheckpointAsync(AuditCheckpoint checkpoint) =>
        Log.AppendAsync(Body(json =>
        {
            json.WriteString("type", "log.checkpoint");
            json.WritePropertyName("checkpoint");
            checkpoint.WriteTo(json);
        }));

    /// <summary>Every complete record on disk, read with the chain-checking cursor the pump uses.</summary>
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

    public static byte[] Body(Action<Utf8JsonWriter> writeFields)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            writeFields(json);
            json.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    public async ValueTask DisposeAsync()
    {
        await Log.DisposeAsync();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
