namespace NhiAudit.Audit;

/// <summary>
/// One record of the primary log as read back from its segment files: the exact line plus the chain fields a sink
/// or a search needs without parsing the JSON again.
/// </summary>
public sealed class AuditLogEntry
{
    /// <summary>The record's <c>seq</c>.</summary>
    public required long Sequence { get; init; }

    /// <summary>The record's <c>prev</c>: 64 lowercase hex digits, the SHA-256 of the previous line.</summary>
    public required string Prev { get; init; }

    /// <summary>The SHA-256 of this line including its newline, 64 lowercase hex digits: the next record's <c>prev</c>.</summary>
    public required string Hash { get; init; }

    /// <summary>The record's <c>time</c>.</summary>
    public required DateTimeOffset Time { get; init; }

    /// <summary>The record's <c>type</c> (<c>pg.query</c>, <c>log.checkpoint</c>, …), or <see langword="null"/> when it has none.</summary>
    public string? Type { get; init; }

    /// <summary>The segment file the record is in (<c>audit-000000000001.jsonl</c>).</summary>
    public required string Segment { get; init; }

    /// <summary>
    /// The line's exact UTF-8 bytes without the trailing newline. A sink that stores these bytes verbatim lets the
    /// chain be verified from the sink alone: SHA-256 of <c>Line + "\n"</c> is <see cref="Hash"/>.
    /// </summary>
    public required ReadOnlyMemory<byte> Line { get; init; }
}
