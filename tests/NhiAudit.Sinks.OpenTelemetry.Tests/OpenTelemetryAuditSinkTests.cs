using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using NhiAudit.Audit;
using NhiAudit.Audit.Sinks;
using OpenTelemetry.Exporter;

namespace NhiAudit.Sinks.OpenTelemetry.Tests;

/// <summary>
/// The sink against a real FileAuditLog, a real AuditSinkPump and the SDK's real OTLP exporter, with an in-test
/// OTLP/HTTP receiver standing in for the collector.
/// </summary>
public sealed class OpenTelemetryAuditSinkTests : IAsyncLifetime
{
    private const string Replica = "replica-a";

    // A guard against hangs only: every wait below completes on an event, never on elapsed time.
    private static readonly TimeSpan HangGuard = TimeSpan.FromMinutes(2);

    private readonly string _root = Path.Combine(Path.GetTempPath(), "nhiaudit-otlp-" + Guid.NewGuid().ToString("N"));
    private OtlpLogReceiver _receiver = null!;

    private string AuditDirectory => Path.Combine(_root, "audit");

    private string CursorPath => Path.Combine(AuditDirectory, ".sinks", "otlp.cursor");

    public async Task InitializeAsync() => _receiver = await OtlpLogReceiver.StartAsync();

    public async Task DisposeAsync()
    {
        await _receiver.DisposeAsync();
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    [Fact]
    public async Task Every_record_arrives_once_in_order_with_its_exact_line_and_chain_attributes()
    {
        await using var log = OpenLog();
        var last = await AppendAsync(log, 300);
        using var sink = NewSink();
        await using (var pump = NewPump(sink))
        {
            pump.Start();
            await pump.WaitForDeliveredAsync(last).WaitAsync(HangGuard);
        }

        var received = AuditRecords();
        Assert.Equal(Enumerable.Range(1, (int)last).Select(i => (long)i), received.Select(r => r.Sequence));

        var lines = ReadLogLines();
        string? previousHash = null;
        foreach (var record in received)
        {
            var (segment, line) = lines[record.Sequence];
            Assert.Equal(line, record.Body);
            Assert.Equal(Sha256Hex(record.Body + "\n"), record.Text("nhiaudit.hash"));
            if (previousHash is not null)
            {
                Assert.Equal(previousHash, record.Text("nhiaudit.prev"));
            }

            previousHash = record.Text("nhiaudit.hash");
            Assert.Equal(Replica, record.Text("nhiaudit.replica"));
            Assert.Equal(segment, record.Text("nhiaudit.segment"));
            using var json = JsonDocument.Parse(line);
            Assert.Equal(json.RootElement.GetProperty("type").GetString(), record.Text("nhiaudit.type"));
            Assert.Equal(UnixNanos(json.RootElement.GetProperty("time").GetDateTimeOffset()), record.TimeUnixNano);
            Assert.Equal(OpenTelemetrySinkAttributes.AuditEventName, record.EventName);
            Assert.Equal(9, record.SeverityNumber); // INFO
            Assert.Equal("nhiaudit-test", record.Resource["service.name"]);
        }

        Assert.All(_receiver.ContentTypes, type => Assert.Equal("application/x-protobuf", type));
        Assert.True(_receiver.ContentTypes.Count > 1, "300 records at 50 per batch take several requests");
        Assert.Equal(last, await sink.GetDeliveredSequenceAsync(Replica, default));
        Assert.Equal(0, await sink.GetDeliveredSequenceAsync("another-replica", default));
    }

    [Fact]
    public async Task An_outage_delays_records_without_losing_reordering_or_resending_any()
    {
        await using var log = OpenLog();
        var beforeOutage = await AppendAsync(log, 100);
        using var sink = NewSink();
        await using var pump = NewPump(sink);
        pump.Start();
        await pump.WaitForDeliveredAsync(beforeOutage).WaitAsync(HangGuard);

        _receiver.Failing = true;
        var afterOutage = await AppendAsync(log, 200);

        // Three rejected exports mean at least two failed deliveries in a row with no success in between.
        await _receiver.WaitForRejectionsAsync(3).WaitAsync(HangGuard);
        Assert.False(pump.IsHealthy);
        Assert.True(await sink.GetDeliveredSequenceAsync(Replica, default) < afterOutage, "the cursor must not move past what the collector refused");

        _receiver.Failing = false;
        await pump.WaitForDeliveredAsync(afterOutage).WaitAsync(HangGuard);

        // Refused batches were not stored by the collector and the cursor only moves after a success, so this
        // outage must produce neither a gap nor a duplicate.
        var sequences = AuditRecords().Select(r => r.Sequence).ToList();
        Assert.Equal(Enumerable.Range(1, (int)afterOutage).Select(i => (long)i), sequences);
        Assert.Equal(afterOutage, await sink.GetDeliveredSequenceAsync(Replica, default));
    }

    [Fact]
    public async Task The_cursor_survives_a_restart_and_the_new_pump_resumes_without_resending()
    {
        await using var log = OpenLog();
        var first = await AppendAsync(log, 50);
        using (var sink = NewSink())
        {
            await using var pump = NewPump(sink);
            pump.Start();
            await pump.WaitForDeliveredAsync(first).WaitAsync(HangGuard);
        }

        Assert.True(File.Exists(CursorPath));
        var second = await AppendAsync(log, 70);
        using (var sink = NewSink())
        {
            Assert.Equal(first, await sink.GetDeliveredSequenceAsync(Replica, default));
            await using var pump = NewPump(sink);
            pump.Start();
            await pump.WaitForDeliveredAsync(second).WaitAsync(HangGuard);
        }

        Assert.Equal(Enumerable.Range(1, (int)second).Select(i => (long)i), AuditRecords().Select(r => r.Sequence));
    }

    [Fact]
    public async Task The_cursor_is_kept_per_replica()
    {
        using var sink = NewSink();
        await sink.DeliverAsync("r1", [Entry(1, "{\"seq\":1}")], default);
        await sink.DeliverAsync("r2", [Entry(1, "{\"seq\":1}"), Entry(2, "{\"seq\":2}")], default);
        await sink.DeliverAsync("r1", [Entry(2, "{\"seq\":2}"), Entry(3, "{\"seq\":3}")], default);

        using var reopened = NewSink();
        Assert.Equal(3, await reopened.GetDeliveredSequenceAsync("r1", default));
        Assert.Equal(2, await reopened.GetDeliveredSequenceAsync("r2", default));
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(CursorPath)!, "*.tmp"));
    }

    [Fact]
    public async Task A_failed_export_throws_and_leaves_the_cursor_alone()
    {
        using var sink = NewSink();
        await sink.DeliverAsync(Replica, [Entry(1, "{\"seq\":1}")], default);
        _receiver.Failing = true;
        await Assert.ThrowsAsync<IOException>(async () => await sink.DeliverAsync(Replica, [Entry(2, "{\"seq\":2}")], default));
        Assert.Equal(1, await sink.GetDeliveredSequenceAsync(Replica, default));
    }

    [Fact]
    public async Task An_unreachable_collector_fails_the_delivery_instead_of_retrying_inside_the_exporter()
    {
        // Port 1 on loopback refuses the connection: the exporter reports failure and the pump owns the retry.
        using var sink = new OpenTelemetryAuditSink(new OpenTelemetrySinkOptions
        {
            Endpoint = new Uri("http://127.0.0.1:1/v1/logs"),
            CursorFile = CursorPath,
        });
        var error = await Assert.ThrowsAsync<IOException>(async () => await sink.DeliverAsync(Replica, [Entry(1, "{\"seq\":1}")], default));
        Assert.Contains("seq 1..1", error.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(CursorPath));
    }

    [Theory]
    [InlineData("http://collector:4318", "HttpProtobuf", "http://collector:4318/v1/logs")]
    [InlineData("http://collector:4318/", "HttpProtobuf", "http://collector:4318/v1/logs")]
    [InlineData("https://gw.example/otlp/v1/logs", "HttpProtobuf", "https://gw.example/otlp/v1/logs")]
    [InlineData("http://collector:4317", "Grpc", "http://collector:4317/")]
    public void The_endpoint_is_resolved_like_the_protocol_expects(string endpoint, string protocol, string expected) =>
        Assert.Equal(new Uri(expected), OpenTelemetryAuditSink.ResolveEndpoint(new OpenTelemetrySinkOptions
        {
            Endpoint = new Uri(endpoint),
            Protocol = Enum.Parse<OtlpExportProtocol>(protocol),
        }));

    [Fact]
    public async Task A_damaged_cursor_marks_the_sink_down_instead_of_resending_everything()
    {
        Directory.CreateDirectory(Path.GetDirectoryName(CursorPath)!);
        await File.WriteAllTextAsync(CursorPath, "not json");
        using var sink = NewSink();
        var error = await Assert.ThrowsAsync<InvalidDataException>(async () => await sink.GetDeliveredSequenceAsync(Replica, default));
        Assert.Contains(CursorPath, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_checkpoint_is_exported_with_the_checkpoint_event_name_and_its_json_as_body()
    {
        var checkpoint = new AuditCheckpoint
        {
            Replica = Replica,
            Sequence = 42,
            Hash = new string('a', 64),
            Time = new DateTimeOffset(2026, 11, 28, 12, 30, 15, TimeSpan.Zero).AddTicks(1234567),
            Algorithm = "ES256",
            KeyId = "0123456789abcdef",
            Signature = "c2lnbmF0dXJl",
        };
        using var sink = NewSink();
        await sink.PublishCheckpointAsync(checkpoint, default);

        var record = Assert.Single(_receiver.Logs);
        Assert.Equal(OpenTelemetrySinkAttributes.CheckpointEventName, record.EventName);
        Assert.Equal(checkpoint.ToJson(), record.Body);
        Assert.Equal(checkpoint, AuditCheckpoint.Parse(record.Body!));
        Assert.Equal(Replica, record.Text("nhiaudit.replica"));
        Assert.Equal(42L, record.Sequence);
        Assert.Equal(checkpoint.Hash, record.Text("nhiaudit.hash"));
        Assert.Equal(checkpoint.KeyId, record.Text("nhiaudit.key_id"));
        Assert.Equal(UnixNanos(checkpoint.Time), record.TimeUnixNano);
        Assert.Equal(0, await sink.GetDeliveredSequenceAsync(Replica, default));
    }

    [Fact]
    public async Task The_pump_publishes_the_logs_own_signed_checkpoint()
    {
        Directory.CreateDirectory(_root);
        var keyFile = Path.Combine(_root, "signing.pem");
        using (var key = ECDsa.Create(ECCurve.NamedCurves.nistP256))
        {
            await File.WriteAllTextAsync(keyFile, key.ExportPkcs8PrivateKeyPem());
        }

        long last;
        await using (var log = FileAuditLog.Open(new AuditOptions { Directory = AuditDirectory, Replica = Replica, SigningKeyFile = keyFile }))
        {
            last = await AppendAsync(log, 20);
        }

        // Closing the log wrote a checkpoint record into the chain; the pump hands it to the sink after delivering it.
        using var sink = NewSink();
        await using var pump = NewPump(sink);
        pump.Start();
        await _receiver.WaitForLogsAsync(logs => logs.Any(l => l.EventName == OpenTelemetrySinkAttributes.CheckpointEventName)).WaitAsync(HangGuard);

        var published = _receiver.Logs.First(l => l.EventName == OpenTelemetrySinkAttributes.CheckpointEventName);
        var checkpoint = AuditCheckpoint.Parse(published.Body!);
        Assert.Equal(Replica, checkpoint.Replica);
        Assert.True(checkpoint.Sequence >= last, $"the closing checkpoint covers seq {checkpoint.Sequence}, before the last appended {last}");
        var covered = AuditRecords().Single(r => r.Sequence == checkpoint.Sequence);
        Assert.Equal(covered.Text("nhiaudit.hash"), checkpoint.Hash);
        Assert.Equal(checkpoint.KeyId, published.Text("nhiaudit.key_id"));
    }

    [Fact]
    public async Task Headers_are_sent_and_a_bare_endpoint_gets_the_logs_path()
    {
        using var sink = new OpenTelemetryAuditSink(new OpenTelemetrySinkOptions
        {
            Endpoint = _receiver.BaseAddress,
            Headers = "x-api-key=secret-1",
            CursorFile = CursorPath,
        });
        Assert.Equal(_receiver.Endpoint, sink.Endpoint);
        await sink.DeliverAsync(Replica, [Entry(1, "{\"seq\":1}")], default);

        Assert.Equal("secret-1", Assert.Single(_receiver.ApiKeys));
        Assert.Equal("nhiaudit", Assert.Single(_receiver.Logs).Resource["service.name"]);
    }

    [Fact]
    public void A_sink_built_by_hand_needs_a_cursor_file()
    {
        var error = Assert.Throws<ArgumentException>(() => new OpenTelemetryAuditSink(new OpenTelemetrySinkOptions { Endpoint = _receiver.Endpoint }));
        Assert.Contains("CursorFile", error.Message, StringComparison.Ordinal);
    }

    private FileAuditLog OpenLog() => FileAuditLog.Open(new AuditOptions { Directory = AuditDirectory, Replica = Replica });

    private OpenTelemetryAuditSink NewSink() => new(new OpenTelemetrySinkOptions
    {
        Endpoint = _receiver.Endpoint,
        ServiceName = "nhiaudit-test",
        CursorFile = CursorPath,
    });

    private AuditSinkPump NewPump(IAuditSink sink) => new(sink, new AuditSinkPumpOptions
    {
        Directory = AuditDirectory,
        Replica = Replica,
        MaxBatchRecords = 50,
        PollInterval = TimeSpan.FromMilliseconds(10),
        MinRetryDelay = TimeSpan.FromMilliseconds(10),
        MaxRetryDelay = TimeSpan.FromMilliseconds(100),
    });

    private List<ReceivedLog> AuditRecords() =>
        [.. _receiver.Logs.Where(l => l.EventName == OpenTelemetrySinkAttributes.AuditEventName)];

    /// <summary>Every line of every segment, by seq, as the log wrote it.</summary>
    private Dictionary<long, (string Segment, string Line)> ReadLogLines()
    {
        var lines = new Dictionary<long, (string, string)>();
        foreach (var file in Directory.GetFiles(AuditDirectory, "*.jsonl"))
        {
            foreach (var line in File.ReadAllText(file, Encoding.UTF8).Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                using var json = JsonDocument.Parse(line);
                lines.Add(json.RootElement.GetProperty("seq").GetInt64(), (Path.GetFileName(file), line));
            }
        }

        return lines;
    }

    private static async Task<long> AppendAsync(FileAuditLog log, int count)
    {
        using var records = new AuditRecordWriter();
        long last = 0;
        for (var i = 0; i < count; i++)
        {
            var json = records.Begin("test.event");
            json.WriteNumber("n", i);

            // Escaped and non-ASCII text: the body must still come back byte for byte.
            json.WriteString("sql", "SELECT 'zoë' <> \"x\" -- ünïcødé ✓");
            last = await log.AppendAsync(records.End());
        }

        return last;
    }

    private static AuditLogEntry Entry(long sequence, string line) => new()
    {
        Sequence = sequence,
        Prev = new string('0', 64),
        Hash = Sha256Hex(line + "\n"),
        Time = DateTimeOffset.UnixEpoch.AddSeconds(sequence),
        Type = "test.event",
        Segment = "audit-000000000001.jsonl",
        Line = Encoding.UTF8.GetBytes(line),
    };

    private static string Sha256Hex(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));

    private static ulong UnixNanos(DateTimeOffset time) => (ulong)(time.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) * 100;
}
