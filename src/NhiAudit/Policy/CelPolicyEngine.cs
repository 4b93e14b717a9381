using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace NhiAudit.Policy;

/// <summary>
/// Decides requests with rules whose conditions are CEL expressions (<see cref="PolicyOptions"/>).
/// </summary>
/// <remarks>
/// <para>Order of decision:</para>
/// <list type="number">
/// <item>A request whose action is <see cref="AccessRequest.UnclassifiedAction"/> gets
/// <see cref="PolicyOptions.UnclassifiedEffect"/> (Deny by default) with rule <c>(unclassified)</c>, unless a rule that
/// names <c>UNKNOWN</c> (in its Actions filter or as a literal in its condition) matches first; no other rule is consulted.</item>
/// <item>The request's <see cref="AccessRequest.Effects"/> are decided the same way, each as a request with the
/// effect's action, resources, hasWhere, objectKind and via; the strictest decision of the request and its effects wins
/// (Deny over RequireApproval over Allow), and <see cref="PolicyDecision.Via"/> names the effect that decided.</item>
/// <item>Otherwise the rules are tried in configuration order and the first one that matches decides, like firewall
/// rules. A rule matches when its <see cref="PolicyRuleOptions.Protocols"/> and <see cref="PolicyRuleOptions.Actions"/>
/// filters (when given) admit the request and its <see cref="PolicyRuleOptions.When"/> condition returns true.</item>
/// <item>A condition that throws or returns something other than a bool denies, naming the rule (fail closed).</item>
/// <item>When no rule matches, <see cref="PolicyOptions.DefaultEffect"/> decides with rule <c>(default)</c>.</item>
/// </list>
/// <para>CEL variables: <c>request</c> (protocol, target, action, resources, text, hasWhere and every other
/// <see cref="AccessRequest.Attributes"/> entry) and <c>identity</c> (kind, subject, issuer, name, tenant, app, mirid,
/// repository, workflow, runId, sha, roles).</para>
/// <para>Each condition is compiled once per policy version. Decisions are cached per (protocol, target, action,
/// resources, attributes, identity, policy version) and also per text when some condition reads <c>request.text</c>;
/// the cache holds at most <see cref="CompiledPolicy.MaxCachedDecisions"/> entries and starts empty after a reload.
/// Rules are indexed by (protocol, action) through their filters, so only candidate rules are evaluated.</para>
/// <para>When <see cref="PolicyOptions.File"/> is set, the file is watched; a valid change takes effect as the next
/// <see cref="PolicyVersion"/>, a broken one is logged and the previous policy stays in force.</para>
/// </remarks>
public sealed class CelPolicyEngine : IPolicyEngine, IDisposable
{
    private static readonly TimeSpan Debounce = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan PollInterval = TimeSpan.FromSeconds(2);
    private static readonly ConditionalWeakTable<WorkloadIdentity, string> IdentityKeys = new();

    [ThreadStatic]
    private static StringBuilder? t_keyBuilder;

    private readonly PolicyOptions _configured;
    private readonly ILogger _logger;
    private readonly string? _path;
    private readonly Lock _reloadLock = new();
    private readonly FileSystemWatcher? _watcher;
    private readonly Timer? _debounceTimer;
    private readonly Timer? _pollTimer;
    private CompiledPolicy _policy;
    private (DateTime WriteTime, long Length)? _stamp;
    private bool _disposed;

    /// <summary>Creates the engine from validated options (validation runs when the options are first read).</summary>
    /// <param name="options">The policy options.</param>
    /// <param name="logger">Where reloads and evaluation failures are logged.</param>
    public CelPolicyEngine(IOptions<PolicyOptions> options, ILogger<CelPolicyEngine>? logger = null)
        : this((options ?? throw new ArgumentNullException(nameof(options))).Value, logger)
    {
    }

