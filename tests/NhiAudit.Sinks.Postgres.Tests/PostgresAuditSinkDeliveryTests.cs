using System.Text;
using NhiAudit.Audit;
using NhiAudit.Sinks.Postgres.Tests.Infrastructure;
using Npgsql;

namespace NhiAudit.Sinks.Postgres.Tests;

/// <summary><see cref="PostgresAuditSink.DeliverAsync"/> called directly with records read from a real log, against PostgreSQL 15.</summary>
[Collection(SinkPostgresCollectionDefinition.Name)]
public sealed class PostgresAuditSinkDeliveryTests(SinkPostgresFixture postgres)
{
    [Fact]
    public async Task GetDeliveredSequenceAsync_CreatesTheTables_AndIsZeroForAnUnknownReplica()
    {
        var options = postgres.NewSinkOptions();
        await using var sink = new PostgresAuditSink(options);
        Assert.Equal("postgres", sink.Name);
        Assert.Equal(0, await sink.GetDeliveredSequenceAsync("nobody", CancellationToken.None));
        Assert.Equal(0, await SinkTable.CountCheckpointsAsync(options, "nobody"));
    }

    [Fact]
    public async Task DeliverAsync_OverlappingBatch_StoresOnlyTheNewRecords()
    {
        var (replica, entries) = await ReadLogAsync(30);
        var options = postgres.NewSinkOptions();
        await using var sink = new PostgresAuditSink(options);

        await sink.DeliverAsync(replica, entries[..10], CancellationToken.None);
        // The acknowledgement of 1..10 was "lost": the pump resends from an older position, overlapping what is stored.
        await sink.DeliverAsync(replica, entries[5..20], CancellationToken.None);
        // A batch entirely stored already changes nothing.
        await sink.DeliverAsync(replica, entries[2..8], CancellationToken.None);

        var rows = await SinkTable.ReadRowsAsync(options, replica);
        SinkTable.AssertCompleteChain(rows, 20);
        Assert.Equal(20, await sink.GetDeliveredSequenceAsync(replica, CancellationToken.None));
    }

    [Fact]
    public async Task DeliverAsync_BatchThatWouldLeaveAGap_ThrowsAndStoresNothing()
    {
        var (replica, entries) = await ReadLogAsync(30);
        var options = postgres.NewSinkOptions();
        await using var sink = new PostgresAuditSink(options);
        await sink.DeliverAsync(replica, entries[..10], CancellationToken.None);

        var error = await Assert.ThrowsAsync<PostgresAuditSinkConflictException>(() => sink.DeliverAsync(replica, entries[12..20], CancellationToken.None).AsTask());
        Assert.Contains("gap", error.Message, StringComparison.Ordinal);

        // A chain that does not start at seq 1 on an empty table is a gap too.
        var empty = await Assert.ThrowsAsync<PostgresAuditSinkConflictException>(() => sink.DeliverAsync("fresh", entries[3..5], CancellationToken.None).AsTask());
        Assert.Contains("gap", empty.Message, StringComparison.Ordinal);

        Assert.Equal(10, (await SinkTable.ReadRowsAsync(options, replica)).Count);
    }

    [Fact]
    public async Task DeliverAsync_RecordsThatDoNotContinueTheStoredChain_Throw()
    {
        var (replica, entries) = await ReadLogAsync(10);
        var (_, otherChain) = await ReadLogAsync(10);
        var options = postgres.NewSinkOptions();
        await using var sink = new PostgresAuditSink(options);
        await sink.DeliverAsync(replica, entries[..5], CancellationToken.None);

        // Another log writing under the same replica name: its seq 6 does not follow this table's seq 5.
        var next = await Assert.ThrowsAsync<PostgresAuditSinkConflictException>(() => sink.DeliverAsync(replica, otherChain[5..], CancellationToken.None).AsTask());
        Assert.Contains("does not continue", next.Message, StringComparison.Ordinal);

        // Its overlapping records differ from the stored ones.
        var overlap = await Assert.ThrowsAsync<PostgresAuditSinkConflictException>(() => sink.DeliverAsync(replica, otherChain[2..8], CancellationToken.None).AsTask());
        Assert.Contains("different chain", overlap.Message, StringComparison.Ordinal);

        // A batch that is not one piece of a chain is refused before the database is asked.
        await Assert.ThrowsAsync<ArgumentException>(() => sink.DeliverAsync(replica, [entries[5], entries[7]], CancellationToken.None).AsTask());
        await Assert.ThrowsAsync<ArgumentException>(() => sink.DeliverAsync(replica, [], CancellationToken.None).AsTask());

        SinkTable.AssertCompleteChain(await SinkTable.ReadRowsAsync(options, replica), 5);
    }

    [Fact]
    public async Task DeliverAsync_TwoSinksRacingOnOneReplica_StoreEveryRecordOnce()
    {
        var (replica, entries) = await ReadLogAsync(200);
        var options = postgres.NewSinkOptions();
        await using var first = new PostgresAuditSink(options);
        await using var second = new PostgresAuditSink(options);
        await first.GetDeliveredSequenceAsync(replica, CancellationToken.None);

        // Both push the same batches at once; the advisory lock makes one wait and then skip what the other stored.
        async Task PushAllAsync(PostgresAuditSink sink)
        {
            for (var start = 0; start < entries.Count; start += 25)
            {
                await sink.DeliverAsync(replica, entries[start..Math.Min(start + 25, entries.Count)], CancellationToken.None);
            }
        }

        await Task.WhenAll(Task.Run(() => PushAllAsync(first)), Task.Run(() => PushAllAsync(second)));

        SinkTable.AssertCompleteChain(await SinkTable.ReadRowsAsync(options, replica), entries.Count);
    }

