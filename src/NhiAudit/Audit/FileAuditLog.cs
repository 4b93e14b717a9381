using System.Buffers;
using System.Buffers.Text;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Win32.SafeHandles;

namespace NhiAudit.Audit;

/// <summary>
/// The primary audit log: hash-chained JSON Lines in segment files <c>audit-&lt;first seq&gt;.jsonl</c>.
/// </summary>
/// <remarks>
/// <para>
/// Every line is <c>{"seq":N,"prev":"&lt;sha256 of the previous line incl. newline&gt;","time":"…Z",&lt;caller fields&gt;}</c>.
/// The first record of a new log has <c>seq</c> 1 and a <c>prev</c> of 64 zeros. Each instance writes a new
/// segment that continues the chain of the previous one and starts with a <c>log.opened</c> record
/// (<c>segment</c>, <c>durability</c>, <c>pid</c>, <c>host</c>; after a crash also <c>recoveredTornBytes</c>,
/// <c>tornSha256</c> and <c>previousClosed:false</c>); <see cref="DisposeAsync"/> ends it with <c>log.closed</c>.
/// </para>
/// <para>
/// Appends are serialized by a lock and written with positional writes (pwrite) on the caller's thread; at
/// <see cref="AuditDurability.Durable"/> concurrent appenders share one fsync (group commit). If a write fails the
/// failed request record gives its seq back and <see cref="AppendAsync"/> throws
/// <see cref="AuditLogUnavailableException"/>; the next append writes at the same offset again, so the chain has
/// no gap once the disk recovers. A failed fsync (<see cref="AuditDurability.Durable"/>) fails the appends waiting on
/// it, but their records stay in the file and the chain: they were already written, and the next fsync covers them.
/// </para>
/// <para>
/// Only one instance may use a directory at a time (a <c>.lock</c> file in it enforces this), and an instance must
/// be disposed: that writes what is pending and closes the segment.
/// </para>
/// </remarks>
public sealed class FileAuditLog : IAuditLog
{
    /// <summary>Pending bytes beyond which even <see cref="AuditDurability.Buffered"/> writes on the appender's thread.</summary>
    internal const int BufferedWriteThreshold = 256 * 1024;

    private const string LockFileName = ".lock";

    // {"seq":<20>,"prev":"<64>","time":"<28>",  …  }\n — with room to spare.
    private const int MaxLineOverhead = 160;
    private const int InitialBufferSize = 64 * 1024;
    private const int MaxRetainedBufferSize = 1024 * 1024;

    private static ReadOnlySpan<byte> SeqPrefix => "{\"seq\":"u8;
    private static ReadOnlySpan<byte> PrevPrefix => ",\"prev\":\""u8;
    private static ReadOnlySpan<byte> TimePrefix => "\",\"time\":\""u8;
    private static ReadOnlySpan<byte> ClosedBody => "{\"type\":\"log.closed\"}"u8;

    private readonly Lock _lock = new();
    private readonly IAuditFileWriter _writer;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly SafeFileHandle _directoryLock;
    private readonly string _directory;
    private readonly string _replica;
    private readonly AuditCheckpointSigner? _signer;
    private readonly bool _ownsSigner;
    private readonly TimeSpan _checkpointInterval;
    private readonly long _maxSegmentBytes;
    private readonly TimeSpan _maxSegmentAge;
    private readonly TimeSpan? _retention;
    private SafeFileHandle _handle;
    private readonly byte[] _lastHash;
    private ITimer? _timer;

    // Lines that have their seq and prev but are not written yet, followed by the line being appended.
    private byte[] _buffer = new byte[InitialBufferSize];
    private int _pendingLength;
    private long _fileOffset;
    private long _lastSequence;
    private long _writtenSequence;
    private bool _writeFailing;
    private bool _truncateBeforeWrite;
    private bool _closing;
    private int _timerRunning;

    // Checkpoints, rotation and retention run on the flush timer, never on an appender's thread.
    private long _checkpointedSequence;
    private DateTimeOffset _lastCheckpointTime;
    private AuditCheckpoint? _checkpointToPublish;
    private DateTimeOffset _segmentOpenedAt;
    private DateTimeOffset _lastRetentionCheck;

