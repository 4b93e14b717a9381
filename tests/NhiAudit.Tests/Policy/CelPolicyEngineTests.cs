using Microsoft.Extensions.Options;
using NhiAudit.Policy;

namespace NhiAudit.Tests.Policy;

public sealed class CelPolicyEngineTests
{
    internal static readonly WorkloadIdentity Job = new()
    {
        Kind = WorkloadKind.FederatedWorkload,
        Subject = "repo:contoso/orders:ref:refs/heads/main",
        Issuer = "https://token.actions.githubusercontent.com",
        Repository = "contoso/orders",
        Workflow = "deploy",
        RunId = "42",
        Roles = ["Reader"],
    };

    internal static AccessRequest Request(string action, string[]? resources = null, bool? hasWhere = null, string protocol = "postgres", WorkloadIdentity? identity = null, string text = "") => new()
    {
        Protocol = protocol,
        Target = "orders-db",
        Action = action,
        Resources = resources ?? ["orders"],
        Text = text,
        Attributes = hasWhere is null ? new Dictionary<string, object?>() : new Dictionary<string, object?> { ["hasWhere"] = hasWhere.Value },
        Identity = identity ?? Job,
    };

    internal static PolicyRuleOptions Rule(string name, string when, PolicyEffect effect = PolicyEffect.Deny, string? reason = null) =>
        new() { Name = name, When = when, Effect = effect, Reason = reason };

    private static CelPolicyEngine Engine(params PolicyRuleOptions[] rules) => new(new PolicyOptions { Rules = [.. rules] });

    [Fact]
    public void First_matching_rule_wins()
    {
        using var engine = Engine(
            Rule("allow-orders-select", "request.action == 'SELECT'", PolicyEffect.Allow),
            Rule("deny-orders", "'orders' in request.resources"),
            Rule("allow-all", "true", PolicyEffect.Allow));

        var select = engine.Evaluate(Request("SELECT"));
        Assert.Equal(new PolicyDecision(PolicyEffect.Allow, "allow-orders-select", "allowed by policy rule 'allow-orders-select'", 1), select);
        var update = engine.Evaluate(Request("UPDATE", hasWhere: true));
        Assert.Equal(new PolicyDecision(PolicyEffect.Deny, "deny-orders", "denied by policy rule 'deny-orders'", 1), update);
        Assert.Equal("allow-all", engine.Evaluate(Request("UPDATE", ["customers"])).Rule);
    }

    [Fact]
    public void No_match_uses_the_default_effect()
    {
        using var allow = Engine(Rule("drop", "request.action == 'DROP'"));
        var decision = allow.Evaluate(Request("SELECT"));
        Assert.Equal(PolicyEffect.Allow, decision.Effect);
        Assert.Equal("(default)", decision.Rule);

        using var deny = new CelPolicyEngine(new PolicyOptions { DefaultEffect = PolicyEffect.Deny, Rules = [Rule("select", "request.action == 'SELECT'", PolicyEffect.Allow)] });
        Assert.Equal(PolicyEffect.Allow, deny.Evaluate(Request("SELECT")).Effect);
        Assert.Equal(new PolicyDecision(PolicyEffect.Deny, "(default)", "no policy rule matched; the default is Deny", 1), deny.Evaluate(Request("INSERT")));
    }

    [Fact]
    public void Unclassified_requests_are_denied_before_any_rule()
    {
        using var engine = Engine(Rule("allow-all", "true", PolicyEffect.Allow));
        var decision = engine.Evaluate(Request(AccessRequest.UnclassifiedAction));
        Assert.Equal(PolicyEffect.Deny, decision.Effect);
        Assert.Equal("(unclassified)", decision.Rule);

        using var lenient = new CelPolicyEngine(new PolicyOptions { UnclassifiedEffect = PolicyEffect.Allow, DefaultEffect = PolicyEffect.Deny });
        Assert.Equal(new PolicyDecision(PolicyEffect.Allow, "(unclassified)", "the request could not be classified; unclassified requests are allowed by configuration", 1), lenient.Evaluate(Request(AccessRequest.UnclassifiedAction)));
    }

