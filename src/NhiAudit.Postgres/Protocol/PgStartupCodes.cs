namespace NhiAudit.Postgres.Protocol;

/// <summary>
/// The 32-bit codes that follow the length in untyped startup-phase packets. Request codes
/// are version numbers 1234.5678+ that no real protocol version will ever use.
/// </summary>
internal static class PgStartupCodes
{
    /// <summary>Protocol 3.0 (196608): every server since PostgreSQL 7.4.</summary>
    public const int Protocol30 = 3 << 16;

    /// <summary>Protocol 3.2 (196610): PostgreSQL 18, variable-length cancel keys. (3.1 was never used.)</summary>
    public const int Protocol32 = (3 << 16) | 2;

    /// <summary>CancelRequest (1234.5678).</summary>
    public const int CancelRequest = (1234 << 16) | 5678;

    /// <summary>SSLRequest (1234.5679).</summary>
    public const int SslRequest = (1234 << 16) | 5679;

    /// <summary>GSSENCRequest (1234.5680).</summary>
    public const int GssEncRequest = (1234 << 16) | 5680;

    /// <summary>PostgreSQL's MAX_STARTUP_PACKET_LENGTH: longer startup packets are refused.</summary>
    public const int MaxStartupPacketLength = 10000;

    /// <summary>Longest cancel secret key protocol 3.2 allows (MAX_CANCEL_KEY_LENGTH).</summary>
    public const int MaxCancelKeyLength = 256;

    /// <summary>Length word + code + process id: the part of a CancelRequest before the key.</summary>
    public const int CancelRequestFixedLength = 12;
}
