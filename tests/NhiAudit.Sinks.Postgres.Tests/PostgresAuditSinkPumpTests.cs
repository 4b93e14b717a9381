using NhiAudit.Audit;
using NhiAudit.Audit.Sinks;
using NhiAudit.Sinks.Postgres.Tests.Infrastructure;

namespace NhiAudit.Sinks.Postgres.Tests;

/// <summary>The sink fed by a real <see cref="AuditSinkPump"/> from a real <see cref="FileAuditLog"/>, against PostgreSQL 15.</summary>
[Collection(SinkPostgresCollectionDefinition.Name)]
public sealed class PostgresAuditSinkPumpTests(SinkPostgresFixture postgres)
{
    private static readonly TimeSpan DeliveryTimeout = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task Pump_DeliversEveryRecordOnceInOrder_AndTheChainVerifiesFromTheTable()
    {
        await using var log = TestAuditLog.Open();
        var last = await log.AppendQueriesAsync(300);
        var options = postgres.NewSinkOptions();
        await using var sink = new PostgresAuditSink(options);
        await using (var pump = StartPump(sink, log, maxBatchRecords: 64))
        {
            await pump.WaitForDeliveredAsync(last).WaitAsync(DeliveryTimeout);
            Assert.True(pump.IsHealthy);
        }

        var rows = await SinkTable.ReadRowsAsync(options, log.Replica);
        SinkTable.AssertCompleteChain(rows, last);
        Assert.Equal(0, await SinkTable.CountChainProblemsInSqlAsync(options, log.Replica));

        // The stored lines are the log's lines byte for byte, and jsonb holds the same record for queries.
        var onDisk = log.ReadAll();
        Assert.Equal(onDisk.Take((int)last).Select(e => System.Text.Encoding.UTF8.GetString(e.Line.Span)), rows.Select(r => r.Line));
        Assert.All(rows, row => Assert.True(row.HasRecord));
        Assert.Equal(300, rows.Count(r => r.Type == "pg.query"));
        Assert.Equal(last, await sink.GetDeliveredSequenceAsync(log.Replica, CancellationToken.None));

        await using var reader = new PostgresAuditSinkReader(options);
        var verification = await reader.VerifyChainAsync(log.Replica);
        Assert.True(verification.IsValid, verification.Problem);
        Assert.Equal(last, verification.LastSequence);
    }

    [Fact]
    public async Task Pump_CatchesUpAfterAShortOutage_WithoutGapOrDuplicate() =>
        await RunOutageAsync(TimeSpan.FromSeconds(3), appendInterval: TimeSpan.FromMilliseconds(20), maxRetryDelay: TimeSpan.FromMilliseconds(500));

    /// <summary>The scenario: the sink's database is unreachable for a whole minute while the gateway keeps logging.</summary>
    [Fact]
    [Trait("Category", "Slow")]
    public async Task Pump_CatchesUpAfterAOneMinuteOutage_WithoutGapOrDuplicate() =>
        await RunOutageAsync(TimeSpan.FromSeconds(60), appendInterval: TimeSpan.FromMilliseconds(100), maxRetryDelay: TimeSpan.FromSeconds(2));

