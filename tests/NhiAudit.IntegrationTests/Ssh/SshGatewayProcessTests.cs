using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using NhiAudit.IntegrationTests.Gateway;
using NhiAudit.IntegrationTests.Infrastructure;

namespace NhiAudit.IntegrationTests.Ssh;

/// <summary>
/// The reference gateway process (<c>nhiaudit run --config FILE</c>) with an SSH target from its JSON configuration, in
/// front of a real sshd: a command held by policy is listed and approved with <c>nhiaudit approvals</c> through the
/// admin API, and a workload that has a token instead of a key logs in with it as the keyboard-interactive answer.
/// </summary>
public sealed class SshGatewayProcessTests : IAsyncLifetime
{
    private string _directory = null!;
    private Process _sshd = null!;
    private GatewayProcess _gateway = null!;
    private int _adminPort;
    private string? _approverToken;

    public async Task InitializeAsync()
    {
        _directory = Path.Combine(PostgresServer.TempRoot, "sshproc-" + Guid.NewGuid().ToString("N")[..10]);
        (_sshd, var upstreamPort, var fingerprint) = await SshGatewayHost.StartUpstreamAsync(_directory);
        var port = FreePort.Get();
        _adminPort = FreePort.Get();
        var workloadKey = (await File.ReadAllTextAsync(Path.Combine(_directory, "workload_ed25519.pub"))).Trim();
        _gateway = await GatewayProcess.StartAsync(port, _directory, "WriteAhead", section =>
        {
            section["Identity"] = new
            {
                Issuers = new[] { new { Name = "local", Issuer = "https://issuer.local", JwksFile = Path.Combine(_directory, "issuer", "jwks.json"), Audiences = new[] { "nhiaudit" } } },
                SshKeys = new[] { new { PublicKey = workloadKey, Subject = "deploy-job", Kind = "ServicePrincipal" } },
                ApproverRole = "NhiAudit.Approver",
            };
            section["Ssh"] = new
            {
                Targets = new[]
                {
                    new
                    {
                        Name = "build",
                        Listen = $"127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}",
                        HostKeyFile = Path.Combine(_directory, "gateway_host_ed25519"),
                        RecordingsDirectory = Path.Combine(_directory, "recordings"),
                        Upstream = new { Host = "127.0.0.1", Port = upstreamPort, Username = "root", PrivateKeyFile = Path.Combine(_directory, "gateway_client_ed25519"), HostKeyFingerprint = fingerprint },
                    },
                },
            };
            section["Policy"] = new
            {
                Rules = new[]
                {
                    new { Name = "deploy-needs-approval", When = "request.protocol == 'ssh' && request.action == 'exec' && request.text.startsWith('touch ')", Effect = "RequireApproval" },
                    new { Name = "shells-need-approval", When = "request.protocol == 'ssh' && request.action == 'shell'", Effect = "RequireApproval" },
                },
            };
            section["Admin"] = new { Listen = $"127.0.0.1:{_adminPort.ToString(CultureInfo.InvariantCulture)}" };
        });
        var hostKey = (await File.ReadAllTextAsync(Path.Combine(_directory, "gateway_host_ed25519.pub"))).Trim();
        await File.WriteAllTextAsync(Path.Combine(_directory, "known_hosts"), $"[127.0.0.1]:{port} {hostKey}\n");
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        if (!_sshd.HasExited)
        {
            _sshd.Kill(entireProcessTree: true);
            await _sshd.WaitForExitAsync();
        }

        _sshd.Dispose();
    }

    private Task<ProcessResult> SshAsync(string command, string? stdin = null, params string[] options) =>
        ProcessRunner.RunAsync(
            "ssh",
            [
                "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "IdentityFile=" + Path.Combine(_directory, "workload_ed25519"),
                "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + Path.Combine(_directory, "known_hosts"),
                "-p", _gateway.Port.ToString(CultureInfo.InvariantCulture), .. options, "root@127.0.0.1", command,
            ],
            stdin,
            timeout: TimeSpan.FromSeconds(120));

    /// <summary>The id of the pending approval whose text contains <paramref name="marker"/>, as <c>nhiaudit approvals list</c> shows it.</summary>
    private async Task<string> PendingTicketAsync(string marker)
    {
        for (var i = 0; i < 60; i++)
        {
            var list = await ApprovalsAsync("list");
            Assert.True(list.Succeeded, list.Describe("approvals list"));
            if (list.StandardOutput.Split('\n').FirstOrDefault(line => line.Contains(marker, StringComparison.Ordinal)) is { } line)
            {
                return line.Split(' ')[0];
            }

            await Task.Delay(250);
        }

        throw new InvalidOperationException($"no pending approval mentions '{marker}'");
    }

    private async Task<ProcessResult> ApprovalsAsync(params string[] args)
    {
        _approverToken ??= await _gateway.MintTokenAsync("alice", "--kind", "User", "--role", "NhiAudit.Approver");
        return await GatewayProcess.ApprovalsCliAsync(_adminPort, _approverToken, args);
    }