    // Group commit: one leader fsyncs for everyone who wrote before it started.
    private long _syncedSequence;
    private bool _syncing;
    private TaskCompletionSource? _nextSyncRound;
    private Exception? _syncFailure;
    private long _syncFailedUpToSequence;

    private FileAuditLog(
        AuditOptions options,
        string segmentPath,
        SafeFileHandle handle,
        SafeFileHandle directoryLock,
        AuditChainTail tail,
        TimeProvider time,
        ILogger logger,
        IAuditFileWriter writer,
        AuditCheckpointSigner? signer,
        bool ownsSigner)
    {
        Durability = options.Durability;
        _directory = Path.GetDirectoryName(segmentPath)!;
        _replica = options.GetReplicaName();
        _signer = signer;
        _ownsSigner = ownsSigner;
        _checkpointInterval = options.CheckpointInterval;
        _maxSegmentBytes = options.MaxSegmentBytes;
        _maxSegmentAge = options.MaxSegmentAge;
        _retention = options.Retention;
        _segmentOpenedAt = time.GetUtcNow();
        _lastCheckpointTime = _segmentOpenedAt;
        _lastRetentionCheck = DateTimeOffset.MinValue;
        _checkpointedSequence = tail.LastSequence;
        FlushInterval = options.FlushInterval;
        SegmentPath = segmentPath;
        _handle = handle;
        _directoryLock = directoryLock;
        _time = time;
        _logger = logger;
        _writer = writer;
        _lastSequence = tail.LastSequence;
        _writtenSequence = tail.LastSequence;
        _syncedSequence = tail.LastSequence;
        _lastHash = (byte[])tail.LastHash.Clone();
    }

    /// <summary>The durability this log gives request records.</summary>
    public AuditDurability Durability { get; }

    /// <summary>How often records that nothing waits on are written.</summary>
    public TimeSpan FlushInterval { get; }

    /// <summary>The full path of the segment file this instance writes now (it changes when the segment rotates).</summary>
    public string SegmentPath { get; private set; }

    /// <summary>The replica name written into <c>log.opened</c> and every checkpoint.</summary>
    public string Replica => _replica;

    /// <summary>
    /// When set, retention keeps every segment that holds a record above the returned seq: secondary sinks set it to
    /// the lowest seq they have all received (<see cref="Sinks.AuditSinkPumps"/> does), so a sink that is down never
    /// loses records to retention.
    /// </summary>
    public Func<long>? RetentionFloor { get; set; }

    /// <summary>False while writes fail (full disk, I/O error): request records cannot be written and requests are refused.</summary>
    public bool CanWrite => !Volatile.Read(ref _writeFailing);

    /// <summary>The newest checkpoint this instance wrote, if it signs checkpoints.</summary>
    public AuditCheckpoint? LastCheckpoint { get; private set; }

    /// <summary>The name of the file next to the segments that holds the newest checkpoint as JSON.</summary>
    public const string CheckpointFileName = "checkpoint.json";

    /// <summary>The seq of the last record appended by this instance or, before the first append, by its predecessors; it may not be written yet.</summary>
    public long LastSequence => Volatile.Read(ref _lastSequence);

    /// <summary>
    /// Opens the log in <see cref="AuditOptions.Directory"/>: recovers a torn final line left by a crash, starts a
    /// new segment that continues the chain and writes its <c>log.opened</c> record.
    /// </summary>
    /// <remarks>All work is synchronous file I/O of a few blocks; use <see cref="Open"/> where an async call does not fit (e.g. a DI factory).</remarks>
    /// <param name="options">The log's settings.</param>
    /// <param name="timeProvider">The clock for record times and the flush timer; <see cref="TimeProvider.System"/> by default.</param>
    /// <param name="logger">Receives recovery and write-failure messages.</param>
    /// <param name="cancellationToken">Cancels before the log is opened.</param>
    /// <exception cref="AuditLogUnavailableException">The directory is unusable, in use by another instance, or its chain cannot be continued.</exception>
    public static Task<FileAuditLog> OpenAsync(
        AuditOptions options,
        TimeProvider? timeProvider = null,
        ILogger<FileAuditLog>? logger = null,
        CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled<FileAuditLog>(cancellationToken);
        }

