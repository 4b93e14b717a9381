namespace NhiAudit.Audit;

/// <summary>The values of <see cref="AuditVerificationProblem.Kind"/>.</summary>
public static class AuditProblemKind
{
    /// <summary>A record's bytes were changed after it was written.</summary>
    public const string Edited = "Edited";

    /// <summary>A line that the log never wrote at this place was added.</summary>
    public const string Inserted = "Inserted";

    /// <summary>One or more records are missing.</summary>
    public const string Deleted = "Deleted";

    /// <summary>Records are present but not in the order they were written.</summary>
    public const string Reordered = "Reordered";

    /// <summary>A line is not an audit record at all (not a JSON object starting with <c>seq</c> and <c>prev</c>).</summary>
    public const string Malformed = "Malformed";

    /// <summary>A segment ends with an incomplete line, typically a crash in the middle of a write.</summary>
    public const string Torn = "Torn";

    /// <summary>Records at the end of the log that a published checkpoint covers are gone: the tail was cut.</summary>
    public const string Truncated = "Truncated";

    /// <summary>A checkpoint's signature does not verify, is by an unknown key, or does not match the chain it sits in.</summary>
    public const string ForgedCheckpoint = "ForgedCheckpoint";

    /// <summary>The published checkpoint given to the verifier belongs to another replica's chain.</summary>
    public const string WrongChain = "WrongChain";
}
