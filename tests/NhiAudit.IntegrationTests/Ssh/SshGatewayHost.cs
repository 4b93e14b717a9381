using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NhiAudit.Identity;
using NhiAudit.IntegrationTests.Gateway;
using NhiAudit.IntegrationTests.Infrastructure;
using NhiAudit.Ssh.Gateway;
using NhiAudit.Ssh.HostKeys;

namespace NhiAudit.IntegrationTests.Ssh;

/// <summary>
/// A real OpenSSH sshd (its own config, a free 127.0.0.1 port, the gateway's key authorized for root) behind the SSH
/// gateway in process (<c>AddNhiAuditing().AddSsh()</c>), and a workload key registered to <c>deploy-job</c>. The
/// real ssh, sftp and scp clients connect with the workload key and pin the gateway's host key in a known_hosts file.
/// </summary>
public sealed class SshGatewayHost : IAsyncDisposable
{
    private readonly IHost _host;
    private readonly Process _sshd;

    private SshGatewayHost(IHost host, Process sshd, string directory, int port, int upstreamPort)
    {
        _host = host;
        _sshd = sshd;
        Directory = directory;
        Port = port;
        UpstreamPort = upstreamPort;
    }

    public string Directory { get; }

    /// <summary>A folder for files the tests copy around (the upstream runs as root on this machine, so it sees it too).</summary>
    public string Files => Path.Combine(Directory, "files");

    public string AuditDirectory => Path.Combine(Directory, "audit");

    public string RecordingsDirectory => Path.Combine(Directory, "recordings");

    /// <summary>The workload's private key (registered to deploy-job).</summary>
    public string WorkloadKey => Path.Combine(Directory, "workload_ed25519");

    public string KnownHosts => Path.Combine(Directory, "known_hosts");

    public int Port { get; }

    /// <summary>The development issuer whose tokens the gateway accepts (keyboard-interactive answers).</summary>
    public required DevelopmentIssuer Issuer { get; init; }

    public int UpstreamPort { get; }

    public IServiceProvider Services => _host.Services;

