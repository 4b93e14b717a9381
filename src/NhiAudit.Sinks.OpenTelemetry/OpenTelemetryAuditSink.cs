using System.Reflection;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using NhiAudit.Audit;
using NhiAudit.Audit.Sinks;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Logs;
using OpenTelemetry.Resources;

namespace NhiAudit.Sinks.OpenTelemetry;

/// <summary>
/// Exports every audit record as an OTLP log record, and every checkpoint as one more, through the OpenTelemetry
/// SDK's OTLP log exporter. The body is the record's exact line, so a backend can verify the chain:
/// SHA-256 of body + <c>"\n"</c> is the <c>nhiaudit.hash</c> attribute, and each <c>nhiaudit.prev</c> is the
/// previous record's hash. See <see cref="OpenTelemetrySinkAttributes"/> for the names.
/// </summary>
/// <remarks>
/// <para>
/// OTLP cannot be asked what a collector holds, so the sink keeps its own cursor file
/// (<see cref="OpenTelemetrySinkOptions.CursorFile"/>): a batch is exported in one request, and only after the
/// collector accepted it is the cursor moved past it. Delivery is therefore at least once: a crash (or a lost
/// response) between the export and the cursor write sends that batch again. The copies are identical, with the same
/// <c>nhiaudit.replica</c>, <c>nhiaudit.seq</c> and <c>nhiaudit.hash</c>, so a backend drops duplicates by
/// (replica, seq). A record is never skipped.
/// </para>
/// <para>
/// Each call blocks its thread for at most <see cref="OpenTelemetrySinkOptions.Timeout"/>: the SDK's exporter is
/// synchronous. Calls are serialized; one instance may serve several replicas' chains.
/// </para>
/// </remarks>
public sealed class OpenTelemetryAuditSink : IAuditSink, IDisposable
{
    /// <summary>The sink's <see cref="Name"/>.</summary>
    public const string SinkName = "otlp";

    // LogRecord has no public constructor in OpenTelemetry 1.x: records normally come out of an ILogger pipeline,
    // which stamps its own time, batches on a timer and drops when its queue is full, and never tells the caller
    // whether its export worked. Exporting a Batch<LogRecord> ourselves is the only way to send entry.Time and to
    // learn the ExportResult of exactly this batch. The SDK's own manual-creation constructor is used for that;
    // a test pins it, and if a future SDK removes it the sink fails at construction, not at the first record.
    private static readonly ConstructorInfo? LogRecordConstructor =
        typeof(LogRecord).GetConstructor(BindingFlags.Instance | BindingFlags.NonPublic, Type.EmptyTypes);

    private readonly OtlpLogExporter _exporter;
    private readonly ILoggerFactory _resourceHost;
    private readonly SinkCursorFile _cursor;
    private readonly Uri _endpoint;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private bool _disposed;

    /// <summary>Creates the sink; nothing is sent until the first delivery.</summary>
    /// <param name="options">The collector endpoint and the cursor file (required here: DI fills in the default).</param>
    /// <param name="logger">Receives export progress at debug level.</param>
    /// <exception cref="ArgumentException">The options are invalid or <see cref="OpenTelemetrySinkOptions.CursorFile"/> is not set.</exception>
    /// <exception cref="NotSupportedException">The OpenTelemetry SDK in use no longer lets log records be created for a direct export.</exception>
    public OpenTelemetryAuditSink(OpenTelemetrySinkOptions options, ILogger<OpenTelemetryAuditSink>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        OpenTelemetrySinkOptionsValidator.ThrowIfInvalid(options);
        if (string.IsNullOrWhiteSpace(options.CursorFile))
        {
            throw new ArgumentException("OpenTelemetrySinkOptions.CursorFile must be set (AddOpenTelemetrySink defaults it to <audit directory>/.sinks/otlp.cursor)", nameof(options));
        }

        if (LogRecordConstructor is null)
        {
            throw new NotSupportedException($"OpenTelemetry {typeof(LogRecord).Assembly.GetName().Version} has no constructor for a manually created LogRecord; the OTLP audit sink needs the SDK version it was built against");
        }

        _logger = logger ?? (ILogger)NullLogger.Instance;
        _cursor = new SinkCursorFile(options.CursorFile);
        _endpoint = ResolveEndpoint(options);
        _exporter = new OtlpLogExporter(new OtlpExporterOptions
        {
            Endpoint = _endpoint,
            Protocol = options.Protocol,
            TimeoutMilliseconds = (int)options.Timeout.TotalMilliseconds,

            // Set even when empty: OtlpExporterOptions otherwise falls back to OTEL_EXPORTER_OTLP_HEADERS, meant for
            // the host's own telemetry, and could hand its credentials to this (possibly different) collector.
            Headers = options.Headers ?? string.Empty,
        });

        // The exporter takes service.name from the provider it belongs to and has no public setter for a resource.
        // A logger provider that owns it (and is never logged to) supplies the resource and shuts the exporter down
        // on dispose; the batches themselves go straight to the exporter.
        _resourceHost = LoggerFactory.Create(logging => logging.AddOpenTelemetry(otel =>
        {
            // No random service.instance.id: a batch resent after a restart should look exactly like the first copy.
            otel.SetResourceBuilder(ResourceBuilder.CreateEmpty().AddService(options.ServiceName, autoGenerateServiceInstanceId: false));
            otel.AddProcessor(new SimpleLogRecordExportProcessor(_exporter));
        }));

        // The provider is built on first use and the exporter reads its resource once, at its first export; asking
        // for a logger now attaches the exporter to the provider before that.
        _ = _resourceHost.CreateLogger(OpenTelemetrySinkAttributes.AuditEventName);
    }

    /// <inheritdoc />
    public string Name => SinkName;

