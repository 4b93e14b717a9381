namespace NhiAudit.Postgres.Protocol;

/// <summary>Outcome of trying to read one frame from a buffer, in the style of YARP's error enums: no exceptions on the hot path.</summary>
internal enum PgFrameResult
{
    /// <summary>A whole frame is buffered; its type and length were returned.</summary>
    Complete,

    /// <summary>More bytes are needed; nothing was consumed.</summary>
    Incomplete,

    /// <summary>The declared length exceeds the configured maximum; the connection should be closed.</summary>
    TooLarge,

    /// <summary>The declared length is impossible (below the header size, or wrong for the request code).</summary>
    Malformed,
}
