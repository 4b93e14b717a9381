using System.Text;
using Azure;
using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Specialized;
using NhiAudit.Audit;

namespace NhiAudit.Sinks.AzureBlob.Tests;

[Collection("Azurite")]
public sealed class AzureBlobAuditSinkTests(AzuriteFixture azurite)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(120);

    [Fact]
    public async Task A_log_of_two_segments_is_delivered_as_a_verifiable_byte_equal_replica()
    {
        await using var log = TestLog.Open();
        await log.AppendQueriesAsync(250);
        await log.CloseAsync();
        log.Reopen(); // a second segment continuing the chain
        await log.AppendQueriesAsync(150);
        await log.CloseAsync();
        var local = AuditVerifier.Verify(log.Directory);
        Assert.True(local.IsIntact, local.Problem?.Message);
        Assert.Equal(2, log.SegmentFiles().Length);

        var container = azurite.Server.Container(NewContainerName());

        // Small blocks so each segment takes several appends; the pump's single batch spans both segments.
        var sink = new AzureBlobAuditSink(container) { MaxBlockBytes = 8 * 1024 };
        await using (var pump = log.StartPump(sink, "replica-a"))
        {
            await pump.WaitForDeliveredAsync(local.LastSequence!.Value).WaitAsync(Patience);
        }

        Assert.Equal(local.LastSequence, await new AzureBlobAuditSink(container).GetDeliveredSequenceAsync("replica-a", default));
        await log.AssertBlobsEqualSegmentsAsync(container, "replica-a");

        var reader = new AzureBlobAuditSinkReader(container);
        Assert.Equal(["replica-a"], await reader.ListReplicasAsync());
        var downloaded = TestLog.NewTempDirectory("download");
        try
        {
            var files = await reader.DownloadReplicaAsync("replica-a", downloaded);
            Assert.Equal(log.SegmentFiles().Select(Path.GetFileName), files.Select(Path.GetFileName));
            var remote = AuditVerifier.Verify(downloaded);
            Assert.True(remote.IsIntact, remote.Problem?.Message);
            Assert.Equal(local.RecordCount, remote.RecordCount);
            Assert.Equal(local.LastSequence, remote.LastSequence);
            Assert.Equal(local.LastHash, remote.LastHash);
        }
        finally
        {
            Directory.Delete(downloaded, recursive: true);
        }
    }

    [Fact]
    public async Task An_empty_replica_has_delivered_nothing()
    {
        var sink = new AzureBlobAuditSink(azurite.Server.Container(NewContainerName()));

        Assert.Equal(0, await sink.GetDeliveredSequenceAsync("nobody", default));
        Assert.Null(await new AzureBlobAuditSinkReader(sink.Container).GetLatestCheckpointAsync("nobody"));
    }

    [Fact]
    public async Task Redelivering_an_overlapping_batch_stores_every_line_once_and_leaves_earlier_content_untouched()
    {
        await using var log = TestLog.Open();
        await log.AppendQueriesAsync(120);
        await log.CloseAsync();
        var entries = log.ReadAll();
        var container = azurite.Server.Container(NewContainerName());
        var sink = new AzureBlobAuditSink(container);
        var blob = container.GetBlobClient("r/" + entries[0].Segment);

        await sink.DeliverAsync("r", entries[..60], default);
        var before = (await blob.DownloadContentAsync()).Value.Content.ToArray();

        await sink.DeliverAsync("r", entries[30..90], default); // overlaps; the sink's in-memory picture is current
        await new AzureBlobAuditSink(container).DeliverAsync("r", entries[50..], default); // a fresh sink reads the tail from the service
        await new AzureBlobAuditSink(container).DeliverAsync("r", entries, default); // everything again: nothing to append

        var after = (await blob.DownloadContentAsync()).Value.Content.ToArray();
        Assert.True(after.AsSpan().StartsWith(before), "the content delivered first was changed");
        await log.AssertBlobsEqualSegmentsAsync(container, "r");
        Assert.Equal(entries[^1].Sequence, await sink.GetDeliveredSequenceAsync("r", default));
    }

    [Fact]
    public async Task A_stale_append_position_is_refused_with_412_and_the_pump_recovers_from_the_truth()
    {
        await using var log = TestLog.Open();
        await log.AppendQueriesAsync(200);
        await log.CloseAsync();
        var entries = log.ReadAll();
        var container = azurite.Server.Container(NewContainerName());
        var stale = new AzureBlobAuditSink(container);
        await stale.DeliverAsync("r", entries[..100], default);

        // Another writer (here: a second sink) appends, as a retried request whose first attempt landed would have.
        await new AzureBlobAuditSink(container).DeliverAsync("r", entries[..150], default);

        var conflict = await Assert.ThrowsAsync<AzureBlobAppendConflictException>(() => stale.DeliverAsync("r", entries[100..], default).AsTask());
        Assert.Equal(412, Assert.IsType<RequestFailedException>(conflict.InnerException).Status);
        var held = (await container.GetBlobClient("r/" + entries[0].Segment).DownloadContentAsync()).Value.Content.ToArray();
        Assert.Equal(ConcatLines(entries[..150]), held);

        await using (var pump = log.StartPump(stale, "r"))
        {
            await pump.WaitForDeliveredAsync(entries[^1].Sequence).WaitAsync(Patience);
        }

        await log.AssertBlobsEqualSegmentsAsync(container, "r");
    }

    [Fact]
    public async Task A_checkpoint_record_is_published_to_checkpoints_jsonl_once()
    {
        await using var log = TestLog.Open();
        await log.AppendQueriesAsync(50);
        var covered = log.ReadAll()[^1];
        var checkpoint = new AuditCheckpoint
        {
            Replica = "r",
            Sequence = covered.Sequence,
            Hash = covered.Hash,
            Time = DateTimeOffset.UtcNow,
            Algorithm = "ES256",
            KeyId = "0123456789abcdef",
            Signature = Convert.ToBase64String(new byte[64]), // the pump forwards checkpoints; it does not check signatures
        };
        await log.AppendAsync(TestLog.CheckpointBody(checkpoint));
        await log.AppendQueriesAsync(10);
        await log.CloseAsync();
        var last = log.ReadAll()[^1].Sequence;
        var container = azurite.Server.Container(NewContainerName());
        var sink = new AzureBlobAuditSink(container);

        await using (var pump = log.StartPump(sink, "r", maxBatchRecords: 7))
        {
            await pump.WaitForDeliveredAsync(last).WaitAsync(Patience);
            await TestLog.WaitUntilAsync(() => pump.LastPublishedCheckpoint is not null, "the checkpoint to be published");
        }

        // Published again, as after an answer that was lost: by the same sink and by a fresh one.
        await sink.PublishCheckpointAsync(checkpoint, default);
        await new AzureBlobAuditSink(container).PublishCheckpointAsync(checkpoint, default);

        var text = (await container.GetBlobClient("r/checkpoints.jsonl").DownloadContentAsync()).Value.Content.ToString();
        Assert.Equal(checkpoint.ToJson() + "\n", text);
        Assert.Equal(checkpoint, await new AzureBlobAuditSinkReader(container).GetLatestCheckpointAsync("r"));
        Assert.Equal(["r"], await new AzureBlobAuditSinkReader(container).ListReplicasAsync());
    }

    [Fact]
    public async Task The_sink_only_creates_missing_blobs_and_appends_at_an_expected_position()
    {
        await using var log = TestLog.Open();
        await log.AppendQueriesAsync(40);
        await log.CloseAsync();
        log.Reopen();
        await log.AppendQueriesAsync(40);
        await log.CloseAsync();
        var entries = log.ReadAll();
        var requests = new RecordingPolicy();
        var container = azurite.Server.Container(NewContainerName(), requests);
        var checkpoint = new AuditCheckpoint
        {
            Replica = "r",
            Sequence = entries[10].Sequence,
            Hash = entries[10].Hash,
            Time = DateTimeOffset.UtcNow,
            Algorithm = "ES256",
            KeyId = "0123456789abcdef",
            Signature = "c2ln",
        };

        var sink = new AzureBlobAuditSink(container) { MaxBlockBytes = 2 * 1024 };
        await sink.DeliverAsync("r", entries[..30], default);
        await sink.PublishCheckpointAsync(checkpoint, default);
        await new AzureBlobAuditSink(container).DeliverAsync("r", entries, default);
        await new AzureBlobAuditSink(container).DeliverAsync("r", entries[20..], default);
        await new AzureBlobAuditSink(container).PublishCheckpointAsync(checkpoint, default);
        await log.AssertBlobsEqualSegmentsAsync(container, "r");

        Assert.NotEmpty(requests.Requests);
        foreach (var request in requests.Requests)
        {
            var allowed = request.Method == "GET" || request.Method == "HEAD"
                || (request.Method == "PUT" && request.Query.Contains("restype=container", StringComparison.Ordinal) && !request.Query.Contains("comp=", StringComparison.Ordinal))
                || (request.Method == "PUT" && request.Query.Contains("comp=appendblock", StringComparison.Ordinal) && request.AppendPosition is not null)
                || (request.Method == "PUT" && request.Query.Length == 0 && request.IfNoneMatch == "*" && request.BlobType == "AppendBlob");
            Assert.True(allowed, $"the sink sent a request that could change existing data: {request}");
        }

        Assert.Contains(requests.Requests, r => r.Query.Contains("comp=appendblock", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_full_append_blob_continues_in_a_blob_named_after_its_next_record_and_the_replica_still_verifies()
    {
        await using var log = TestLog.Open();
        await log.AppendQueriesAsync(80);
        await log.CloseAsync();
        var entries = log.ReadAll();
        var local = AuditVerifier.Verify(log.Directory);
        var container = azurite.Server.Container(NewContainerName());

        // Azurite does not enforce the service's 50,000-block limit, so the sink is given a tiny one.
        var sink = new AzureBlobAuditSink(container) { MaxBlockBytes = 1024, MaxBlocksPerBlob = 3 };
        await using (var pump = log.StartPump(sink, "r", maxBatchRecords: 25))
        {
            await pump.WaitForDeliveredAsync(entries[^1].Sequence).WaitAsync(Patience);
        }

        var blobs = new List<(string Name, int Blocks)>();
        await foreach (var item in container.GetBlobsAsync(new Azure.Storage.Blobs.Models.GetBlobsOptions { Prefix = "r/" }))
        {
            var properties = (await container.GetAppendBlobClient(item.Name).GetPropertiesAsync()).Value;
            blobs.Add((item.Name, properties.BlobCommittedBlockCount));
        }

        Assert.True(blobs.Count > 1, "the segment should have continued in further blobs");
        Assert.All(blobs, blob => Assert.InRange(blob.Blocks, 1, 3));
        Assert.Equal("r/" + entries[0].Segment, blobs[0].Name);

        // A fresh sink finds the end in the newest continuation, and redelivery appends nothing.
        var fresh = new AzureBlobAuditSink(container) { MaxBlockBytes = 1024, MaxBlocksPerBlob = 3 };
        Assert.Equal(entries[^1].Sequence, await fresh.GetDeliveredSequenceAsync("r", default));
        await fresh.DeliverAsync("r", entries[40..], default);

        var joined = new List<byte>();
        foreach (var (name, _) in blobs)
        {
            joined.AddRange((await container.GetBlobClient(name).DownloadContentAsync()).Value.Content.ToArray());
        }

        Assert.Equal(await File.ReadAllBytesAsync(log.SegmentFiles().Single()), joined.ToArray());
        var downloaded = TestLog.NewTempDirectory("download");
        try
        {
            Assert.Equal(blobs.Count, (await new AzureBlobAuditSinkReader(container).DownloadReplicaAsync("r", downloaded)).Count);
            var remote = AuditVerifier.Verify(downloaded);
            Assert.True(remote.IsIntact, remote.Problem?.Message);
            Assert.Equal(local.RecordCount, remote.RecordCount);
            Assert.Equal(local.LastHash, remote.LastHash);
        }
        finally
        {
            Directory.Delete(downloaded, recursive: true);
        }
    }

    private static string NewContainerName() => "t-" + Guid.NewGuid().ToString("N")[..24];

    private static byte[] ConcatLines(IEnumerable<AuditLogEntry> entries)
    {
        var bytes = new List<byte>();
        foreach (var entry in entries)
        {
            bytes.AddRange(entry.Line.ToArray());
            bytes.Add((byte)'\n');
        }

        return bytes.ToArray();
    }

    /// <summary>Records what the SDK sends, as it goes on the wire (after SDK retries are expanded).</summary>
    private sealed class RecordingPolicy : HttpPipelineSynchronousPolicy
    {
        private readonly List<SentRequest> _requests = [];

        public IReadOnlyList<SentRequest> Requests
        {
            get
            {
                lock (_requests)
                {
                    return [.. _requests];
                }
            }
        }

        public override void OnSendingRequest(HttpMessage message)
        {
            var request = message.Request;
            request.Headers.TryGetValue("If-None-Match", out var ifNoneMatch);
            request.Headers.TryGetValue("x-ms-blob-condition-appendpos", out var appendPosition);
            request.Headers.TryGetValue("x-ms-blob-type", out var blobType);
            var uri = request.Uri.ToUri();
            lock (_requests)
            {
                _requests.Add(new SentRequest(request.Method.Method, uri.AbsolutePath, uri.Query.TrimStart('?'), ifNoneMatch, appendPosition, blobType));
            }
        }
    }

    private sealed record SentRequest(string Method, string Path, string Query, string? IfNoneMatch, string? AppendPosition, string? BlobType);
}
