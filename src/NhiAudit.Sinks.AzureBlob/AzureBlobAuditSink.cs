using System.Collections.Concurrent;
using System.Text;
using Azure;
using Azure.Core;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Blobs.Specialized;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using NhiAudit.Audit;
using NhiAudit.Audit.Sinks;

namespace NhiAudit.Sinks.AzureBlob;

/// <summary>
/// Stores the primary log in Azure Blob Storage as one append blob per segment, <c>{replica}/audit-….jsonl</c>, holding
/// exactly the segment's lines, so a downloaded replica is a log directory that <c>nhiaudit verify</c> checks; and
/// published checkpoints in <c>{replica}/checkpoints.jsonl</c>.
/// </summary>
/// <remarks>
/// <para>
/// The sink only ever creates blobs that do not exist (<c>If-None-Match: *</c>) and appends to them, so it works under
/// a time-based immutability policy with <c>allowProtectedAppendWrites</c>. Every append carries the length the sink
/// expects the blob to have (<c>If-Append-Position</c>): a retry of an append that did land is refused with 412
/// instead of storing the lines twice, and the pump then asks <see cref="GetDeliveredSequenceAsync"/> again.
/// </para>
/// <para>
/// Where the sink stands is read from the service (the last line of the newest segment blob) on the first call and
/// after any failure; in between it is kept in memory so a delivery costs one request per append block.
/// </para>
/// </remarks>
public sealed class AzureBlobAuditSink : IAuditSink
{
    /// <summary>The sink's <see cref="Name"/>.</summary>
    public const string SinkName = "azureblob";

    /// <summary>
    /// The largest append block the sink sends. The service takes up to <see cref="AppendBlobClient.AppendBlobMaxAppendBlockBytes"/>
    /// (100 MiB on current API versions, 4 MiB on older ones and on emulators); 4 MiB keeps a failed request cheap to resend.
    /// </summary>
    public const int DefaultMaxBlockBytes = 4 * 1024 * 1024;

    private readonly BlobContainerClient _container;
    private readonly bool _createContainer;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, ReplicaTail> _tails = new(StringComparer.Ordinal);
    private volatile bool _containerReady;

    /// <summary>Creates the sink from options (a connection string, or a service URI with <paramref name="credential"/>).</summary>
    /// <param name="options">The account and container.</param>
    /// <param name="credential">The host's Azure credential, used with <see cref="AzureBlobSinkOptions.ServiceUri"/>; <c>DefaultAzureCredential</c> when null.</param>
    /// <param name="logger">Receives container creation and conflict messages.</param>
    /// <exception cref="Microsoft.Extensions.Options.OptionsValidationException">The options are invalid.</exception>
    public AzureBlobAuditSink(AzureBlobSinkOptions options, TokenCredential? credential = null, ILogger<AzureBlobAuditSink>? logger = null)
        : this(AzureBlobClients.CreateContainerClient(options, credential), options.CreateContainer, logger)
    {
    }

    /// <summary>Creates the sink over a container client the caller built (its own pipeline, retries or credential).</summary>
    /// <param name="container">The container.</param>
    /// <param name="createContainer">Whether to create the container when it does not exist.</param>
    /// <param name="logger">Receives container creation and conflict messages.</param>
    public AzureBlobAuditSink(BlobContainerClient container, bool createContainer = true, ILogger<AzureBlobAuditSink>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(container);
        _container = container;
        _createContainer = createContainer;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
    }

    /// <inheritdoc />
    public string Name => SinkName;

    /// <summary>The container the sink writes to.</summary>
    public BlobContainerClient Container => _container;

    /// <summary>The service's limit of committed blocks per append blob.</summary>
    public const int DefaultMaxBlocksPerBlob = 50_000;

    /// <summary>The largest append block sent; lowered by tests to get several blocks from a small batch.</summary>
    internal int MaxBlockBytes { get; set; } = DefaultMaxBlockBytes;

    /// <summary>
    /// Blocks per blob before the sink continues in a new blob; lowered by tests, since the emulator does not enforce
    /// the service's limit.
    /// </summary>
    internal int MaxBlocksPerBlob { get; set; } = DefaultMaxBlocksPerBlob;

