using System.Diagnostics;
using NhiAudit.Audit;
using Xunit.Abstractions;

namespace NhiAudit.Sinks.AzureBlob.Tests;

/// <summary>Runs its own Azurite, because it kills and restarts it.</summary>
public sealed class AzureBlobOutageTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(120);

    [Fact]
    public async Task An_outage_is_reported_and_caught_up_afterwards_without_gap_duplicate_or_reordering()
    {
        var clock = Stopwatch.StartNew();
        void Phase(string what) => output.WriteLine($"{clock.Elapsed.TotalSeconds,6:F2} s  {what}");
        await using var azurite = await AzuriteServer.StartAsync();
        Phase("azurite started");
        await using var log = TestLog.Open();
        var container = azurite.Container("outage");
        await using var pump = log.StartPump(new AzureBlobAuditSink(container), "r", maxBatchRecords: 20);
        await log.AppendQueriesAsync(100);
        await pump.WaitForDeliveredAsync(log.Log.LastSequence).WaitAsync(Patience);
        Assert.True(pump.IsHealthy);
        Phase("first 100 records delivered");

        using var writing = new CancellationTokenSource();
        var writer = Task.Run(async () =>
        {
            while (!writing.IsCancellationRequested)
            {
                await log.AppendQueriesAsync(5);
                await Task.Delay(20, CancellationToken.None);
            }
        });

        await azurite.StopAsync();
        Phase("azurite killed");
        await TestLog.WaitUntilAsync(() => !pump.IsHealthy, "the pump to report the sink down", Patience);
        var writtenDuringOutage = log.Log.LastSequence;
        Phase($"pump reports the sink down; delivered {pump.DeliveredSequence}, log at {writtenDuringOutage}");

        // Let records pile up in the local log while the sink is down.
        await TestLog.WaitUntilAsync(() => log.Log.LastSequence > writtenDuringOutage + 100, "more records while the sink is down", Patience);
        await Task.Delay(TimeSpan.FromSeconds(2));
        await azurite.RestartAsync();
        Phase($"azurite restarted; log at {log.Log.LastSequence}");

        await TestLog.WaitUntilAsync(() => pump.IsHealthy && pump.DeliveredSequence > writtenDuringOutage, "the pump to recover and catch up", Patience);
        Phase($"pump healthy again; delivered {pump.DeliveredSequence}");
        await writing.CancelAsync();
        await writer;
        await log.CloseAsync();
        var local = AuditVerifier.Verify(log.Directory);
        Assert.True(local.IsIntact, local.Problem?.Message);
        await pump.WaitForDeliveredAsync(local.LastSequence!.Value).WaitAsync(Patience);

        Phase($"caught up to {local.LastSequence}");
        await log.AssertBlobsEqualSegmentsAsync(container, "r");
    }
}
