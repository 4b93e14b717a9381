using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;

namespace NhiAudit.Audit;

/// <summary>
/// Where an existing log ends: the last complete record's seq and hash, which a new segment continues from, and
/// what crash recovery cut off to get there.
/// </summary>
internal sealed class AuditChainTail
{
    private const int ChunkSize = 64 * 1024;
    private static ReadOnlySpan<byte> ClosedSuffix => "\"type\":\"log.closed\"}\n"u8;

    private AuditChainTail(long lastSequence, byte[] lastHash, string? lastSegment, bool lastSegmentClosed)
    {
        LastSequence = lastSequence;
        LastHash = lastHash;
        LastSegment = lastSegment;
        LastSegmentClosed = lastSegmentClosed;
    }

    /// <summary>The seq of the last complete record; 0 for a brand-new log.</summary>
    public long LastSequence { get; }

    /// <summary>SHA-256 of the last complete line including its newline; 32 zero bytes for a brand-new log.</summary>
    public byte[] LastHash { get; }

    /// <summary>The segment holding the last record, if any.</summary>
    public string? LastSegment { get; }

    /// <summary>Whether that segment ends with <c>log.closed</c>, i.e. the previous process shut down cleanly.</summary>
    public bool LastSegmentClosed { get; }

    /// <summary>How many bytes of an incomplete final line were cut off.</summary>
    public long RecoveredTornBytes { get; private set; }

    /// <summary>SHA-256 (lowercase hex) of the cut-off bytes, so they can still be matched against a copy.</summary>
    public string? TornSha256 { get; private set; }

    /// <summary>
    /// Finds the end of the chain in <paramref name="directory"/>, cutting an incomplete final line off the newest
    /// segment. With write-ahead a torn record was never completed, so its request was never forwarded: removing
    /// it loses no evidence of anything that happened, and its size and hash are kept in the next log.opened.
    /// </summary>
    /// <exception cref="AuditLogUnavailableException">The last line is not a record, so the chain cannot continue.</exception>
    public static AuditChainTail Recover(string directory, IAuditFileWriter writer, ILogger logger)
    {
        var segments = AuditSegments.List(directory);
        long tornBytes = 0;
        string? tornHash = null;
        for (var i = segments.Count - 1; i >= 0; i--)
        {
            var segment = segments[i];
            byte[] lastLine;
            using (var handle = File.OpenHandle(segment.Path, FileMode.Open, FileAccess.ReadWrite, FileShare.Read))
            {
                var length = RandomAccess.GetLength(handle);
                var end = LastIndexOfNewline(handle, length) + 1;
                if (end < length)
                {
                    var hash = HashRange(handle, end, length);
                    writer.SetLength(handle, end);
                    writer.FlushToDisk(handle);
                    logger.LogWarning(
                        "Audit segment {Segment} ended with an incomplete record ({Bytes} bytes, sha256 {Hash}), left by a crash during a write; cut it off",
                        segment.Name,
                        length - end,
                        hash);
                    if (tornHash is null)
                    {
                        tornBytes = length - end;
                        tornHash = hash;
                    }
                }

                if (end > 0)
                {
                    var start = LastIndexOfNewline(handle, end - 1) + 1;
                    lastLine = new byte[end - start];
                    ReadExactly(handle, lastLine, start);
                }
                else
                {
                    lastLine = [];
                }
            }

            if (lastLine.Length == 0)
            {
                // Nothing but a crashed start: no record to keep, and the new segment would want this very name.
                File.Delete(segment.Path);
                logger.LogWarning("Audit segment {Segment} held no complete record; removed it", segment.Name);
                continue;
            }

            Span<byte> prev = stackalloc byte[SHA256.HashSizeInBytes];
            if (!AuditLineParser.TryParse(lastLine.AsSpan(0, lastLine.Length - 1), out var seq, prev, out var error) || seq is null)
            {
                throw new AuditLogUnavailableException(
                    $"cannot continue the audit chain: the last line of {segment.Name} is not an audit record ({error}); run `nhiaudit verify` on {directory}");
            }

            return new AuditChainTail(seq.Value, SHA256.HashData(lastLine), segment.Name, lastLine.AsSpan().EndsWith(ClosedSuffix))
            {
                RecoveredTornBytes = tornBytes,
                TornSha256 = tornHash,
            };
        }

        return new AuditChainTail(0, new byte[SHA256.HashSizeInBytes], null, lastSegmentClosed: true)
        {
            RecoveredTornBytes = tornBytes,
            TornSha256 = tornHash,
        };
    }

    /// <summary>The seq, hash and time of the last complete record of a closed segment, or null if it has none.</summary>
    public static (long Sequence, string Hash, DateTimeOffset Time)? ReadLastRecord(string path)
    {
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        var length = RandomAccess.GetLength(handle);
        var end = LastIndexOfNewline(handle, length) + 1;
        if (end <= 0)
        {
            return null;
        }

        var start = LastIndexOfNewline(handle, end - 1) + 1;
        var line = new byte[end - start];
        ReadExactly(handle, line, start);
        Span<byte> prev = stackalloc byte[SHA256.HashSizeInBytes];
        if (!AuditLineParser.TryParse(line.AsSpan(0, line.Length - 1), out var seq, prev, out _) || seq is null)
        {
            return null;
        }

        var reader = new System.Text.Json.Utf8JsonReader(line.AsSpan(0, line.Length - 1));
        DateTimeOffset time = DateTimeOffset.MaxValue;
        while (reader.Read())
        {
            if (reader.TokenType == System.Text.Json.JsonTokenType.PropertyName && reader.CurrentDepth == 1 && reader.ValueTextEquals("time"u8))
            {
                reader.Read();
                if (reader.TokenType == System.Text.Json.JsonTokenType.String && reader.TryGetDateTimeOffset(out var parsed))
                {
                    time = parsed;
                }

                break;
            }
        }

        return (seq.Value, Convert.ToHexStringLower(SHA256.HashData(line)), time);
    }

    /// <summary>The offset of the last newline before <paramref name="before"/>, or -1.</summary>
    private static long LastIndexOfNewline(SafeFileHandle handle, long before)
    {
        var chunk = new byte[(int)Math.Min(ChunkSize, Math.Max(before, 1))];
        var end = before;
        while (end > 0)
        {
            var count = (int)Math.Min(chunk.Length, end);
            var start = end - count;
            ReadExactly(handle, chunk.AsSpan(0, count), start);
            var index = chunk.AsSpan(0, count).LastIndexOf((byte)'\n');
            if (index >= 0)
            {
                return start + index;
            }

            end = start;
        }

        return -1;
    }

    private static string HashRange(SafeFileHandle handle, long start, long end)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var chunk = new byte[(int)Math.Min(ChunkSize, end - start)];
        for (var offset = start; offset < end;)
        {
            var count = (int)Math.Min(chunk.Length, end - offset);
            ReadExactly(handle, chunk.AsSpan(0, count), offset);
            hash.AppendData(chunk, 0, count);
            offset += count;
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    private static void ReadExactly(SafeFileHandle handle, Span<byte> destination, long offset)
    {
        while (!destination.IsEmpty)
        {
            var read = RandomAccess.Read(handle, destination, offset);
            if (read == 0)
            {
                throw new EndOfStreamException("the audit segment shrank while it was being read");
            }

            destination = destination[read..];
            offset += read;
        }
    }
}
