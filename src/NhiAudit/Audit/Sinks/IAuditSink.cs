namespace NhiAudit.Audit.Sinks;

/// <summary>
/// A secondary destination for the primary log (a database table, blob storage, an OTLP collector). An
/// <see cref="AuditSinkPump"/> feeds it from the log's segment files: in sequence order, in batches, at least once,
/// and from where the sink says it stands, so a sink that was down catches up and one that already holds a record
/// is not sent it again.
/// </summary>
/// <remarks>
/// Implementations must make delivery idempotent by <see cref="AuditLogEntry.Sequence"/> per replica: after a failure
/// the pump asks <see cref="GetDeliveredSequenceAsync"/> again and resends from the answer + 1, so a batch whose
/// acknowledgement was lost must not be stored twice. Throwing from any member marks the sink as down; the pump
/// retries with back-off and never skips a record.
/// </remarks>
public interface IAuditSink
{
    /// <summary>A short name for logs, metrics and the cursor file (<c>postgres</c>, <c>azureblob</c>, <c>otlp</c>).</summary>
    string Name { get; }

    /// <summary>
    /// The highest <c>seq</c> of <paramref name="replica"/>'s chain that the sink holds, every lower one included; 0 when
    /// it holds none.
    /// </summary>
    /// <param name="replica">The chain's replica name (<see cref="AuditOptions.Replica"/>).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    ValueTask<long> GetDeliveredSequenceAsync(string replica, CancellationToken cancellationToken);

    /// <summary>
    /// Stores <paramref name="records"/>: consecutive records of <paramref name="replica"/>'s chain, the first one
    /// directly after the last delivered one. Completes once they are stored durably by the sink.
    /// </summary>
    /// <param name="replica">The chain's replica name.</param>
    /// <param name="records">The batch, in sequence order, never empty.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    ValueTask DeliverAsync(string replica, IReadOnlyList<AuditLogEntry> records, CancellationToken cancellationToken);

    /// <summary>
    /// Publishes a signed checkpoint of <paramref name="checkpoint"/>'s replica once every record up to its
    /// <see cref="AuditCheckpoint.Sequence"/> has been delivered. A sink that keeps checkpoints is a witness: a log
    /// cut after the checkpoint can no longer pass verification against it.
    /// </summary>
    /// <param name="checkpoint">The checkpoint.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    ValueTask PublishCheckpointAsync(AuditCheckpoint checkpoint, CancellationToken cancellationToken);
}
