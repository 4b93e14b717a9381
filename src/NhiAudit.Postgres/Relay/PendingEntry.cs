namespace NhiAudit.Postgres.Relay;

/// <summary>What the server's next responses belong to, in the order the client sent the requests.</summary>
internal enum PendingKind : byte
{
    /// <summary>A statement the server will answer with CommandComplete, EmptyQueryResponse, PortalSuspended or ErrorResponse.</summary>
    Statement,

    /// <summary>A statement the gateway refused; nothing reached the server, the gateway answers with <see cref="PendingEntry.RefusalSqlState"/>.</summary>
    Refused,

    /// <summary>The end of a Query or a Sync: the server answers with ReadyForQuery.</summary>
    SyncPoint,
}

/// <summary>One request awaiting its response; created by the client loop, completed by the server loop.</summary>
internal sealed class PendingEntry
{
    public PendingKind Kind { get; init; }

    /// <summary>The sequence number of the request record this response answers.</summary>
    public long RequestSeq { get; init; }

    public long StartTimestamp { get; init; }

    public long Rows { get; set; }

    public long Bytes { get; set; }

    /// <summary>CopyData bytes the client sent for a COPY FROM STDIN (written by the client loop).</summary>
    public long BytesIn;

    public string? RefusalSqlState { get; init; }

    public string? RefusalMessage { get; init; }
}
