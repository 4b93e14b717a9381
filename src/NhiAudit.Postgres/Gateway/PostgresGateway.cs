using System.Net;
using System.Net.Sockets;
using Azure.Core;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using NhiAudit.Identity;
using NhiAudit.Masking;
using NhiAudit.Postgres.Catalog;
using NhiAudit.Postgres.Masking;
using NhiAudit.Postgres.Relay;

namespace NhiAudit.Postgres.Gateway;

/// <summary>
/// Listens on every configured PostgreSQL target and runs a relay session per connection. One failing connection
/// never affects another, nor the listener.
/// </summary>
public sealed partial class PostgresGateway : BackgroundService
{
    private readonly PostgresOptions _options;
    private readonly IAuditLog _auditLog;
    private readonly IWorkloadAuthenticator _authenticator;
    private readonly IPolicyEngine _policy;
    private readonly IApprovalBroker _approvals;
    private readonly TimeProvider _timeProvider;
    private readonly TokenCredential? _credential;
    private readonly MaskingPolicySource? _masking;
    private readonly List<PgMaskingCatalogs> _maskingCatalogs = [];
    private readonly List<PgCodeCatalogs> _codeCatalogs = [];
    private readonly TimeSpan _sessionGrace;
    private readonly ILogger<PostgresGateway> _logger;
    private readonly CancelKeyRegistry _cancelKeys = new();
    private readonly List<Socket> _listeners = [];
    private readonly TaskCompletionSource _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _activeSessions;

    /// <summary>Creates the gateway; DI calls this.</summary>
    public PostgresGateway(
        IOptions<PostgresOptions> options,
        IOptions<IdentityOptions> identityOptions,
        IAuditLog auditLog,
        IWorkloadAuthenticator authenticator,
        IPolicyEngine policy,
        IApprovalBroker approvals,
        ILogger<PostgresGateway> logger,
        TimeProvider? timeProvider = null,
        TokenCredential? credential = null,
        MaskingPolicySource? masking = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(identityOptions);
        _options = options.Value;
        _auditLog = auditLog;
        _authenticator = authenticator;
        _policy = policy;
        _approvals = approvals;
        _logger = logger;
        _timeProvider = timeProvider ?? TimeProvider.System;
        _credential = credential;
        _masking = masking;
        _sessionGrace = identityOptions.Value.SessionGrace;
    }

    /// <summary>The bound endpoint of each target, by target name, once listening (useful when a target listens on port 0).</summary>
    public IReadOnlyDictionary<string, IPEndPoint> Endpoints { get; private set; } = new Dictionary<string, IPEndPoint>();

    /// <summary>Completes when every listener is bound.</summary>
    public Task Listening => _listening.Task;

    /// <summary>Sessions currently relaying or starting up.</summary>
    public int ActiveSessions => Volatile.Read(ref _activeSessions);

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var endpoints = new Dictionary<string, IPEndPoint>();
        var accepts = new List<Task>();
        try
        {
            foreach (var target in _options.Targets)
            {
                var certificate = GatewayCertificate.LoadOrCreate(target.Tls);
                PgMaskingCatalogs? catalogs = null;
                if (_masking is not null)
                {
                    // Catalogs are read only once masking rules exist, which a policy reload may add at any time.
                    catalogs = new PgMaskingCatalogs(target, _masking, _credential, _timeProvider, _logger);
                    _maskingCatalogs.Add(catalogs);
                }

                // The code catalog (functions, triggers, rules) lets the policy decide what a statement runs, not only its verb.
                var code = new PgCodeCatalogs(target, _credential, _timeProvider, _logger);
                _codeCatalogs.Add(code);
                var services = new PgGatewayServices(_auditLog, _authenticator, _policy, _approvals, _cancelKeys, certificate, _credential, _timeProvider, _sessionGrace, _logger, _masking, catalogs, code);
                var endpoint = IPEndPoint.Parse(target.Listen);
                var listener = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
                listener.Bind(endpoint);
                listener.Listen(512);
                _listeners.Add(listener);
                var bound = (IPEndPoint)listener.LocalEndPoint!;
                endpoints[target.Name] = bound;
                LogListening(target.Name, bound, $"{target.Upstream.Host}:{target.Upstream.Port}");
                accepts.Add(AcceptLoopAsync(listener, target, services, stoppingToken));
            }

            Endpoints = endpoints;
            _listening.TrySetResult();
        }
        catch (Exception ex)
        {
            _listening.TrySetException(ex);
            throw;
        }

        await Task.WhenAll(accepts).ConfigureAwait(false);
        foreach (var catalogs in _maskingCatalogs)
        {
            await catalogs.DisposeAsync().ConfigureAwait(false);
        }

        foreach (var catalogs in _codeCatalogs)
        {
            await catalogs.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async Task AcceptLoopAsync(Socket listener, PostgresTargetOptions target, PgGatewayServices services, CancellationToken stoppingToken)
    {
        using var registration = stoppingToken.Register(listener.Dispose);
        while (!stoppingToken.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptAsync(stoppingToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException || stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException ex)
            {
                LogAcceptFailed(ex, target.Name);
                continue;
            }

            client.NoDelay = true;
            _ = RunSessionAsync(client, target, services, stoppingToken);
        }
    }

    private async Task RunSessionAsync(Socket client, PostgresTargetOptions target, PgGatewayServices services, CancellationToken stoppingToken)
    {
        Interlocked.Increment(ref _activeSessions);
        try
        {
            // Leave the accept loop's thread at once: a slow TLS handshake must not delay the next accept.
            await Task.Yield();
            using var session = new PgRelaySession(client, target, services);
            await session.RunAsync(stoppingToken).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            LogSessionFailed(ex, target.Name);
        }
        finally
        {
            Interlocked.Decrement(ref _activeSessions);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "PostgreSQL target {Target} listening on {Endpoint}, upstream {Upstream}")]
    private partial void LogListening(string target, IPEndPoint endpoint, string upstream);

    [LoggerMessage(Level = LogLevel.Warning, Message = "PostgreSQL target {Target}: accept failed")]
    private partial void LogAcceptFailed(Exception ex, string target);

    [LoggerMessage(Level = LogLevel.Error, Message = "PostgreSQL target {Target}: session failed")]
    private partial void LogSessionFailed(Exception ex, string target);
}
