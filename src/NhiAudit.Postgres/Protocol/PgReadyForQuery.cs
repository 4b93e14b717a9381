namespace NhiAudit.Postgres.Protocol;

/// <summary>ReadyForQuery ('Z'): one status byte, the end of every request cycle.</summary>
internal static class PgReadyForQuery
{
    /// <summary>Parses the body of a 'Z' message.</summary>
    /// <exception cref="PgProtocolException">Not exactly one byte, or not I/T/E.</exception>
    public static PgTransactionStatus Parse(ReadOnlySpan<byte> payload)
    {
        if (payload.Length != 1)
        {
            throw new PgProtocolException($"invalid ReadyForQuery message: body of {payload.Length} bytes, expected 1");
        }

        var status = (PgTransactionStatus)payload[0];
        return status is PgTransactionStatus.Idle or PgTransactionStatus.InTransaction or PgTransactionStatus.Failed
            ? status
            : throw new PgProtocolException($"invalid ReadyForQuery message: unknown transaction status 0x{payload[0]:X2}");
    }
}
