namespace NhiAudit.Sinks.Postgres;

/// <summary>
/// Thrown by <see cref="PostgresAuditSink.DeliverAsync"/> when a batch cannot be stored without breaking the table's
/// chain: it would leave a gap, it does not continue the stored records, or a line cannot be stored verbatim.
/// </summary>
public sealed class PostgresAuditSinkConflictException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    public PostgresAuditSinkConflictException()
    {
    }

    /// <summary>Creates the exception.</summary>
    /// <param name="message">What does not fit.</param>
    public PostgresAuditSinkConflictException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    /// <param name="message">What does not fit.</param>
    /// <param name="innerException">The cause.</param>
    public PostgresAuditSinkConflictException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
