using System.Net;
using Azure.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using NhiAudit.Kubernetes.Masking;
using NhiAudit.Tls;
using Yarp.ReverseProxy.Forwarder;

namespace NhiAudit.Kubernetes.Gateway;

/// <summary>
/// Listens on every configured Kubernetes target (HTTPS, Kestrel) and passes each request through
/// <see cref="KubernetesRequestHandler"/> to its API server. Each target runs its own small web host, so composing
/// the gateway into an application leaves that application's own pipeline alone.
/// </summary>
public sealed class KubernetesGateway : BackgroundService
{
    private readonly KubernetesOptions _options;
    private readonly IAuditLog _auditLog;
    private readonly IWorkloadAuthenticator _authenticator;
    private readonly IPolicyEngine _policy;
    private readonly IApprovalBroker _approvals;
    private readonly IValueMasker _masker;
    private readonly TimeProvider _time;
    private readonly TokenCredential? _credential;
    private readonly ILoggerFactory _loggers;
    private readonly List<WebApplication> _hosts = [];
    private readonly List<KubernetesUpstream> _upstreams = [];
    private readonly TaskCompletionSource _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Creates the gateway; DI calls this.</summary>
    public KubernetesGateway(
        IOptions<KubernetesOptions> options,
        IAuditLog auditLog,
        IWorkloadAuthenticator authenticator,
        IPolicyEngine policy,
        IApprovalBroker approvals,
        IValueMasker masker,
        ILoggerFactory loggers,
        TimeProvider? timeProvider = null,
        TokenCredential? credential = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value;
        _auditLog = auditLog;
        _authenticator = authenticator;
        _policy = policy;
        _approvals = approvals;
        _masker = masker;
        _loggers = loggers;
        _time = timeProvider ?? TimeProvider.System;
        _credential = credential;
    }

    /// <summary>The bound endpoint of each target, by target name, once listening (useful when a target listens on port 0).</summary>
    public IReadOnlyDictionary<string, IPEndPoint> Endpoints { get; private set; } = new Dictionary<string, IPEndPoint>();

    /// <summary>Completes when every listener is bound.</summary>
    public Task Listening => _listening.Task;

    /// <inheritdoc/>
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var endpoints = new Dictionary<string, IPEndPoint>();
        try
        {
            foreach (var target in _options.Targets)
            {
                var host = BuildHost(target);
                await host.StartAsync(stoppingToken).ConfigureAwait(false);
                _hosts.Add(host);
                var address = host.Urls.First();
                endpoints[target.Name] = new IPEndPoint(IPAddress.Parse(new Uri(address).Host), new Uri(address).Port);
            }

            Endpoints = endpoints;
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

        foreach (var host in _hosts)
        {
            await host.StopAsync(CancellationToken.None).ConfigureAwait(false);
            await host.DisposeAsync().ConfigureAwait(false);
        }

        foreach (var upstream in _upstreams)
        {
            upstream.Dispose();
        }
    }

    private WebApplication BuildHost(KubernetesTargetOptions target)
    {
        var certificate = GatewayCertificates.LoadOrCreate(target.CertificateFile, target.KeyFile, target.StateDirectory);
        var endpoint = IPEndPoint.Parse(target.Listen);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { EnvironmentName = Environments.Production });
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(_loggers);
        builder.Services.AddHttpForwarder();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = null;
            kestrel.Listen(endpoint, listen =>
            {
                listen.Protocols = HttpProtocols.Http1AndHttp2;
                listen.UseHttps(certificate);
            });
        });

        var app = builder.Build();
        app.UseWebSockets();
        var upstream = new KubernetesUpstream(target.Upstream, _credential);
        _upstreams.Add(upstream);
        var services = new KubernetesServices(
            target,
            upstream,
            app.Services.GetRequiredService<IHttpForwarder>(),
            _auditLog,
            _authenticator,
            _policy,
            _approvals,
            new KubernetesResponseMasker(_options.Masking, _masker),
            _time,
            _loggers.CreateLogger("NhiAudit.Kubernetes." + target.Name));
        var handler = new KubernetesRequestHandler(services);
        var logger = services.Logger;
        app.Run(async context =>
        {
            try
            {
                await handler.HandleAsync(context).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
            {
                // The client went away.
            }
            catch (Exception ex)
            {
                logger.LogError(ex, "Kubernetes request {Method} {Path} failed", context.Request.Method, context.Request.Path);
                if (!context.Response.HasStarted)
                {
                    var failure = ex is AuditLogUnavailableException ? "the audit log cannot be written: " + ex.Message : "the NhiAudit gateway failed: " + ex.GetType().Name + ": " + ex.Message;
                    await KubernetesStatus.WriteAsync(context, ex is AuditLogUnavailableException ? 503 : 500, failure).ConfigureAwait(false);
                }
            }
        });
        return app;
    }
}
