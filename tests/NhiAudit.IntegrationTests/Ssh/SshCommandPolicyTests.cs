using System.Text.Json;
using NhiAudit.IntegrationTests.Infrastructure;

namespace NhiAudit.IntegrationTests.Ssh;

/// <summary>A gateway and sshd whose policy is the demo's: recursive deletes denied, whatever their spelling; the rest allowed, except what cannot be read.</summary>
public sealed class SshCommandPolicyFixture : IAsyncLifetime
{
    /// <summary>The demo's rule (eng/demo.sh), decided on each command of the line.</summary>
    public const string NoRecursiveRm =
        "request.protocol == 'ssh' && request.action == 'exec' && request.name == 'rm' && request.flags.exists(f, f == 'R' || 'recursive'.startsWith(f))";

    public SshGatewayHost Host { get; private set; } = null!;

    public async Task InitializeAsync() => Host = await SshGatewayHost.StartAsync(settings =>
    {
        settings["NhiAudit:Policy:DefaultEffect"] = "Allow";
        settings["NhiAudit:Policy:UnclassifiedEffect"] = "Deny";
        settings["NhiAudit:Policy:Rules:0:Name"] = "no-rm-rf";
        settings["NhiAudit:Policy:Rules:0:When"] = NoRecursiveRm;
        settings["NhiAudit:Policy:Rules:0:Effect"] = "Deny";
        settings["NhiAudit:Policy:Rules:0:Reason"] = "recursive deletes are not allowed through the gateway";
    });

    public async Task DisposeAsync() => await Host.DisposeAsync();
}

/// <summary>
/// The spellings a workload might use to get a recursive delete past a rule, run with the real OpenSSH client through
/// the gateway to a real sshd: each is refused with exit 126 before it reaches the host (the directory it targets is
/// still there), and its ssh.request record lists the commands the gateway read and the one that decided.
/// </summary>
public sealed class SshCommandPolicyTests(SshCommandPolicyFixture fixture) : IClassFixture<SshCommandPolicyFixture>
{
    private SshGatewayHost Gateway => fixture.Host;

    /// <summary>Read as rm with a recursive flag: refused by the rule, naming the command and how the line reaches it. {v} is the victim directory.</summary>
    public static TheoryData<string, string> ReadableSpellings => new()
    {
        { "rm -fr {v}", "command line" },
        { "/bin/rm -r -f {v}", "command line" },
        { "\\rm -R {v}", "command line" },
        { "r''m -rf {v}", "command line" },
        { "\"rm\" --recursive {v}", "command line" },
        { "rm -r -- {v}", "command line" },
        { "sh -c 'cd / && rm -rf {v}'", "sh -c" },
        { "bash -c \"rm -rf {v}\"", "bash -c" },
        { "nice -n 5 timeout 5 env A=1 rm -rf {v}", "nice / timeout / env" },
        { "A=1 rm -rf {v}", "command line" },
        { "true && { rm -rf {v}; }", "command line" },
        { "false || (rm -rf {v})", "command line" },
        { "find {v} -maxdepth 0 -exec rm -rf {} +", "find -exec" },
        { "echo {v} | xargs rm -rf", "pipeline / xargs" },
        { "find {v} -delete", "find -delete" },
        { "echo $(rm -rf {v})", "$(…)" },
    };

    /// <summary>Not readable statically: refused as unclassified, saying why.</summary>
    public static TheoryData<string, string> UnreadableSpellings => new()
    {
        { "$(echo rm) -rf {v}", "the command name is computed at run time" },
        { "`echo rm` -rf {v}", "the command name is computed at run time" },
        { "eval \"rm -rf {v}\"", "eval runs a string the shell builds at run time" },
        { "X=rm; $X -rf {v}", "the command name is computed at run time ($X)" },
        { "python3 -c 'import shutil; shutil.rmtree(\"{v}\")'", "python3 -c runs code given on its command line" },
        { "perl -e 'system(\"rm -rf {v}\")'", "perl -e runs code given on its command line" },
        { "echo 'rm -rf {v}' | sh", "sh reads commands from its standard input" },
        { "printf 'rm -rf {v}' > {v}.sh; sh < {v}.sh", "sh reads commands from its standard input" },
    };

