using System.Collections.Concurrent;
using System.Text;
using Microsoft.Extensions.Configuration;
using NhiAudit.Audit;
using static NhiAudit.Tests.Audit.AuditLogFiles;

namespace NhiAudit.Tests.Audit;

public sealed class FileAuditLogTests : IDisposable
{
    private static readonly DateTimeOffset Now = new DateTimeOffset(2026, 11, 28, 8, 0, 0, TimeSpan.Zero).AddTicks(1234567);
    private static readonly string Zeros = new('0', 64);
    private static readonly TimeSpan Eventually = TimeSpan.FromSeconds(15);

    private readonly AuditTestDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task A_new_log_starts_at_seq_1_with_zero_prev_and_every_line_commits_to_the_one_before()
    {
        long first, second;
        await using (var log = Open(time: new FixedTimeProvider(Now)))
        {
            first = await log.AppendAsync(Body("""{"type":"test","n":1}"""));
            second = await log.AppendAsync(Body("{}"));
        }

        Assert.Equal([2L, 3L], [first, second]);
        Assert.Equal(["audit-000000000001.jsonl"], SegmentNames(_dir.Path));
        var lines = Lines(_dir.File("audit-000000000001.jsonl"));
        Assert.Equal(4, lines.Count);

        var opened = Text(lines[0]);
        Assert.StartsWith(
            $$"""{"seq":1,"prev":"{{Zeros}}","time":"2026-11-28T08:00:00.1234567Z","type":"log.opened","segment":"audit-000000000001.jsonl","durability":"WriteAhead","replica":{{System.Text.Json.JsonSerializer.Serialize(Environment.MachineName)}},"pid":{{Environment.ProcessId}},"host":""",
            opened,
            StringComparison.Ordinal);
        Assert.Equal(
            $$"""{"seq":2,"prev":"{{Sha256Hex(lines[0])}}","time":"2026-11-28T08:00:00.1234567Z","type":"test","n":1}""" + "\n",
            Text(lines[1]));
        Assert.Equal(
            $$"""{"seq":3,"prev":"{{Sha256Hex(lines[1])}}","time":"2026-11-28T08:00:00.1234567Z"}""" + "\n",
            Text(lines[2]));
        Assert.Equal(
            $$"""{"seq":4,"prev":"{{Sha256Hex(lines[2])}}","time":"2026-11-28T08:00:00.1234567Z","type":"log.closed"}""" + "\n",
            Text(lines[3]));

        var result = AuditVerifier.Verify(_dir.Path);
        Assert.True(result.IsIntact, result.Problem?.Message);
        Assert.Equal(4, result.LastSequence);
        Assert.Equal(Sha256Hex(lines[3]), result.LastHash);
    }

    [Fact]
    public async Task Each_instance_writes_a_new_segment_that_continues_the_chain()
    {
        await using (var log = Open())
        {
            for (var i = 0; i < 3; i++)
            {
                await log.AppendAsync(Body("""{"type":"first-run"}"""));
            }
        }

        await using (var log = Open())
        {
            Assert.Equal(6, log.LastSequence);
            Assert.Equal(7, await log.AppendAsync(Body("""{"type":"second-run"}""")));
        }

        Assert.Equal(["audit-000000000001.jsonl", "audit-000000000006.jsonl"], SegmentNames(_dir.Path));
        var firstSegment = Lines(_dir.File("audit-000000000001.jsonl"));
        var opened = Parse(Lines(_dir.File("audit-000000000006.jsonl"))[0]);
        Assert.Equal(6, opened.GetProperty("seq").GetInt64());
        Assert.Equal(Sha256Hex(firstSegment[^1]), opened.GetProperty("prev").GetString());
        Assert.Equal("log.opened", opened.GetProperty("type").GetString());
        Assert.Equal("audit-000000000006.jsonl", opened.GetProperty("segment").GetString());
        Assert.False(opened.TryGetProperty("previousClosed", out _), "the first run closed cleanly");
        Assert.False(opened.TryGetProperty("recoveredTornBytes", out _));

        var result = AuditVerifier.Verify(_dir.Path);
        Assert.True(result.IsIntact, result.Problem?.Message);
        Assert.Equal(8, result.RecordCount);
    }

