using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using NhiAudit.Audit;
using NhiAudit.Audit.Sinks;
using NhiAudit.Identity;

namespace NhiAudit.Proxy.Admin;

/// <summary>Runs the <see cref="AdminHost"/> for as long as the gateway host runs.</summary>
internal sealed class AdminHostedService(
    AdminOptions options,
    IApprovalBroker broker,
    IWorkloadAuthenticator authenticator,
    IOptions<IdentityOptions> identity,
    ILoggerFactory loggerFactory,
    IAuditLog auditLog,
    AuditSinkPumps? sinks = null) : IHostedService, IAsyncDisposable
{
    private AdminHost? _host;

    /// <summary>The bound address once started.</summary>
    public Uri? Address => _host?.Address;

    public async Task StartAsync(CancellationToken cancellationToken) =>
        _host = await AdminHost.StartAsync(options, broker, authenticator, identity.Value.ApproverRole, loggerFactory, new AdminEvidence(auditLog as FileAuditLog, sinks), cancellationToken).ConfigureAwait(false);

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_host is { } host)
        {
            _host = null;
            await host.DisposeAsync().ConfigureAwait(false);
        }
    }

    public ValueTask DisposeAsync() => _host?.DisposeAsync() ?? ValueTask.CompletedTask;
}
