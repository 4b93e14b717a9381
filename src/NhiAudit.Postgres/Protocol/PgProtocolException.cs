namespace NhiAudit.Postgres.Protocol;

/// <summary>
/// A peer sent bytes that do not form a valid PostgreSQL v3 protocol message. The relay
/// answers with an ErrorResponse carrying <see cref="SqlState"/> (FATAL for the client side)
/// and closes the connection, as PostgreSQL itself does for protocol violations.
/// </summary>
/// <remarks>
/// Every parser in this namespace throws only this exception on malformed input, never
/// <see cref="IndexOutOfRangeException"/> or <see cref="ArgumentOutOfRangeException"/>: the
/// relay can then catch one type and treat it as the peer's fault rather than a gateway bug.
/// </remarks>
internal sealed class PgProtocolException : Exception
{
    /// <summary>Creates an exception with SQLSTATE 08P01 (protocol_violation).</summary>
    public PgProtocolException()
        : this(PgSqlState.ProtocolViolation, "protocol violation")
    {
    }

    /// <summary>Creates an exception with SQLSTATE 08P01 (protocol_violation).</summary>
    /// <param name="message">What was wrong, precise enough to debug a client from the log.</param>
    public PgProtocolException(string message)
        : this(PgSqlState.ProtocolViolation, message)
    {
    }

    /// <summary>Creates an exception with SQLSTATE 08P01 (protocol_violation).</summary>
    /// <param name="message">What was wrong.</param>
    /// <param name="innerException">The underlying failure, e.g. a UTF-8 decoding error.</param>
    public PgProtocolException(string message, Exception innerException)
        : base(message, innerException)
    {
        SqlState = PgSqlState.ProtocolViolation;
    }

    /// <summary>Creates an exception with an explicit SQLSTATE.</summary>
    /// <param name="sqlState">Five-character SQLSTATE sent back to the peer, see <see cref="PgSqlState"/>.</param>
    /// <param name="message">What was wrong.</param>
    public PgProtocolException(string sqlState, string message)
        : base(message)
    {
        ArgumentException.ThrowIfNullOrEmpty(sqlState);
        SqlState = sqlState;
    }

    /// <summary>The SQLSTATE to report, 08P01 (protocol_violation) unless stated otherwise.</summary>
    public string SqlState { get; }
}
