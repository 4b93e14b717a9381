namespace NhiAudit.Audit.Sinks;

/// <summary>How an <see cref="AuditSinkPump"/> feeds one sink.</summary>
public sealed class AuditSinkPumpOptions
{
    /// <summary>The primary log's directory (<see cref="AuditOptions.Directory"/>).</summary>
    public required string Directory { get; init; }

    /// <summary>The chain's replica name (<see cref="AuditOptions.Replica"/>).</summary>
    public required string Replica { get; init; }

    /// <summary>The most records in one <see cref="IAuditSink.DeliverAsync"/> call. Default: 1000.</summary>
    public int MaxBatchRecords { get; init; } = 1000;

    /// <summary>The most line bytes in one batch (a single larger record still goes alone). Default: 4 MiB.</summary>
    public int MaxBatchBytes { get; init; } = 4 * 1024 * 1024;

    /// <summary>How often the log is looked at for new records when the pump has caught up. Default: 200 ms.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromMilliseconds(200);

    /// <summary>The first wait after a failure; it doubles per failure up to <see cref="MaxRetryDelay"/>. Default: 1 s.</summary>
    public TimeSpan MinRetryDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The longest wait between retries while a sink is down. Default: 30 s.</summary>
    public TimeSpan MaxRetryDelay { get; init; } = TimeSpan.FromSeconds(30);
}