        try
        {
            return Task.FromResult(Open(options, timeProvider, logger));
        }
        catch (Exception ex) when (ex is not ArgumentException)
        {
            return Task.FromException<FileAuditLog>(ex);
        }
    }

    /// <summary>The synchronous form of <see cref="OpenAsync"/>.</summary>
    /// <param name="options">The log's settings.</param>
    /// <param name="timeProvider">The clock for record times and the flush timer; <see cref="TimeProvider.System"/> by default.</param>
    /// <param name="logger">Receives recovery and write-failure messages.</param>
    /// <exception cref="AuditLogUnavailableException">The directory is unusable, in use by another instance, or its chain cannot be continued.</exception>
    /// <param name="signer">
    /// Signs checkpoints; when <see langword="null"/>, the key in <see cref="AuditOptions.SigningKeyFile"/> is used if set,
    /// and otherwise no checkpoints are written. A signer passed in stays the caller's to dispose.
    /// </param>
    public static FileAuditLog Open(AuditOptions options, TimeProvider? timeProvider = null, ILogger<FileAuditLog>? logger = null, AuditCheckpointSigner? signer = null) =>
        OpenCore(options, timeProvider, logger, RandomAccessAuditFileWriter.Instance, signer);

    /// <summary>Opens the log with a substitute for the disk, so tests can make writes fail.</summary>
    internal static FileAuditLog OpenCore(AuditOptions options, TimeProvider? timeProvider, ILogger? logger, IAuditFileWriter writer, AuditCheckpointSigner? signer = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrWhiteSpace(options.Directory, nameof(options));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(options.FlushInterval, TimeSpan.Zero, nameof(options));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(options.CheckpointInterval, TimeSpan.Zero, nameof(options));
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxSegmentBytes, 4096, nameof(options));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(options.MaxSegmentAge, TimeSpan.Zero, nameof(options));
        var ownsSigner = false;
        if (signer is null && !string.IsNullOrWhiteSpace(options.SigningKeyFile))
        {
            try
            {
                signer = AuditCheckpointSigner.FromFile(options.SigningKeyFile);
                ownsSigner = true;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException)
            {
                throw new AuditLogUnavailableException($"the checkpoint signing key {options.SigningKeyFile} cannot be used: {ex.Message}", ex);
            }
        }

        var time = timeProvider ?? TimeProvider.System;
        var log = logger ?? NullLogger<FileAuditLog>.Instance;
        var directory = Path.GetFullPath(options.Directory);

        SafeFileHandle directoryLock;
        try
        {
            Directory.CreateDirectory(directory);
            directoryLock = File.OpenHandle(Path.Combine(directory, LockFileName), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new AuditLogUnavailableException(
                $"audit log directory {directory} cannot be used ({ex.Message}); another gateway may be writing to it", ex);
        }

        string? segmentPath = null;
        SafeFileHandle? handle = null;
        try
        {
            var tail = AuditChainTail.Recover(directory, writer, log);
            segmentPath = Path.Combine(directory, AuditSegments.GetFileName(tail.LastSequence + 1));
            handle = File.OpenHandle(segmentPath, FileMode.CreateNew, FileAccess.Write, FileShare.Read);
            var auditLog = new FileAuditLog(options, segmentPath, handle, directoryLock, tail, time, log, writer, signer, ownsSigner);
            auditLog.WriteOpenedRecord(tail);
            auditLog._timer = time.CreateTimer(static state => ((FileAuditLog)state!).OnTimer(), auditLog, options.FlushInterval, options.FlushInterval);
            log.LogInformation(
                "Audit log opened segment {Segment} at seq {Sequence} ({Durability})",
                segmentPath,
                auditLog.LastSequence,
                options.Durability);
            return auditLog;
        }
        catch (Exception ex)
        {
            handle?.Dispose();
            if (segmentPath is not null && handle is not null)
            {
                TryDelete(segmentPath);
            }

            directoryLock.Dispose();
            if (ownsSigner)
            {
                signer?.Dispose();
            }

            if (ex is IOException and not AuditLogUnavailableException || ex is UnauthorizedAccessException)
            {
                throw new AuditLogUnavailableException($"audit log in {directory} cannot be opened: {ex.Message}", ex);
            }

            throw;
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// Only the framing of <paramref name="recordBody"/> is checked (one line, <c>{</c> … <c>}</c>); build bodies with
    /// <see cref="AuditRecordWriter"/>. A request record is written (and at <see cref="AuditDurability.Durable"/>
    /// fsync'd) on the calling thread; cancelling while waiting for a shared fsync leaves the record in the chain.
    /// </remarks>
    /// <exception cref="ArgumentException"><paramref name="recordBody"/> is not a single-line JSON object.</exception>
    public ValueTask<long> AppendAsync(ReadOnlyMemory<byte> recordBody, AuditAppendMode mode = AuditAppendMode.Request, CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<long>(cancellationToken);
        }

        var body = recordBody.Span;
        ValidateBody(body);
        long sequence;
        lock (_lock)
        {
            if (_closing)
            {
                return ValueTask.FromException<long>(Closed());
            }

            var lineStart = _pendingLength;
            Span<byte> hashBefore = stackalloc byte[SHA256.HashSizeInBytes];
            _lastHash.CopyTo(hashBefore);
            sequence = AppendLineLocked(body);

            var isRequest = mode == AuditAppendMode.Request;
            var writeNow = _pendingLength >= BufferedWriteThreshold
                || (isRequest && (Durability != AuditDurability.Buffered || _writeFailing));
            if (writeNow)
            {
                try
                {
                    WritePendingLocked();
                }
                catch (Exception ex)
                {
                    if (isRequest)
                    {
                        // The request will be refused, so its record never happened: give the seq back.
                        _pendingLength = lineStart;
                        Volatile.Write(ref _lastSequence, sequence - 1);
                        hashBefore.CopyTo(_lastHash);
                        return ValueTask.FromException<long>(WriteFailed(ex));
                    }

                    // A deferred record is already part of the chain; it stays pending and the timer retries.
                }
            }

            if (!isRequest || Durability != AuditDurability.Durable)
            {
                return new ValueTask<long>(sequence);
            }
        }

        var sync = SyncToAsync(sequence, cancellationToken);
        return sync.IsCompletedSuccessfully ? new ValueTask<long>(sequence) : AwaitSyncAsync(sync, sequence);
    }

    /// <inheritdoc />
    public ValueTask CommitAsync(CancellationToken cancellationToken = default) =>
        Durability == AuditDurability.Buffered ? ValueTask.CompletedTask : FlushAsync(cancellationToken);

    /// <inheritdoc />
    public ValueTask FlushAsync(CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled(cancellationToken);
        }

        long target;
        lock (_lock)
        {
            if (_closing)
            {
                return ValueTask.FromException(Closed());
            }

            try
            {
                WritePendingLocked();
            }
            catch (Exception ex)
            {
                return ValueTask.FromException(WriteFailed(ex));
            }

            target = _writtenSequence;
        }

        return Durability == AuditDurability.Durable ? SyncToAsync(target, cancellationToken) : ValueTask.CompletedTask;
    }

    /// <summary>
    /// Writes pending records and a final <c>log.closed</c> record, fsyncs the segment and closes it. A failure here is
    /// logged, not thrown: the next instance still continues the chain from whatever reached the disk.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        lock (_lock)
        {
            if (_closing)
            {
                return;
            }

            _closing = true;
        }

        if (_timer is not null)
        {
            // Waits for a running tick so it cannot write after the handle is closed.
            await _timer.DisposeAsync().ConfigureAwait(false);
        }

        long target;
        lock (_lock)
        {
            try
            {
                AppendCheckpointLocked();
                AppendLineLocked(ClosedBody);
                WritePendingLocked();
            }
            catch (Exception ex)
            {
                _logger.LogError(ex, "Audit segment {Segment} could not be closed cleanly; records after seq {Sequence} are lost", SegmentPath, _writtenSequence);
            }

            target = _writtenSequence;
        }

        try
        {
            await SyncToAsync(target, CancellationToken.None).ConfigureAwait(false);
        }
        catch (AuditLogUnavailableException ex)
        {
            _logger.LogError(ex, "Audit segment {Segment} could not be synced to disk on close", SegmentPath);
        }

        PublishCheckpoint();
        _handle.Dispose();
        _directoryLock.Dispose();
        if (_ownsSigner)
        {
            _signer?.Dispose();
        }
    }

    private static void ValidateBody(ReadOnlySpan<byte> recordBody)
    {
        // Cheap framing checks only: the caller builds bodies with a JSON writer; a newline would split the record.
        if (recordBody.Length < 2 || recordBody[0] != (byte)'{' || recordBody[^1] != (byte)'}' || recordBody.Contains((byte)'\n'))
        {
            throw new ArgumentException("an audit record body must be a single-line JSON object", nameof(recordBody));
        }
    }

    private static AuditLogUnavailableException Closed() => new("the audit log is closed");

    private static AuditLogUnavailableException WriteFailed(Exception ex) => new("audit log write failed: " + ex.Message, ex);

    private static async ValueTask<long> AwaitSyncAsync(ValueTask sync, long sequence)
    {
        await sync.ConfigureAwait(false);
        return sequence;
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private void WriteOpenedRecord(AuditChainTail tail)
    {
        var body = new ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(body))
        {
            json.WriteStartObject();
            json.WriteString("type", "log.opened");
            json.WriteString("segment", Path.GetFileName(SegmentPath));
            json.WriteString("durability", Durability.ToString());
            json.WriteString("replica", _replica);
            if (_signer is not null)
            {
                json.WriteString("checkpointKeyId", _signer.KeyId);
                json.WriteString("checkpointAlg", _signer.Algorithm);
            }

            json.WriteNumber("pid", Environment.ProcessId);
            json.WriteString("host", Environment.MachineName);
            if (tail.LastSegment is not null && !tail.LastSegmentClosed)
            {
                json.WriteBoolean("previousClosed", false);
            }

            if (tail.TornSha256 is not null)
            {
                json.WriteNumber("recoveredTornBytes", tail.RecoveredTornBytes);
                json.WriteString("tornSha256", tail.TornSha256);
            }

            json.WriteEndObject();
        }

        long sequence;
        lock (_lock)
        {
            sequence = AppendLineLocked(body.WrittenSpan);
            WritePendingLocked();
        }

        if (Durability == AuditDurability.Durable)
        {
            SyncToAsync(sequence, CancellationToken.None).AsTask().GetAwaiter().GetResult();
        }
    }

    /// <summary>Formats one line after the pending ones and chains it; the caller holds the lock.</summary>
    private long AppendLineLocked(ReadOnlySpan<byte> body)
    {
        var fields = body[1..^1];
        var hasFields = fields.IndexOfAnyExcept(" \t\r"u8) >= 0;
        EnsureCapacityLocked(MaxLineOverhead + fields.Length);

        var sequence = _lastSequence + 1;
        var line = _buffer.AsSpan(_pendingLength);
        SeqPrefix.CopyTo(line);
        var at = SeqPrefix.Length;
        Utf8Formatter.TryFormat(sequence, line[at..], out var written);
        at += written;
        PrevPrefix.CopyTo(line[at..]);
        at += PrevPrefix.Length;
        AuditHex.Write(_lastHash, line[at..]);
        at += SHA256.HashSizeInBytes * 2;
        TimePrefix.CopyTo(line[at..]);
        at += TimePrefix.Length;
        _time.GetUtcNow().UtcDateTime.TryFormat(line[at..], out written, "O", CultureInfo.InvariantCulture);
        at += written;
        line[at++] = (byte)'"';
        if (hasFields)
        {
            line[at++] = (byte)',';
            fields.CopyTo(line[at..]);
            at += fields.Length;
        }

        line[at++] = (byte)'}';
        line[at++] = (byte)'\n';

        SHA256.HashData(line[..at], _lastHash);
        _pendingLength += at;
        Volatile.Write(ref _lastSequence, sequence);
        return sequence;
    }

    private void EnsureCapacityLocked(int lineCapacity)
    {
        var needed = (long)_pendingLength + lineCapacity;
        if (needed <= _buffer.Length)
        {
            return;
        }

        if (needed > Array.MaxLength)
        {
            throw new InvalidOperationException("the pending audit records do not fit in one buffer");
        }

        var grown = new byte[(int)Math.Min(Array.MaxLength, Math.Max(needed, (long)_buffer.Length * 2))];
        _buffer.AsSpan(0, _pendingLength).CopyTo(grown);
        _buffer = grown;
    }

    /// <summary>Writes every pending line with one pwrite; on failure nothing counts as written. The caller holds the lock.</summary>
    private void WritePendingLocked()
    {
        if (_pendingLength == 0)
        {
            return;
        }

        try
        {
            if (_truncateBeforeWrite)
            {
                _writer.SetLength(_handle, _fileOffset);
                _truncateBeforeWrite = false;
            }

            _writer.Write(_handle, _buffer.AsSpan(0, _pendingLength), _fileOffset);
        }
        catch (Exception ex)
        {
            // Part of the batch may have landed. The retry may carry different lines (the failed request gives its seq
            // back), so cut any stale bytes now, or before the next write if even that fails.
            _truncateBeforeWrite = true;
            try
            {
                _writer.SetLength(_handle, _fileOffset);
                _truncateBeforeWrite = false;
            }
            catch (Exception)
            {
            }

            if (!_writeFailing)
            {
                _writeFailing = true;
                _logger.LogError(ex, "Audit log write to {Segment} failed; requests are refused until it succeeds", SegmentPath);
            }

            throw;
        }

        _fileOffset += _pendingLength;
        _pendingLength = 0;
        _writtenSequence = _lastSequence;
        if (_writeFailing)
        {
            _writeFailing = false;
            _logger.LogWarning("Audit log writes to {Segment} succeed again at seq {Sequence}", SegmentPath, _writtenSequence);
        }

        if (_buffer.Length > MaxRetainedBufferSize)
        {
            // One huge record must not pin a huge buffer for the life of the gateway.
            _buffer = new byte[InitialBufferSize];
        }
    }

    /// <summary>Completes once a fsync that started after <paramref name="sequence"/> was written has succeeded.</summary>
    private ValueTask SyncToAsync(long sequence, CancellationToken cancellationToken)
    {
        while (true)
        {
            TaskCompletionSource? round = null;
            long target = 0;
            lock (_lock)
            {
                Debug.Assert(sequence <= _writtenSequence, "only written records can be synced");
                if (_syncedSequence >= sequence)
                {
                    return ValueTask.CompletedTask;
                }

                if (_syncFailure is not null && _syncFailedUpToSequence >= sequence)
                {
                    return ValueTask.FromException(new AuditLogUnavailableException("audit log sync failed: " + _syncFailure.Message, _syncFailure));
                }

                if (_syncing)
                {
                    round = _nextSyncRound ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                }
                else
                {
                    _syncing = true;
                    target = _writtenSequence;
                }
            }

            if (round is not null)
            {
                return WaitForSyncRoundAsync(round.Task, sequence, cancellationToken);
            }

            RunSyncRound(target);
        }
    }

    private async ValueTask WaitForSyncRoundAsync(Task round, long sequence, CancellationToken cancellationToken)
    {
        await round.WaitAsync(cancellationToken).ConfigureAwait(false);
        await SyncToAsync(sequence, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>One fsync covering every record up to <paramref name="target"/>; wakes whoever queued meanwhile.</summary>
    private void RunSyncRound(long target)
    {
        Exception? failure = null;
        try
        {
            _writer.FlushToDisk(_handle);
        }
        catch (Exception ex)
        {
            failure = ex;
        }

        TaskCompletionSource? waiting;
        lock (_lock)
        {
            if (failure is null)
            {
                _syncedSequence = Math.Max(_syncedSequence, target);
                if (_syncedSequence >= _syncFailedUpToSequence)
                {
                    _syncFailure = null;
                }
            }
            else
            {
                // The records stay in the file and in the chain; their appenders are told they are not durable,
                // and the next fsync (by a later append, the timer or close) covers them again.
                _syncFailure = failure;
                _syncFailedUpToSequence = Math.Max(_syncFailedUpToSequence, target);
            }

            _syncing = false;
            waiting = _nextSyncRound;
            _nextSyncRound = null;
        }

        if (failure is not null)
        {
            _logger.LogError(failure, "Audit log fsync of {Segment} failed; records up to seq {Sequence} are not durable", SegmentPath, target);
        }

        waiting?.SetResult();
    }

    private void OnTimer()
    {
        // A slow disk can make ticks overlap; one is enough.
        if (Interlocked.Exchange(ref _timerRunning, 1) != 0)
        {
            return;
        }

        try
        {
            long target;
            var now = _time.GetUtcNow();
            lock (_lock)
            {
                if (_closing)
                {
                    return;
                }

                if (_signer is not null && now - _lastCheckpointTime >= _checkpointInterval)
                {
                    AppendCheckpointLocked();
                }

                if (_pendingLength > 0)
                {
                    try
                    {
                        WritePendingLocked();
                    }
                    catch (Exception)
                    {
                        return; // logged by WritePendingLocked; the next tick retries
                    }
                }

                if (!_syncing && (_fileOffset >= _maxSegmentBytes || now - _segmentOpenedAt >= _maxSegmentAge) && _fileOffset > 0)
                {
                    RotateLocked(now);
                }

                if (Durability != AuditDurability.Durable || _syncing || _syncedSequence >= _writtenSequence)
                {
                    target = -1;
                }
                else
                {
                    _syncing = true;
                    target = _writtenSequence;
                }
            }

            if (target >= 0)
            {
                RunSyncRound(target);
            }

            PublishCheckpoint();
            if (_retention is { } retention && now - _lastRetentionCheck >= TimeSpan.FromMinutes(1))
            {
                _lastRetentionCheck = now;
                ApplyRetention(now - retention);
            }
        }
        finally
        {
            Volatile.Write(ref _timerRunning, 0);
        }
    }

    /// <summary>
    /// Appends a signed <c>log.checkpoint</c> record covering the last record, unless nothing but checkpoints came
    /// since the previous one. The caller holds the lock; the checkpoint is published once written (and synced).
    /// </summary>
    private void AppendCheckpointLocked()
    {
        _lastCheckpointTime = _time.GetUtcNow();
        if (_signer is null || _lastSequence <= _checkpointedSequence)
        {
            return;
        }

        var checkpoint = _signer.Sign(_replica, _lastSequence, Convert.ToHexStringLower(_lastHash), _lastCheckpointTime);
        var body = new ArrayBufferWriter<byte>(512);
        using (var json = new Utf8JsonWriter(body))
        {
            json.WriteStartObject();
            json.WriteString("type", "log.checkpoint");
            json.WritePropertyName("checkpoint");
            checkpoint.WriteTo(json);
            json.WriteEndObject();
        }

        _checkpointedSequence = AppendLineLocked(body.WrittenSpan);
        _checkpointToPublish = checkpoint;
    }

    /// <summary>
    /// Writes the newest checkpoint to <see cref="CheckpointFileName"/> once the record that carries it is on disk
    /// (synced at <see cref="AuditDurability.Durable"/>), so a published checkpoint never claims more than a crash
    /// leaves behind.
    /// </summary>
    private void PublishCheckpoint()
    {
        AuditCheckpoint? checkpoint;
        lock (_lock)
        {
            checkpoint = _checkpointToPublish;
            if (checkpoint is null || _writtenSequence <= checkpoint.Sequence
                || (Durability == AuditDurability.Durable && _syncedSequence <= checkpoint.Sequence))
            {
                return;
            }

            _checkpointToPublish = null;
        }

        LastCheckpoint = checkpoint;
        var path = Path.Combine(_directory, CheckpointFileName);
        var temporary = path + ".tmp";
        try
        {
            File.WriteAllText(temporary, checkpoint.ToJson() + "\n");
            File.Move(temporary, path, overwrite: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            _logger.LogWarning(ex, "Checkpoint at seq {Sequence} is in the log but could not be written to {Path}", checkpoint.Sequence, path);
        }
    }

    /// <summary>
    /// Closes the current segment (checkpoint, <c>log.rotated</c>, fsync) and continues the chain in a new one that
    /// starts with <c>log.segment</c>. The caller holds the lock and no fsync round is running.
    /// </summary>
    private void RotateLocked(DateTimeOffset now)
    {
        SafeFileHandle? next = null;
        string nextPath;
        try
        {
            AppendCheckpointLocked();

            // The new segment is named after its first record: the one after log.rotated.
            nextPath = Path.Combine(_directory, AuditSegments.GetFileName(_lastSequence + 2));
            AppendLineLocked(Encoding.UTF8.GetBytes($"{{\"type\":\"log.rotated\",\"next\":\"{Path.GetFileName(nextPath)}\"}}"));
            WritePendingLocked();
            _writer.FlushToDisk(_handle);
            _syncedSequence = _writtenSequence;
            next = File.OpenHandle(nextPath, FileMode.CreateNew, FileAccess.Write, FileShare.Read);
        }
        catch (Exception ex)
        {
            next?.Dispose();
            _logger.LogError(ex, "Audit segment {Segment} could not be rotated; it stays open", SegmentPath);
            return;
        }

        var previous = Path.GetFileName(SegmentPath);
        _handle.Dispose();
        _handle = next;
        SegmentPath = nextPath;
        _fileOffset = 0;
        _segmentOpenedAt = now;
        AppendLineLocked(Encoding.UTF8.GetBytes($"{{\"type\":\"log.segment\",\"previous\":\"{previous}\",\"replica\":{JsonSerializer.Serialize(_replica)}}}"));
        try
        {
            WritePendingLocked();
        }
        catch (Exception)
        {
            // Logged by WritePendingLocked; the record stays pending and the next write carries it.
        }

        _logger.LogInformation("Audit log rotated {Previous} to {Segment}", previous, SegmentPath);
    }

    /// <summary>
    /// Deletes closed segments whose last record is older than <paramref name="cutoff"/>, oldest first. A
    /// <c>log.retention</c> record naming them and the last removed record's seq and hash is written (and synced)
    /// first, so a verifier can tell retention from deletion.
    /// </summary>
    private void ApplyRetention(DateTimeOffset cutoff)
    {
        var segments = AuditSegments.List(_directory);
        var current = Path.GetFileName(SegmentPath);
        var floor = RetentionFloor?.Invoke() ?? long.MaxValue;
        var expired = new List<AuditSegment>();
        (long Sequence, string Hash) through = default;
        foreach (var segment in segments)
        {
            if (segment.Name == current || AuditChainTail.ReadLastRecord(segment.Path) is not { } last || last.Time >= cutoff || last.Sequence > floor)
            {
                break;
            }

            expired.Add(segment);
            through = (last.Sequence, last.Hash);
        }

        if (expired.Count == 0)
        {
            return;
        }

        var body = new ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(body))
        {
            json.WriteStartObject();
            json.WriteString("type", "log.retention");
            json.WriteStartArray("removed");
            foreach (var segment in expired)
            {
                json.WriteStringValue(segment.Name);
            }

            json.WriteEndArray();
            json.WriteNumber("throughSeq", through.Sequence);
            json.WriteString("throughHash", through.Hash);
            json.WriteString("olderThan", cutoff.UtcDateTime.ToString("O", CultureInfo.InvariantCulture));
            json.WriteEndObject();
        }

        try
        {
            AppendAsync(body.WrittenMemory).AsTask().GetAwaiter().GetResult();
        }
        catch (AuditLogUnavailableException ex)
        {
            _logger.LogWarning(ex, "Retention postponed: its record could not be written");
            return;
        }

        foreach (var segment in expired)
        {
            TryDelete(segment.Path);
            _logger.LogInformation("Audit segment {Segment} removed by retention", segment.Name);
        }
    }
}
