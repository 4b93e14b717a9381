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

    /// <summary>A Describe (only tracked while masking): the server answers with RowDescription or NoData, unless an error came first.</summary>
    Describe,
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

    /// <summary>For <see cref="PendingKind.Describe"/>: a portal (whose answer carries the result formats), not a statement.</summary>
    public bool DescribesPortal { get; init; }

    /// <summary>For <see cref="PendingKind.Describe"/>: sent by the gateway, so its answer is not passed to the client.</summary>
    public bool Injected { get; init; }

    /// <summary>The statement names a protected relation (or a function or cursor over one): expression columns are masked whole.</summary>
    public bool TouchesProtected { get; set; }

    /// <summary>The statement runs code that reads protected data (a function over it): what that code raises is masked whole.</summary>
    public bool RunsProtectedCode { get; set; }

    /// <summary>The statement changes the schema: the masking catalog is read again once it completes.</summary>
    public bool ChangesSchema { get; set; }

    /// <summary>The statement may change code (functions, triggers, rules): the code catalog is read again once it completes.</summary>
    public bool ChangesCode { get; set; }

    /// <summary>For a <c>COPY … TO STDOUT</c> while masking: how its data is laid out.</summary>
    public Masking.PgCopyOutStatement? CopyOut { get; set; }

    /// <summary>The result columns masked whole, as <c>column ← source (rule)</c>, for the response record.</summary>
    public List<string>? MaskedColumns { get; set; }

    /// <summary>What masking did to this statement's response.</summary>
    public Masking.PgMaskCounters Masking;

    /// <summary>The first rows of the result as the client saw them, when capture is on.</summary>
    public List<string?[]>? Sample { get; set; }
}
