using System.Collections.Concurrent;
using Cel;

namespace NhiAudit.Policy;

/// <summary>One rule, compiled.</summary>
internal sealed class CompiledRule
{
    public CompiledRule(PolicyRuleOptions options, long version)
    {
        Name = options.Name;
        When = options.When;
        Effect = options.Effect;
        Reason = string.IsNullOrWhiteSpace(options.Reason)
            ? (options.Effect == PolicyEffect.Allow ? $"allowed by policy rule '{options.Name}'" : $"denied by policy rule '{options.Name}'")
            : options.Reason;
        Protocols = options.Protocols is { Count: > 0 } p ? new HashSet<string>(p, StringComparer.OrdinalIgnoreCase) : null;
        Actions = options.Actions is { Count: > 0 } a ? new HashSet<string>(a, StringComparer.OrdinalIgnoreCase) : null;
        Program = PolicyCel.Compile(options.When);
        NamesUnclassified = Names(options, AccessRequest.UnclassifiedAction);
        NamesProtectedCopy = Names(options, AccessRequest.ProtectedCopyAction);
        Decision = new PolicyDecision(Effect, Name, Reason, version);
    }

    /// <summary>The decision when the condition holds.</summary>
    public PolicyDecision Decision { get; }

    public string Name { get; }

    public string When { get; }

    public PolicyEffect Effect { get; }

    public string Reason { get; }

    public HashSet<string>? Protocols { get; }

    public HashSet<string>? Actions { get; }

    public CelProgramDelegate Program { get; }

    /// <summary>
    /// True when the rule names <see cref="AccessRequest.UnclassifiedAction"/> (in its Actions filter or as a literal
    /// in its condition): only such a rule may decide a request or effect the gateway could not read.
    /// </summary>
    public bool NamesUnclassified { get; }

    /// <summary>True when the rule names <see cref="AccessRequest.ProtectedCopyAction"/>: only such a rule may let protected data out of masking's reach.</summary>
    public bool NamesProtectedCopy { get; }

    private bool Names(PolicyRuleOptions options, string action) =>
        (Actions?.Contains(action) ?? false)
        || options.When.Contains($"'{action}'", StringComparison.Ordinal)
        || options.When.Contains($"\"{action}\"", StringComparison.Ordinal);

    public bool Applies(string protocol, string action) =>
        (Protocols is null || Protocols.Contains(protocol)) && (Actions is null || Actions.Contains(action));
}

/// <summary>
/// One version of the policy: compiled rules, the (protocol, action) index of candidate rules, and the decision cache.
/// Immutable except for its caches; a reload builds a new one, which also starts with an empty decision cache.
/// </summary>
internal sealed class CompiledPolicy
{
    /// <summary>The decision cache is cleared when it reaches this many entries.</summary>
    public const int MaxCachedDecisions = 10_000;

    /// <summary>The options this policy was compiled from.</summary>
    public PolicyOptions Options { get; }

    private const int MaxIndexEntries = 1_024;

    private readonly ConcurrentDictionary<(string Protocol, string Action), CompiledRule[]> _index = new();

    public CompiledPolicy(PolicyOptions options, long version)
    {
        Version = version;
        Options = options;
        Rules = (options.Rules ?? []).Select(r => new CompiledRule(r, version)).ToArray();
        UsesText = Rules.Any(r => r.When.Contains("request.text", StringComparison.Ordinal));
        Default = new PolicyDecision(options.DefaultEffect, "(default)", $"no policy rule matched; the default is {options.DefaultEffect}", version);
        Unclassified = new PolicyDecision(
            options.UnclassifiedEffect,
            "(unclassified)",
            options.UnclassifiedEffect == PolicyEffect.Allow
                ? "the request could not be classified; unclassified requests are allowed by configuration"
                : "the request could not be classified; unclassified requests are denied",
            version);
        ProtectedCopy = new PolicyDecision(
            PolicyEffect.Deny,
            "(masking)",
            "a policy rule naming PROTECTED_COPY may allow it",
            version);
    }

    public long Version { get; }

    public CompiledRule[] Rules { get; }

    /// <summary>True when a rule's condition reads <c>request.text</c>, so the text must be part of the cache key.</summary>
    public bool UsesText { get; }

    public PolicyDecision Default { get; }

    public PolicyDecision Unclassified { get; }

    /// <summary>The decision for a <see cref="AccessRequest.ProtectedCopyAction"/> effect no rule names: denied.</summary>
    public PolicyDecision ProtectedCopy { get; }

    public ConcurrentDictionary<string, PolicyDecision> Decisions { get; } = new(StringComparer.Ordinal);

    /// <summary>The rules whose filters admit (protocol, action), in configuration order.</summary>
    public CompiledRule[] Candidates(string protocol, string action)
    {
        if (_index.TryGetValue((protocol, action), out var candidates))
        {
            return candidates;
        }

        candidates = Array.FindAll(Rules, r => r.Applies(protocol, action));
        if (_index.Count >= MaxIndexEntries)
        {
            _index.Clear();
        }

        _index[(protocol, action)] = candidates;
        return candidates;
    }
}
