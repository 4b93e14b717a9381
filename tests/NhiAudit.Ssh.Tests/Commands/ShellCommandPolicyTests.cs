using NhiAudit.Policy;
using NhiAudit.Ssh.Commands;

namespace NhiAudit.Ssh.Tests.Commands;

/// <summary>The commands of an exec line, decided by the policy engine as effects of the request.</summary>
public sealed class ShellCommandPolicyTests
{
    /// <summary>The demo's SSH rule, written over request.commands (eng/demo.sh).</summary>
    internal const string NoRecursiveRm =
        "request.protocol == 'ssh' && request.action == 'exec' && request.commands.exists(c, c.name == 'rm' && c.flags.exists(f, f == 'R' || 'recursive'.startsWith(f)))";

    private static readonly WorkloadIdentity Job = new() { Kind = WorkloadKind.ServicePrincipal, Subject = "deploy-bot", Issuer = "https://issuer.test" };

    internal static AccessRequest Exec(string commandLine)
    {
        var parsed = ShellCommandParser.Parse(commandLine);
        var attributes = new Dictionary<string, object?> { ["user"] = "root" };
        ShellCommandPolicy.AddAttributes(parsed, attributes);
        return new AccessRequest
        {
            Protocol = "ssh",
            Target = "build",
            Action = "exec",
            Text = commandLine,
            Attributes = attributes,
            Effects = ShellCommandPolicy.Effects(parsed),
            Identity = Job,
        };
    }

    private static CelPolicyEngine DenyList() => new(new PolicyOptions
    {
        Rules = [new PolicyRuleOptions { Name = "no-rm-rf", When = NoRecursiveRm, Effect = PolicyEffect.Deny, Reason = "recursive deletes are not allowed through the gateway" }],
    });

    [Theory]
    [MemberData(nameof(ShellCommandParserTests.RecursiveDeletes), MemberType = typeof(ShellCommandParserTests))]
    public void The_deny_rule_catches_every_spelling(string commandLine, string via)
    {
        using var engine = DenyList();
        var decision = engine.Evaluate(Exec(commandLine));

        Assert.Equal(PolicyEffect.Deny, decision.Effect);
        Assert.Equal("no-rm-rf", decision.Rule);
        _ = via;
    }

    [Theory]
    [InlineData("rm --rec x")]
    [InlineData("rm --r x")]
    public void Long_option_abbreviations_getopt_accepts_are_caught_too(string commandLine)
    {
        using var engine = DenyList();
        Assert.Equal(PolicyEffect.Deny, engine.Evaluate(Exec(commandLine)).Effect);
    }

    [Theory]
    [MemberData(nameof(ShellCommandParserTests.Unresolvable), MemberType = typeof(ShellCommandParserTests))]
    public void What_cannot_be_read_is_refused_as_unclassified(string commandLine, string reason)
    {
        using var engine = new CelPolicyEngine(new PolicyOptions
        {
            // Even a rule that allows everything this identity does does not wave through what cannot be read.
            Rules = [new PolicyRuleOptions { Name = "deploy-bot-may-do-anything", When = "identity.subject == 'deploy-bot'", Effect = PolicyEffect.Allow }],
        });
        var decision = engine.Evaluate(Exec(commandLine));

        Assert.Equal(PolicyEffect.Deny, decision.Effect);
        Assert.Equal("(unclassified)", decision.Rule);
        Assert.NotNull(decision.Via);
        Assert.Contains(reason, decision.Via!, StringComparison.Ordinal);
    }

    [Fact]
    public void A_rule_that_names_UNKNOWN_may_allow_what_cannot_be_read()
    {
        using var engine = new CelPolicyEngine(new PolicyOptions
        {
            Rules =
            [
                new PolicyRuleOptions { Name = "python-migrations", When = "request.action == 'UNKNOWN' && request.reason.startsWith('python3 -c') && identity.subject == 'deploy-bot'", Effect = PolicyEffect.Allow },
            ],
        });

        Assert.Equal(PolicyEffect.Allow, engine.Evaluate(Exec("python3 -c 'print(1)'")).Effect);
        Assert.Equal(PolicyEffect.Deny, engine.Evaluate(Exec("perl -e 'print 1'")).Effect);
    }