    [Fact]
    public async Task After_a_crash_mid_write_the_torn_line_is_cut_off_and_recorded_in_log_opened()
    {
        await using (var log = Open())
        {
            await log.AppendAsync(Body("""{"type":"before-crash"}"""));
        }

        // What a crash while writing seq 3 leaves: no log.closed, and part of a line.
        var segment = _dir.File("audit-000000000001.jsonl");
        var lines = Lines(segment);
        var torn = lines[^1][..30];
        WriteLines(segment, [.. lines[..^1], torn]);
        Assert.Equal(AuditProblemKind.Torn, AuditVerifier.Verify(_dir.Path).Problem?.Kind);

        await using (var log = Open())
        {
            Assert.Equal(3, log.LastSequence);
        }

        Assert.Equal(lines[..^1].Sum(l => l.Length), new FileInfo(segment).Length);
        var opened = Parse(Lines(_dir.File("audit-000000000003.jsonl"))[0]);
        Assert.Equal(30, opened.GetProperty("recoveredTornBytes").GetInt64());
        Assert.Equal(Sha256Hex(torn), opened.GetProperty("tornSha256").GetString());
        Assert.False(opened.GetProperty("previousClosed").GetBoolean());
        Assert.Equal(Sha256Hex(lines[^2]), opened.GetProperty("prev").GetString());

        var result = AuditVerifier.Verify(_dir.Path);
        Assert.True(result.IsIntact, result.Problem?.Message);
    }

    [Fact]
    public async Task A_segment_left_with_only_a_torn_log_opened_is_replaced_by_the_next_instance()
    {
        await using (var log = Open())
        {
            await log.AppendAsync(Body("""{"type":"x"}"""));
        }

        // A crash while the next instance wrote its very first line.
        File.WriteAllText(_dir.File("audit-000000000004.jsonl"), """{"seq":4,"pr""");

        await using (var log = Open())
        {
            await log.AppendAsync(Body("""{"type":"y"}"""));
        }

        Assert.Equal(["audit-000000000001.jsonl", "audit-000000000004.jsonl"], SegmentNames(_dir.Path));
        var opened = Parse(Lines(_dir.File("audit-000000000004.jsonl"))[0]);
        Assert.Equal(4, opened.GetProperty("seq").GetInt64());
        Assert.Equal(12, opened.GetProperty("recoveredTornBytes").GetInt64());
        Assert.True(AuditVerifier.Verify(_dir.Path).IsIntact);
    }

    [Fact]
    public async Task Deferred_records_take_their_place_in_the_chain_at_once_and_reach_the_file_with_the_next_request()
    {
        await using var log = Open(flushInterval: TimeSpan.FromHours(1));
        var segment = _dir.File("audit-000000000001.jsonl");

        var response1 = await log.AppendAsync(Body("""{"type":"response","n":1}"""), AuditAppendMode.Deferred);
        var response2 = await log.AppendAsync(Body("""{"type":"response","n":2}"""), AuditAppendMode.Deferred);
        Assert.Equal([2L, 3L], [response1, response2]);
        Assert.Single(Lines(segment)); // nothing waited on the disk for them

        var request = await log.AppendAsync(Body("""{"type":"request","n":3}"""));
        Assert.Equal(4, request);

        var lines = Lines(segment).Select(Parse).ToList();
        Assert.Equal([1L, 2L, 3L, 4L], lines.Select(l => l.GetProperty("seq").GetInt64()));
        Assert.Equal(["log.opened", "response", "response", "request"], lines.Select(l => l.GetProperty("type").GetString()));
    }

