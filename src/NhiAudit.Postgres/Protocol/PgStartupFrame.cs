namespace NhiAudit.Postgres.Protocol;

/// <summary>What kind of untyped packet opens (or cancels) a connection.</summary>
internal enum PgStartupPacketKind
{
    /// <summary>Not determined (the frame was incomplete or malformed).</summary>
    None,

    /// <summary>SSLRequest: answer 'S' and start TLS, or 'N'.</summary>
    SslRequest,

    /// <summary>GSSENCRequest: answer 'G' or 'N'.</summary>
    GssEncRequest,

    /// <summary>CancelRequest: process id and secret key, sent on a fresh connection.</summary>
    CancelRequest,

    /// <summary>StartupMessage with protocol 3.0 or 3.2; parse with <see cref="PgStartupMessage.Parse(ReadOnlySpan{byte})"/>.</summary>
    StartupMessage,

    /// <summary>
    /// A StartupMessage asking for a protocol version we do not speak; <see cref="PgStartupFrame.Code"/>
    /// holds the requested version. PostgreSQL answers a newer 3.x minor with NegotiateProtocolVersion
    /// and anything else with FATAL 0A000; the relay picks.
    /// </summary>
    UnsupportedProtocol,
}

/// <summary>One untyped startup-phase packet located in a buffer.</summary>
/// <param name="Kind">What the packet asks for.</param>
/// <param name="Length">Total packet length in bytes, including the length word itself.</param>
/// <param name="Code">The 32-bit request code or protocol version after the length.</param>
internal readonly record struct PgStartupFrame(PgStartupPacketKind Kind, int Length, int Code)
{
    /// <summary>Major protocol version for a StartupMessage (upper 16 bits of <see cref="Code"/>).</summary>
    public int MajorVersion => (int)((uint)Code >> 16);

    /// <summary>Minor protocol version for a StartupMessage (lower 16 bits of <see cref="Code"/>).</summary>
    public int MinorVersion => Code & 0xFFFF;
}
