using NhiAudit.Policy;
using static NhiAudit.Tests.Policy.CelPolicyEngineTests;

namespace NhiAudit.Tests.Policy;

/// <summary>The request's effects (what it may execute besides its own verb) are decided with the same rules.</summary>
public sealed class PolicyOverEffectsTests
{
    private static CelPolicyEngine Engine(params PolicyRuleOptions[] rules) => new(new PolicyOptions { Rules = [.. rules] });

    private static readonly PolicyRuleOptions[] DefaultShapedRules =
    [
        Rule("no-drop", "request.action == 'DROP'"),
        Rule("no-truncate", "request.action == 'TRUNCATE'"),
        Rule("bulk-delete", "request.action == 'DELETE' && !request.hasWhere", PolicyEffect.RequireApproval),
    ];

    private static AccessRequest WithEffects(AccessRequest request, params AccessEffect[] effects) => request with { Effects = effects };

    [Fact]
    public void A_rule_written_for_the_verb_catches_the_same_verb_inside_code_and_names_the_effect()
    {
        using var engine = Engine(DefaultShapedRules);
        var doBlock = WithEffects(
            Request("DO", []),
            new AccessEffect { Action = "SELECT", Via = "DO block", Resources = ["orders"] },
            new AccessEffect { Action = "DROP", Via = "DO block", ObjectKind = "TABLE", Resources = ["orders"], Text = "DROP TABLE orders" });

        var decision = engine.Evaluate(doBlock);

        Assert.Equal(PolicyEffect.Deny, decision.Effect);
        Assert.Equal("no-drop", decision.Rule);
        Assert.Equal(1, decision.EffectIndex);
        Assert.Equal("DO block", decision.Via);
    }

    [Fact]
    public void The_strictest_decision_wins_and_the_request_itself_decides_among_equals()
    {
        using var engine = Engine(DefaultShapedRules);
        var held = engine.Evaluate(WithEffects(
            Request("MERGE", ["orders"]),
            new AccessEffect { Action = "UPDATE", Via = "MERGE arm", Resources = ["orders"], HasWhere = true },
            new AccessEffect { Action = "DELETE", Via = "MERGE arm", Resources = ["orders"], HasWhere = false }));
        Assert.Equal(PolicyEffect.RequireApproval, held.Effect);
        Assert.Equal("bulk-delete", held.Rule);
        Assert.Equal("MERGE arm", held.Via);

        var denied = engine.Evaluate(WithEffects(
            Request("DROP", ["orders"]),
            new AccessEffect { Action = "DELETE", Via = "trigger t on orders", Resources = ["orders"], HasWhere = false }));
        Assert.Equal(PolicyEffect.Deny, denied.Effect);
        Assert.Null(denied.Via);
        Assert.Null(denied.EffectIndex);

        var allowed = engine.Evaluate(WithEffects(
            Request("SELECT", ["orders"]),
            new AccessEffect { Action = "DELETE", Via = "function public.tidy()", Resources = ["orders"], HasWhere = true }));
        Assert.Equal(PolicyEffect.Allow, allowed.Effect);
        Assert.Null(allowed.Via);
    }

    [Fact]
    public void An_unclassified_effect_is_denied_unless_a_rule_that_names_UNKNOWN_allows_it()
    {
        var dynamicSql = new AccessEffect { Action = AccessRequest.UnclassifiedAction, Via = "EXECUTE of a computed string in a DO block" };
        using var broad = Engine([.. DefaultShapedRules, Rule("ci-may-do-anything", "identity.repository == 'contoso/orders'", PolicyEffect.Allow)]);
        var denied = broad.Evaluate(WithEffects(Request("DO", []), dynamicSql));
        Assert.Equal(PolicyEffect.Deny, denied.Effect);
        Assert.Equal("(unclassified)", denied.Rule);
        Assert.Equal("EXECUTE of a computed string in a DO block", denied.Via);

        using var explicitAllow = Engine([Rule("dynamic-sql-for-migrations", "request.action == 'UNKNOWN' && identity.workflow == 'deploy'", PolicyEffect.Allow), .. DefaultShapedRules]);
        Assert.Equal(PolicyEffect.Allow, explicitAllow.Evaluate(WithEffects(Request("DO", []), dynamicSql)).Effect);

        using var byFilter = new CelPolicyEngine(new PolicyOptions
        {
            Rules = [new PolicyRuleOptions { Name = "unknown-ok", When = "true", Effect = PolicyEffect.Allow, Actions = ["UNKNOWN"] }],
        });
        Assert.Equal(PolicyEffect.Allow, byFilter.Evaluate(WithEffects(Request("DO", []), dynamicSql)).Effect);
    }