    /// <summary>Creates the engine; throws <see cref="OptionsValidationException"/> when the policy is invalid.</summary>
    /// <param name="options">The policy options.</param>
    /// <param name="logger">Where reloads and evaluation failures are logged.</param>
    public CelPolicyEngine(PolicyOptions options, ILogger<CelPolicyEngine>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        PolicyOptionsValidator.ThrowIfInvalid(options);
        _configured = options;
        _logger = (ILogger?)logger ?? NullLogger.Instance;

        if (string.IsNullOrWhiteSpace(options.File))
        {
            _policy = new CompiledPolicy(options, 1);
            return;
        }

        _path = Path.GetFullPath(options.File);
        _stamp = Stamp(_path);
        _policy = new CompiledPolicy(PolicyFile.Apply(options, _path, File.ReadAllText(_path)), 1);

        _debounceTimer = new Timer(_ => TryReload(), null, Timeout.Infinite, Timeout.Infinite);
        _pollTimer = new Timer(_ => TryReload(), null, PollInterval, PollInterval);
        try
        {
            _watcher = new FileSystemWatcher(Path.GetDirectoryName(_path)!, Path.GetFileName(_path))
            {
                NotifyFilter = NotifyFilters.LastWrite | NotifyFilters.FileName | NotifyFilters.Size | NotifyFilters.CreationTime,
            };
            _watcher.Changed += OnFileEvent;
            _watcher.Created += OnFileEvent;
            _watcher.Renamed += OnFileEvent;
            _watcher.Deleted += OnFileEvent;
            _watcher.EnableRaisingEvents = true;
        }
        catch (Exception ex)
        {
            _watcher?.Dispose();
            _watcher = null;
            _logger.LogWarning(ex, "Cannot watch policy file {Path}; changes are picked up by polling every {Interval}", _path, PollInterval);
        }
    }

    /// <summary>The options in force: the configured ones, with the policy file's content over them.</summary>
    public PolicyOptions CurrentOptions => Volatile.Read(ref _policy).Options;

    /// <summary>Raised after every successful reload of the policy file, with the options now in force.</summary>
    public event Action<PolicyOptions>? Reloaded;

    /// <summary>The version of the policy in force: 1 at start, incremented by every successful reload.</summary>
    public long PolicyVersion => Volatile.Read(ref _policy).Version;

    /// <inheritdoc />
    public PolicyDecision Evaluate(AccessRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var policy = Volatile.Read(ref _policy);
        try
        {
            var key = CacheKey(request, policy.UsesText);
            if (policy.Decisions.TryGetValue(key, out var cached))
            {
                return cached;
            }

            var decision = DecideWithEffects(policy, request);
            if (policy.Decisions.Count >= CompiledPolicy.MaxCachedDecisions)
            {
                policy.Decisions.Clear();
            }

            policy.Decisions.TryAdd(key, decision);
            return decision;
        }
        catch (Exception ex)
        {
            _logger.LogError(ex, "Policy evaluation failed; the request is denied");
            return new PolicyDecision(PolicyEffect.Deny, "(error)", $"the policy could not be evaluated: {ex.Message}", policy.Version);
        }
    }

    /// <summary>
    /// Re-reads the policy file now if it changed since it was last read (normally the watcher does this).
    /// Returns true when a new policy version took effect.
    /// </summary>
    public bool Reload()
    {
        if (_path is null)
        {
            return false;
        }

        lock (_reloadLock)
        {
            var stamp = Stamp(_path);
            if (stamp == _stamp)
            {
                return false;
            }

            _stamp = stamp;
            if (stamp is null)
            {
                _logger.LogError("Policy file {Path} is gone; policy version {Version} stays in force", _path, PolicyVersion);
                return false;
            }

            string content;
            try
            {
                content = File.ReadAllText(_path);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Perhaps still being written: forget the stamp so that the next event or poll tries again.
                _stamp = null;
                _logger.LogWarning(ex, "Cannot read policy file {Path} yet; will retry", _path);
                return false;
            }

            try
            {
                var options = PolicyFile.Apply(_configured, _path, content);
                var failures = PolicyOptionsValidator.CollectRules(options, $"policy file '{_path}'");
                if (failures.Count > 0)
                {
                    _logger.LogError("Policy file {Path} is invalid; policy version {Version} stays in force: {Failures}", _path, PolicyVersion, string.Join(" ", failures));
                    return false;
                }

                var current = Volatile.Read(ref _policy);
                var next = new CompiledPolicy(options, current.Version + 1);
                Volatile.Write(ref _policy, next);
                _logger.LogInformation("Policy file {Path} reloaded as policy version {Version} ({Count} rules, {Masking} masking rules)", _path, next.Version, next.Rules.Length, options.Masking.Count);
                Reloaded?.Invoke(options);
                return true;
            }
            catch (Exception ex)
            {
                _logger.LogError(ex, "Policy file {Path} is invalid; policy version {Version} stays in force", _path, PolicyVersion);
                return false;
            }
        }
    }