    /// <summary>Starts sshd and the gateway. <paramref name="configure"/> adds settings (policy rules, limits).</summary>
    public static async Task<SshGatewayHost> StartAsync(Action<Dictionary<string, string?>>? configure = null)
    {
        var directory = Path.Combine(PostgresServer.TempRoot, "sshgw-" + Guid.NewGuid().ToString("N")[..10]);
        System.IO.Directory.CreateDirectory(Path.Combine(directory, "files"));
        var (sshd, upstreamPort, upstreamFingerprint) = await StartUpstreamAsync(directory).ConfigureAwait(false);

        var issuer = DevelopmentIssuer.LoadOrCreate(Path.Combine(directory, "issuer"), "https://issuer.test");
        var settings = new Dictionary<string, string?>
        {
            ["NhiAudit:Identity:Issuers:0:Name"] = "test",
            ["NhiAudit:Identity:Issuers:0:Issuer"] = "https://issuer.test",
            ["NhiAudit:Identity:Issuers:0:JwksFile"] = issuer.JwksPath,
            ["NhiAudit:Identity:Issuers:0:Audiences:0"] = "nhiaudit",
            ["NhiAudit:Identity:SshKeys:0:PublicKey"] = (await File.ReadAllTextAsync(Path.Combine(directory, "workload_ed25519.pub")).ConfigureAwait(false)).Trim(),
            ["NhiAudit:Identity:SshKeys:0:Subject"] = "deploy-job",
            ["NhiAudit:Identity:SshKeys:0:Kind"] = "ServicePrincipal",
            ["NhiAudit:Identity:SshCertificateAuthorities:0:PublicKey"] = (await File.ReadAllTextAsync(Path.Combine(directory, "ci_ca_ed25519.pub")).ConfigureAwait(false)).Trim(),
            ["NhiAudit:Identity:SshCertificateAuthorities:0:Name"] = "ci-ca",
            ["NhiAudit:Audit:Directory"] = Path.Combine(directory, "audit"),
            ["NhiAudit:Ssh:Targets:0:Name"] = "build",
            ["NhiAudit:Ssh:Targets:0:Listen"] = "127.0.0.1:0",
            ["NhiAudit:Ssh:Targets:0:HostKeyFile"] = Path.Combine(directory, "gateway_host_ed25519"),
            ["NhiAudit:Ssh:Targets:0:RecordingsDirectory"] = Path.Combine(directory, "recordings"),
            ["NhiAudit:Ssh:Targets:0:Upstream:Host"] = "127.0.0.1",
            ["NhiAudit:Ssh:Targets:0:Upstream:Port"] = upstreamPort.ToString(CultureInfo.InvariantCulture),
            ["NhiAudit:Ssh:Targets:0:Upstream:Username"] = "root",
            ["NhiAudit:Ssh:Targets:0:Upstream:PrivateKeyFile"] = Path.Combine(directory, "gateway_client_ed25519"),
            ["NhiAudit:Ssh:Targets:0:Upstream:HostKeyFingerprint"] = upstreamFingerprint,
        };
        configure?.Invoke(settings);

        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.AddSimpleConsole().SetMinimumLevel(LogLevel.Warning);
        builder.Services
            .AddNhiAuditing(configuration.GetSection("NhiAudit"))
            .AddSsh(configuration.GetSection("NhiAudit:Ssh"));
        var host = builder.Build();
        try
        {
            await host.StartAsync().ConfigureAwait(false);
            var gateway = host.Services.GetRequiredService<SshGateway>();
            await gateway.Listening.WaitAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
            var port = gateway.Endpoints["build"].Port;
            var hostKey = (await File.ReadAllTextAsync(Path.Combine(directory, "gateway_host_ed25519.pub")).ConfigureAwait(false)).Trim();
            await File.WriteAllTextAsync(Path.Combine(directory, "known_hosts"), $"[127.0.0.1]:{port} {hostKey}\n").ConfigureAwait(false);
            return new SshGatewayHost(host, sshd, directory, port, upstreamPort) { Issuer = issuer };
        }
        catch
        {
            host.Dispose();
            sshd.Kill();
            throw;
        }
    }

    /// <summary>
    /// Makes the keys in <paramref name="directory"/> (upstream host, gateway client, gateway host, workload, stranger,
    /// a CI certificate authority and a key for it to certify; ed25519, OpenSSH format, .pub beside each) and starts sshd with the gateway's client key authorized for root.
    /// </summary>
    internal static async Task<(Process Sshd, int Port, string HostKeyFingerprint)> StartUpstreamAsync(string directory)
    {
        System.IO.Directory.CreateDirectory(Path.Combine(directory, "files"));
        foreach (var key in new[] { "upstream_host_ed25519", "gateway_client_ed25519", "gateway_host_ed25519", "workload_ed25519", "stranger_ed25519", "ci_ca_ed25519", "certified_ed25519" })
        {
            (await ProcessRunner.RunAsync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", key, "-f", Path.Combine(directory, key)]).ConfigureAwait(false)).EnsureSuccess("ssh-keygen");
        }

        await File.WriteAllTextAsync(Path.Combine(directory, "authorized_keys_root"), await File.ReadAllTextAsync(Path.Combine(directory, "gateway_client_ed25519.pub")).ConfigureAwait(false)).ConfigureAwait(false);
        var port = FreePort.Get();
        var sshd = await StartSshdAsync(directory, port).ConfigureAwait(false);
        using var upstreamKey = SshHostKey.Load(Path.Combine(directory, "upstream_host_ed25519"));
        return (sshd, port, upstreamKey.Fingerprint);
    }

    private static async Task<Process> StartSshdAsync(string directory, int port)
    {
        System.IO.Directory.CreateDirectory("/run/sshd");
        var config = Path.Combine(directory, "sshd_config");
        await File.WriteAllTextAsync(config, $"""
            Port {port}
            ListenAddress 127.0.0.1
            HostKey {Path.Combine(directory, "upstream_host_ed25519")}
            PidFile {Path.Combine(directory, "sshd.pid")}
            AuthorizedKeysFile {directory}/authorized_keys_%u
            PermitRootLogin prohibit-password
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            StrictModes no
            UsePAM no
            AcceptEnv NHIAUDIT_* LANG
            Subsystem sftp /usr/lib/openssh/sftp-server
            """).ConfigureAwait(false);
        var start = new ProcessStartInfo("/usr/sbin/sshd") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var argument in new[] { "-D", "-f", config, "-E", Path.Combine(directory, "sshd.log") })
        {
            start.ArgumentList.Add(argument);
        }

        var process = Process.Start(start)!;
        _ = process.StandardError.ReadToEndAsync();
        if (!await FreePort.WaitForListeningAsync(port, TimeSpan.FromSeconds(20)).ConfigureAwait(false))
        {
            process.Kill();
            throw new InvalidOperationException("sshd did not start listening: " + File.ReadAllText(Path.Combine(directory, "sshd.log")));
        }

        return process;
    }

