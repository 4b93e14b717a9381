namespace NhiAudit.Approvals;

/// <summary>
/// How held requests wait for a just-in-time approval. Bound from the <c>NhiAudit:Approvals</c> configuration section.
/// </summary>
public sealed class ApprovalOptions
{
    /// <summary>The configuration section these options bind from.</summary>
    public const string SectionName = "NhiAudit:Approvals";

    /// <summary>How long a held request waits for an approver before it is refused (<see cref="ApprovalState.TimedOut"/>).</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// When set, every new held request is announced by a JSON <c>POST</c> to this URL (chat bridge, pager, ticketing).
    /// The notice never carries a token; failures are logged and never hold up the request.
    /// </summary>
    public string? WebhookUrl { get; set; }

    /// <summary>The longest standing grant an approver may give; longer grants are cut to this.</summary>
    public TimeSpan MaxGrant { get; set; } = TimeSpan.FromHours(8);
}
