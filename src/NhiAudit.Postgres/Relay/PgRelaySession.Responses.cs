using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using NhiAudit.Postgres.Protocol;

namespace NhiAudit.Postgres.Relay;

/// <summary>The server loop: relays backend messages to the client byte for byte and closes each request with a response record.</summary>
internal sealed partial class PgRelaySession
{
    private bool _errorInBlock;
    private PendingEntry? _resultHead;
    private int _refusedInFlight;

    private long _serverPassthrough;

    private async Task<string?> ServerToClientAsync(PipeReader upstreamIn, PipeWriter clientOut, CancellationToken ct)
    {
        while (true)
        {
            var read = await upstreamIn.ReadAsync(ct).ConfigureAwait(false);
            var buffer = read.Buffer;

            // The client loop may write a notice (an approval hold) between two reads; never inside one.
            await _clientWriteLock.WaitAsync(ct).ConfigureAwait(false);
            FlushResult flush;
            try
            {
                try
                {
                    RelayServerFrames(ref buffer, clientOut);
                }
                finally
                {
                    upstreamIn.AdvanceTo(buffer.Start, buffer.End);
                }

                flush = await clientOut.FlushAsync(ct).ConfigureAwait(false);
            }
            finally
            {
                _clientWriteLock.Release();
            }

            if (flush.IsCompleted)
            {
                return "client closed the connection";
            }

            if (read.IsCompleted)
            {
                return "server closed the connection";
            }
        }
    }

    /// <summary>
    /// Relays every complete backend message in <paramref name="buffer"/> (and the streamed part of a large one) to the
    /// client, closing requests as their responses pass; leaves an incomplete message in <paramref name="buffer"/>.
    /// The hot path: messages are only framed by their headers, and everything the gateway passes on unchanged is copied
    /// to the client in one piece per read, so a result set costs no allocation and one copy.
    /// </summary>
    internal void RelayServerFrames(ref ReadOnlySequence<byte> buffer, PipeWriter clientOut)
    {
        var reader = new SequenceReader<byte>(buffer);
        var forwardFrom = reader.Position;
        while (!reader.End)
        {
            if (_serverPassthrough > 0)
            {
                var take = Math.Min(_serverPassthrough, reader.Remaining);
                reader.Advance(take);
                _serverPassthrough -= take;
                continue;
            }

            if (reader.Remaining < 5)
            {
                break;
            }

            var frameStart = reader.Position;
            reader.TryRead(out var type);
            reader.TryReadBigEndian(out int length);
            if (length < 4)
            {
                throw new IOException($"the server sent an invalid message length {length}");
            }

            var bodyLength = length - 4;
            if (IsCountedOnly(type) && InspectsFrame(type))
            {
                // A row that masking or capture must see whole: buffered up to the inspection limit, then rewritten.
                if (reader.Remaining < bodyLength)
                {
                    if (length > _target.MaxInspectedMessageBytes)
                    {
                        throw new PgProtocolException("54000", $"terminating connection: a result row of {length} bytes exceeds the {_target.MaxInspectedMessageBytes} bytes the gateway can mask");
                    }

                    reader.Rewind(5);
                    break;
                }

                CountResultBytes(type, length);
                reader.Advance(bodyLength);
                Forward(buffer.Slice(forwardFrom, frameStart), clientOut);
                forwardFrom = frameStart;
                if (InspectRow(type, buffer.Slice(frameStart, reader.Position), clientOut))
                {
                    forwardFrom = reader.Position;
                }

                continue;
            }

            if (reader.Remaining < bodyLength)
            {
                if (length > StreamingThreshold && IsCountedOnly(type))
                {
                    // A large row or copy chunk: count it from its header and stream it on; memory stays bounded.
                    CountResultBytes(type, length);
                    _serverPassthrough = bodyLength;
                    continue;
                }

                reader.Rewind(5);
                break;
            }

            if (IsCountedOnly(type))
            {
                CountResultBytes(type, length);
                reader.Advance(bodyLength);
                continue;
            }

            reader.Advance(bodyLength);
            var message = buffer.Slice(frameStart, reader.Position);
            if (type == (byte)'S')
            {
                Forward(buffer.Slice(forwardFrom, frameStart), clientOut);
                forwardFrom = reader.Position;
                OnParameterStatus(message, clientOut);
                continue;
            }
            if (type == (byte)'Z' && Volatile.Read(ref _refusedInFlight) > 0)
            {
                // The gateway's own answers to refused statements go just before this ReadyForQuery.
                Forward(buffer.Slice(forwardFrom, frameStart), clientOut);
                forwardFrom = frameStart;
            }

            if (type is (byte)'T' or (byte)'n' or (byte)'E' or (byte)'N' && (InspectsResults || DescribePending()))
            {
                // Messages masking may rewrite or drop: what came before them goes first.
                Forward(buffer.Slice(forwardFrom, frameStart), clientOut);
                forwardFrom = frameStart;
                if (type is (byte)'T' or (byte)'n')
                {
                    if (OnResultShape(type, message))
                    {
                        forwardFrom = reader.Position;
                    }

                    continue;
                }

                if (MaskServerMessage(message, clientOut, out var replacement))
                {
                    forwardFrom = reader.Position;
                    OnServerMessage(type, new ReadOnlySequence<byte>(replacement), clientOut);
                    continue;
                }
            }

            OnServerMessage(type, message, clientOut);
        }

        Forward(buffer.Slice(forwardFrom, reader.Position), clientOut);
        buffer = buffer.Slice(reader.Position);
    }