    [Fact]
    public async Task Deferred_records_reach_the_file_within_the_flush_interval_without_a_request()
    {
        await using var log = Open(flushInterval: TimeSpan.FromMilliseconds(20));
        await log.AppendAsync(Body("""{"type":"session.end"}"""), AuditAppendMode.Deferred);

        await WaitUntil(() => Lines(_dir.File("audit-000000000001.jsonl")).Count == 2);
    }

    [Fact]
    public async Task Buffered_request_records_are_written_by_the_timer()
    {
        await using var log = Open(AuditDurability.Buffered, flushInterval: TimeSpan.FromMilliseconds(20));
        for (var i = 0; i < 5; i++)
        {
            await log.AppendAsync(Body("""{"type":"request"}"""));
        }

        await WaitUntil(() => Lines(_dir.File("audit-000000000001.jsonl")).Count == 6);
        Assert.True(AuditVerifier.Verify(_dir.Path).IsIntact);
    }

    [Fact]
    public async Task Buffered_requests_are_written_at_once_when_256_KB_are_pending()
    {
        await using var log = Open(AuditDurability.Buffered, flushInterval: TimeSpan.FromHours(1));
        var body = Body($$"""{"type":"request","sql":"{{new string('x', 1000)}}"}""");
        for (var i = 0; i < 300; i++)
        {
            await log.AppendAsync(body);
        }

        Assert.True(new FileInfo(_dir.File("audit-000000000001.jsonl")).Length >= FileAuditLog.BufferedWriteThreshold);
    }

    [Fact]
    public async Task Durable_append_returns_only_after_an_fsync_that_covers_its_record()
    {
        var disk = new FaultyFileWriter();
        var syncedWhenReturned = new ConcurrentBag<(long Seq, long SyncedEnd)>();
        await using (var log = Open(AuditDurability.Durable, writer: disk))
        {
            await Task.WhenAll(Enumerable.Range(0, 8).Select(session => Task.Run(async () =>
            {
                for (var i = 0; i < 50; i++)
                {
                    var seq = await log.AppendAsync(Body($$"""{"type":"request","session":{{session}}}"""));
                    syncedWhenReturned.Add((seq, disk.SyncedEnd));
                }
            })));
        }

        var ends = new Dictionary<long, long>();
        long offset = 0;
        foreach (var line in Lines(_dir.File("audit-000000000001.jsonl")))
        {
            offset += line.Length;
            ends[Parse(line).GetProperty("seq").GetInt64()] = offset;
        }

        Assert.Equal(400, syncedWhenReturned.Count);
        Assert.All(syncedWhenReturned, r => Assert.True(r.SyncedEnd >= ends[r.Seq], $"seq {r.Seq} returned before it was fsynced"));
        Assert.True(AuditVerifier.Verify(_dir.Path).IsIntact);
    }

    [Fact]
    public async Task Concurrent_appends_from_8_sessions_form_a_gapless_intact_chain_in_each_sessions_order()
    {
        const int sessions = 8, perSession = 2000;
        var seqs = new ConcurrentBag<long>();
        await using (var log = Open(flushInterval: TimeSpan.FromMilliseconds(5)))
        {
            await Task.WhenAll(Enumerable.Range(0, sessions).Select(session => Task.Run(async () =>
            {
                using var records = new AuditRecordWriter();
                for (var n = 0; n < perSession; n++)
                {
                    var w = records.Begin(n % 4 == 3 ? "response" : "request");
                    w.WriteNumber("session", session);
                    w.WriteNumber("n", n);
                    var mode = n % 4 == 3 ? AuditAppendMode.Deferred : AuditAppendMode.Request;
                    seqs.Add(await log.AppendAsync(records.End(), mode));
                }
            })));
        }

        Assert.Equal(Enumerable.Range(2, sessions * perSession).Select(i => (long)i), seqs.Order());
        var result = AuditVerifier.Verify(_dir.Path);
        Assert.True(result.IsIntact, result.Problem?.Message);
        Assert.Equal((sessions * perSession) + 2, result.RecordCount);

        var bySession = AllLines(_dir.Path).Select(Parse)
            .Where(r => r.TryGetProperty("session", out _))
            .GroupBy(r => r.GetProperty("session").GetInt32());
        Assert.All(bySession, g => Assert.Equal(Enumerable.Range(0, perSession), g.Select(r => r.GetProperty("n").GetInt32())));
    }