    /// <summary>Stops watching the policy file.</summary>
    public void Dispose()
    {
        lock (_reloadLock)
        {
            _disposed = true;
        }

        _watcher?.Dispose();
        _debounceTimer?.Dispose();
        _pollTimer?.Dispose();
    }

    private void OnFileEvent(object sender, FileSystemEventArgs e)
    {
        try
        {
            _debounceTimer?.Change(Debounce, Timeout.InfiniteTimeSpan);
        }
        catch (ObjectDisposedException)
        {
            // Disposed meanwhile.
        }
    }

    private void TryReload()
    {
        try
        {
            if (!Volatile.Read(ref _disposed))
            {
                Reload();
            }
        }
        catch (Exception ex)
        {
            _logger.LogError(ex, "Policy reload failed");
        }
    }

    /// <summary>
    /// Decides the request and each of its effects with the same rules; the strictest decision wins (Deny over
    /// RequireApproval over Allow), the earliest among equals, and says which effect it came from.
    /// </summary>
    private PolicyDecision DecideWithEffects(CompiledPolicy policy, AccessRequest request)
    {
        var decision = Decide(policy, request);
        var effects = request.Effects;
        for (var i = 0; i < effects.Count && decision.Effect != PolicyEffect.Deny; i++)
        {
            var effectDecision = Decide(policy, ForEffect(request, effects[i]));
            if (Strictness(effectDecision.Effect) > Strictness(decision.Effect))
            {
                decision = effectDecision with { EffectIndex = i, Via = effects[i].Via };
            }
        }

        return decision;
    }

    private static int Strictness(PolicyEffect effect) => effect switch
    {
        PolicyEffect.Deny => 2,
        PolicyEffect.RequireApproval => 1,
        _ => 0,
    };

    /// <summary>The request as the rules see one of its effects: the effect's action, resources and extras, the request's identity.</summary>
    private static AccessRequest ForEffect(AccessRequest request, AccessEffect effect)
    {
        var attributes = new Dictionary<string, object?>(request.Attributes.Count + effect.Attributes.Count + 4, StringComparer.Ordinal);
        foreach (var (name, value) in request.Attributes)
        {
            attributes[name] = value;
        }

        attributes.Remove("objectKind");
        attributes["hasWhere"] = effect.HasWhere ?? false;
        if (effect.ObjectKind is { } objectKind)
        {
            attributes["objectKind"] = objectKind;
        }

        attributes["via"] = effect.Via;
        foreach (var (name, value) in effect.Attributes)
        {
            attributes[name] = value;
        }

        return request with
        {
            Action = effect.Action,
            Resources = effect.Resources,
            Text = effect.Text ?? request.Text,
            Attributes = attributes,
            Effects = [],
        };
    }

    private PolicyDecision Decide(CompiledPolicy policy, AccessRequest request)
    {
        var unclassified = string.Equals(request.Action, AccessRequest.UnclassifiedAction, StringComparison.Ordinal);
        var protectedCopy = string.Equals(request.Action, AccessRequest.ProtectedCopyAction, StringComparison.Ordinal);
        var fallback = unclassified ? policy.Unclassified : protectedCopy ? policy.ProtectedCopy : policy.Default;
        var candidates = policy.Candidates(request.Protocol, request.Action);
        if (candidates.Length == 0)
        {
            return fallback;
        }

        var variables = PolicyCel.Variables(request);
        foreach (var rule in candidates)
        {
            // What cannot be read is decided by UnclassifiedEffect unless a rule names it explicitly: a broad rule
            // (say, everything a CI identity does is allowed) must not wave through code the gateway could not read.
            if ((unclassified && !rule.NamesUnclassified) || (protectedCopy && !rule.NamesProtectedCopy))
            {
                continue;
            }

            object? result;
            try
            {
                result = rule.Program(variables!);
            }
            catch (Exception ex)
            {
                _logger.LogWarning("Policy rule {Rule} could not be evaluated ({Error}); the request is denied", rule.Name, ex.Message);
                return new PolicyDecision(PolicyEffect.Deny, rule.Name, $"rule '{rule.Name}' could not be evaluated: {ex.Message}", policy.Version);
            }

            switch (result)
            {
                case true:
                    return rule.Decision;
                case false:
                    continue;
                default:
                    var what = result is null ? "null" : result.GetType().Name;
                    _logger.LogWarning("Policy rule {Rule} returned {Type} instead of a bool; the request is denied", rule.Name, what);
                    return new PolicyDecision(PolicyEffect.Deny, rule.Name, $"rule '{rule.Name}' could not be evaluated: it returned {what} instead of a bool", policy.Version);
            }
        }

        return fallback;
    }

