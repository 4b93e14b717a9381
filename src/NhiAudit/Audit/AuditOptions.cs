namespace NhiAudit.Audit;

/// <summary>
/// Settings of the primary audit log, bound from the configuration section <see cref="SectionName"/>
/// (<c>NhiAudit:Audit</c>).
/// </summary>
public sealed class AuditOptions
{
    /// <summary>The configuration section these options bind from.</summary>
    public const string SectionName = "NhiAudit:Audit";

    /// <summary>
    /// The directory holding the log's segment files (<c>audit-&lt;first seq&gt;.jsonl</c>). Relative paths resolve
    /// against the process's current directory. Default: <c>audit</c>.
    /// </summary>
    public string Directory { get; set; } = "audit";

    /// <summary>
    /// How far a request record must have travelled before the request may be forwarded.
    /// Default: <see cref="AuditDurability.WriteAhead"/>.
    /// </summary>
    public AuditDurability Durability { get; set; } = AuditDurability.WriteAhead;

    /// <summary>
    /// How often records that nothing waits on are written: <see cref="AuditAppendMode.Deferred"/> records at every
    /// durability, and every record at <see cref="AuditDurability.Buffered"/>. It bounds what a crash can lose at
    /// <see cref="AuditDurability.Buffered"/>. Default: 20 ms.
    /// </summary>
    public TimeSpan FlushInterval { get; set; } = TimeSpan.FromMilliseconds(20);

    /// <summary>
    /// What the gateway does with a request when the log cannot be written. The log itself always reports the
    /// failure (<see cref="AuditLogUnavailableException"/>); this tells its callers how to react.
    /// Default: <see cref="AuditSinkFailurePolicy.Deny"/>.
    /// </summary>
    public AuditSinkFailurePolicy OnSinkFailure { get; set; } = AuditSinkFailurePolicy.Deny;

    /// <summary>
    /// Reserved for signed checkpoints: a PEM file with the ECDSA P-256 or Ed25519 key that will sign periodic
    /// checkpoint records. Not used yet. Default: <see langword="null"/>.
    /// </summary>
    public string? SigningKeyFile { get; set; }
}
