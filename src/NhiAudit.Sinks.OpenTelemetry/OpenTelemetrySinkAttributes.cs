namespace NhiAudit.Sinks.OpenTelemetry;

/// <summary>
/// The names the OTLP sink gives its log records and their attributes, for queries and dedup rules in a backend.
/// </summary>
public static class OpenTelemetrySinkAttributes
{
    /// <summary>The event name (OTLP <c>LogRecord.event_name</c>) of an exported audit record.</summary>
    public const string AuditEventName = "nhiaudit.audit";

    /// <summary>The event name of an exported signed checkpoint.</summary>
    public const string CheckpointEventName = "nhiaudit.checkpoint";

    /// <summary>The chain's replica name (string).</summary>
    public const string Replica = "nhiaudit.replica";

    /// <summary>The record's <c>seq</c> (int); together with <see cref="Replica"/> the dedup key.</summary>
    public const string Sequence = "nhiaudit.seq";

    /// <summary>The record's <c>prev</c>: SHA-256 of the previous line, 64 lowercase hex digits.</summary>
    public const string Prev = "nhiaudit.prev";

    /// <summary>SHA-256 of the body plus a newline, 64 lowercase hex digits (for a checkpoint: of the covered record).</summary>
    public const string Hash = "nhiaudit.hash";

    /// <summary>The record's <c>type</c> (<c>pg.query</c>, <c>log.checkpoint</c>, …); absent when the record has none.</summary>
    public const string Type = "nhiaudit.type";

    /// <summary>The segment file the record is in (<c>audit-000000000001.jsonl</c>).</summary>
    public const string Segment = "nhiaudit.segment";

    /// <summary>On a checkpoint: the signing key's id (<see cref="Audit.AuditCheckpoint.KeyId"/>).</summary>
    public const string KeyId = "nhiaudit.key_id";
}
