using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace NhiAudit.Audit.Sinks;

/// <summary>
/// Feeds one <see cref="IAuditSink"/> from the primary log's segment files: asks the sink where it stands, reads on
/// from there in batches, delivers them in order, publishes each <c>log.checkpoint</c> once everything up to it is
/// delivered, and tails the log for more. When the sink fails the pump backs off, asks again and resends from the
/// sink's answer, so nothing is skipped and, with an idempotent sink, nothing is stored twice. The log on disk is the
/// queue: a pump that restarts, or a sink that was down for hours, simply catches up.
/// </summary>
public sealed class AuditSinkPump : IAsyncDisposable
{
    private readonly IAuditSink _sink;
    private readonly AuditSinkPumpOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Lock _waitersLock = new();
    private readonly List<(long Sequence, TaskCompletionSource Done)> _waiters = [];
    private Task? _loop;
    private long _delivered = -1;
    private int _consecutiveFailures;
    private AuditCheckpoint? _unpublishedCheckpoint;
    private int _disposed;

    /// <summary>Creates a pump; call <see cref="Start"/> to run it.</summary>
    /// <param name="sink">The sink to feed.</param>
    /// <param name="options">Where the log is and how to batch.</param>
    /// <param name="timeProvider">The clock for polling and back-off.</param>
    /// <param name="logger">Receives outage and recovery messages.</param>
    public AuditSinkPump(IAuditSink sink, AuditSinkPumpOptions options, TimeProvider? timeProvider = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(sink);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(options.Directory, nameof(options));
        ArgumentException.ThrowIfNullOrEmpty(options.Replica, nameof(options));
        _sink = sink;
        _options = options;
        _time = timeProvider ?? TimeProvider.System;
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>The sink this pump feeds.</summary>
    public IAuditSink Sink => _sink;

    /// <summary>The highest seq the sink is known to hold; -1 before the sink first answered.</summary>
    public long DeliveredSequence => Volatile.Read(ref _delivered);

    /// <summary>Whether the last call to the sink succeeded.</summary>
    public bool IsHealthy => Volatile.Read(ref _consecutiveFailures) == 0;

    /// <summary>The newest checkpoint the sink has published, if any.</summary>
    public AuditCheckpoint? LastPublishedCheckpoint { get; private set; }

    /// <summary>Starts the pump on the thread pool.</summary>
    public void Start() => _loop ??= Task.Run(() => RunAsync(_stopping.Token));

    /// <summary>Completes once the sink holds every record up to <paramref name="sequence"/>.</summary>
    /// <param name="sequence">The seq to wait for.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    public Task WaitForDeliveredAsync(long sequence, CancellationToken cancellationToken = default)
    {
        lock (_waitersLock)
        {
            if (Volatile.Read(ref _delivered) >= sequence)
            {
                return Task.CompletedTask;
            }

            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Add((sequence, done));
            return done.Task.WaitAsync(cancellationToken);
        }
    }

    /// <summary>Stops the pump after its current call to the sink.</summary>
    public async ValueTask DisposeAsync()
    {
        // The host may dispose both the hosted service and the singleton behind it.
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_loop is not null)
        {
            try
            {
                await _loop.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
        }

        _stopping.Dispose();
    }

    private async Task RunAsync(CancellationToken stopping)
    {
        AuditLogCursor? cursor = null;
        var batch = new List<AuditLogEntry>(_options.MaxBatchRecords);
        try
        {
            while (!stopping.IsCancellationRequested)
            {
                try
                {
                    if (Volatile.Read(ref _delivered) < 0 || cursor is null)
                    {
                        var delivered = await _sink.GetDeliveredSequenceAsync(_options.Replica, stopping).ConfigureAwait(false);
                        cursor?.Dispose();
                        cursor = new AuditLogCursor(_options.Directory, delivered + 1);
                        SetDelivered(delivered);
                    }

                    if (_unpublishedCheckpoint is { } pending)
                    {
                        await _sink.PublishCheckpointAsync(pending, stopping).ConfigureAwait(false);
                        LastPublishedCheckpoint = pending;
                        _unpublishedCheckpoint = null;
                    }

                    batch.Clear();
                    var bytes = 0;
                    while (batch.Count < _options.MaxBatchRecords && bytes < _options.MaxBatchBytes && cursor.TryRead(out var entry))
                    {
                        batch.Add(entry);
                        bytes += entry.Line.Length;
                    }

                    if (batch.Count == 0)
                    {
                        Recovered();
                        await Task.Delay(_options.PollInterval, _time, stopping).ConfigureAwait(false);
                        continue;
                    }

                    await _sink.DeliverAsync(_options.Replica, batch, stopping).ConfigureAwait(false);
                    SetDelivered(batch[^1].Sequence);
                    foreach (var entry in batch)
                    {
                        if (entry.Type == "log.checkpoint" && TryReadCheckpoint(entry) is { } checkpoint)
                        {
                            _unpublishedCheckpoint = checkpoint;
                        }
                    }

                    if (_unpublishedCheckpoint is { } latest)
                    {
                        await _sink.PublishCheckpointAsync(latest, stopping).ConfigureAwait(false);
                        LastPublishedCheckpoint = latest;
                        _unpublishedCheckpoint = null;
                    }

                    Recovered();
                }
                catch (OperationCanceledException) when (stopping.IsCancellationRequested)
                {
                    return;
                }
                catch (AuditChainBrokenException ex)
                {
                    // Never forward what does not continue the chain; this needs a person, not a retry loop.
                    _logger.LogCritical(ex, "Audit sink {Sink} stopped: {Reason}", _sink.Name, ex.Message);
                    Failed();
                    await Task.Delay(_options.MaxRetryDelay, _time, stopping).ConfigureAwait(false);
                    cursor?.Dispose();
                    cursor = null;
                }
                catch (Exception ex)
                {
                    var failures = Failed();
                    if (failures == 1)
                    {
                        _logger.LogWarning(ex, "Audit sink {Sink} is down after seq {Sequence}; records are kept in the log and sent when it is back", _sink.Name, DeliveredSequence);
                    }

                    // Ask again after the outage: a batch may have landed even though its call failed.
                    Volatile.Write(ref _delivered, -1);
                    var delay = TimeSpan.FromTicks(Math.Min(
                        _options.MaxRetryDelay.Ticks,
                        _options.MinRetryDelay.Ticks * (1L << Math.Min(failures - 1, 20))));
                    await Task.Delay(delay, _time, stopping).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
        }
        finally
        {
            cursor?.Dispose();
        }
    }

    private static AuditCheckpoint? TryReadCheckpoint(AuditLogEntry entry)
    {
        try
        {
            using var document = JsonDocument.Parse(entry.Line);
            return document.RootElement.TryGetProperty("checkpoint", out var checkpoint) ? AuditCheckpoint.FromJson(checkpoint) : null;
        }
        catch (Exception ex) when (ex is JsonException or FormatException)
        {
            return null;
        }
    }

    private int Failed() => Interlocked.Increment(ref _consecutiveFailures);

    private void Recovered()
    {
        if (Interlocked.Exchange(ref _consecutiveFailures, 0) > 0)
        {
            _logger.LogInformation("Audit sink {Sink} is back; delivered up to seq {Sequence}", _sink.Name, DeliveredSequence);
        }
    }

    private void SetDelivered(long sequence)
    {
        Volatile.Write(ref _delivered, sequence);
        lock (_waitersLock)
        {
            for (var i = _waiters.Count - 1; i >= 0; i--)
            {
                if (_waiters[i].Sequence <= sequence)
                {
                    _waiters[i].Done.TrySetResult();
                    _waiters.RemoveAt(i);
                }
            }
        }
    }
}
