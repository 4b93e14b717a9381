namespace NhiAudit.Tests.Audit;

/// <summary>A clock that stands still, so record times can be asserted; timers still run on real time.</summary>
internal sealed class FixedTimeProvider(DateTimeOffset now) : TimeProvider
{
    public DateTimeOffset Now { get; set; } = now;

    public override DateTimeOffset GetUtcNow() => Now;
}
