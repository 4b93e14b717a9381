namespace NhiAudit;

/// <summary>What the policy decided for a request.</summary>
public enum PolicyEffect
{
    /// <summary>Forward the request.</summary>
    Allow,

    /// <summary>Refuse the request in the protocol's own terms.</summary>
    Deny,

    /// <summary>Hold the request until an approver grants it.</summary>
    RequireApproval,
}

/// <summary>A decision and what made it, recorded with the request.</summary>
/// <param name="Effect">The effect.</param>
/// <param name="Rule">The name of the rule that matched; <c>(default)</c> or <c>(unclassified)</c> when none did.</param>
/// <param name="Reason">The reason shown to the client and written to the log.</param>
/// <param name="PolicyVersion">The version of the policy that decided (increments on every reload).</param>
public sealed record PolicyDecision(PolicyEffect Effect, string Rule, string Reason, long PolicyVersion)
{
    /// <summary>
    /// When one of the request's <see cref="AccessRequest.Effects"/> decided (it was stricter than the request itself):
    /// its index in that list; null when the request itself decided.
    /// </summary>
    public int? EffectIndex { get; init; }

    /// <summary>The <see cref="AccessEffect.Via"/> of the effect that decided, null when the request itself decided.</summary>
    public string? Via { get; init; }
}

/// <summary>Decides each request. Synchronous and cheap: it runs on the forward path.</summary>
public interface IPolicyEngine
{
    /// <summary>Decides <paramref name="request"/>. Never throws: a rule that cannot be evaluated denies.</summary>
    PolicyDecision Evaluate(AccessRequest request);
}