    [Fact]
    public async Task A_failed_write_refuses_the_request_gives_its_seq_back_and_the_log_recovers_without_a_gap()
    {
        var disk = new FaultyFileWriter();
        await using (var log = Open(writer: disk, flushInterval: TimeSpan.FromHours(1)))
        {
            Assert.Equal(2, await log.AppendAsync(Body("""{"type":"request","n":"ok-1"}""")));
            Assert.Equal(3, await log.AppendAsync(Body("""{"type":"response","n":"deferred"}"""), AuditAppendMode.Deferred));

            disk.FailingWrites = 2;
            disk.PartialBytes = 50; // the disk filled up in the middle of the batch
            for (var attempt = 0; attempt < 2; attempt++)
            {
                var refused = await Assert.ThrowsAsync<AuditLogUnavailableException>(
                    () => log.AppendAsync(Body("""{"type":"request","n":"refused"}""")).AsTask());
                Assert.Equal("audit log write failed: No space left on device", refused.Message);
                Assert.Equal(3, log.LastSequence);
            }

            Assert.Equal(4, await log.AppendAsync(Body("""{"type":"request","n":"ok-2"}""")));
        }

        var records = Lines(_dir.File("audit-000000000001.jsonl")).Select(Parse).ToList();
        Assert.Equal([1L, 2L, 3L, 4L, 5L], records.Select(r => r.GetProperty("seq").GetInt64()));
        Assert.DoesNotContain(records, r => r.TryGetProperty("n", out var n) && n.GetString() == "refused");
        Assert.Equal("deferred", records[2].GetProperty("n").GetString());
        var result = AuditVerifier.Verify(_dir.Path);
        Assert.True(result.IsIntact, result.Problem?.Message);
    }

    [Fact]
    public async Task While_the_disk_fails_buffered_requests_are_refused_instead_of_piling_up()
    {
        var disk = new FaultyFileWriter();
        await using var log = Open(AuditDurability.Buffered, writer: disk, flushInterval: TimeSpan.FromMilliseconds(20));
        disk.FailingWrites = int.MaxValue;
        await log.AppendAsync(Body("""{"type":"request","n":1}"""));

        // Once the timer has met the failing disk, requests are refused until the disk works again.
        await WaitUntilAsync(async () =>
        {
            try
            {
                await log.AppendAsync(Body("""{"type":"request","probe":true}"""));
                return false;
            }
            catch (AuditLogUnavailableException)
            {
                return true;
            }
        });

        disk.FailingWrites = 0;
        await log.AppendAsync(Body("""{"type":"request","n":2}"""));
        await log.FlushAsync();
        Assert.True(AuditVerifier.Verify(_dir.Path).IsIntact);
    }

    [Fact]
    public async Task A_failed_fsync_refuses_the_request_and_a_later_append_is_durable_again()
    {
        var disk = new FaultyFileWriter();
        await using (var log = Open(AuditDurability.Durable, writer: disk))
        {
            disk.FailingSyncs = 1;
            var refused = await Assert.ThrowsAsync<AuditLogUnavailableException>(
                () => log.AppendAsync(Body("""{"type":"request"}""")).AsTask());
            Assert.Contains("Input/output error", refused.Message, StringComparison.Ordinal);

            var seq = await log.AppendAsync(Body("""{"type":"request"}"""));
            Assert.Equal(new FileInfo(_dir.File("audit-000000000001.jsonl")).Length, disk.SyncedEnd);
            Assert.Equal(3, seq);
        }

        Assert.True(AuditVerifier.Verify(_dir.Path).IsIntact);
    }

