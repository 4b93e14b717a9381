namespace NhiAudit.Audit;

/// <summary>The outcome of <see cref="AuditVerifier.Verify(string)"/>.</summary>
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

    /// <summary>The first problem found; <see langword="null"/> when intact.</summary>
    public AuditVerificationProblem? Problem { get; init; }
}