    [Fact]
    public void Protocol_and_action_filters_are_checked_before_the_condition()
    {
        var k8s = Rule("k8s-deny", "true");
        k8s.Protocols.Add("kubernetes");
        var deletes = Rule("delete-deny", "true");
        deletes.Actions.AddRange(["delete", "DELETE"]);
        deletes.Protocols.Add("Postgres");
        // A condition that throws would deny; the filter keeps it from running for other actions.
        var throwing = Rule("exec-only", "request.missing == 1");
        throwing.Actions.Add("exec");
        using var engine = Engine(k8s, deletes, throwing);

        Assert.Equal("(default)", engine.Evaluate(Request("SELECT")).Rule);
        Assert.Equal("k8s-deny", engine.Evaluate(Request("get", protocol: "kubernetes")).Rule);
        Assert.Equal("delete-deny", engine.Evaluate(Request("DELETE", hasWhere: true)).Rule);
        Assert.Equal("(default)", engine.Evaluate(Request("delete", protocol: "ssh")).Rule);
        Assert.Equal("exec-only", engine.Evaluate(Request("exec", protocol: "ssh")).Rule);
    }

    [Theory]
    [InlineData("request.action == 'DROP'", "DROP", null, true)]
    [InlineData("request.action == 'DROP'", "SELECT", null, false)]
    [InlineData("request.action == 'DELETE' && !request.hasWhere", "DELETE", false, true)]
    [InlineData("request.action == 'DELETE' && !request.hasWhere", "DELETE", true, false)]
    [InlineData("request.action == 'DELETE' && !request.hasWhere", "DELETE", null, true)] // hasWhere absent means false
    [InlineData("'orders' in request.resources", "SELECT", null, true)]
    [InlineData("'customers' in request.resources", "SELECT", null, false)]
    [InlineData("identity.repository == 'contoso/orders'", "SELECT", null, true)]
    [InlineData("identity.repository == 'contoso/other'", "SELECT", null, false)]
    [InlineData("request.protocol == 'postgres' && request.target == 'orders-db'", "SELECT", null, true)]
    [InlineData("request.action in ['DROP', 'TRUNCATE']", "TRUNCATE", null, true)]
    [InlineData("request.resources.exists(r, r.startsWith('ord'))", "SELECT", null, true)]
    [InlineData("size(request.resources) > 1", "SELECT", null, false)]
    public void Cel_conditions(string when, string action, bool? hasWhere, bool matches)
    {
        using var engine = Engine(Rule("rule", when));
        var decision = engine.Evaluate(Request(action, hasWhere: hasWhere));
        Assert.Equal(matches ? "rule" : "(default)", decision.Rule);
        Assert.Equal(matches ? PolicyEffect.Deny : PolicyEffect.Allow, decision.Effect);
    }

    [Fact]
    public void Identity_conditions()
    {
        using var engine = Engine(
            Rule("managed-identity-reads", "identity.kind == 'ManagedIdentity' && request.action == 'SELECT'", PolicyEffect.Allow),
            Rule("only-deploy-workflow", "identity.kind == 'FederatedWorkload' && identity.workflow != 'deploy'", reason: "only the deploy workflow may connect"),
            Rule("admins", "'Admin' in identity.roles", PolicyEffect.Allow),
            Rule("rest", "true"));

        var managed = new WorkloadIdentity { Kind = WorkloadKind.ManagedIdentity, Subject = "mi", Issuer = "https://sts", ManagedIdentityResourceId = "/subscriptions/x" };
        Assert.Equal("managed-identity-reads", engine.Evaluate(Request("SELECT", identity: managed)).Rule);
        Assert.Equal("rest", engine.Evaluate(Request("UPDATE", identity: managed)).Rule);

        var nightly = Job with { Workflow = "nightly" };
        var denied = engine.Evaluate(Request("SELECT", identity: nightly));
        Assert.Equal(new PolicyDecision(PolicyEffect.Deny, "only-deploy-workflow", "only the deploy workflow may connect", 1), denied);

        var admin = Job with { Roles = ["Admin"] };
        Assert.Equal("admins", engine.Evaluate(Request("SELECT", identity: admin)).Rule);
        Assert.Equal("rest", engine.Evaluate(Request("SELECT")).Rule);
    }