    /// <inheritdoc />
    /// <remarks>Reads the last line of the newest non-empty segment blob of <paramref name="replica"/> (a range request of its tail).</remarks>
    public async ValueTask<long> GetDeliveredSequenceAsync(string replica, CancellationToken cancellationToken)
    {
        AzureBlobLayout.ValidateReplica(replica);
        _tails.TryRemove(replica, out _);
        var tail = await Guard(ReadTailAsync(replica, cancellationToken), AzureBlobLayout.ReplicaPrefix(replica)).ConfigureAwait(false);
        _tails[replica] = tail;
        return tail.LastSequence;
    }

    /// <inheritdoc />
    /// <remarks>
    /// Records the sink already holds are skipped (after checking that the last of them has the hash the sink holds), so
    /// an overlapping batch stores nothing twice. A batch that spans two segments goes to two blobs.
    /// </remarks>
    /// <exception cref="AzureBlobAppendConflictException">A blob was longer than expected: an earlier attempt landed.</exception>
    /// <exception cref="AzureBlobImmutabilityException">An immutability policy without protected append writes refused the append.</exception>
    public async ValueTask DeliverAsync(string replica, IReadOnlyList<AuditLogEntry> records, CancellationToken cancellationToken)
    {
        AzureBlobLayout.ValidateReplica(replica);
        ArgumentNullException.ThrowIfNull(records);
        if (records.Count == 0)
        {
            return;
        }

        try
        {
            var tail = _tails.TryGetValue(replica, out var known)
                ? known
                : await Guard(ReadTailAsync(replica, cancellationToken), AzureBlobLayout.ReplicaPrefix(replica)).ConfigureAwait(false);
            var next = SkipDelivered(records, tail);
            while (next < records.Count)
            {
                var segment = records[next].Segment;
                var end = next + 1;
                while (end < records.Count && records[end].Segment == segment)
                {
                    end++;
                }

                tail = await AppendSegmentAsync(replica, tail, records, next, end, cancellationToken).ConfigureAwait(false);
                _tails[replica] = tail;
                next = end;
            }
        }
        catch
        {
            // Whatever failed, the truth is on the service now: read it again before the next append.
            _tails.TryRemove(replica, out _);
            throw;
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// Appends <see cref="AuditCheckpoint.ToJson"/> and a newline to <c>{replica}/checkpoints.jsonl</c>, unless the
    /// blob's last checkpoint already covers this <c>seq</c> (a republish after a lost answer).
    /// </remarks>
    public async ValueTask PublishCheckpointAsync(AuditCheckpoint checkpoint, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        AzureBlobLayout.ValidateReplica(checkpoint.Replica);
        var blob = _container.GetAppendBlobClient(AzureBlobLayout.CheckpointsBlob(checkpoint.Replica));
        await Guard(PublishCoreAsync(blob, checkpoint, cancellationToken), blob.Name).ConfigureAwait(false);
    }

    /// <summary>Whether <paramref name="exception"/> is the service refusing a write because of an immutability policy or legal hold.</summary>
    internal static bool IsImmutabilityRefusal(RequestFailedException exception) =>
        exception.ErrorCode == BlobErrorCode.BlobImmutableDueToPolicy
        || (exception.ErrorCode?.Contains("Immutab", StringComparison.OrdinalIgnoreCase) ?? false)
        || (exception.ErrorCode?.Contains("LegalHold", StringComparison.OrdinalIgnoreCase) ?? false)
        || (exception.Status is 409 or 403 && (exception.Message.Contains("immutab", StringComparison.OrdinalIgnoreCase)
            || exception.Message.Contains("legal hold", StringComparison.OrdinalIgnoreCase)));

    /// <summary>The exception a refused write becomes: an explanation for immutability, the original otherwise.</summary>
    internal static Exception Translate(RequestFailedException exception, string blobName) =>
        IsImmutabilityRefusal(exception)
            ? new AzureBlobImmutabilityException(
                $"the service refused to write {blobName} because of an immutability policy or legal hold ({exception.Status} {exception.ErrorCode}). "
                + "A time-based retention policy allows appends to append blobs only with allowProtectedAppendWrites (or allowProtectedAppendWritesAll) enabled; "
                + "enable it on the container's policy (az storage container immutability-policy create/extend --allow-protected-append-writes true) "
                + "or remove the legal hold. The records stay in the local log and are sent once the policy allows it.",
                exception)
            : exception;

    private async Task<T> Guard<T>(Task<T> operation, string blobName)
    {
        try
        {
            return await operation.ConfigureAwait(false);
        }
        catch (RequestFailedException ex)
        {
            throw Rethrowable(ex, blobName);
        }
    }

    private async Task Guard(Task operation, string blobName)
    {
        try
        {
            await operation.ConfigureAwait(false);
        }
        catch (RequestFailedException ex)
        {
            throw Rethrowable(ex, blobName);
        }
    }

    private Exception Rethrowable(RequestFailedException exception, string blobName)
    {
        if (exception.ErrorCode == BlobErrorCode.ContainerNotFound)
        {
            // Deleted behind our back (or never created): create it again on the next call when allowed.
            _containerReady = false;
        }

        var translated = Translate(exception, blobName);
        return translated == exception ? new IOException($"Azure Blob sink: {blobName}: {exception.Message}", exception) : translated;
    }

    private async Task EnsureContainerAsync(CancellationToken cancellationToken)
    {
        if (_containerReady || !_createContainer)
        {
            return;
        }

        var created = await _container.CreateIfNotExistsAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        if (created is not null)
        {
            _logger.LogInformation("Azure Blob audit sink created container {Container}", _container.Name);
        }

        _containerReady = true;
    }

    private async Task<ReplicaTail> ReadTailAsync(string replica, CancellationToken cancellationToken)
    {
        await EnsureContainerAsync(cancellationToken).ConfigureAwait(false);
        var segments = await AzureBlobLayout.ListSegmentsAsync(_container, replica, cancellationToken).ConfigureAwait(false);

        // Newest first; a newest blob can be empty when its creation landed but its first append did not.
        for (var i = segments.Count - 1; i >= 0; i--)
        {
            var segment = segments[i];
            if (segment.Length == 0)
            {
                continue;
            }

            var blob = _container.GetAppendBlobClient(segment.BlobName);
            var properties = (await blob.GetPropertiesAsync(cancellationToken: cancellationToken).ConfigureAwait(false)).Value;
            var line = await AzureBlobLayout.ReadLastLineAsync(blob, properties.ContentLength, cancellationToken).ConfigureAwait(false);
            if (line is null)
            {
                continue;
            }

            var sequence = AzureBlobLayout.ReadSequence(line, segment.BlobName);
            return new ReplicaTail(segment.BlobName, segment.FirstSequence, properties.ContentLength, properties.BlobCommittedBlockCount, sequence, AzureBlobLayout.HashLine(line));
        }

        return ReplicaTail.Empty;
    }

    /// <summary>The index of the first record the sink does not hold yet, after checking that the batch continues the sink's chain.</summary>
    private static int SkipDelivered(IReadOnlyList<AuditLogEntry> records, ReplicaTail tail)
    {
        var next = 0;
        while (next < records.Count && records[next].Sequence <= tail.LastSequence)
        {
            next++;
        }

        if (next > 0 && records[next - 1].Sequence == tail.LastSequence && tail.LastHash is not null
            && !string.Equals(records[next - 1].Hash, tail.LastHash, StringComparison.Ordinal))
        {
            throw new InvalidOperationException(
                $"the sink holds seq={tail.LastSequence} with hash {tail.LastHash}, but the log's record seq={tail.LastSequence} has hash {records[next - 1].Hash}: the log and the sink have diverged");
        }

        if (next == records.Count)
        {
            return next;
        }

        var first = records[next];
        if (first.Sequence != tail.LastSequence + 1)
        {
            throw new InvalidOperationException(
                $"the sink holds up to seq={tail.LastSequence} but was sent seq={first.Sequence} next; the records in between are missing");
        }

        if (tail.LastHash is not null && !string.Equals(first.Prev, tail.LastHash, StringComparison.Ordinal))
        {
            throw new InvalidOperationException(
                $"seq={first.Sequence} has prev {first.Prev}, but the sink's seq={tail.LastSequence} has hash {tail.LastHash}: it does not continue the chain the sink holds");
        }

        return next;
    }

    private async Task<ReplicaTail> AppendSegmentAsync(
        string replica,
        ReplicaTail tail,
        IReadOnlyList<AuditLogEntry> records,
        int start,
        int end,
        CancellationToken cancellationToken)
    {
        var segment = records[start].Segment;
        if (!AzureBlobLayout.TryParseSegmentName(segment, out var segmentFirst))
        {
            throw new ArgumentException($"record seq={records[start].Sequence} names '{segment}', which is not a segment file name", nameof(records));
        }

        AppendTarget target;
        if (tail.BlobName is not null && segmentFirst <= tail.FirstSequence)
        {
            // The sink's newest blob is this segment's, or a continuation of it started when a blob was full.
            target = new AppendTarget(_container.GetAppendBlobClient(tail.BlobName), tail.FirstSequence, tail.Length, tail.BlockCount);
        }
        else
        {
            target = await StartBlobAsync(replica, segmentFirst, cancellationToken).ConfigureAwait(false);
        }

        var maxBlock = Math.Min(MaxBlockBytes, target.Blob.AppendBlobMaxAppendBlockBytes);
        using var block = new MemoryStream(Math.Min(maxBlock, 256 * 1024));
        var blockFirstSequence = 0L;
        var lastSequence = tail.LastSequence;
        var lastHash = tail.LastHash;
        var expectedSequence = tail.LastSequence + 1;
        for (var i = start; i < end; i++)
        {
            var record = records[i];
            if (record.Sequence != expectedSequence)
            {
                throw new ArgumentException($"the batch is not consecutive: seq={record.Sequence} where seq={expectedSequence} was expected", nameof(records));
            }

            expectedSequence++;
            var lineBytes = record.Line.Length + 1;
            if (lineBytes > maxBlock)
            {
                // Split across two blocks, a failure between them would leave a torn line that can never be removed.
                throw new InvalidOperationException(
                    $"record seq={record.Sequence} is {lineBytes} bytes, more than the largest append block ({maxBlock} bytes); it cannot be appended atomically");
            }

            if (block.Length + lineBytes > maxBlock)
            {
                target = await AppendOrContinueAsync(replica, target, block, blockFirstSequence, cancellationToken).ConfigureAwait(false);
                block.SetLength(0);
            }

            if (block.Length == 0)
            {
                blockFirstSequence = record.Sequence;
            }

            block.Write(record.Line.Span);
            block.WriteByte((byte)'\n');
            lastSequence = record.Sequence;
            lastHash = record.Hash;
        }

        if (block.Length > 0)
        {
            target = await AppendOrContinueAsync(replica, target, block, blockFirstSequence, cancellationToken).ConfigureAwait(false);
        }

        return new ReplicaTail(target.Blob.Name, target.FirstSequence, target.Position, target.Blocks, lastSequence, lastHash);
    }

    /// <summary>
    /// Appends <paramref name="block"/>; when the blob has reached the service's block limit, continues in a new blob
    /// named after the block's first record. That name is a segment file name too, so a downloaded replica still
    /// verifies: the chain simply goes on in the next file.
    /// </summary>
    private async Task<AppendTarget> AppendOrContinueAsync(string replica, AppendTarget target, MemoryStream block, long blockFirstSequence, CancellationToken cancellationToken)
    {
        if (target.Blocks >= MaxBlocksPerBlob)
        {
            target = await StartBlobAsync(replica, blockFirstSequence, cancellationToken).ConfigureAwait(false);
        }

        try
        {
            return await AppendBlockAsync(target, block, cancellationToken).ConfigureAwait(false);
        }
        catch (RequestFailedException ex) when (ex.ErrorCode == BlobErrorCode.BlockCountExceedsLimit)
        {
            // The service's limit is lower than ours (or the count we had was stale): nothing landed, continue elsewhere.
            _logger.LogInformation("Azure Blob audit sink: {Blob} is full ({Reason}); continuing in a new blob at seq {Sequence}", target.Blob.Name, ex.ErrorCode, blockFirstSequence);
            target = await StartBlobAsync(replica, blockFirstSequence, cancellationToken).ConfigureAwait(false);
            return await AppendBlockAsync(target, block, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<AppendTarget> StartBlobAsync(string replica, long firstSequence, CancellationToken cancellationToken)
    {
        var blob = _container.GetAppendBlobClient(AzureBlobLayout.SegmentBlobName(replica, AzureBlobLayout.SegmentFileName(firstSequence)));
        await Guard(OpenSegmentBlobAsync(blob, cancellationToken), blob.Name).ConfigureAwait(false);
        return new AppendTarget(blob, firstSequence, 0, 0);
    }

    /// <summary>Creates the blob if it does not exist; refuses one that exists with content the sink did not know of.</summary>
    private async Task OpenSegmentBlobAsync(AppendBlobClient blob, CancellationToken cancellationToken)
    {
        await EnsureContainerAsync(cancellationToken).ConfigureAwait(false);

        // If-None-Match: * — never replaces a blob that exists, whatever it holds.
        var created = await blob.CreateIfNotExistsAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        if (created is not null)
        {
            return;
        }

        var properties = await blob.GetPropertiesAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        if (properties.Value.ContentLength > 0)
        {
            // The sink's picture said this blob had not started; it has, so an earlier attempt landed here.
            throw new AzureBlobAppendConflictException(blob.Name, 0, innerException: null);
        }
    }

    private async Task<AppendTarget> AppendBlockAsync(AppendTarget target, MemoryStream block, CancellationToken cancellationToken)
    {
        block.Position = 0;
        try
        {
            var appended = await target.Blob.AppendBlockAsync(
                block,
                new AppendBlobAppendBlockOptions { Conditions = new AppendBlobRequestConditions { IfAppendPositionEqual = target.Position } },
                cancellationToken).ConfigureAwait(false);
            return target with { Position = target.Position + block.Length, Blocks = Math.Max(appended.Value.BlobCommittedBlockCount, target.Blocks + 1) };
        }
        catch (RequestFailedException ex) when (ex.Status == 412 || ex.ErrorCode == BlobErrorCode.AppendPositionConditionNotMet)
        {
            _logger.LogWarning("Azure Blob audit sink: {Blob} is not {Position} bytes long any more; re-reading where the sink stands", target.Blob.Name, target.Position);
            throw new AzureBlobAppendConflictException(target.Blob.Name, target.Position, ex);
        }
        catch (RequestFailedException ex) when (ex.ErrorCode != BlobErrorCode.BlockCountExceedsLimit)
        {
            throw Rethrowable(ex, target.Blob.Name);
        }
    }

    private async Task PublishCoreAsync(AppendBlobClient blob, AuditCheckpoint checkpoint, CancellationToken cancellationToken)
    {
        await EnsureContainerAsync(cancellationToken).ConfigureAwait(false);
        var created = await blob.CreateIfNotExistsAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        long length = 0;
        if (created is null)
        {
            length = (await blob.GetPropertiesAsync(cancellationToken: cancellationToken).ConfigureAwait(false)).Value.ContentLength;
            var last = await AzureBlobLayout.ReadLastLineAsync(blob, length, cancellationToken).ConfigureAwait(false);
            if (last is not null && AzureBlobLayout.ReadSequence(last, blob.Name) >= checkpoint.Sequence)
            {
                return; // already published (an earlier attempt whose answer was lost), or a newer one is
            }
        }

        using var line = new MemoryStream(Encoding.UTF8.GetBytes(checkpoint.ToJson() + "\n"));
        try
        {
            await blob.AppendBlockAsync(
                line,
                new AppendBlobAppendBlockOptions { Conditions = new AppendBlobRequestConditions { IfAppendPositionEqual = length } },
                cancellationToken).ConfigureAwait(false);
        }
        catch (RequestFailedException ex) when (ex.Status == 412 || ex.ErrorCode == BlobErrorCode.AppendPositionConditionNotMet)
        {
            throw new AzureBlobAppendConflictException(blob.Name, length, ex);
        }
    }

    /// <summary>What the sink holds of one replica: its newest non-empty blob (name, first seq, length, blocks) and that blob's last record.</summary>
    private sealed record ReplicaTail(string? BlobName, long FirstSequence, long Length, int BlockCount, long LastSequence, string? LastHash)
    {
        public static readonly ReplicaTail Empty = new(null, 0, 0, 0, 0, null);
    }

    /// <summary>The blob being appended to, where its end is and how many blocks it has.</summary>
    private sealed record AppendTarget(AppendBlobClient Blob, long FirstSequence, long Position, int Blocks);
}