    private static string CacheKey(AccessRequest request, bool includeText)
    {
        // Every part is length-prefixed, so no value (a quoted SQL identifier may hold anything) can imitate a separator.
        var builder = t_keyBuilder ??= new StringBuilder(256);
        builder.Clear();
        Append(builder, request.Protocol);
        Append(builder, request.Target);
        Append(builder, request.Action);
        builder.Append('R').Append(request.Resources.Count);
        foreach (var resource in request.Resources)
        {
            Append(builder, resource);
        }

        builder.Append('A').Append(request.Attributes.Count);
        foreach (var (name, value) in request.Attributes)
        {
            Append(builder, name);
            Append(builder, AttributeKey(value));
        }

        builder.Append('E').Append(request.Effects.Count);
        foreach (var effect in request.Effects)
        {
            Append(builder, effect.Action);
            Append(builder, effect.Via);
            Append(builder, effect.ObjectKind);
            Append(builder, effect.HasWhere switch { null => null, true => "\0true", false => "\0false" });
            builder.Append('R').Append(effect.Resources.Count);
            foreach (var resource in effect.Resources)
            {
                Append(builder, resource);
            }

            builder.Append('A').Append(effect.Attributes.Count);
            foreach (var (name, value) in effect.Attributes)
            {
                Append(builder, name);
                Append(builder, AttributeKey(value));
            }

            if (includeText)
            {
                Append(builder, effect.Text);
            }
        }

        Append(builder, IdentityKeys.GetValue(request.Identity, IdentityKey));
        if (includeText)
        {
            Append(builder, request.Text);
        }

        var key = builder.ToString();
        if (builder.Capacity > 4096)
        {
            t_keyBuilder = null;
        }

        return key;
    }

    private static string? AttributeKey(object? value) => value switch
    {
        null => "\0null",
        bool b => b ? "\0true" : "\0false",
        string s => s,
        IFormattable f => f.ToString(null, System.Globalization.CultureInfo.InvariantCulture),
        System.Collections.IDictionary map => string.Join('\u001e', map.Keys.Cast<object?>().Select(k => $"{k}\u001d{AttributeKey(map[k!])}")),
        System.Collections.IEnumerable items => string.Join('\u001f', items.Cast<object?>().Select(AttributeKey)),
        _ => value.ToString(),
    };

    private static string IdentityKey(WorkloadIdentity identity)
    {
        // Computed once per identity object (a session keeps its identity), so every field a condition may read counts.
        var builder = new StringBuilder(128);
        Append(builder, identity.Kind.ToString());
        Append(builder, identity.Subject);
        Append(builder, identity.Issuer);
        Append(builder, identity.DisplayName);
        Append(builder, identity.TenantId);
        Append(builder, identity.ApplicationId);
        Append(builder, identity.ManagedIdentityResourceId);
        Append(builder, identity.Repository);
        Append(builder, identity.Workflow);
        Append(builder, identity.RunId);
        Append(builder, identity.Sha);
        builder.Append('R').Append(identity.Roles.Count);
        foreach (var role in identity.Roles)
        {
            Append(builder, role);
        }

        return builder.ToString();
    }

    private static void Append(StringBuilder builder, string? value)
    {
        if (value is null)
        {
            builder.Append("-;");
            return;
        }

        builder.Append(value.Length).Append(':').Append(value);
    }

    private static (DateTime, long)? Stamp(string path)
    {
        var info = new FileInfo(path);
        return info.Exists ? (info.LastWriteTimeUtc, info.Length) : null;
    }
}