    /// <summary>The OpenSSH client options every tool here uses: the workload key, the gateway's host key pinned.</summary>
    public IEnumerable<string> ClientOptions(string? key = null) =>
    [
        "-F", "/dev/null",
        "-o", "BatchMode=yes",
        "-o", "IdentitiesOnly=yes",
        "-o", "IdentityFile=" + (key ?? WorkloadKey),
        "-o", "StrictHostKeyChecking=yes",
        "-o", "UserKnownHostsFile=" + KnownHosts,
    ];

    /// <summary>Runs <c>ssh -p PORT root@127.0.0.1 COMMAND</c> (extra options before the destination).</summary>
    public Task<ProcessResult> SshAsync(string command, string? stdin = null, IEnumerable<string>? options = null, string? key = null, IDictionary<string, string>? env = null) =>
        ProcessRunner.RunAsync("ssh", [.. ClientOptions(key), "-p", Port.ToString(CultureInfo.InvariantCulture), .. options ?? [], "root@127.0.0.1", command], stdin, TimeSpan.FromSeconds(90), env);

    /// <summary>Runs an sftp batch through the gateway.</summary>
    public async Task<ProcessResult> SftpAsync(string batch, string workingDirectory)
    {
        var batchFile = Path.Combine(Directory, "batch-" + Guid.NewGuid().ToString("N")[..6]);
        await File.WriteAllTextAsync(batchFile, batch).ConfigureAwait(false);
        return await ProcessRunner.RunAsync("sftp", [.. ClientOptions(), "-P", Port.ToString(CultureInfo.InvariantCulture), "-b", batchFile, "root@127.0.0.1"], timeout: TimeSpan.FromSeconds(90), workingDirectory: workingDirectory).ConfigureAwait(false);
    }

    /// <summary>Runs scp through the gateway (<paramref name="legacy"/>: <c>-O</c>, the old scp protocol instead of SFTP).</summary>
    public Task<ProcessResult> ScpAsync(string from, string to, bool legacy, bool recursive = false) =>
        ProcessRunner.RunAsync("scp", [.. ClientOptions(), "-P", Port.ToString(CultureInfo.InvariantCulture), .. legacy ? new[] { "-O" } : [], .. recursive ? new[] { "-r" } : [], from, to], timeout: TimeSpan.FromSeconds(90));

    public string Remote(string path) => "root@127.0.0.1:" + path;

    public Task<List<JsonElement>> ReadRecordsAsync() => WaitForRecordsAsync(static _ => true);

    /// <summary>The records once <paramref name="ready"/> holds (see <see cref="GatewayHost.WaitForRecordsAsync"/>).</summary>
    public Task<List<JsonElement>> WaitForRecordsAsync(Func<List<JsonElement>, bool> ready) =>
        GatewayHost.WaitForRecordsAsync(_host.Services, AuditDirectory, ready);

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _host.StopAsync(TimeSpan.FromSeconds(15)).ConfigureAwait(false);
        }
        finally
        {
            _host.Dispose();
            if (!_sshd.HasExited)
            {
                _sshd.Kill(entireProcessTree: true);
                await _sshd.WaitForExitAsync().ConfigureAwait(false);
            }

            _sshd.Dispose();
        }

        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // Best effort.
        }
    }
}