    [Fact]
    public async Task LogCheckpointRecord_EndsUpInTheCheckpointTable_AndIsTheLatestCheckpoint()
    {
        await using var log = TestAuditLog.Open();
        await log.AppendQueriesAsync(20);
        var covered = log.ReadAll()[^1];
        var checkpoint = new AuditCheckpoint
        {
            Replica = log.Replica,
            Sequence = covered.Sequence,
            Hash = covered.Hash,
            Time = DateTimeOffset.UtcNow,
            Algorithm = "ES256",
            KeyId = "0123456789abcdef",
            Signature = Convert.ToBase64String(new byte[64]),
        };
        await log.AppendCheckpointAsync(checkpoint);
        var last = await log.AppendQueriesAsync(5);

        var options = postgres.NewSinkOptions();
        await using var sink = new PostgresAuditSink(options);
        await using (var pump = StartPump(sink, log))
        {
            await pump.WaitForDeliveredAsync(last).WaitAsync(DeliveryTimeout);
            await SinkTable.WaitUntilAsync(() => pump.LastPublishedCheckpoint is not null, DeliveryTimeout, "the checkpoint to be published");
        }

        await using var reader = new PostgresAuditSinkReader(options);
        Assert.Equal(checkpoint, await reader.GetLatestCheckpointAsync(log.Replica));
        Assert.Equal(1, await SinkTable.CountCheckpointsAsync(options, log.Replica));

        // Publishing it again (the pump retries after a lost acknowledgement) keeps one row.
        await sink.PublishCheckpointAsync(checkpoint, CancellationToken.None);
        Assert.Equal(1, await SinkTable.CountCheckpointsAsync(options, log.Replica));

        // A later checkpoint becomes the latest; another replica's stays apart.
        var later = checkpoint with { Sequence = last, Hash = log.ReadAll()[(int)last - 1].Hash, Time = checkpoint.Time.AddMinutes(1) };
        await sink.PublishCheckpointAsync(later, CancellationToken.None);
        await sink.PublishCheckpointAsync(checkpoint with { Replica = "other" }, CancellationToken.None);
        Assert.Equal(later, await reader.GetLatestCheckpointAsync(log.Replica));
        Assert.Equal(checkpoint with { Replica = "other" }, await reader.GetLatestCheckpointAsync("other"));
        Assert.Null(await reader.GetLatestCheckpointAsync("nobody"));
    }

    private async Task RunOutageAsync(TimeSpan outage, TimeSpan appendInterval, TimeSpan maxRetryDelay)
    {
        await using var relay = TcpRelay.Start(postgres.Server.Port);
        await using var log = TestAuditLog.Open();
        var options = postgres.NewSinkOptions(relay.Port);
        await using var sink = new PostgresAuditSink(options);
        await using var pump = StartPump(sink, log, maxBatchRecords: 50, maxRetryDelay: maxRetryDelay);

        var beforeOutage = await log.AppendQueriesAsync(100);
        await pump.WaitForDeliveredAsync(beforeOutage).WaitAsync(DeliveryTimeout);
        Assert.True(pump.IsHealthy);

        relay.Cut();
        var sawUnhealthy = false;
        var outageEnds = DateTime.UtcNow + outage;
        var giveUp = outageEnds + DeliveryTimeout;
        var number = 0;
        while (DateTime.UtcNow < outageEnds || !sawUnhealthy)
        {
            Assert.True(DateTime.UtcNow < giveUp, "the pump never reported the sink down during the outage");
            await log.AppendQueryAsync(number++);
            sawUnhealthy |= !pump.IsHealthy;
            await Task.Delay(appendInterval);
        }

        var storedDuringOutage = (await SinkTable.ReadRowsAsync(postgres.Direct(options), log.Replica)).Count;
        Assert.True(storedDuringOutage < log.Log.LastSequence, "records logged during the outage cannot have reached the table yet");

        relay.Restore();
        var last = await log.AppendQueriesAsync(50);
        await pump.WaitForDeliveredAsync(last).WaitAsync(DeliveryTimeout);
        await SinkTable.WaitUntilAsync(() => pump.IsHealthy, DeliveryTimeout, "the pump to report the sink healthy again");

        var rows = await SinkTable.ReadRowsAsync(options, log.Replica);
        SinkTable.AssertCompleteChain(rows, last);
        Assert.Equal(0, await SinkTable.CountChainProblemsInSqlAsync(options, log.Replica));
    }

    private static AuditSinkPump StartPump(IAuditSink sink, TestAuditLog log, int maxBatchRecords = 1000, TimeSpan? maxRetryDelay = null)
    {
        var pump = new AuditSinkPump(sink, new AuditSinkPumpOptions
        {
            Directory = log.Directory,
            Replica = log.Replica,
            MaxBatchRecords = maxBatchRecords,
            PollInterval = TimeSpan.FromMilliseconds(50),
            MinRetryDelay = TimeSpan.FromMilliseconds(100),
            MaxRetryDelay = maxRetryDelay ?? TimeSpan.FromMilliseconds(500),
        });
        pump.Start();
        return pump;
    }
}
