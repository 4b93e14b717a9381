namespace NhiAudit.Identity;

/// <summary>
/// Which workload tokens the gateway trusts. Bound from the <c>NhiAudit:Identity</c> configuration section.
/// </summary>
public sealed class IdentityOptions
{
    /// <summary>The configuration section these options bind from.</summary>
    public const string SectionName = "NhiAudit:Identity";

    /// <summary>The token issuers the gateway trusts; a token from any other issuer is refused.</summary>
    public List<IssuerOptions> Issuers { get; set; } = [];

    /// <summary>The value an approver's <c>roles</c> claim must hold before they may approve a held request.</summary>
    public string ApproverRole { get; set; } = "NhiAudit.Approver";

    /// <summary>
    /// How far the gateway's clock and the issuer's clock may disagree when checking <c>nbf</c> and <c>exp</c>.
    /// Kept small: every second added lets an expired token live that much longer.
    /// </summary>
    public TimeSpan ClockSkew { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long a session may outlive its token's <c>exp</c>. Zero (the default) ends the session when the token expires;
    /// a grace lets a long-running statement finish instead of being cut mid-flight.
    /// </summary>
    public TimeSpan SessionGrace { get; set; } = TimeSpan.Zero;

    /// <summary>
    /// SSH public keys registered to workload identities: a client that proves it holds one of these keys is that
    /// identity (the SSH gateway's <c>publickey</c> authentication). Empty by default.
    /// </summary>
    public List<SshKeyOptions> SshKeys { get; set; } = [];

    /// <summary>
    /// CAs whose OpenSSH user certificates the SSH gateway accepts: the certificate's key id names the identity, its
    /// principals must cover the requested user. Empty by default.
    /// </summary>
    public List<SshCertificateAuthorityOptions> SshCertificateAuthorities { get; set; } = [];
}

/// <summary>One SSH certificate authority whose user certificates identify workloads.</summary>
public sealed class SshCertificateAuthorityOptions
{
    /// <summary>The CA's public key as one <c>authorized_keys</c>-style line (the content of its <c>.pub</c> file).</summary>
    public string PublicKey { get; set; } = "";

    /// <summary>The CA's name, recorded as the issuer of the identities it certifies. Default <c>ssh-ca</c>.</summary>
    public string Name { get; set; } = "ssh-ca";

    /// <summary>The kind of workload its certificates name. Default <see cref="WorkloadKind.FederatedWorkload"/>.</summary>
    public WorkloadKind Kind { get; set; } = WorkloadKind.FederatedWorkload;
}

/// <summary>One SSH public key registered to a workload identity.</summary>
public sealed class SshKeyOptions
{
    /// <summary>
    /// The public key as one OpenSSH <c>authorized_keys</c> line without options: <c>TYPE BASE64 [comment]</c>,
    /// e.g. <c>ssh-ed25519 AAAAC3... deploy</c>. Types: <c>ssh-ed25519</c>, <c>ssh-rsa</c> (signing with rsa-sha2-256/512
    /// only), <c>ecdsa-sha2-nistp256</c>.
    /// </summary>
    public string PublicKey { get; set; } = "";

    /// <summary>The identity's stable subject, recorded in every audit record of its sessions.</summary>
    public string Subject { get; set; } = "";

    /// <summary>The kind of workload the key belongs to.</summary>
    public WorkloadKind Kind { get; set; } = WorkloadKind.Unknown;
}