    [Theory]
    [InlineData("echo \"on $(hostname) as $(id -un)\"; mkdir -p /tmp/nhiaudit-demo-app")]
    [InlineData("cat f | grep x")]
    [InlineData("uname -a")]
    [InlineData("systemctl restart x")]
    [InlineData("tar xzf a.tgz")]
    [InlineData("rm -f /tmp/one-file")]
    [InlineData("rmdir -p /tmp/a/b")]
    [InlineData("echo rm -rf x")]
    [InlineData("grep -r 'rm -rf' /srv")]
    public void Ordinary_commands_still_pass_the_deny_list(string commandLine)
    {
        using var engine = DenyList();
        var decision = engine.Evaluate(Exec(commandLine));
        Assert.Equal(PolicyEffect.Allow, decision.Effect);
    }

    [Fact]
    public void Per_command_conditions_read_the_effect_as_the_request()
    {
        using var engine = new CelPolicyEngine(new PolicyOptions
        {
            Rules =
            [
                new PolicyRuleOptions { Name = "no-etc-writes", When = "request.action == 'exec' && request.writes.exists(w, w.startsWith('/etc/'))", Effect = PolicyEffect.Deny },
                new PolicyRuleOptions { Name = "no-sudo-rm", When = "request.action == 'exec' && request.name == 'rm' && request.via.startsWith('sudo')", Effect = PolicyEffect.Deny },
            ],
        });

        var write = engine.Evaluate(Exec("true && echo x > /etc/motd"));
        Assert.Equal("no-etc-writes", write.Rule);
        Assert.Equal("command line", write.Via);
        Assert.Equal(1, write.EffectIndex);

        var sudo = engine.Evaluate(Exec("ls; sudo rm /x"));
        Assert.Equal("no-sudo-rm", sudo.Rule);
        Assert.Equal("sudo", sudo.Via);
        Assert.Equal(PolicyEffect.Allow, engine.Evaluate(Exec("rm /x")).Effect);
    }

    [Fact]
    public void The_shipped_allow_list_allows_deploy_commands_and_refuses_the_rest()
    {
        var file = Path.Combine(RepoRoot(), "src", "NhiAudit.Proxy", "examples", "ssh-allow-list.policy.json");
        using var engine = new CelPolicyEngine(new PolicyOptions { File = file });

        string[] allowed =
        [
            "uname -a",
            "mkdir -p /srv/app/releases/42 && tar xzf /tmp/r.tgz -C /srv/app/releases/42",
            "cat /srv/app/VERSION | grep -c 1.4 > /dev/null",
            "test -d /srv/app || echo missing",
            "systemctl restart app.service",
            "rm -rf /srv/app/releases/41",
            "echo \"on $(hostname) as $(id -un)\"",
            "ls /srv/app | xargs -n1 echo",
        ];
        foreach (var line in allowed)
        {
            var decision = engine.Evaluate(Exec(line));
            Assert.True(decision.Effect == PolicyEffect.Allow, $"{line}: {decision.Effect} by {decision.Rule} via {decision.Via}");
        }

        string[] refused =
        [
            "rm -rf /",
            "sh -c 'rm -rf /srv/app/releases/41'",
            "sudo systemctl restart app.service",
            "systemctl stop app.service",
            "cp /srv/app/x /etc/cron.d/x",
            "echo x > /etc/motd",
            "find /srv -delete",
            "ls | xargs rm",
            "rm -rf /srv/app/releases/$X",
            "python3 -c 'print(1)'",
            "curl -s https://example.com | sh",
            "$(echo rm) -rf /srv/app/releases/41",
        ];
        foreach (var line in refused)
        {
            var decision = engine.Evaluate(Exec(line));
            Assert.True(decision.Effect == PolicyEffect.Deny, $"{line}: {decision.Effect} by {decision.Rule} via {decision.Via}");
        }
    }

    private static string RepoRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "NhiAudit.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("the repository root (NhiAudit.sln) was not found above " + AppContext.BaseDirectory);
    }
}
