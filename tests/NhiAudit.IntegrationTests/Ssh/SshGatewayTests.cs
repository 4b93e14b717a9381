using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using NhiAudit.IntegrationTests.Infrastructure;

namespace NhiAudit.IntegrationTests.Ssh;

/// <summary>One gateway and one real sshd for the SSH tests: the policy every test here relies on.</summary>
public sealed class SshGatewayFixture : IAsyncLifetime
{
    public SshGatewayHost Host { get; private set; } = null!;

    public async Task InitializeAsync() => Host = await SshGatewayHost.StartAsync(settings =>
    {
        settings["NhiAudit:Policy:Rules:0:Name"] = "no-rm-rf";
        settings["NhiAudit:Policy:Rules:0:When"] = "request.protocol == 'ssh' && request.action == 'exec' && request.text.contains('rm -rf')";
        settings["NhiAudit:Policy:Rules:0:Effect"] = "Deny";
        settings["NhiAudit:Policy:Rules:1:Name"] = "protected-files";
        settings["NhiAudit:Policy:Rules:1:When"] = "request.protocol == 'ssh' && (request.action == 'sftp.write' || request.action == 'scp.write') && request.resources.exists(p, p.contains('/protected'))";
        settings["NhiAudit:Policy:Rules:1:Effect"] = "Deny";
        settings["NhiAudit:Policy:Rules:2:Name"] = "restart-needs-approval";
        settings["NhiAudit:Policy:Rules:2:When"] = "request.protocol == 'ssh' && request.action == 'exec' && request.text.startsWith('touch ')";
        settings["NhiAudit:Policy:Rules:2:Effect"] = "RequireApproval";
        settings["NhiAudit:Policy:Rules:3:Name"] = "tunnel-to-the-host-sshd";
        settings["NhiAudit:Policy:Rules:3:When"] = $"request.protocol == 'ssh' && request.action == 'port-forward' && request.resources == ['127.0.0.1:{settings["NhiAudit:Ssh:Targets:0:Upstream:Port"]}']";
        settings["NhiAudit:Policy:Rules:3:Effect"] = "Allow";
        settings["NhiAudit:Policy:Rules:4:Name"] = "agent-for-the-release-user";
        settings["NhiAudit:Policy:Rules:4:When"] = "request.protocol == 'ssh' && request.action == 'agent-forward' && request.user == 'release'";
        settings["NhiAudit:Policy:Rules:4:Effect"] = "Allow";
    });

    public async Task DisposeAsync() => await Host.DisposeAsync();
}

/// <summary>
/// The real OpenSSH clients (ssh, sftp, scp 9.2) through the gateway to a real sshd: commands, exit codes, stdin and
/// stdout, SFTP and scp transfers, refusals, approvals, and the records each leaves.
/// </summary>
public sealed class SshGatewayTests(SshGatewayFixture fixture) : IClassFixture<SshGatewayFixture>
{
    private SshGatewayHost Gateway => fixture.Host;

