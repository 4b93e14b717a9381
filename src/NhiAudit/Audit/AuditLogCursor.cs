using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;

namespace NhiAudit.Audit;

/// <summary>
/// Reads a (possibly live) log directory forward from a given <c>seq</c>, one complete record at a time, following
/// the chain across segment rotations. A line still being written (no newline yet) is left for the next call.
/// Used by sink pumps, which tail the log, and by <c>nhiaudit search</c>.
/// </summary>
/// <remarks>
/// The cursor checks the chain as it goes: each record must have the next <c>seq</c> and a <c>prev</c> equal to the
/// hash of the record before it. A break raises <see cref="AuditChainBrokenException"/> instead of passing on a
/// record that does not belong, so a sink never receives a tampered history as if it were the log.
/// </remarks>
public sealed class AuditLogCursor : IDisposable
{
    private readonly string _directory;
    private FileStream? _stream;
    private AuditSegment _segment;
    private long _offset;
    private byte[] _buffer = new byte[64 * 1024];
    private int _start;
    private int _end;
    private string? _lastHash;

    /// <summary>Positions a cursor before the record <paramref name="nextSequence"/> of the log in <paramref name="directory"/>.</summary>
    /// <param name="directory">The log directory.</param>
    /// <param name="nextSequence">The first <c>seq</c> to read (1 for the whole log).</param>
    public AuditLogCursor(string directory, long nextSequence = 1)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentOutOfRangeException.ThrowIfLessThan(nextSequence, 1);
        _directory = directory;
        NextSequence = nextSequence;
    }

    /// <summary>The <c>seq</c> the next <see cref="TryRead"/> returns.</summary>
    public long NextSequence { get; private set; }

    /// <summary>
    /// Reads the next complete record, or returns false when the log holds none yet (call again later for a live log).
    /// </summary>
    /// <param name="entry">The record.</param>
    /// <exception cref="AuditChainBrokenException">The next record does not continue the chain.</exception>
    public bool TryRead(out AuditLogEntry entry)
    {
        while (true)
        {
            if (_stream is null && !OpenSegmentFor(NextSequence))
            {
                entry = null!;
                return false;
            }

            if (TryTakeLine(out var line))
            {
                if (TryParse(line, out var parsed))
                {
                    if (parsed.Sequence < NextSequence && _lastHash is null)
                    {
                        continue; // still seeking forward inside the segment
                    }

                    if (_lastHash is null && parsed.Sequence > NextSequence && _segment.FirstSequence == parsed.Sequence && IsOldestSegment())
                    {
                        // Retention removed everything before this segment; reading starts where the kept log does.
                        NextSequence = parsed.Sequence;
                    }

                    if (parsed.Sequence != NextSequence || (_lastHash is not null && parsed.Prev != _lastHash))
                    {
                        throw new AuditChainBrokenException(NextSequence, _segment.Name,
                            $"the chain is broken in {_segment.Name}: expected seq={NextSequence} after hash {_lastHash ?? "(start)"}, found seq={parsed.Sequence} with prev {parsed.Prev}");
                    }

                    _lastHash = parsed.Hash;
                    NextSequence++;
                    entry = parsed;
                    return true;
                }

                throw new AuditChainBrokenException(NextSequence, _segment.Name, $"{_segment.Name} holds a line that is not an audit record where seq={NextSequence} was expected");
            }

            // End of what is written in this segment. Move on only if the chain continues in a later segment.
            var next = FindSegmentAfter(_segment.FirstSequence);
            if (next is null || _end > _start)
            {
                entry = null!;
                return false;
            }

            CloseSegment();
            _segment = next.Value;
            OpenCurrent();
        }
    }

    /// <inheritdoc />
    public void Dispose() => CloseSegment();

    private bool OpenSegmentFor(long sequence)
    {
        var segments = AuditSegments.List(_directory);
        AuditSegment? chosen = null;
        foreach (var segment in segments)
        {
            if (segment.FirstSequence <= sequence)
            {
                chosen = segment;
            }
        }

        chosen ??= segments.Count > 0 && segments[0].FirstSequence > sequence ? segments[0] : null;
        if (chosen is null)
        {
            return false;
        }

        _segment = chosen.Value;
        OpenCurrent();
        return true;
    }

    private bool IsOldestSegment()
    {
        var segments = AuditSegments.List(_directory);
        return segments.Count > 0 && segments[0].FirstSequence == _segment.FirstSequence;
    }

    private AuditSegment? FindSegmentAfter(long firstSequence)
    {
        foreach (var segment in AuditSegments.List(_directory))
        {
            if (segment.FirstSequence > firstSequence)
            {
                return segment;
            }
        }

        return null;
    }

    private void OpenCurrent()
    {
        _stream = new FileStream(_segment.Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, bufferSize: 1, FileOptions.SequentialScan);
        _offset = 0;
        _start = 0;
        _end = 0;
    }

    private void CloseSegment()
    {
        _stream?.Dispose();
        _stream = null;
    }

    /// <summary>Takes the next complete line (without newline) from the buffer, reading more of the file as needed.</summary>
    private bool TryTakeLine(out ReadOnlySpan<byte> line)
    {
        var scanned = 0;
        while (true)
        {
            var newline = _buffer.AsSpan(_start + scanned, _end - _start - scanned).IndexOf((byte)'\n');
            if (newline >= 0)
            {
                line = _buffer.AsSpan(_start, scanned + newline);
                _start += scanned + newline + 1;
                return true;
            }

            scanned = _end - _start;
            if (_start > 0)
            {
                Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
                _end -= _start;
                _start = 0;
            }

            if (_end == _buffer.Length)
            {
                Array.Resize(ref _buffer, _buffer.Length * 2);
            }

            var read = RandomAccess.Read(_stream!.SafeFileHandle, _buffer.AsSpan(_end), _offset);
            if (read == 0)
            {
                line = default;
                return false;
            }

            _offset += read;
            _end += read;
        }
    }

    private bool TryParse(ReadOnlySpan<byte> line, out AuditLogEntry entry)
    {
        entry = null!;
        Span<byte> prev = stackalloc byte[SHA256.HashSizeInBytes];
        if (!AuditLineParser.TryParse(line, out var sequence, prev, out _) || sequence is null)
        {
            return false;
        }

        // Cheap reject while seeking: only records at or past the wanted seq need the rest parsed.
        if (sequence < NextSequence && _lastHash is null)
        {
            entry = new AuditLogEntry { Sequence = sequence.Value, Prev = "", Hash = "", Time = default, Segment = _segment.Name, Line = default };
            return true;
        }

        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        using (var hasher = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
        {
            hasher.AppendData(line);
            hasher.AppendData("\n"u8);
            hasher.GetHashAndReset(hash);
        }

        DateTimeOffset time = default;
        string? type = null;
        var reader = new Utf8JsonReader(line);
        reader.Read();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName && reader.CurrentDepth == 1)
        {
            if (reader.ValueTextEquals("time"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.String)
                {
                    _ = DateTimeOffset.TryParse(reader.GetString(), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out time);
                }
            }
            else if (reader.ValueTextEquals("type"u8))
            {
                reader.Read();
                type = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
                break;
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        entry = new AuditLogEntry
        {
            Sequence = sequence.Value,
            Prev = Convert.ToHexStringLower(prev),
            Hash = Convert.ToHexStringLower(hash),
            Time = time,
            Type = type,
            Segment = _segment.Name,
            Line = line.ToArray(),
        };
        return true;
    }
}

/// <summary>Thrown by <see cref="AuditLogCursor"/> when the next record does not continue the chain.</summary>
public sealed class AuditChainBrokenException : IOException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="expectedSequence">The seq that was expected.</param>
    /// <param name="segment">The segment file.</param>
    /// <param name="message">What was found.</param>
    public AuditChainBrokenException(long expectedSequence, string segment, string message)
        : base(message)
    {
        ExpectedSequence = expectedSequence;
        Segment = segment;
    }

    /// <summary>The seq that was expected.</summary>
    public long ExpectedSequence { get; }

    /// <summary>The segment file where the break is.</summary>
    public string Segment { get; }
}