    /// <summary>SSH.NET logged in to the gateway with <paramref name="token"/> as the keyboard-interactive answer.</summary>
    private async Task<Renci.SshNet.SshClient> ConnectWithTokenAsync(string token)
    {
        var method = new Renci.SshNet.KeyboardInteractiveAuthenticationMethod("deploy");
        method.AuthenticationPrompt += (_, e) =>
        {
            foreach (var prompt in e.Prompts)
            {
                prompt.Response = token;
            }
        };
        var client = new Renci.SshNet.SshClient(new Renci.SshNet.ConnectionInfo("127.0.0.1", _gateway.Port, "deploy", method));
        await client.ConnectAsync(CancellationToken.None);
        return client;
    }

    [Fact]
    public async Task A_held_command_is_approved_with_the_cli_and_then_runs()
    {
        var marker = Path.Combine(_directory, "files", "deployed");
        var running = SshAsync($"touch {marker} && echo deployed");

        var ticket = await PendingTicketAsync(marker);
        Assert.False(File.Exists(marker), "nothing runs before the approval");
        var approve = await ApprovalsAsync("approve", ticket, "--reason", "release 7");
        Assert.True(approve.Succeeded, approve.Describe("approvals approve"));

        var result = await running;
        Assert.True(result.ExitCode == 0, result.Describe("ssh"));
        Assert.Contains("deployed", result.StandardOutput, StringComparison.Ordinal);
        Assert.True(File.Exists(marker));
        var records = GatewayHost.ReadRecords(_gateway.AuditDirectory);
        Assert.Contains(records, r => r.GetProperty("type").GetString() == "ssh.approval.decided" && r.GetProperty("approval").GetString() == ticket
            && r.GetProperty("decidedBy").GetProperty("subject").GetString() == "alice");
    }

    [Fact]
    public async Task A_shell_waits_for_an_approval_and_is_recorded_once_approved()
    {
        var running = SshAsync("", "echo approved-shell-$((40+2))\nexit\n", "-tt");
        var ticket = await PendingTicketAsync("shell (");
        var approve = await ApprovalsAsync("approve", ticket, "--reason", "incident 99");
        Assert.True(approve.Succeeded, approve.Describe("approvals approve"));

        var result = await running;
        Assert.Contains("approved-shell-42", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains($"held for approval {ticket}", result.StandardError + result.StandardOutput, StringComparison.Ordinal);
        JsonElement? request = null;
        for (var i = 0; i < 50 && request is null; i++)
        {
            request = GatewayHost.ReadRecords(_gateway.AuditDirectory)
                .Where(r => r.GetProperty("type").GetString() == "ssh.request" && r.TryGetProperty("approval", out var a) && a.GetString() == ticket)
                .Select(r => (JsonElement?)r).FirstOrDefault();
            if (request is null)
            {
                await Task.Delay(100);
            }
        }

        Assert.NotNull(request);
        Assert.Equal("shell", request.Value.GetProperty("request").GetProperty("action").GetString());
        Assert.True(File.Exists(request.Value.GetProperty("request").GetProperty("recording").GetString()));
    }

    [Fact]
    public async Task A_workload_token_answers_keyboard_interactive_and_names_the_job_in_the_records()
    {
        var token = await _gateway.MintTokenAsync("repo:contoso/app:ref:refs/heads/main", "--kind", "FederatedWorkload");
        using var client = await ConnectWithTokenAsync(token);
        using var command = client.RunCommand("echo $NHIAUDIT_IDENTITY");
        Assert.Equal(0, command.ExitStatus);
        Assert.Equal("repo:contoso/app:ref:refs/heads/main\n", command.Result);
        client.Disconnect();

        for (var i = 0; i < 50 && !GatewayHost.ReadRecords(_gateway.AuditDirectory).Any(r => r.GetProperty("type").GetString() == "ssh.response"); i++)
        {
            await Task.Delay(100);
        }

        var records = GatewayHost.ReadRecords(_gateway.AuditDirectory);
        var auth = records.Last(r => r.GetProperty("type").GetString() == "ssh.auth");
        Assert.Equal("keyboard-interactive", auth.GetProperty("method").GetString());
        Assert.Equal("repo:contoso/app:ref:refs/heads/main", auth.GetProperty("identity").GetProperty("subject").GetString());
        Assert.DoesNotContain(records, r => r.GetRawText().Contains(token, StringComparison.Ordinal));
        Assert.DoesNotContain(records, r => r.GetRawText().Contains(token.Split('.')[2], StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_connection_opened_with_a_token_ends_when_the_token_expires()
    {
        var token = await _gateway.MintTokenAsync("short-lived-job", "--lifetime", "00:00:08");
        using var client = await ConnectWithTokenAsync(token);

        // The command would outlive the token by far; the gateway ends the connection instead.
        await Assert.ThrowsAnyAsync<Exception>(() => Task.Run(() => client.RunCommand("sleep 120; echo finished")));

        JsonElement? closed = null;
        for (var i = 0; i < 50 && closed is null; i++)
        {
            closed = GatewayHost.ReadRecords(_gateway.AuditDirectory)
                .Where(r => r.GetProperty("type").GetString() == "ssh.closed" && r.GetProperty("identity").GetProperty("subject").GetString() == "short-lived-job")
                .Select(r => (JsonElement?)r).LastOrDefault();
            if (closed is null)
            {
                await Task.Delay(100);
            }
        }

        Assert.NotNull(closed);
        Assert.Contains("credential expired", closed.Value.GetProperty("why").GetString(), StringComparison.Ordinal);
    }
}