    [Fact]
    public async Task A_command_runs_on_the_host_as_the_gateway_user_and_is_recorded_with_the_workload_identity()
    {
        const string Command = "echo hello from $(id -un); echo \"identity=$NHIAUDIT_IDENTITY\"; exit 3";
        var result = await Gateway.SshAsync(Command);

        Assert.Equal(3, result.ExitCode);
        Assert.Contains("hello from root", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("identity=deploy-job", result.StandardOutput, StringComparison.Ordinal);

        var records = await Gateway.WaitForRecordsAsync(r => ResponseOf(r, Command) is not null);
        var auth = records.Last(r => Type(r) == "ssh.auth");
        Assert.Equal("deploy-job", auth.GetProperty("identity").GetProperty("subject").GetString());
        Assert.Equal("publickey", auth.GetProperty("method").GetString());
        var request = RequestOf(records, Command)!.Value;
        Assert.Equal("deploy-job", request.GetProperty("identity").GetProperty("subject").GetString());
        Assert.Equal("exec", request.GetProperty("request").GetProperty("action").GetString());
        Assert.Equal("root", request.GetProperty("request").GetProperty("upstreamUser").GetString());
        Assert.Equal(auth.GetProperty("connection").GetString(), request.GetProperty("request").GetProperty("connection").GetString());
        var response = ResponseOf(records, Command)!.Value;
        Assert.Equal(3, response.GetProperty("exitStatus").GetInt32());
        Assert.True(response.GetProperty("bytesOut").GetInt64() > 0);
        Assert.True(request.GetProperty("seq").GetInt64() < response.GetProperty("seq").GetInt64());
    }

    [Fact]
    public async Task Standard_input_and_output_stream_through_both_windows_byte_for_byte()
    {
        // 8 MiB: several times both peers' 2 MiB windows, so flow control must work end to end.
        var input = new StringBuilder();
        var random = new Random(7);
        while (input.Length < 8 * 1024 * 1024)
        {
            input.Append(random.NextInt64().ToString("x16", System.Globalization.CultureInfo.InvariantCulture)).Append('\n');
        }

        var result = await Gateway.SshAsync("cat; echo done >&2", stdin: input.ToString());

        Assert.Equal(0, result.ExitCode);
        Assert.Equal(SHA256.HashData(Encoding.UTF8.GetBytes(input.ToString())), SHA256.HashData(Encoding.UTF8.GetBytes(result.StandardOutput)));
        Assert.Contains("done", result.StandardError, StringComparison.Ordinal);
        var records = await Gateway.WaitForRecordsAsync(r => ResponseOf(r, "cat; echo done >&2") is not null);
        var response = ResponseOf(records, "cat; echo done >&2")!.Value;
        Assert.Equal(input.Length, response.GetProperty("bytesIn").GetInt64());
        Assert.Equal(input.Length, response.GetProperty("bytesOut").GetInt64());
    }

    [Fact]
    public async Task A_denied_command_prints_the_reason_exits_non_zero_and_never_reaches_the_host()
    {
        var victim = Path.Combine(Gateway.Files, "victim-" + Guid.NewGuid().ToString("N")[..6]);
        Directory.CreateDirectory(victim);

        var result = await Gateway.SshAsync($"rm -rf {victim}");

        Assert.Equal(126, result.ExitCode);
        Assert.Contains("nhiaudit: denied by policy rule 'no-rm-rf'", result.StandardError, StringComparison.Ordinal);
        Assert.True(Directory.Exists(victim));
        var records = await Gateway.WaitForRecordsAsync(r => ResponseOf(r, $"rm -rf {victim}") is not null);
        var request = RequestOf(records, $"rm -rf {victim}")!.Value;
        Assert.Equal("Deny", request.GetProperty("policy").GetProperty("effect").GetString());
        Assert.StartsWith("denied by policy rule 'no-rm-rf'", request.GetProperty("refused").GetString(), StringComparison.Ordinal);
        Assert.Equal(126, ResponseOf(records, $"rm -rf {victim}")!.Value.GetProperty("exitStatus").GetInt32());

        // The connection's other work goes on: the same client can run the next command.
        Assert.Equal(0, (await Gateway.SshAsync("true")).ExitCode);
    }

    [Fact]
    public async Task A_held_command_waits_for_an_approver_and_then_runs_once()
    {
        var marker = Path.Combine(Gateway.Files, "approved-" + Guid.NewGuid().ToString("N")[..6]);
        var approvals = Gateway.Services.GetRequiredService<IApprovalBroker>();

        var running = Gateway.SshAsync($"touch {marker}; echo ran");
        ApprovalTicket? ticket = null;
        for (var i = 0; i < 300 && ticket is null; i++)
        {
            ticket = approvals.Pending.FirstOrDefault(t => t.Request.Text == $"touch {marker}; echo ran");
            await Task.Delay(100);
        }

        Assert.NotNull(ticket);
        Assert.False(File.Exists(marker), "nothing ran before the approval");
        Assert.Equal("deploy-job", ticket.Request.Identity.Subject);
        approvals.Decide(ticket.Id, approve: true, new WorkloadIdentity { Kind = WorkloadKind.User, Subject = "alice", Issuer = "https://issuer.test" }, "change 42");

        var result = await running;
        Assert.Equal(0, result.ExitCode);
        Assert.Contains("ran", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains($"held for approval {ticket.Id}", result.StandardError, StringComparison.Ordinal);
        Assert.True(File.Exists(marker));
        var records = await Gateway.WaitForRecordsAsync(r => ResponseOf(r, $"touch {marker}; echo ran") is not null);
        Assert.Contains(records, r => Type(r) == "ssh.approval.decided" && r.GetProperty("approval").GetString() == ticket.Id && r.GetProperty("state").GetString() == "Approved");
        Assert.Equal(ticket.Id, RequestOf(records, $"touch {marker}; echo ran")!.Value.GetProperty("approval").GetString());
    }

    [Fact]
    public async Task A_held_command_holds_only_its_own_channel_and_a_workload_that_gives_up_is_recorded()
    {
        var marker = Path.Combine(Gateway.Files, "abandoned-" + Guid.NewGuid().ToString("N")[..6]);
        var approvals = Gateway.Services.GetRequiredService<IApprovalBroker>();
        using var client = await ConnectSshNetAsync();

        // One channel waits for an approver; on the same connection, other commands run meanwhile.
        var held = Task.Run(() =>
        {
            try
            {
                using var command = client.RunCommand($"touch {marker}");
                return command.ExitStatus;
            }
            catch (Exception ex) when (ex is Renci.SshNet.Common.SshConnectionException or ObjectDisposedException)
            {
                return null;
            }
        });
        ApprovalTicket? ticket = null;
        for (var i = 0; i < 300 && ticket is null; i++)
        {
            ticket = approvals.Pending.FirstOrDefault(t => t.Request.Text == $"touch {marker}");
            await Task.Delay(100);
        }

        Assert.NotNull(ticket);
        using (var meanwhile = client.RunCommand("echo not-blocked"))
        {
            Assert.Equal("not-blocked\n", meanwhile.Result);
        }

        Assert.False(held.IsCompleted);

        // The workload gives up: the gateway notices, the command never runs, and the log says why.
        client.Disconnect();
        var records = await Gateway.WaitForRecordsAsync(r => RequestOf(r, $"touch {marker}") is not null);
        var request = RequestOf(records, $"touch {marker}")!.Value;
        Assert.True(request.TryGetProperty("refused", out var refused), request.GetRawText());
        Assert.Equal("the workload's connection ended while the request was held for approval", refused.GetString());
        Assert.Equal(ticket.Id, request.GetProperty("approval").GetString());
        Assert.False(File.Exists(marker));
        await held;
    }

    private async Task<Renci.SshNet.SshClient> ConnectSshNetAsync()
    {
        string pinned;
        using (var hostKey = NhiAudit.Ssh.HostKeys.SshHostKey.Load(Path.Combine(Gateway.Directory, "gateway_host_ed25519")))
        {
            pinned = hostKey.Fingerprint["SHA256:".Length..];
        }

        var client = new Renci.SshNet.SshClient("127.0.0.1", Gateway.Port, "root", new Renci.SshNet.PrivateKeyFile(Gateway.WorkloadKey));
        client.HostKeyReceived += (_, e) => e.CanTrust = e.FingerPrintSHA256 == pinned;
        await client.ConnectAsync(CancellationToken.None);
        return client;
    }

    [Fact]
    public async Task A_denied_hold_refuses_the_command_with_the_approvers_reason()
    {
        var marker = Path.Combine(Gateway.Files, "refused-" + Guid.NewGuid().ToString("N")[..6]);
        var approvals = Gateway.Services.GetRequiredService<IApprovalBroker>();

        var running = Gateway.SshAsync($"touch {marker}");
        ApprovalTicket? ticket = null;
        for (var i = 0; i < 300 && ticket is null; i++)
        {
            ticket = approvals.Pending.FirstOrDefault(t => t.Request.Text == $"touch {marker}");
            await Task.Delay(100);
        }

        Assert.NotNull(ticket);
        approvals.Decide(ticket.Id, approve: false, new WorkloadIdentity { Kind = WorkloadKind.User, Subject = "alice", Issuer = "https://issuer.test" }, "not during the freeze");

        var result = await running;
        Assert.Equal(126, result.ExitCode);
        Assert.Contains("not during the freeze", result.StandardError, StringComparison.Ordinal);
        Assert.False(File.Exists(marker));
    }

    [Fact]
    public async Task An_interactive_shell_works_through_a_terminal_and_its_recording_plays_with_asciinema()
    {
        // ssh -tt: a terminal on the host although our stdin is a pipe; the shell reads the lines as typed input.
        var result = await Gateway.SshAsync("", stdin: "echo shell-$((6*7))\nexit 5\n", options: ["-tt", "-o", "RequestTTY=force"]);
        Assert.Equal(5, result.ExitCode);
        Assert.Contains("shell-42", result.StandardOutput, StringComparison.Ordinal);

        var records = await Gateway.WaitForRecordsAsync(r => r.Any(x => Type(x) == "ssh.response" && x.TryGetProperty("recording", out _) && x.GetProperty("exitStatus").GetInt32() == 5));
        var response = records.Last(x => Type(x) == "ssh.response" && x.TryGetProperty("recording", out _) && x.GetProperty("exitStatus").GetInt32() == 5);
        var recording = response.GetProperty("recording").GetString()!;
        var request = records.Single(x => Type(x) == "ssh.request" && x.GetProperty("seq").GetInt64() == response.GetProperty("request").GetInt64());
        Assert.Equal("shell", request.GetProperty("request").GetProperty("action").GetString());
        Assert.Equal(recording, request.GetProperty("request").GetProperty("recording").GetString());
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(await File.ReadAllBytesAsync(recording))), response.GetProperty("recordingSha256").GetString());

        // asciinema cat opens /dev/tty: run it under script(1), which gives it a terminal.
        var played = await ProcessRunner.RunAsync("script", ["-qec", $"asciinema cat {recording}", "/dev/null"], timeout: TimeSpan.FromSeconds(20));
        Assert.True(played.ExitCode == 0, played.Describe("asciinema cat"));
        Assert.Contains("shell-42", played.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("\"i\"", await File.ReadAllTextAsync(recording), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_interactive_shell_driven_through_tmux_is_recorded_with_its_size_and_resizes()
    {
        // A real terminal: ssh runs inside a detached tmux session of 100x30, keys are typed with send-keys, the screen
        // read with capture-pane, and the window resized half-way (ssh sends window-change).
        var socket = "nhiaudit-" + Guid.NewGuid().ToString("N")[..8];
        var ssh = string.Join(' ', ["ssh", .. Gateway.ClientOptions(), "-p", Gateway.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "root@127.0.0.1"]);
        try
        {
            (await Tmux(socket, "new-session", "-d", "-s", "work", "-x", "100", "-y", "30", ssh)).EnsureSuccess("tmux new-session");
            await WaitForScreenAsync(socket, screen => screen.Contains("root@", StringComparison.Ordinal));
            await Tmux(socket, "send-keys", "-t", "work", "echo tmux-$((6*7))", "Enter");
            await WaitForScreenAsync(socket, screen => screen.Contains("tmux-42", StringComparison.Ordinal));
            await Tmux(socket, "resize-window", "-t", "work", "-x", "120", "-y", "40");
            await Tmux(socket, "send-keys", "-t", "work", "stty size", "Enter");
            await WaitForScreenAsync(socket, screen => screen.Contains("40 120", StringComparison.Ordinal));
            await Tmux(socket, "send-keys", "-t", "work", "exit 7", "Enter");
        }
        finally
        {
            await Tmux(socket, "kill-server");
        }

        var records = await Gateway.WaitForRecordsAsync(r => r.Any(x => Type(x) == "ssh.response" && x.TryGetProperty("exitStatus", out var e) && e.GetInt32() == 7));
        var response = records.Last(x => Type(x) == "ssh.response" && x.TryGetProperty("exitStatus", out var e) && e.GetInt32() == 7);
        var request = records.Single(x => Type(x) == "ssh.request" && x.GetProperty("seq").GetInt64() == response.GetProperty("request").GetInt64());
        var pty = request.GetProperty("request").GetProperty("pty");
        Assert.Equal(100, pty.GetProperty("cols").GetInt32());
        Assert.Equal(30, pty.GetProperty("rows").GetInt32());
        var events = (await File.ReadAllLinesAsync(response.GetProperty("recording").GetString()!)).Skip(1)
            .Select(line => JsonDocument.Parse(line).RootElement).Select(e => (Code: e[1].GetString(), Data: e[2].GetString())).ToList();
        Assert.Contains(("r", "120x40"), events);
        Assert.Contains("stty size", string.Concat(events.Where(e => e.Code == "i").Select(e => e.Data)), StringComparison.Ordinal);
        var played = await ProcessRunner.RunAsync("script", ["-qec", $"asciinema cat {response.GetProperty("recording").GetString()}", "/dev/null"], timeout: TimeSpan.FromSeconds(20));
        Assert.Contains("tmux-42", played.StandardOutput, StringComparison.Ordinal);
    }

    private static Task<ProcessResult> Tmux(string socket, params string[] args) =>
        ProcessRunner.RunAsync("tmux", ["-L", socket, .. args], timeout: TimeSpan.FromSeconds(20));

    private static async Task WaitForScreenAsync(string socket, Func<string, bool> shows)
    {
        var screen = "";
        for (var i = 0; i < 200; i++)
        {
            screen = (await Tmux(socket, "capture-pane", "-p", "-t", "work")).StandardOutput;
            if (shows(screen))
            {
                return;
            }

            await Task.Delay(100);
        }

        throw new InvalidOperationException("the terminal never showed what was expected; it shows:\n" + screen);
    }

    [Fact]
    public async Task Sftp_put_and_get_work_and_each_file_is_recorded_with_its_size_and_hash()
    {
        var local = Path.Combine(Gateway.Files, "local-" + Guid.NewGuid().ToString("N")[..6]);
        var remote = Path.Combine(Gateway.Files, "remote-" + Guid.NewGuid().ToString("N")[..6]);
        Directory.CreateDirectory(local);
        Directory.CreateDirectory(remote);
        var payload = RandomNumberGenerator.GetBytes(3 * 1024 * 1024 + 17);
        await File.WriteAllBytesAsync(Path.Combine(local, "release.tar"), payload);
        var hash = Convert.ToHexStringLower(SHA256.HashData(payload));

        var result = await Gateway.SftpAsync($"put release.tar {remote}/release.tar\nget {remote}/release.tar back.tar\n", local);

        Assert.True(result.ExitCode == 0, result.Describe("sftp"));
        Assert.Equal(payload, await File.ReadAllBytesAsync(Path.Combine(remote, "release.tar")));
        Assert.Equal(payload, await File.ReadAllBytesAsync(Path.Combine(local, "back.tar")));
        var records = await Gateway.WaitForRecordsAsync(r => r.Count(x => Type(x) == "ssh.sftp" && x.GetProperty("path").GetString() == $"{remote}/release.tar" && x.GetProperty("kind").GetString() == "FileClosed") >= 2);
        var files = records.Where(x => Type(x) == "ssh.sftp" && x.GetProperty("path").GetString() == $"{remote}/release.tar" && x.GetProperty("kind").GetString() == "FileClosed").ToList();
        Assert.Contains(files, f => f.GetProperty("bytesWritten").GetInt64() == payload.Length && f.GetProperty("sha256").GetString() == hash);
        Assert.Contains(files, f => f.GetProperty("bytesRead").GetInt64() == payload.Length && f.GetProperty("sha256").GetString() == hash);
        Assert.Contains(records, x => Type(x) == "ssh.sftp.request" && x.GetProperty("request").GetProperty("action").GetString() == "sftp.write"
            && x.GetProperty("request").GetProperty("path").GetString() == $"{remote}/release.tar" && x.GetProperty("identity").GetProperty("subject").GetString() == "deploy-job");
    }

    [Fact]
    public async Task A_denied_sftp_write_fails_cleanly_the_file_is_not_created_and_the_session_goes_on()
    {
        var local = Path.Combine(Gateway.Files, "local-" + Guid.NewGuid().ToString("N")[..6]);
        var protectedDirectory = Path.Combine(Gateway.Files, "protected");
        Directory.CreateDirectory(local);
        Directory.CreateDirectory(protectedDirectory);
        await File.WriteAllTextAsync(Path.Combine(local, "config.yaml"), "replicas: 0\n");
        var target = Path.Combine(protectedDirectory, "config-" + Guid.NewGuid().ToString("N")[..6] + ".yaml");

        // "-put": the batch goes on after a failure, so the ls shows the session survived the refusal.
        var result = await Gateway.SftpAsync($"-put config.yaml {target}\nls {Gateway.Files}\n", local);

        Assert.Equal(0, result.ExitCode);
        Assert.Contains("Permission denied", result.StandardError, StringComparison.Ordinal);
        Assert.Contains("protected", result.StandardOutput, StringComparison.Ordinal);
        Assert.False(File.Exists(target));
        var records = await Gateway.WaitForRecordsAsync(r => r.Any(x => Type(x) == "ssh.sftp" && x.GetProperty("path").GetString() == target));
        var request = records.Single(x => Type(x) == "ssh.sftp.request" && x.GetProperty("request").GetProperty("path").GetString() == target);
        Assert.StartsWith("denied by policy rule 'protected-files'", request.GetProperty("refused").GetString(), StringComparison.Ordinal);
        Assert.Contains(records, x => Type(x) == "ssh.sftp" && x.GetProperty("path").GetString() == target && x.TryGetProperty("denied", out var denied) && denied.GetBoolean());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Scp_copies_up_and_down_in_both_protocols_and_records_each_file(bool legacy)
    {
        var directory = Path.Combine(Gateway.Files, "scp-" + Guid.NewGuid().ToString("N")[..6]);
        Directory.CreateDirectory(directory);
        var payload = RandomNumberGenerator.GetBytes(700_001);
        var hash = Convert.ToHexStringLower(SHA256.HashData(payload));
        var source = Path.Combine(directory, "artifact.bin");
        await File.WriteAllBytesAsync(source, payload);

        var up = await Gateway.ScpAsync(source, Gateway.Remote(Path.Combine(directory, "uploaded.bin")), legacy);
        Assert.True(up.ExitCode == 0, up.Describe("scp up"));
        var down = await Gateway.ScpAsync(Gateway.Remote(Path.Combine(directory, "uploaded.bin")), Path.Combine(directory, "downloaded.bin"), legacy);
        Assert.True(down.ExitCode == 0, down.Describe("scp down"));

        Assert.Equal(payload, await File.ReadAllBytesAsync(Path.Combine(directory, "uploaded.bin")));
        Assert.Equal(payload, await File.ReadAllBytesAsync(Path.Combine(directory, "downloaded.bin")));
        var type = legacy ? "ssh.scp" : "ssh.sftp";
        var records = await Gateway.WaitForRecordsAsync(r => r.Count(x => Type(x) == type && (x.GetProperty("path").GetString() ?? "").EndsWith("uploaded.bin", StringComparison.Ordinal) && x.TryGetProperty("sha256", out _)) >= 2);
        var files = records.Where(x => Type(x) == type && (x.GetProperty("path").GetString() ?? "").EndsWith("uploaded.bin", StringComparison.Ordinal) && x.TryGetProperty("sha256", out _)).ToList();
        Assert.True(files.Count >= 2, string.Join('\n', records.Where(x => Type(x) == type)));
        Assert.All(files, f => Assert.Equal(hash, f.GetProperty("sha256").GetString()));
        if (legacy)
        {
            Assert.Contains(records, x => Type(x) == "ssh.request" && x.GetProperty("request").GetProperty("action").GetString() == "scp.write");
            Assert.Contains(records, x => Type(x) == "ssh.request" && x.GetProperty("request").GetProperty("action").GetString() == "scp.read");
            Assert.All(files, f => Assert.Equal(payload.Length, f.GetProperty("size").GetInt64()));
        }
    }

    [Fact]
    public async Task A_legacy_scp_upload_into_a_protected_path_is_refused()
    {
        var source = Path.Combine(Gateway.Files, "payload-" + Guid.NewGuid().ToString("N")[..6]);
        await File.WriteAllTextAsync(source, "x");
        var target = Path.Combine(Gateway.Files, "protected", Path.GetFileName(source));
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);

        var result = await Gateway.ScpAsync(source, Gateway.Remote(target), legacy: true);

        Assert.NotEqual(0, result.ExitCode);
        Assert.False(File.Exists(target));
    }

    [Fact]
    public async Task Port_forwarding_is_refused_unless_a_policy_rule_allows_it_and_the_refusal_is_recorded()
    {
        var result = await Gateway.SshAsync("", options: ["-W", "127.0.0.1:1"]);

        Assert.Equal(255, result.ExitCode);
        Assert.Contains("administratively prohibited", result.StandardError, StringComparison.Ordinal);
        var records = await Gateway.WaitForRecordsAsync(r => r.Any(x => Type(x) == "ssh.request" && x.GetProperty("request").GetProperty("action").GetString() == "port-forward"));
        var request = records.Last(x => Type(x) == "ssh.request" && x.GetProperty("request").GetProperty("action").GetString() == "port-forward");
        Assert.Equal("127.0.0.1:1", request.GetProperty("request").GetProperty("destination").GetString());
        Assert.Contains("no policy rule allows it", request.GetProperty("refused").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_port_forward_a_rule_allows_is_relayed_and_recorded_with_its_byte_counts()
    {
        // ssh -W: stdin and stdout become the tunnel; the sshd behind it greets first.
        var result = await Gateway.SshAsync("", stdin: "SSH-2.0-probe\r\n", options: ["-W", $"127.0.0.1:{Gateway.UpstreamPort}"]);

        Assert.StartsWith("SSH-2.0-OpenSSH_9.2", result.StandardOutput, StringComparison.Ordinal);
        var records = await Gateway.WaitForRecordsAsync(r => r.Any(x => Type(x) == "ssh.request" && x.GetProperty("request").GetProperty("action").GetString() == "port-forward"
            && x.GetProperty("policy").GetProperty("rule").GetString() == "tunnel-to-the-host-sshd"));
        var request = records.Last(x => Type(x) == "ssh.request" && x.GetProperty("policy").GetProperty("rule").GetString() == "tunnel-to-the-host-sshd");
        Assert.False(request.TryGetProperty("refused", out _));
        records = await Gateway.WaitForRecordsAsync(r => r.Any(x => Type(x) == "ssh.response" && x.GetProperty("request").GetInt64() == request.GetProperty("seq").GetInt64()));
        var response = records.Single(x => Type(x) == "ssh.response" && x.GetProperty("request").GetInt64() == request.GetProperty("seq").GetInt64());
        Assert.True(response.GetProperty("bytesOut").GetInt64() > 0);
        Assert.Equal("SSH-2.0-probe\r\n".Length, response.GetProperty("bytesIn").GetInt64());
    }

    [Theory]
    [InlineData("release", true)]
    [InlineData("root", false)]
    public async Task Agent_forwarding_reaches_the_host_only_when_a_rule_allows_it_and_each_use_is_recorded(string user, bool allowed)
    {
        // A real ssh-agent holding a key the host does not know; the host lists the keys it can reach through the
        // forwarded agent (the gateway logs in as root either way: the requested user name only selects the rule).
        var socket = Path.Combine(Gateway.Directory, "agent-" + Guid.NewGuid().ToString("N")[..6]);
        using var agent = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("ssh-agent", ["-D", "-a", socket]) { RedirectStandardOutput = true })!;
        try
        {
            var env = new Dictionary<string, string> { ["SSH_AUTH_SOCK"] = socket };
            for (var i = 0; i < 100 && !File.Exists(socket); i++)
            {
                await Task.Delay(50);
            }

            (await ProcessRunner.RunAsync("ssh-add", [Path.Combine(Gateway.Directory, "stranger_ed25519")], env: env)).EnsureSuccess("ssh-add");
            var result = await ProcessRunner.RunAsync(
                "ssh",
                [.. Gateway.ClientOptions(), "-o", "ForwardAgent=yes", "-p", Gateway.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), $"{user}@127.0.0.1", "ssh-add -l; echo agent-exit=$?"],
                timeout: TimeSpan.FromSeconds(60),
                env: env);

            Assert.Equal(0, result.ExitCode);
            var records = await Gateway.WaitForRecordsAsync(r => r.Any(x => Type(x) == "ssh.request" && x.GetProperty("request").GetProperty("action").GetString() == "agent-forward"
                && x.GetProperty("request").GetProperty("user").GetString() == user));
            var forward = records.Last(x => Type(x) == "ssh.request" && x.GetProperty("request").GetProperty("action").GetString() == "agent-forward"
                && x.GetProperty("request").GetProperty("user").GetString() == user);
            if (allowed)
            {
                Assert.Contains("stranger_ed25519 (ED25519)", result.StandardOutput, StringComparison.Ordinal);
                Assert.Contains("agent-exit=0", result.StandardOutput, StringComparison.Ordinal);
                Assert.Equal("agent-for-the-release-user", forward.GetProperty("policy").GetProperty("rule").GetString());
                Assert.False(forward.TryGetProperty("refused", out _));
                records = await Gateway.WaitForRecordsAsync(r => r.Any(x => Type(x) == "ssh.request" && x.GetProperty("request").GetProperty("action").GetString() == "agent-use"
                    && x.GetProperty("request").GetProperty("connection").GetString() == forward.GetProperty("request").GetProperty("connection").GetString()));
                Assert.Contains(records, x => Type(x) == "ssh.request" && x.GetProperty("request").GetProperty("action").GetString() == "agent-use");
            }
            else
            {
                Assert.DoesNotContain("stranger_ed25519", result.StandardOutput, StringComparison.Ordinal);
                Assert.Contains("agent-exit=2", result.StandardOutput, StringComparison.Ordinal);
                Assert.Contains("no policy rule allows it", forward.GetProperty("refused").GetString(), StringComparison.Ordinal);
            }
        }
        finally
        {
            agent.Kill();
        }
    }

    [Fact]
    public async Task The_reason_a_workload_states_in_NHIAUDIT_REASON_travels_with_its_request()
    {
        var result = await Gateway.SshAsync("echo reasoned", options: ["-o", "SetEnv=NHIAUDIT_REASON=hotfix-1234"]);

        Assert.Equal(0, result.ExitCode);
        var records = await Gateway.WaitForRecordsAsync(r => RequestOf(r, "echo reasoned") is not null);
        Assert.Equal("hotfix-1234", RequestOf(records, "echo reasoned")!.Value.GetProperty("reason").GetString());
    }

    [Fact]
    public async Task An_unregistered_key_is_refused_and_the_attempt_recorded_without_the_key_material()
    {
        var result = await Gateway.SshAsync("true", key: Path.Combine(Gateway.Directory, "stranger_ed25519"));

        Assert.Equal(255, result.ExitCode);
        Assert.Contains("Permission denied", result.StandardError, StringComparison.Ordinal);
        var records = await Gateway.ReadRecordsAsync();
        var failed = records.Last(r => Type(r) == "ssh.auth.failed");
        Assert.Equal("publickey", failed.GetProperty("method").GetString());
        var strangerKey = (await File.ReadAllTextAsync(Path.Combine(Gateway.Directory, "stranger_ed25519.pub"))).Split(' ')[1];
        Assert.DoesNotContain(records, r => r.GetRawText().Contains(strangerKey, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_user_certificate_from_the_configured_ca_names_the_identity_by_its_key_id()
    {
        var key = Path.Combine(Gateway.Directory, "certified_ed25519");
        (await ProcessRunner.RunAsync("ssh-keygen", ["-q", "-s", Path.Combine(Gateway.Directory, "ci_ca_ed25519"), "-I", "pipeline-release-77", "-n", "root", "-z", "77", "-V", "-5m:+1h", key + ".pub"])).EnsureSuccess("ssh-keygen -s");

        var result = await Gateway.SshAsync("echo certified as $NHIAUDIT_IDENTITY", key: key, options: ["-o", "CertificateFile=" + key + "-cert.pub"]);

        Assert.True(result.ExitCode == 0, result.Describe("ssh with a certificate"));
        Assert.Contains("certified as pipeline-release-77", result.StandardOutput, StringComparison.Ordinal);
        var records = await Gateway.WaitForRecordsAsync(r => RequestOf(r, "echo certified as $NHIAUDIT_IDENTITY") is not null);
        var auth = records.Last(r => Type(r) == "ssh.auth" && r.GetProperty("identity").GetProperty("subject").GetString() == "pipeline-release-77");
        Assert.Equal("pipeline-release-77", auth.GetProperty("certificate").GetProperty("keyId").GetString());
        Assert.Equal(77, auth.GetProperty("certificate").GetProperty("serial").GetInt64());
        Assert.Equal("ssh-ca:ci-ca", auth.GetProperty("identity").GetProperty("issuer").GetString());
    }

    [Fact]
    public async Task Several_channels_on_one_connection_run_at_once_with_SshNet()
    {
        using var key = new Renci.SshNet.PrivateKeyFile(Gateway.WorkloadKey);
        using var client = await ConnectSshNetAsync();

        var commands = Enumerable.Range(0, 5).Select(i => Task.Run(() =>
        {
            using var command = client.RunCommand($"sleep 0.5; echo channel-{i}");
            return (command.ExitStatus, command.Result);
        })).ToList();
        var results = await Task.WhenAll(commands);

        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(0, results[i].ExitStatus);
            Assert.Equal($"channel-{i}\n", results[i].Result);
        }

        using (var sftp = new Renci.SshNet.SftpClient("127.0.0.1", Gateway.Port, "root", key))
        {
            await sftp.ConnectAsync(CancellationToken.None);
            var path = Path.Combine(Gateway.Files, "sshnet-" + Guid.NewGuid().ToString("N")[..6]);
            sftp.WriteAllText(path, "written by SSH.NET");
            Assert.Equal("written by SSH.NET", await File.ReadAllTextAsync(path));
        }

        client.Disconnect();
        var records = await Gateway.WaitForRecordsAsync(r => Enumerable.Range(0, 5).All(i => ResponseOf(r, $"sleep 0.5; echo channel-{i}") is not null));
        var connections = Enumerable.Range(0, 5).Select(i => RequestOf(records, $"sleep 0.5; echo channel-{i}")!.Value.GetProperty("request").GetProperty("connection").GetString()).Distinct().ToList();
        Assert.Single(connections);
    }

    private static string? Type(JsonElement record) => record.GetProperty("type").GetString();

    private static JsonElement? RequestOf(List<JsonElement> records, string command)
    {
        foreach (var record in records)
        {
            if (Type(record) == "ssh.request" && record.GetProperty("request").TryGetProperty("command", out var c) && c.GetString() == command)
            {
                return record;
            }
        }

        return null;
    }

    private static JsonElement? ResponseOf(List<JsonElement> records, string command)
    {
        if (RequestOf(records, command) is not { } request)
        {
            return null;
        }

        var seq = request.GetProperty("seq").GetInt64();
        foreach (var record in records)
        {
            if (Type(record) == "ssh.response" && record.GetProperty("request").GetInt64() == seq)
            {
                return record;
            }
        }

        return null;
    }
}
