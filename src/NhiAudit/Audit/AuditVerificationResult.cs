namespace NhiAudit.Audit;

/// <summary>The outcome of <see cref="AuditVerifier.Verify(string, AuditVerifyOptions?)"/>.</summary>
public sealed record AuditVerificationResult
{
    /// <summary><see langword="true"/> when every line of every segment forms one unbroken chain starting at seq 1.</summary>
    public required bool IsIntact { get; init; }

    /// <summary>How many records were verified before the first problem (all of them when intact).</summary>
    public required long RecordCount { get; init; }

    /// <summary>The sequence number of the last verified record; <see langword="null"/> for an empty log.</summary>
    public long? LastSequence { get; init; }

    /// <summary>
    /// The SHA-256 (lowercase hex) of the last verified line including its newline, i.e. the <c>prev</c> the next
    /// record must carry. Publishing it elsewhere lets a later verification detect a cut tail.
    /// </summary>
    public string? LastHash { get; init; }

    /// <summary>The replica named by the log's <c>log.opened</c> records, when they name one.</summary>
    public string? Replica { get; init; }

    /// <summary>The seq the kept log starts at: 1, or later when retention removed older segments (and said so).</summary>
    public long FirstSequence { get; init; } = 1;

    /// <summary>How many <c>log.checkpoint</c> records were found in the chain.</summary>
    public int CheckpointCount { get; init; }

    /// <summary>Whether checkpoint signatures were checked (public keys were given); otherwise only their chain position was.</summary>
    public bool SignaturesChecked { get; init; }

    /// <summary>When a published checkpoint was given: whether the log still holds the record it covers, unchanged.</summary>
    public bool? CheckpointMatched { get; init; }

    /// <summary>The first problem found; <see langword="null"/> when intact.</summary>
    public AuditVerificationProblem? Problem { get; init; }
}
