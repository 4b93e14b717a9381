using NhiAudit.Approvals;
using NhiAudit.Audit;
using NhiAudit.Identity;
using NhiAudit.Policy;

namespace NhiAudit;

/// <summary>
/// The engine's settings as one object, shaped like the <c>NhiAudit</c> configuration section
/// (<c>Identity</c>, <c>Audit</c>, <c>Policy</c>, <c>Approvals</c>). Protocol packages bind their own sections beside these.
/// </summary>
public sealed class NhiAuditOptions
{
    /// <summary>The configuration section these options bind from.</summary>
    public const string SectionName = "NhiAudit";

    /// <summary>Which workload tokens are trusted (<c>NhiAudit:Identity</c>).</summary>
    public IdentityOptions Identity { get; set; } = new();

    /// <summary>The primary audit log (<c>NhiAudit:Audit</c>).</summary>
    public AuditOptions Audit { get; set; } = new();

    /// <summary>The access policy (<c>NhiAudit:Policy</c>).</summary>
    public PolicyOptions Policy { get; set; } = new();

    /// <summary>Just-in-time approvals of held requests (<c>NhiAudit:Approvals</c>).</summary>
    public ApprovalOptions Approvals { get; set; } = new();
}
