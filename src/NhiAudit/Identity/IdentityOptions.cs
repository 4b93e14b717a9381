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
}
