using System.Net;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using NhiAudit.Identity;
using NhiAudit.Ssh.Authentication;
using NhiAudit.Ssh.HostKeys;
using NhiAudit.Ssh.Relay;
using NhiAudit.Ssh.Server;
using NhiAudit.Ssh.Transport;
using NSec.Cryptography;

namespace NhiAudit.Ssh.Gateway;

/// <summary>
/// Listens on every configured SSH target and relays each authenticated workload connection to its upstream host
/// through <see cref="SshRelay"/>: policy, approvals, audit records and recordings on the way.
/// </summary>
public sealed class SshGateway : BackgroundService
{
    private readonly SshOptions _options;
    private readonly IdentityOptions _identity;
    private readonly IAuditLog _auditLog;
    private readonly IWorkloadAuthenticator _authenticator;
    private readonly IPolicyEngine _policy;
    private readonly IApprovalBroker _approvals;
    private readonly TimeProvider _time;
    private readonly ILoggerFactory _loggers;
    private readonly List<SshServer> _servers = [];
    private readonly List<SshHostKey> _keys = [];
    private readonly TaskCompletionSource _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Creates the gateway; DI calls this.</summary>
    public SshGateway(
        IOptions<SshOptions> options,
        IOptions<IdentityOptions> identity,
        IAuditLog auditLog,
        IWorkloadAuthenticator authenticator,
        IPolicyEngine policy,
        IApprovalBroker approvals,
        ILoggerFactory loggers,
        TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(identity);
        _options = options.Value;
        _identity = identity.Value;
        _auditLog = auditLog;
        _authenticator = authenticator;
        _policy = policy;
        _approvals = approvals;
        _loggers = loggers;
        _time = timeProvider ?? TimeProvider.System;
    }

    /// <summary>The bound endpoint of each target, by name, once listening.</summary>
    public IReadOnlyDictionary<string, IPEndPoint> Endpoints { get; private set; } = new Dictionary<string, IPEndPoint>();

    /// <summary>The host key fingerprint each target presents to workloads, by name (what a known_hosts entry pins).</summary>
    public IReadOnlyDictionary<string, string> HostKeyFingerprints { get; private set; } = new Dictionary<string, string>();

    /// <summary>Completes when every listener is bound.</summary>
    public Task Listening => _listening.Task;

    /// <inheritdoc/>
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var endpoints = new Dictionary<string, IPEndPoint>();
        var fingerprints = new Dictionary<string, string>();
        try
        {
            var authorizedKeys = SshAuthenticationOptions.AuthorizedKeysFrom(_identity);
            var authorities = SshAuthenticationOptions.CertificateAuthoritiesFrom(_identity);
            foreach (var target in _options.Targets)
            {
                var server = StartTarget(target, authorizedKeys, authorities, out var fingerprint);
                _servers.Add(server);
                endpoints[target.Name] = server.LocalEndPoint;
                fingerprints[target.Name] = fingerprint;
            }

            Endpoints = endpoints;
            HostKeyFingerprints = fingerprints;
            _listening.TrySetResult();
        }
        catch (Exception ex)
        {
            _listening.TrySetException(ex);
            throw;
        }

        try
        {
            await Task.Delay(Timeout.Infinite, stoppingToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }

        foreach (var server in _servers)
        {
            await server.DisposeAsync().ConfigureAwait(false);
        }

        foreach (var key in _keys)
        {
            key.Dispose();
        }
    }

    private SshServer StartTarget(SshTargetOptions target, IReadOnlyList<SshAuthorizedKey> authorizedKeys, IReadOnlyList<SshTrustedCertificateAuthority> authorities, out string fingerprint)
    {
        var upstream = target.Upstream;
        var missing = new List<string>();
        if (string.IsNullOrWhiteSpace(upstream.Host))
        {
            missing.Add("Upstream:Host");
        }

        if (string.IsNullOrWhiteSpace(upstream.Username))
        {
            missing.Add("Upstream:Username");
        }

        if (string.IsNullOrWhiteSpace(upstream.PrivateKeyFile))
        {
            missing.Add("Upstream:PrivateKeyFile");
        }

        if (!upstream.HostKeyFingerprint.StartsWith("SHA256:", StringComparison.Ordinal))
        {
            missing.Add("Upstream:HostKeyFingerprint (SHA256:…, as ssh-keygen -lf prints it)");
        }

        if (missing.Count > 0)
        {
            throw new InvalidOperationException($"SSH target '{target.Name}' lacks {string.Join(", ", missing)}");
        }

        var hostKey = LoadOrCreateHostKey(target);
        var clientKey = SshHostKey.Load(upstream.PrivateKeyFile);
        _keys.Add(hostKey);
        _keys.Add(clientKey);
        fingerprint = hostKey.Fingerprint;

        var logger = _loggers.CreateLogger("NhiAudit.Ssh." + target.Name);
        var connector = new SshUpstreamConnector(upstream, clientKey);
        var services = new SshRelayServices(target, connector.ConnectAsync, _auditLog, _policy, _approvals, _time, logger) { SessionGrace = _identity.SessionGrace };
        var options = new SshServerOptions
        {
            Transport = new SshTransportOptions { HostKeys = [hostKey] },
            Authentication = new SshAuthenticationOptions
            {
                AuthorizedKeys = authorizedKeys,
                CertificateAuthorities = authorities,
                WorkloadAuthenticator = _authenticator,
                PrincipalForUser = target.PrincipalForUser,
                TimeProvider = _time,
                MaxAttempts = target.MaxAuthenticationAttempts,
                Audit = new SshAuthenticationAuditLog(_auditLog, target.Name),
            },
            Relay = (client, user, connectionId, remote, end) => new SshRelay(services, client, user, connectionId, remote, end),
        };
        var server = new SshServer(IPEndPoint.Parse(target.Listen), options, logger);
        server.Start();
        logger.LogInformation("SSH target {Target} listening on {Endpoint} (host key {Fingerprint}) for {Host}:{Port} as {User}", target.Name, server.LocalEndPoint, fingerprint, upstream.Host, upstream.Port, upstream.Username);
        return server;
    }

    /// <summary>The configured host key, or an Ed25519 key generated once and kept under the state directory.</summary>
    private static SshHostKey LoadOrCreateHostKey(SshTargetOptions target)
    {
        if (!string.IsNullOrWhiteSpace(target.HostKeyFile))
        {
            return SshHostKey.Load(target.HostKeyFile);
        }

        var path = Path.Combine(target.StateDirectory, $"{target.Name}_host_ed25519.pem");
        if (!File.Exists(path))
        {
            Directory.CreateDirectory(target.StateDirectory);
            using var key = Key.Create(SignatureAlgorithm.Ed25519, new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport });
            var pem = key.Export(KeyBlobFormat.PkixPrivateKeyText);
            using var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None);
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }

            file.Write(pem);
        }

        return SshHostKey.Load(path);
    }
}