    /// <summary>A Describe awaits its answer (it may be the gateway's own, even after a policy reload turned masking off).</summary>
    private bool DescribePending() => _pending.TryPeek(out var head) && head.Kind == PendingKind.Describe;

    private static bool IsCountedOnly(byte type) => type is (byte)'D' or (byte)'d';

    /// <summary>True when masking or capture must see this row or COPY chunk whole.</summary>
    private bool InspectsFrame(byte type) =>
        type == (byte)'D'
            ? _rowMask is not null || (_target.CaptureRows > 0 && ResultHead() is { } head && (head.Sample?.Count ?? 0) < _target.CaptureRows)
            : _copyMasker is not null;

    private PendingEntry? ResultHead()
    {
        if (_resultHead is null && _pending.TryPeek(out var head) && head.Kind == PendingKind.Statement)
        {
            _resultHead = head;
        }

        return _resultHead;
    }

    private void CountResultBytes(byte type, int length)
    {
        // The statement a result belongs to stays at the head of the queue until its CommandComplete; look it up once.
        if (ResultHead() is { } current)
        {
            if (type == (byte)'D')
            {
                current.Rows++;
            }

            current.Bytes += length - 4;
        }
    }

    private void OnServerMessage(byte type, in ReadOnlySequence<byte> message, PipeWriter clientOut)
    {
        switch (type)
        {
            case (byte)'C':
            case (byte)'I':
            case (byte)'s':
            case (byte)'V':
                CompleteHead(message, error: null);
                break;
            case (byte)'H' when _masking is not null:
                OnCopyOut(message);
                break;
            case (byte)'E':
                var error = PgErrorOrNotice.Parse(Payload(message, out var rented));
                Return(rented);
                _errorInBlock = true;
                if (!CompleteHead(message, error))
                {
                    AppendResponse(0, 0, null, error, "pg.error");
                }

                break;
            case (byte)'Z':
                OnReadyForQuery(clientOut);
                break;
        }
    }

    /// <summary>
    /// A reported setting. The server reports when a setting that changes how it reads SQL text changed (a function
    /// may call set_config): from then on the gateway could misread statements, so the session ends (fail closed).
    /// The gateway's own application_name goes back to the client as the client's. Everything else passes unchanged.
    /// </summary>
    private void OnParameterStatus(in ReadOnlySequence<byte> message, PipeWriter clientOut)
    {
        var status = PgParameterStatus.Parse(Payload(message, out var rented));
        Return(rented);
        if (LexicallyUnsafeStatus(status.Name, status.Value) is { } problem)
        {
            throw new PgProtocolException("0A000", problem);
        }

        var value = ClientFacingStatus(status.Name, status.Value);
        if (ReferenceEquals(value, status.Value))
        {
            Forward(message, clientOut);
        }
        else
        {
            PgBackendWriter.WriteParameterStatus(clientOut, status.Name, value);
        }
    }

