namespace NhiAudit.Audit;

/// <summary>The first place where an audit log stops being the log that was written.</summary>
public sealed record AuditVerificationProblem
{
    /// <summary>The segment file's name inside the verified directory, e.g. <c>audit-000000000001.jsonl</c>.</summary>
    public required string File { get; init; }

    /// <summary>The 1-based line number inside <see cref="File"/> a reader should look at.</summary>
    public required int Line { get; init; }

    /// <summary>The sequence number of the record concerned, when one can be named.</summary>
    public long? Sequence { get; init; }

    /// <summary>What happened: one of the <see cref="AuditProblemKind"/> values.</summary>
    public required string Kind { get; init; }

    /// <summary>A sentence naming the record and what is wrong with it.</summary>
    public required string Message { get; init; }
}
