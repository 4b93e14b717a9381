using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace NhiAudit.Audit.Sinks;

/// <summary>
/// The hosted service that runs one <see cref="AuditSinkPump"/> for every registered <see cref="IAuditSink"/>
/// (<c>AddAuditSink</c>). Resolve it to see each sink's progress and health.
/// </summary>
public sealed class AuditSinkPumps : IHostedService, IAsyncDisposable, IDisposable
{
    private readonly List<AuditSinkPump> _pumps = [];

    /// <summary>Creates a pump per sink over the log configured in <paramref name="audit"/>.</summary>
    /// <param name="sinks">The registered sinks.</param>
    /// <param name="audit">The primary log's options (directory and replica).</param>
    /// <param name="timeProvider">The clock.</param>
    /// <param name="loggers">Logger source.</param>
    /// <param name="log">The primary log; when it is a <see cref="FileAuditLog"/>, retention is held back until every sink has what it would delete.</param>
    public AuditSinkPumps(IEnumerable<IAuditSink> sinks, IOptions<AuditOptions> audit, TimeProvider timeProvider, ILoggerFactory loggers, IAuditLog? log = null)
    {
        ArgumentNullException.ThrowIfNull(sinks);
        ArgumentNullException.ThrowIfNull(audit);
        ArgumentNullException.ThrowIfNull(loggers);
        var options = audit.Value;
        foreach (var sink in sinks)
        {
            _pumps.Add(new AuditSinkPump(
                sink,
                new AuditSinkPumpOptions { Directory = Path.GetFullPath(options.Directory), Replica = options.GetReplicaName() },
                timeProvider,
                loggers.CreateLogger("NhiAudit.Audit.Sinks." + sink.Name)));
        }

        if (log is FileAuditLog file && _pumps.Count > 0)
        {
            // A pump that has not heard from its sink yet reports -1, which keeps everything.
            file.RetentionFloor = () => _pumps.Min(p => p.DeliveredSequence);
        }
    }

    /// <summary>One pump per sink, in registration order.</summary>
    public IReadOnlyList<AuditSinkPump> Pumps => _pumps;

    /// <inheritdoc />
    public Task StartAsync(CancellationToken cancellationToken)
    {
        foreach (var pump in _pumps)
        {
            pump.Start();
        }

        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public async Task StopAsync(CancellationToken cancellationToken) => await DisposeAsync().ConfigureAwait(false);

    /// <inheritdoc />
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        foreach (var pump in _pumps)
        {
            await pump.DisposeAsync().ConfigureAwait(false);
        }
    }
}