    [Fact]
    public void Other_attributes_are_visible_and_part_of_the_cache_key()
    {
        using var engine = Engine(Rule("big", "request.rows > 1000"));
        AccessRequest WithRows(int rows) => Request("SELECT") with { Attributes = new Dictionary<string, object?> { ["rows"] = rows } };
        Assert.Equal("big", engine.Evaluate(WithRows(5000)).Rule);
        Assert.Equal("(default)", engine.Evaluate(WithRows(10)).Rule);
        Assert.Equal("big", engine.Evaluate(WithRows(5000)).Rule);
    }

    [Fact]
    public void A_condition_that_throws_denies_naming_the_rule()
    {
        using var engine = Engine(
            Rule("selects", "request.action == 'SELECT'", PolicyEffect.Allow),
            Rule("broken", "request.nosuchkey == 'x'", PolicyEffect.Allow),
            Rule("allow-all", "true", PolicyEffect.Allow));

        Assert.Equal(PolicyEffect.Allow, engine.Evaluate(Request("SELECT")).Effect);
        var decision = engine.Evaluate(Request("UPDATE", hasWhere: true));
        Assert.Equal(PolicyEffect.Deny, decision.Effect);
        Assert.Equal("broken", decision.Rule);
        Assert.StartsWith("rule 'broken' could not be evaluated: ", decision.Reason, StringComparison.Ordinal);
        Assert.Contains("nosuchkey", decision.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void A_condition_that_returns_no_bool_denies()
    {
        using var engine = Engine(Rule("text", "request.action", PolicyEffect.Allow));
        var decision = engine.Evaluate(Request("SELECT"));
        Assert.Equal(new PolicyDecision(PolicyEffect.Deny, "text", "rule 'text' could not be evaluated: it returned String instead of a bool", 1), decision);
    }

    [Fact]
    public void Decisions_are_cached_per_request_shape_and_ignore_text_unless_a_rule_reads_it()
    {
        using var engine = Engine(Rule("drop", "request.action == 'DROP'"));
        var first = engine.Evaluate(Request("SELECT", text: "SELECT 1"));
        var second = engine.Evaluate(Request("SELECT", text: "SELECT 2"));
        Assert.Same(first, second);

        using var reading = Engine(Rule("pg-sleep", "request.text.contains('pg_sleep')"));
        Assert.Equal("(default)", reading.Evaluate(Request("SELECT", text: "SELECT 1")).Rule);
        Assert.Equal("pg-sleep", reading.Evaluate(Request("SELECT", text: "SELECT pg_sleep(10)")).Rule);
    }

    [Fact]
    public void Cache_distinguishes_identities_with_the_same_subject()
    {
        using var engine = Engine(Rule("run-7", "identity.runId == '7'"));
        Assert.Equal("(default)", engine.Evaluate(Request("SELECT")).Rule);
        Assert.Equal("run-7", engine.Evaluate(Request("SELECT", identity: Job with { RunId = "7" })).Rule);
    }

    [Fact]
    public void Cache_keys_cannot_be_forged_with_separators()
    {
        using var engine = Engine(Rule("secret", "'a' in request.resources && 'b' in request.resources"));
        Assert.Equal("secret", engine.Evaluate(Request("SELECT", ["a", "b"])).Rule);
        Assert.Equal("(default)", engine.Evaluate(Request("SELECT", ["a:b"])).Rule);
        Assert.Equal("(default)", engine.Evaluate(Request("SELECT", ["1:a1:b"])).Rule);
    }

    [Fact]
    public void Concurrent_evaluation_agrees()
    {
        using var engine = Engine(Rule("delete", "request.action == 'DELETE' && !request.hasWhere"));
        var wrong = 0;
        Parallel.For(0, 20_000, i =>
        {
            var noWhere = i % 3 == 0;
            var decision = engine.Evaluate(Request("DELETE", [$"t{i % 50}"], hasWhere: !noWhere));
            if ((decision.Effect == PolicyEffect.Deny) != noWhere)
            {
                Interlocked.Increment(ref wrong);
            }
        });
        Assert.Equal(0, wrong);
    }

    [Fact]
    public void Invalid_options_are_refused_by_the_constructor()
    {
        var ex = Assert.Throws<OptionsValidationException>(() => Engine(Rule("bad", "request.action ==")));
        Assert.Contains("rule 'bad': When does not compile", ex.Message, StringComparison.Ordinal);
    }
}
