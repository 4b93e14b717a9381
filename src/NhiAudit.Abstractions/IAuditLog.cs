namespace NhiAudit;

/// <summary>How far a request record must have travelled before the request is forwarded to its target.</summary>
public enum AuditDurability
{
    /// <summary>Records are batched in memory and written every flush interval; a crash may lose the last batch.</summary>
    Buffered,

    /// <summary>Request records are written to the operating system before the request is forwarded; survives a gateway crash.</summary>
    WriteAhead,

    /// <summary>Request records are fsync'd (group commit across sessions) before the request is forwarded; survives a host crash.</summary>
    Durable,
}

/// <summary>How one record is appended.</summary>
public enum AuditAppendMode
{
    /// <summary>A request record: persisted per the log's <see cref="AuditDurability"/> before the append completes.</summary>
    Request,

    /// <summary>A record nothing waits on (responses, session ends): ordered in the chain now, persisted with the next request record or within the flush interval.</summary>
    Deferred,
}

/// <summary>
/// The tamper-evident primary log. Each record is one JSON line; the log prefixes the caller's fields with
/// <c>seq</c>, <c>prev</c> (SHA-256 of the previous line) and <c>time</c>.
/// </summary>
public interface IAuditLog : IAsyncDisposable
{
    /// <summary>
    /// Appends a record. <paramref name="recordBody"/> is a UTF-8 JSON object (<c>{"type":"...",...}</c>) holding the record's own fields.
    /// Returns the record's sequence number once it is as durable as <paramref name="mode"/> requires.
    /// </summary>
    /// <exception cref="AuditLogUnavailableException">The log cannot be written; the request must be refused.</exception>
    ValueTask<long> AppendAsync(ReadOnlyMemory<byte> recordBody, AuditAppendMode mode = AuditAppendMode.Request, CancellationToken cancellationToken = default);

    /// <summary>Writes (and, at <see cref="AuditDurability.Durable"/>, syncs) every record appended so far.</summary>
    ValueTask FlushAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// Makes every record appended so far as durable as a <see cref="AuditAppendMode.Request"/> record must be before its
    /// request is forwarded: written at <see cref="AuditDurability.WriteAhead"/>, synced at
    /// <see cref="AuditDurability.Durable"/>, nothing at <see cref="AuditDurability.Buffered"/>. A protocol that reads
    /// several requests at once appends their records as <see cref="AuditAppendMode.Deferred"/> and commits once: one
    /// write for the whole batch.
    /// </summary>
    /// <exception cref="AuditLogUnavailableException">The log cannot be written; none of the batch may be forwarded.</exception>
    ValueTask CommitAsync(CancellationToken cancellationToken = default) => FlushAsync(cancellationToken);
}

/// <summary>Thrown when the audit log cannot take a record; the caller refuses the request in its protocol's terms.</summary>
public sealed class AuditLogUnavailableException : IOException
{
    /// <summary>Creates the exception.</summary>
    public AuditLogUnavailableException()
        : base("the audit log cannot be written")
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public AuditLogUnavailableException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and its cause.</summary>
    public AuditLogUnavailableException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