    [Fact]
    public async Task FlushAsync_writes_every_pending_record()
    {
        await using var log = Open(AuditDurability.Buffered, flushInterval: TimeSpan.FromHours(1));
        await log.AppendAsync(Body("""{"type":"request"}"""));
        await log.AppendAsync(Body("""{"type":"response"}"""), AuditAppendMode.Deferred);

        await log.FlushAsync();

        Assert.Equal(3, Lines(_dir.File("audit-000000000001.jsonl")).Count);
    }

    [Fact]
    public async Task A_second_instance_cannot_write_to_a_directory_in_use()
    {
        await using var log = Open();
        var refused = Assert.Throws<AuditLogUnavailableException>(() => Open());
        Assert.Contains(_dir.Path, refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Appends_after_dispose_are_refused()
    {
        var log = Open();
        await log.DisposeAsync();

        await Assert.ThrowsAsync<AuditLogUnavailableException>(() => log.AppendAsync(Body("""{"type":"late"}""")).AsTask());
    }

    [Theory]
    [InlineData("")]
    [InlineData("[1]")]
    [InlineData("{\"type\":\n\"x\"}")]
    [InlineData("\"text\"")]
    public async Task A_body_that_is_not_a_single_line_JSON_object_is_rejected(string body)
    {
        await using var log = Open();
        await Assert.ThrowsAsync<ArgumentException>(() => log.AppendAsync(Encoding.UTF8.GetBytes(body)).AsTask());
    }

    [Fact]
    public async Task A_log_whose_last_line_is_not_a_record_is_not_continued()
    {
        File.WriteAllText(_dir.File("audit-000000000001.jsonl"), "this is not a record\n");

        var refused = await Assert.ThrowsAsync<AuditLogUnavailableException>(
            () => FileAuditLog.OpenAsync(new AuditOptions { Directory = _dir.Path }));
        Assert.Contains("audit-000000000001.jsonl", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Options_bind_from_the_NhiAudit_Audit_section_and_default_to_write_ahead_and_deny()
    {
        var defaults = new AuditOptions();
        Assert.Equal(("audit", AuditDurability.WriteAhead, TimeSpan.FromMilliseconds(20), AuditSinkFailurePolicy.Deny, (string?)null),
            (defaults.Directory, defaults.Durability, defaults.FlushInterval, defaults.OnSinkFailure, defaults.SigningKeyFile));

        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["NhiAudit:Audit:Directory"] = "/var/lib/nhiaudit",
            ["NhiAudit:Audit:Durability"] = "Durable",
            ["NhiAudit:Audit:FlushInterval"] = "00:00:00.050",
            ["NhiAudit:Audit:OnSinkFailure"] = "Allow",
            ["NhiAudit:Audit:SigningKeyFile"] = "audit-signing.pem",
        }).Build();
        var bound = configuration.GetSection(AuditOptions.SectionName).Get<AuditOptions>()!;

        Assert.Equal(("/var/lib/nhiaudit", AuditDurability.Durable, TimeSpan.FromMilliseconds(50), AuditSinkFailurePolicy.Allow, "audit-signing.pem"),
            (bound.Directory, bound.Durability, bound.FlushInterval, bound.OnSinkFailure, bound.SigningKeyFile));
    }

    private static async Task WaitUntil(Func<bool> condition) => await WaitUntilAsync(() => Task.FromResult(condition()));

    private static async Task WaitUntilAsync(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow + Eventually;
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not met in time");
            await Task.Delay(10);
        }
    }

    private FileAuditLog Open(
        AuditDurability durability = AuditDurability.WriteAhead,
        TimeSpan? flushInterval = null,
        TimeProvider? time = null,
        FaultyFileWriter? writer = null)
    {
        var options = new AuditOptions
        {
            Directory = _dir.Path,
            Durability = durability,
            FlushInterval = flushInterval ?? TimeSpan.FromMilliseconds(20),
        };
        return writer is null
            ? FileAuditLog.Open(options, time)
            : FileAuditLog.OpenCore(options, time, logger: null, writer);
    }
}