    [Fact]
    public void A_protected_copy_is_denied_unless_a_rule_that_names_it_allows_it()
    {
        var statistics = new AccessEffect { Action = AccessRequest.ProtectedCopyAction, Via = "the planner's statistics (pg_stats) hold samples of protected columns" };
        using var broad = Engine([.. DefaultShapedRules, Rule("anything", "true", PolicyEffect.Allow)]);
        var denied = broad.Evaluate(WithEffects(Request("SELECT", ["pg_stats"]), statistics));
        Assert.Equal(PolicyEffect.Deny, denied.Effect);
        Assert.Equal("(masking)", denied.Rule);
        Assert.Equal(statistics.Via, denied.Via);

        using var lifted = Engine(Rule("dba-may-read-statistics", "request.action == 'PROTECTED_COPY' && request.via.contains('statistics') && identity.workflow == 'deploy'", PolicyEffect.Allow));
        Assert.Equal(PolicyEffect.Allow, lifted.Evaluate(WithEffects(Request("SELECT", ["pg_stats"]), statistics)).Effect);
        Assert.Equal(PolicyEffect.Deny, lifted.Evaluate(WithEffects(Request("INSERT", ["sink"]), statistics with { Via = "inserting protected data into another table" })).Effect);
    }

    [Fact]
    public void Conditions_read_the_effect_as_request_and_the_whole_list_as_request_effects()
    {
        using var engine = Engine(
            Rule("no-writes-via-functions", "request.via.startsWith('function') && request.action != 'SELECT'"),
            Rule("no-recursive-rm", "request.effects.exists(e, e.action == 'exec' && e.name == 'rm' && 'r' in e.flags)"));

        var viaFunction = engine.Evaluate(WithEffects(
            Request("SELECT", ["orders"]),
            new AccessEffect { Action = "INSERT", Via = "function public.log_it()", Resources = ["log"] }));
        Assert.Equal("no-writes-via-functions", viaFunction.Rule);

        var shell = engine.Evaluate(WithEffects(
            Request("exec", ["/"], protocol: "ssh", text: "sh -c 'rm -fr /srv'"),
            new AccessEffect
            {
                Action = "exec",
                Via = "sh -c",
                Text = "rm -fr /srv",
                Attributes = new Dictionary<string, object?> { ["name"] = "rm", ["args"] = new[] { "/srv" }, ["flags"] = new[] { "f", "r" } },
            }));
        Assert.Equal(PolicyEffect.Deny, shell.Effect);
        Assert.Equal("no-recursive-rm", shell.Rule);
    }

    [Fact]
    public void Decisions_with_different_effects_are_not_confused_by_the_cache()
    {
        using var engine = Engine(DefaultShapedRules);
        var plain = Request("DO", []);
        Assert.Equal(PolicyEffect.Allow, engine.Evaluate(plain).Effect);
        Assert.Equal(PolicyEffect.Deny, engine.Evaluate(WithEffects(plain, new AccessEffect { Action = "TRUNCATE", Via = "DO block", Resources = ["orders"] })).Effect);
        Assert.Equal(PolicyEffect.Allow, engine.Evaluate(WithEffects(plain, new AccessEffect { Action = "DELETE", Via = "DO block", Resources = ["orders"], HasWhere = true })).Effect);
        Assert.Equal(PolicyEffect.RequireApproval, engine.Evaluate(WithEffects(plain, new AccessEffect { Action = "DELETE", Via = "DO block", Resources = ["orders"], HasWhere = false })).Effect);
    }
}
