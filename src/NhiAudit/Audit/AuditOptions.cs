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
    /// This gateway's name in a set of replicas; it is written into <c>log.opened</c> and every checkpoint, and names
    /// the chain for sinks, <c>nhiaudit verify</c> and <c>nhiaudit search</c>. Each replica writes its own chain in
    /// its own <see cref="Directory"/>. Default: the machine name (a pod's name in Kubernetes).
    /// </summary>
    public string? Replica { get; set; }

    /// <summary>
    /// A PEM file with the ECDSA P-256 or Ed25519 private key (PKCS#8, <c>-----BEGIN PRIVATE KEY-----</c>; an
    /// <c>EC PRIVATE KEY</c> works too) that signs checkpoints. Without a key (and without
    /// <see cref="SigningKeySecretUri"/>) no checkpoints are written. Default: <see langword="null"/>.
    /// </summary>
    public string? SigningKeyFile { get; set; }

    /// <summary>
    /// Instead of <see cref="SigningKeyFile"/>: the URI of an Azure Key Vault secret whose value is that PEM
    /// (<c>https://VAULT.vault.azure.net/secrets/NAME</c>), read once at start with the host's Azure credential.
    /// </summary>
    public Uri? SigningKeySecretUri { get; set; }

    /// <summary>How often a signed <c>log.checkpoint</c> record is written while records arrive. Default: 1 minute.</summary>
    public TimeSpan CheckpointInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>A segment that has grown past this many bytes is closed and the chain continues in a new one. Default: 256 MiB.</summary>
    public long MaxSegmentBytes { get; set; } = 256L * 1024 * 1024;

    /// <summary>A segment older than this is closed and the chain continues in a new one. Default: 1 day.</summary>
    public TimeSpan MaxSegmentAge { get; set; } = TimeSpan.FromDays(1);

    /// <summary>
    /// Closed segments whose last record is older than this are deleted, oldest first; a <c>log.retention</c> record
    /// names what was removed, so verification knows where the kept chain starts. <see langword="null"/> (the
    /// default) keeps everything.
    /// </summary>
    public TimeSpan? Retention { get; set; }

    /// <summary>The replica name in effect: <see cref="Replica"/>, or the machine name when it is not set.</summary>
    public string GetReplicaName() => string.IsNullOrWhiteSpace(Replica) ? Environment.MachineName : Replica;
}