    [Fact]
    public async Task DeliverAsync_RecordThatJsonbRefuses_IsStoredVerbatimWithoutTheJsonbCopy()
    {
        await using var log = TestAuditLog.Open();
        await log.AppendQueryAsync(1);
        // jsonb refuses \u0000, which a SQL text with a NUL character produces; the record must still reach the table.
        await log.Log.AppendAsync(TestAuditLog.Body(json =>
        {
            json.WriteString("type", "pg.query");
            json.WriteString("sql", "select '\0'");
        }));
        var last = await log.AppendQueryAsync(2);
        var entries = log.ReadAll();

        var options = postgres.NewSinkOptions();
        await using var sink = new PostgresAuditSink(options);
        await sink.DeliverAsync(log.Replica, entries, CancellationToken.None);

        var rows = await SinkTable.ReadRowsAsync(options, log.Replica);
        SinkTable.AssertCompleteChain(rows, entries.Count);
        var nulRow = Assert.Single(rows, r => r.Line.Contains("\\u0000", StringComparison.Ordinal));
        Assert.False(nulRow.HasRecord);
        Assert.All(rows.Where(r => r != nulRow), r => Assert.True(r.HasRecord));
        Assert.Equal(last, rows[^1].Sequence);
    }

    [Fact]
    public async Task Reader_ReadsBackFilteredRecordsReplicasAndDetectsAnEditedLine()
    {
        var (replicaA, entriesA) = await ReadLogAsync(12, "a-replica");
        var (replicaB, entriesB) = await ReadLogAsync(7, "b-replica");
        var options = postgres.NewSinkOptions();
        await using var sink = new PostgresAuditSink(options);
        await sink.DeliverAsync(replicaB, entriesB, CancellationToken.None);
        await sink.DeliverAsync(replicaA, entriesA, CancellationToken.None);
        await using var reader = new PostgresAuditSinkReader(options);

        Assert.Equal(["a-replica", "b-replica"], await reader.ListReplicasAsync());

        var all = await ToListAsync(reader.ReadRecordsAsync(null));
        Assert.Equal(entriesA.Count + entriesB.Count, all.Count);
        Assert.Equal(
            entriesA.Select(e => ("a-replica", e.Sequence)).Concat(entriesB.Select(e => ("b-replica", e.Sequence))),
            all.Select(r => (r.Replica, r.Entry.Sequence)));

        var fromFive = await ToListAsync(reader.ReadAsync(replicaA, fromSequence: 5));
        Assert.Equal(entriesA.Skip(4).Select(e => e.Sequence), fromFive.Select(e => e.Sequence));
        for (var i = 0; i < fromFive.Count; i++)
        {
            var expected = entriesA[i + 4];
            var actual = fromFive[i];
            Assert.Equal(expected.Line.ToArray(), actual.Line.ToArray());
            Assert.Equal((expected.Prev, expected.Hash, expected.Type, expected.Segment), (actual.Prev, actual.Hash, actual.Type, actual.Segment));
            Assert.Equal(expected.Time.UtcTicks / 10, actual.Time.UtcTicks / 10); // timestamptz keeps microseconds
        }

        var timeFrom = entriesA[3].Time;
        var timeTo = entriesA[6].Time;
        var window = await ToListAsync(reader.ReadAsync(replicaA, since: TruncateToMicroseconds(timeFrom), until: TruncateToMicroseconds(timeTo)));
        Assert.All(window, e => Assert.InRange(e.Time, TruncateToMicroseconds(timeFrom), TruncateToMicroseconds(timeTo)));
        Assert.Contains(window, e => e.Sequence == 4);
        Assert.Contains(window, e => e.Sequence == 7);
        Assert.Empty(await ToListAsync(reader.ReadAsync(replicaA, since: DateTimeOffset.UtcNow.AddDays(1))));

        Assert.True((await reader.VerifyChainAsync(replicaA)).IsValid);

        // Someone with write access edits a stored record: verification from the table names it.
        await postgres.Server.ExecuteAsync(
            $"UPDATE \"{options.Schema}\".\"{options.Table}\" SET line = replace(line, 'select 1', 'select 2') WHERE replica = 'a-replica' AND seq = 6");
        var broken = await reader.VerifyChainAsync(replicaA);
        Assert.False(broken.IsValid);
        Assert.Equal(6, broken.FirstBadSequence);
        Assert.Equal(5, broken.LastSequence);
        Assert.Equal(1, await SinkTable.CountChainProblemsInSqlAsync(options, replicaA));

        // A deleted record is a gap.
        await postgres.Server.ExecuteAsync($"DELETE FROM \"{options.Schema}\".\"{options.Table}\" WHERE replica = 'b-replica' AND seq = 3");
        var gap = await reader.VerifyChainAsync(replicaB);
        Assert.Equal(4, gap.FirstBadSequence);
    }

    private static DateTimeOffset TruncateToMicroseconds(DateTimeOffset time) => new(time.UtcTicks / 10 * 10, TimeSpan.Zero);

    private static async Task<List<T>> ToListAsync<T>(IAsyncEnumerable<T> items)
    {
        var list = new List<T>();
        await foreach (var item in items)
        {
            list.Add(item);
        }

        return list;
    }

    /// <summary>Writes <paramref name="queries"/> records to a fresh log and reads every record back as the pump would.</summary>
    private static async Task<(string Replica, List<AuditLogEntry> Entries)> ReadLogAsync(int queries, string? replica = null)
    {
        await using var log = TestAuditLog.Open(replica);
        await log.AppendQueriesAsync(queries);
        return (log.Replica, log.ReadAll());
    }
}