    /// <summary>The full path of the cursor file.</summary>
    public string CursorFile => _cursor.Path;

    /// <summary>The URI export requests go to.</summary>
    public Uri Endpoint => _endpoint;

    /// <inheritdoc />
    /// <remarks>Read from the cursor file: the collector cannot be asked. 0 when the file or the replica is absent.</remarks>
    /// <exception cref="InvalidDataException">The cursor file is damaged.</exception>
    public async ValueTask<long> GetDeliveredSequenceAsync(string replica, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(replica);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _cursor.Read().TryGetValue(replica, out var position) ? position.Sequence : 0;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// The batch goes out as one OTLP request; when the collector accepts it the cursor is replaced (temp file,
    /// fsync, rename). If the process dies between the two, the batch is exported again after restart (see the
    /// class remarks).
    /// </remarks>
    /// <exception cref="IOException">The collector did not accept the batch, or the cursor could not be written.</exception>
    public async ValueTask DeliverAsync(string replica, IReadOnlyList<AuditLogEntry> records, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(replica);
        ArgumentNullException.ThrowIfNull(records);
        if (records.Count == 0)
        {
            return;
        }

        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var logRecords = new LogRecord[records.Count];
            for (var i = 0; i < records.Count; i++)
            {
                logRecords[i] = ToLogRecord(replica, records[i]);
            }

            Export(logRecords, $"seq {records[0].Sequence}..{records[^1].Sequence} of replica '{replica}'");

            // Only now: a cursor moved before the collector accepted the batch could skip records after a crash.
            var positions = _cursor.Read();
            positions[replica] = new CursorPosition(records[^1].Sequence, records[^1].Hash);
            _cursor.Write(positions);
            _logger.LogDebug("Exported audit records {First}..{Last} of {Replica} to {Endpoint}", records[0].Sequence, records[^1].Sequence, replica, _endpoint);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// Exported as a log record with event name <c>nhiaudit.checkpoint</c> and the checkpoint JSON as body. Not tracked
    /// by the cursor: the pump publishes again after a failure, and a repeated checkpoint is harmless.
    /// </remarks>
    /// <exception cref="IOException">The collector did not accept the record.</exception>
    public async ValueTask PublishCheckpointAsync(AuditCheckpoint checkpoint, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var record = NewLogRecord(OpenTelemetrySinkAttributes.CheckpointEventName, checkpoint.Time, checkpoint.ToJson());
            record.Attributes =
            [
                new(OpenTelemetrySinkAttributes.Replica, checkpoint.Replica),
                new(OpenTelemetrySinkAttributes.Sequence, checkpoint.Sequence),
                new(OpenTelemetrySinkAttributes.Hash, checkpoint.Hash),
                new(OpenTelemetrySinkAttributes.KeyId, checkpoint.KeyId),
            ];
            Export([record], $"the checkpoint at seq {checkpoint.Sequence} of replica '{checkpoint.Replica}'");
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Shuts the exporter down.</summary>
    public void Dispose()
    {
        _gate.Wait();
        try
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _resourceHost.Dispose();
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// The URI requests go to. The SDK uses an explicitly set endpoint as is, so a bare HTTP endpoint
    /// (<c>http://collector:4318</c>) would post to <c>/</c>; it gets the standard logs path instead.
    /// </summary>
    internal static Uri ResolveEndpoint(OpenTelemetrySinkOptions options)
    {
        var endpoint = options.Endpoint!;
        return options.Protocol == OtlpExportProtocol.HttpProtobuf && endpoint.AbsolutePath is "/" or ""
            ? new Uri(endpoint, "v1/logs")
            : endpoint;
    }

    private static LogRecord ToLogRecord(string replica, AuditLogEntry entry)
    {
        // Log lines are written by Utf8JsonWriter, so they are valid UTF-8 and decode to a string that the exporter
        // encodes back to the same bytes: the body stays verifiable against nhiaudit.hash.
        var record = NewLogRecord(OpenTelemetrySinkAttributes.AuditEventName, entry.Time, Encoding.UTF8.GetString(entry.Line.Span));
        var attributes = new List<KeyValuePair<string, object?>>(6)
        {
            new(OpenTelemetrySinkAttributes.Replica, replica),
            new(OpenTelemetrySinkAttributes.Sequence, entry.Sequence),
            new(OpenTelemetrySinkAttributes.Prev, entry.Prev),
            new(OpenTelemetrySinkAttributes.Hash, entry.Hash),
        };
        if (entry.Type is not null)
        {
            attributes.Add(new(OpenTelemetrySinkAttributes.Type, entry.Type));
        }

        attributes.Add(new(OpenTelemetrySinkAttributes.Segment, entry.Segment));
        record.Attributes = attributes;
        return record;
    }

    private static LogRecord NewLogRecord(string eventName, DateTimeOffset time, string body)
    {
        var record = (LogRecord)LogRecordConstructor!.Invoke(null);
        record.Timestamp = time.UtcDateTime;
        record.ObservedTimestamp = time.UtcDateTime;
        record.CategoryName = eventName;

        // EventId.Name becomes the OTLP event_name field.
        record.EventId = new EventId(0, eventName);
        record.LogLevel = LogLevel.Information;
        record.Body = body;
        return record;
    }

    private void Export(LogRecord[] records, string what)
    {
        ExportResult result;
        using (var batch = new Batch<LogRecord>(records, records.Length))
        {
            result = _exporter.Export(batch);
        }

        if (result != ExportResult.Success)
        {
            // The SDK reports the reason (status code, timeout) on its EventSource, not to the caller.
            throw new IOException($"OTLP export of {what} to {_endpoint} failed; it is sent again when the collector is back");
        }
    }
}
