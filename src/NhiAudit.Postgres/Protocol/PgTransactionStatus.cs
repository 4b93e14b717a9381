namespace NhiAudit.Postgres.Protocol;

/// <summary>The status byte of ReadyForQuery.</summary>
internal enum PgTransactionStatus : byte
{
    /// <summary>'I': idle, not in a transaction block.</summary>
    Idle = (byte)'I',

    /// <summary>'T': in a transaction block.</summary>
    InTransaction = (byte)'T',

    /// <summary>'E': in a failed transaction block (statements rejected until rollback).</summary>
    Failed = (byte)'E',
}
