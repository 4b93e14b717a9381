using System.Diagnostics;
using System.Net;
using NhiAudit.Identity;
using NhiAudit.Ssh.Authentication;
using NhiAudit.Ssh.Server;
using NhiAudit.Ssh.Tests.Support;
using NhiAudit.Ssh.Transport;

namespace NhiAudit.Ssh.Tests.Authentication;

/// <summary>
/// User keys, CAs and certificates made once per class with the real ssh-keygen, plus the engine's development token
/// issuer and its real <see cref="WorkloadTokenValidator"/>.
/// </summary>
public sealed class AuthenticationFixture : IDisposable
{
    public AuthenticationFixture()
    {
        Directory = Path.Combine(Path.GetTempPath(), "nhiaudit-ssh-auth-" + Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(Directory);
        foreach (var (name, type) in new[]
        {
            ("user-ed25519", "ed25519"), ("user-rsa", "rsa"), ("user-ecdsa", "ecdsa"), ("stranger", "ed25519"),
            ("ca", "ed25519"), ("ca-rsa", "rsa"), ("rogue-ca", "ed25519"),
            ("cert-ed25519", "ed25519"), ("cert-ecdsa", "ecdsa"), ("cert-rsa", "rsa"), ("cert-rsa-ca", "ed25519"),
            ("cert-rogue", "ed25519"), ("cert-noprincipal", "ed25519"), ("cert-host", "ed25519"),
            ("cert-force", "ed25519"), ("cert-source-ok", "ed25519"), ("cert-source-bad", "ed25519"),
            ("cert-mapped", "ed25519"), ("cert-source-hostbits", "ed25519"),
        })
        {
            Run("ssh-keygen", "-q", "-N", "", "-C", name, "-t", type, "-f", PathOf(name));
        }

        Certify("cert-ed25519", "ca", "deploy-job", "workload");
        Certify("cert-ecdsa", "ca", "ecdsa-job", "workload");
        Certify("cert-rsa", "ca", "rsa-job", "workload");
        Certify("cert-rsa-ca", "ca-rsa", "signed-by-rsa-ca", "workload");
        Certify("cert-rogue", "rogue-ca", "rogue-job", "workload");
        Certify("cert-noprincipal", "ca", "other-job", "someone-else");
        Certify("cert-host", "ca", "host-cert", "workload", "-h");
        Certify("cert-force", "ca", "forced-job", "workload", "-O", "force-command=/bin/true");
        Certify("cert-source-ok", "ca", "source-ok-job", "workload", "-O", "source-address=10.0.0.0/8,127.0.0.1/32");
        Certify("cert-source-bad", "ca", "source-bad-job", "workload", "-O", "source-address=10.0.0.0/8");
        Certify("cert-mapped", "ca", "mapped-job", "ci-deployers");
        Certify("cert-source-hostbits", "ca", "source-hostbits-job", "workload", "-O", "source-address=::1,127.0.0.0/8");

        Issuer = DevelopmentIssuer.LoadOrCreate(Path.Combine(Directory, "issuer"));
        Validator = new WorkloadTokenValidator(new IdentityOptions
        {
            Issuers = [new IssuerOptions { Name = "local", Issuer = Issuer.Issuer, JwksFile = Issuer.JwksPath, Audiences = ["nhiaudit"] }],
        });
    }

    public string Directory { get; }

    public DevelopmentIssuer Issuer { get; }

    public WorkloadTokenValidator Validator { get; }

    public string PathOf(string name) => Path.Combine(Directory, name);

    public string PublicKeyLine(string name) => File.ReadAllText(PathOf(name) + ".pub").Trim();

    /// <summary>Options trusting the registered user keys, the "ca" and "ca-rsa" CAs and the development issuer.</summary>
    public SshAuthenticationOptions Options(ISshAuthenticationAudit audit, TimeProvider? clock = null) => new()
    {
        AuthorizedKeys =
        [
            SshAuthorizedKey.Parse(PublicKeyLine("user-ed25519"), "ed25519-job", WorkloadKind.ServicePrincipal),
            SshAuthorizedKey.Parse(PublicKeyLine("user-rsa"), "rsa-job", WorkloadKind.ServicePrincipal),
            SshAuthorizedKey.Parse(PublicKeyLine("user-ecdsa"), "ecdsa-job", WorkloadKind.FederatedWorkload),
        ],
        CertificateAuthorities =
        [
            SshTrustedCertificateAuthority.Parse(PublicKeyLine("ca"), "ci-ca"),
            SshTrustedCertificateAuthority.Parse(PublicKeyLine("ca-rsa"), "rsa-ca"),
        ],
        WorkloadAuthenticator = Validator,
        PrincipalForUser = new Dictionary<string, string> { ["deployer"] = "ci-deployers" },
        TimeProvider = clock ?? TimeProvider.System,
        Audit = audit,
    };

    /// <summary>Runs our server with <paramref name="authentication"/> (test exec on) for one client run.</summary>
    public static async Task<(T Result, List<SshSessionResult> Sessions)> WithServerAsync<T>(SshAuthenticationOptions authentication, Func<int, Task<T>> client)
    {
        var sessions = new List<SshSessionResult>();
        var server = new SshServer(
            new IPEndPoint(IPAddress.Loopback, 0),
            new SshServerOptions
            {
                Transport = new SshTransportOptions { HostKeys = [TestHostKeys.Load("ed25519")] },
                Authentication = authentication,
                EnableTestExecForTesting = true,
            });
        server.SessionEnded += (_, result) =>
        {
            lock (sessions)
            {
                sessions.Add(result);
            }
        };
        server.Start();
        T result;
        try
        {
            result = await client(server.LocalEndPoint.Port);
        }
        finally
        {
            await server.DisposeAsync();
        }

        Assert.All(sessions, s => Assert.Null(s.Fault));
        return (result, sessions);
    }

    private void Certify(string key, string ca, string keyId, string principals, params string[] extra)
    {
        string[] arguments = ["-q", "-s", PathOf(ca), "-I", keyId, "-n", principals, "-V", "+1h", .. extra, PathOf(key) + ".pub"];
        Run("ssh-keygen", arguments);
    }

    internal static string Run(string file, params string[] arguments)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEnd();
        var stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} failed: {stderr}");
        }

        return stdout;
    }

    public void Dispose()
    {
        Issuer.Dispose();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>Keeps every authentication outcome the server reports.</summary>
internal sealed class RecordingAudit : ISshAuthenticationAudit
{
    private readonly List<SshAuthenticationAttempt> _attempts = [];

    public IReadOnlyList<SshAuthenticationAttempt> Attempts
    {
        get
        {
            lock (_attempts)
            {
                return [.. _attempts];
            }
        }
    }

    public IReadOnlyList<SshAuthenticationAttempt> Failures => [.. Attempts.Where(a => !a.Succeeded)];

    public ValueTask RecordAsync(SshAuthenticationAttempt attempt, CancellationToken cancellationToken)
    {
        lock (_attempts)
        {
            _attempts.Add(attempt);
        }

        return ValueTask.CompletedTask;
    }
}

/// <summary>A clock that reads a fixed offset from the system clock.</summary>
internal sealed class ShiftedClock(TimeSpan offset) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => System.GetUtcNow() + offset;
}