    private string Victim()
    {
        var victim = Path.Combine(Gateway.Files, "victim-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(victim);
        File.WriteAllText(Path.Combine(victim, "keep"), "still here");
        return victim;
    }

    private static string Spell(string spelling, string victim) => spelling.Replace("{v}", victim, StringComparison.Ordinal);

    [Theory]
    [MemberData(nameof(ReadableSpellings))]
    public async Task A_recursive_delete_is_refused_however_it_is_spelled(string spelling, string via)
    {
        var victim = Victim();
        var command = Spell(spelling, victim);

        // The spelling is real: the host's shell would delete the directory with it (checked on a copy, not through the gateway).
        var copy = Victim();
        var direct = await ProcessRunner.RunAsync("sh", ["-c", Spell(spelling, copy)], timeout: TimeSpan.FromSeconds(30));
        Assert.False(Directory.Exists(copy), $"{spelling} did not delete directly: {direct.StandardError}");

        var result = await Gateway.SshAsync(command);

        Assert.Equal(126, result.ExitCode);
        Assert.Contains("nhiaudit: denied by policy rule 'no-rm-rf': recursive deletes are not allowed through the gateway", result.StandardError, StringComparison.Ordinal);
        Assert.Contains($"via {via})", result.StandardError, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(victim, "keep")), "the host deleted the victim");

        var record = await RequestRecordAsync(command);
        var commands = record.GetProperty("request").GetProperty("commands").EnumerateArray().ToList();
        var rm = Assert.Single(commands, c => c.GetProperty("name").GetString() == "rm");
        Assert.Contains(rm.GetProperty("flags").EnumerateArray(), f => f.GetString() is "r" or "R" or "recursive");
        Assert.Equal(via, rm.GetProperty("via").GetString());
        var policy = record.GetProperty("policy");
        Assert.Equal("Deny", policy.GetProperty("effect").GetString());
        Assert.Equal("no-rm-rf", policy.GetProperty("rule").GetString());
        Assert.Equal(via, policy.GetProperty("via").GetString());
        var deciding = record.GetProperty("effects")[policy.GetProperty("effectIndex").GetInt32()];
        Assert.Equal("exec", deciding.GetProperty("action").GetString());
        Assert.Equal(via, deciding.GetProperty("via").GetString());
        Assert.StartsWith("denied by policy rule 'no-rm-rf'", record.GetProperty("refused").GetString(), StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(UnreadableSpellings))]
    public async Task What_the_gateway_cannot_read_is_refused_as_unclassified(string spelling, string reason)
    {
        var victim = Victim();
        var command = Spell(spelling, victim);

        var copy = Victim();
        await ProcessRunner.RunAsync("sh", ["-c", Spell(spelling, copy)], timeout: TimeSpan.FromSeconds(30));
        Assert.False(Directory.Exists(copy), $"{spelling} did not delete directly");

        var result = await Gateway.SshAsync(command);

        Assert.Equal(126, result.ExitCode);
        Assert.Contains("nhiaudit: denied by policy rule '(unclassified)'", result.StandardError, StringComparison.Ordinal);
        Assert.Contains(reason, result.StandardError, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(victim, "keep")), "the host deleted the victim");

        var record = await RequestRecordAsync(command);
        var policy = record.GetProperty("policy");
        Assert.Equal("(unclassified)", policy.GetProperty("rule").GetString());
        Assert.Contains(reason, policy.GetProperty("via").GetString(), StringComparison.Ordinal);
        var deciding = record.GetProperty("effects")[policy.GetProperty("effectIndex").GetInt32()];
        Assert.Equal("UNKNOWN", deciding.GetProperty("action").GetString());
    }

    [Fact]
    public async Task Ordinary_commands_still_run_and_their_commands_are_recorded()
    {
        var directory = Path.Combine(Gateway.Files, "app-" + Guid.NewGuid().ToString("N")[..8]);
        var command = $"echo \"on $(hostname) as $(id -un)\"; mkdir -p {directory}/releases && ls -d {directory}/releases | grep -c releases; uname -s; rm -f {directory}/none; cat /etc/hostname > /dev/null";

        var result = await Gateway.SshAsync(command);

        Assert.Equal(0, result.ExitCode);
        Assert.Contains("on ", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains(" as root", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("Linux", result.StandardOutput, StringComparison.Ordinal);
        Assert.True(Directory.Exists(Path.Combine(directory, "releases")));

        var record = await RequestRecordAsync(command);
        Assert.Equal("Allow", record.GetProperty("policy").GetProperty("effect").GetString());
        var names = record.GetProperty("request").GetProperty("commands").EnumerateArray().Select(c => c.GetProperty("name").GetString()).ToList();
        Assert.Equal(["hostname", "id", "echo", "mkdir", "ls", "grep", "uname", "rm", "cat"], names);
        var cat = record.GetProperty("request").GetProperty("commands").EnumerateArray().Last();
        Assert.Equal(["/dev/null"], cat.GetProperty("writes").EnumerateArray().Select(w => w.GetString()));
        Assert.All(record.GetProperty("effects").EnumerateArray(), e => Assert.Equal("exec", e.GetProperty("action").GetString()));

        // A legacy scp upload is its own action, not read as commands.
        var file = Path.Combine(Gateway.Files, "scp-" + Guid.NewGuid().ToString("N")[..6]);
        await File.WriteAllTextAsync(file + ".src", "scp still works");
        var scp = await Gateway.ScpAsync(file + ".src", Gateway.Remote(file), legacy: true);
        Assert.Equal(0, scp.ExitCode);
        Assert.Equal("scp still works", await File.ReadAllTextAsync(file));
    }

    private async Task<JsonElement> RequestRecordAsync(string command)
    {
        var records = await Gateway.WaitForRecordsAsync(r => r.Exists(x => IsRequest(x, command)));
        return records.First(x => IsRequest(x, command));
    }

    private static bool IsRequest(JsonElement record, string command) =>
        record.GetProperty("type").GetString() == "ssh.request" &&
        record.GetProperty("request").TryGetProperty("command", out var c) && c.GetString() == command;
}
