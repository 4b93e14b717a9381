using NhiAudit.Policy;

namespace NhiAudit.Tests.Policy;

public sealed class PolicyOptionsValidatorTests
{
    private static List<string> Failures(PolicyOptions options) => PolicyOptionsValidator.Collect(options);

    private static PolicyRuleOptions Rule(string name, string when, PolicyEffect effect = PolicyEffect.Deny) => CelPolicyEngineTests.Rule(name, when, effect);

    [Fact]
    public void A_good_policy_passes()
    {
        Assert.Empty(Failures(new PolicyOptions { Rules = [Rule("a", "request.action == 'DROP'"), Rule("b", "identity.repository == 'x'", PolicyEffect.Allow)] }));
        Assert.Empty(Failures(new PolicyOptions()));
    }

    [Fact]
    public void Invalid_cel_is_reported_with_the_rule_name()
    {
        var failure = Assert.Single(Failures(new PolicyOptions { Rules = [Rule("broken", "request.action == 'DROP' &&")] }));
        Assert.StartsWith("NhiAudit:Policy rule 'broken': When does not compile: ", failure, StringComparison.Ordinal);
    }

    [Fact]
    public void Unknown_variables_are_reported()
    {
        var failure = Assert.Single(Failures(new PolicyOptions { Rules = [Rule("typo", "requst.action == 'DROP'")] }));
        Assert.Contains("rule 'typo': When does not compile", failure, StringComparison.Ordinal);
        Assert.Contains("requst", failure, StringComparison.Ordinal);
    }

    [Fact]
    public void Names_must_be_unique_and_present()
    {
        var failures = Failures(new PolicyOptions { Rules = [Rule("a", "true"), Rule("A", "true"), Rule("", "true")] });
        Assert.Contains("NhiAudit:Policy: rule name 'A' is used twice.", failures);
        Assert.Contains("NhiAudit:Policy:Rules:2: Name must not be empty.", failures);
    }

    [Fact]
    public void Empty_condition_is_refused()
    {
        Assert.Contains("When (a CEL condition) must not be empty", Assert.Single(Failures(new PolicyOptions { Rules = [Rule("a", " ")] })), StringComparison.Ordinal);
    }

    [Fact]
    public void RequireApproval_is_accepted_now_that_the_broker_exists()
    {
        var failures = Failures(new PolicyOptions
        {
            DefaultEffect = PolicyEffect.RequireApproval,
            Rules = [Rule("hold-drops", "request.action == 'DROP'", PolicyEffect.RequireApproval)],
        });
        Assert.Empty(failures);
    }

    [Fact]
    public void An_undefined_effect_is_refused()
    {
        var failure = Assert.Single(Failures(new PolicyOptions { Rules = [Rule("odd", "true", (PolicyEffect)42)] }));
        Assert.Contains("rule 'odd': Effect: '42' is not an effect", failure, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_policy_file_is_refused()
    {
        var failure = Assert.Single(Failures(new PolicyOptions { File = "/nonexistent/policy.json" }));
        Assert.StartsWith("NhiAudit:Policy:File '/nonexistent/policy.json' cannot be read", failure, StringComparison.Ordinal);
    }
}
