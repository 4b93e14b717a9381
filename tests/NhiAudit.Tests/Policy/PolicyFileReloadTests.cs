using System.Diagnostics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using NhiAudit.Policy;
using NhiAudit.Tests.DependencyInjection;
using NhiAudit.Tests.Identity;
using static NhiAudit.Tests.Policy.CelPolicyEngineTests;

namespace NhiAudit.Tests.Policy;

public sealed class PolicyFileReloadTests : IDisposable
{
    private readonly TestDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    private string WritePolicy(string json)
    {
        var path = _directory.Sub("policy.json");
        var temp = path + ".tmp";
        File.WriteAllText(temp, json);
        File.Move(temp, path, overwrite: true);
        return path;
    }

    private static async Task WaitFor(Func<bool> condition)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), "timed out waiting for the policy reload");
            await Task.Delay(50);
        }
    }

    [Fact]
    public async Task File_rules_replace_configured_ones_and_reload_on_change()
    {
        var path = WritePolicy("""{ "Policy": { "Rules": [ { "Name": "no-drop", "When": "request.action == 'DROP'", "Effect": "Deny" } ] } }""");
        using var engine = new CelPolicyEngine(new PolicyOptions { File = path, Rules = [Rule("configured", "true")] });

        Assert.Equal(1, engine.PolicyVersion);
        Assert.Equal("no-drop", engine.Evaluate(Request("DROP")).Rule);
        var cached = engine.Evaluate(Request("SELECT"));
        Assert.Equal("(default)", cached.Rule);
        Assert.Same(cached, engine.Evaluate(Request("SELECT")));

        WritePolicy("""{ "NhiAudit": { "Policy": { "DefaultEffect": "Deny", "Rules": [ { "Name": "selects", "When": "request.action == 'SELECT'", "Effect": "Allow" } ] } } }""");
        await WaitFor(() => engine.PolicyVersion == 2);

        var select = engine.Evaluate(Request("SELECT"));
        Assert.Equal(new PolicyDecision(PolicyEffect.Allow, "selects", "allowed by policy rule 'selects'", 2), select);
        Assert.Equal(new PolicyDecision(PolicyEffect.Deny, "(default)", "no policy rule matched; the default is Deny", 2), engine.Evaluate(Request("DROP")));

        // A broken rewrite (invalid CEL, then invalid JSON) keeps version 2 in force.
        WritePolicy("""{ "Policy": { "Rules": [ { "Name": "broken", "When": "request.action ==", "Effect": "Deny" } ] } }""");
        await Task.Delay(300);
        Assert.False(engine.Reload());
        WritePolicy("{ not json");
        await Task.Delay(300);
        Assert.False(engine.Reload());
        Assert.Equal(2, engine.PolicyVersion);
        Assert.Equal("selects", engine.Evaluate(Request("SELECT")).Rule);

        WritePolicy("""{ "Policy": { "Rules": [ { "Name": "all", "When": "true", "Effect": "Deny" } ] } }""");
        await WaitFor(() => engine.PolicyVersion == 3);
        Assert.Equal("all", engine.Evaluate(Request("SELECT")).Rule);
    }

    [Fact]
    public async Task AddNhiAuditing_with_a_policy_section_resolves_the_engine()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["NhiAudit:Policy:DefaultEffect"] = "Deny",
            ["NhiAudit:Policy:Rules:0:Name"] = "reads",
            ["NhiAudit:Policy:Rules:0:When"] = "request.action == 'SELECT' && identity.repository == 'contoso/orders'",
            ["NhiAudit:Policy:Rules:0:Effect"] = "Allow",
            ["NhiAudit:Policy:Rules:0:Protocols:0"] = "postgres",
        }).Build();
        var services = new ServiceCollection();
        services.AddNhiAuditing(configuration);
        await using var provider = new MiniServiceProvider(services);

        provider.GetRequiredService<IStartupValidator>().Validate();
        var options = provider.GetRequiredService<IOptions<NhiAuditOptions>>().Value.Policy;
        Assert.Equal(PolicyEffect.Deny, options.DefaultEffect);
        var engine = provider.GetRequiredService<IPolicyEngine>();
        Assert.IsType<CelPolicyEngine>(engine);
        Assert.Same(engine, provider.GetRequiredService<IPolicyEngine>());
        Assert.Equal("reads", engine.Evaluate(Request("SELECT")).Rule);
        Assert.Equal(PolicyEffect.Deny, engine.Evaluate(Request("DELETE")).Effect);
    }

    [Fact]
    public async Task AddNhiAuditing_accepts_RequireApproval_and_registers_the_broker()
    {
        var services = new ServiceCollection();
        services.AddNhiAuditing(options => options.Policy.Rules.Add(Rule("hold", "request.action == 'DROP'", PolicyEffect.RequireApproval)));
        await using var provider = new MiniServiceProvider(services);

        provider.GetRequiredService<IStartupValidator>().Validate();
        Assert.Equal(PolicyEffect.RequireApproval, provider.GetRequiredService<IPolicyEngine>().Evaluate(Request("DROP")).Effect);
        Assert.IsType<NhiAudit.Approvals.InMemoryApprovalBroker>(provider.GetRequiredService<IApprovalBroker>());
    }
}
