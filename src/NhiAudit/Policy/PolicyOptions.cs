namespace NhiAudit.Policy;

/// <summary>
/// The access policy. Bound from the <c>NhiAudit:Policy</c> configuration section; see <see cref="CelPolicyEngine"/> for
/// how requests are decided.
/// </summary>
public sealed class PolicyOptions
{
    /// <summary>The configuration section these options bind from.</summary>
    public const string SectionName = "NhiAudit:Policy";

    /// <summary>The rules, in evaluation order: the first rule that matches a request decides it.</summary>
    public List<PolicyRuleOptions> Rules { get; set; } = [];

    /// <summary>The effect when no rule matches.</summary>
    public PolicyEffect DefaultEffect { get; set; } = PolicyEffect.Allow;

    /// <summary>
    /// The effect for a request the protocol could not classify (<see cref="AccessRequest.UnclassifiedAction"/>), decided
    /// before any rule. Deny by default: what cannot be understood is not waved through.
    /// </summary>
    public PolicyEffect UnclassifiedEffect { get; set; } = PolicyEffect.Deny;

    /// <summary>
    /// Masking rules: protected columns and value detectors with their strategy (see <see cref="Masking.MaskingRuleOptions"/>).
    /// Applied to every result, COPY and server message on their way to the client.
    /// </summary>
    public List<Masking.MaskingRuleOptions> Masking { get; set; } = [];

    /// <summary>
    /// A file holding the HMAC key of the <see cref="MaskingStrategy.Hash"/> strategy (at least 16 bytes, raw or base64).
    /// Unset: a random key per process, so pseudonyms are stable only until the gateway restarts.
    /// </summary>
    public string? MaskingKeyFile { get; set; }

    /// <summary>
    /// An optional JSON file holding <c>{"Policy": {...}}</c> or <c>{"NhiAudit": {"Policy": {...}}}</c>. Its
    /// <c>Rules</c> replace the configured ones (and its <c>DefaultEffect</c>/<c>UnclassifiedEffect</c>, when present,
    /// replace the configured ones). The file is reloaded when it changes; a broken file keeps the previous policy.
    /// </summary>
    public string? File { get; set; }
}

/// <summary>One policy rule.</summary>
public sealed class PolicyRuleOptions
{
    /// <summary>The rule's unique name, recorded with every decision it makes.</summary>
    public string Name { get; set; } = "";

    /// <summary>
    /// The condition, a CEL expression over <c>request</c> and <c>identity</c> that returns a bool, e.g.
    /// <c>request.action == 'DELETE' &amp;&amp; !request.hasWhere</c>.
    /// </summary>
    public string When { get; set; } = "";

    /// <summary>The effect when the condition holds.</summary>
    public PolicyEffect Effect { get; set; } = PolicyEffect.Deny;

    /// <summary>The reason shown to the client and logged; defaults to <c>denied by policy rule 'Name'</c>.</summary>
    public string? Reason { get; set; }

    /// <summary>The protocols the rule applies to (case-insensitive); empty means all.</summary>
    public List<string> Protocols { get; set; } = [];

    /// <summary>The actions the rule applies to (case-insensitive); empty means all. Checked before the condition.</summary>
    public List<string> Actions { get; set; } = [];
}