    /// <summary>Closes the oldest open statement with its outcome. False when no statement was waiting (a Parse or Bind error).</summary>
    private bool CompleteHead(in ReadOnlySequence<byte> message, PgErrorOrNotice? error)
    {
        _rowMask = null;
        _rowFields = null;
        _copyMasker = null;
        PendingEntry? head;
        while (_pending.TryPeek(out head) && head.Kind == PendingKind.Describe)
        {
            // A Describe the server skipped: an earlier message of its batch failed.
            _pending.TryDequeue(out _);
        }

        if (head is null || head.Kind != PendingKind.Statement)
        {
            return false;
        }

        _pending.TryDequeue(out _);
        _resultHead = null;
        if (head.ChangesSchema && error is null)
        {
            _catalog?.MarkStale();
        }

        if (head.ChangesCode && error is null)
        {
            _code?.MarkStale();
        }

        string? tag = null;
        long? rowsAffected = null;
        if (error is null && message.FirstSpan[0] == (byte)'C')
        {
            var complete = PgCommandComplete.Parse(Payload(message, out var rented));
            tag = complete.Tag;
            rowsAffected = complete.Rows;
            Return(rented);
        }
        else if (error is null && message.FirstSpan[0] == (byte)'s')
        {
            tag = "(portal suspended)";
        }
        else if (error is null && message.FirstSpan[0] == (byte)'I')
        {
            tag = "(empty query)";
        }

        AppendResponse(head.RequestSeq, head.StartTimestamp, tag, error, "pg.response", head, rowsAffected: rowsAffected);
        return true;
    }

    private void OnReadyForQuery(PipeWriter clientOut)
    {
        // Everything the client sent up to its Query or Sync has now been answered; anything still open did not run.
        _resultHead = null;
        _rowMask = null;
        _rowFields = null;
        _copyMasker = null;
        while (_pending.TryDequeue(out var entry))
        {
            if (entry.Kind == PendingKind.SyncPoint)
            {
                break;
            }

            if (entry.Kind == PendingKind.Describe)
            {
                continue;
            }

            if (entry.Kind == PendingKind.Refused)
            {
                Interlocked.Decrement(ref _refusedInFlight);
                // The gateway answers for a statement it kept from the server, in the place the server's answer would have been.
                if (!_errorInBlock)
                {
                    PgBackendWriter.WriteErrorResponse(clientOut, "ERROR", entry.RefusalSqlState ?? "42501", entry.RefusalMessage ?? "refused by the gateway");
                    _errorInBlock = true;
                }

                AppendResponse(entry.RequestSeq, entry.StartTimestamp, null, new PgErrorOrNotice("ERROR", entry.RefusalSqlState ?? "42501", entry.RefusalMessage ?? "refused by the gateway", null, null, null, null), "pg.response", entry);
                continue;
            }

            AppendResponse(entry.RequestSeq, entry.StartTimestamp, "(not executed)", null, "pg.response", entry, skipped: true);
        }

        _errorInBlock = false;
    }

    private void AppendResponse(long requestSeq, long started, string? tag, PgErrorOrNotice? error, string type, PendingEntry? entry = null, bool skipped = false, long? rowsAffected = null)
    {
        var w = _responseRecords.Begin(type);
        w.WritePropertyName("session"u8);
        w.WriteRawValue(_sessionJson, skipInputValidation: true);
        if (requestSeq > 0)
        {
            w.WriteNumber("request"u8, requestSeq);
        }

        if (skipped)
        {
            w.WriteBoolean("executed"u8, false);
        }

        if (tag is not null)
        {
            w.WriteString("tag"u8, tag);
            if (rowsAffected is { } affected)
            {
                w.WriteNumber("rowsAffected"u8, affected);
            }
        }

        if (entry is not null)
        {
            w.WriteNumber("rows"u8, entry.Rows);
            w.WriteNumber("bytes"u8, entry.Bytes);
            var bytesIn = Interlocked.Read(ref entry.BytesIn);
            if (bytesIn > 0)
            {
                w.WriteNumber("bytesIn"u8, bytesIn);
            }

            WriteMaskingFields(w, entry);
        }

        if (error is { } e)
        {
            w.WriteString("severity"u8, e.Severity);
            w.WriteString("sqlstate"u8, e.SqlState);
            w.WriteString("error"u8, e.Message);
            if (e.Detail is not null)
            {
                w.WriteString("detail"u8, e.Detail);
            }
        }

        if (started > 0)
        {
            w.WriteNumber("durationMs"u8, Math.Round(Stopwatch.GetElapsedTime(started).TotalMilliseconds, 3));
        }

        var append = _services.AuditLog.AppendAsync(_responseRecords.End(), AuditAppendMode.Deferred);
        if (!append.IsCompletedSuccessfully)
        {
            // A deferred append completes at once unless the log is closed or broken; then the session must end.
            append.AsTask().GetAwaiter().GetResult();
        }
    }
}
