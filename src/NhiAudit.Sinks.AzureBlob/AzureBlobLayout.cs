using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Blobs.Specialized;

namespace NhiAudit.Sinks.AzureBlob;

/// <summary>
/// The container layout shared by the sink and the reader: <c>{replica}/audit-{first seq}.jsonl</c> per log segment
/// and <c>{replica}/checkpoints.jsonl</c>, plus reading the last complete line of an append blob without downloading
/// all of it.
/// </summary>
internal static class AzureBlobLayout
{
    /// <summary>The append blob (under the replica's folder) that collects published checkpoints.</summary>
    public const string CheckpointsBlobName = "checkpoints.jsonl";

    /// <summary>How much of a blob's end is fetched first to find its last line; doubled until a whole line is in it.</summary>
    public const int InitialTailBytes = 64 * 1024;

    private const string SegmentPrefix = "audit-";
    private const string SegmentSuffix = ".jsonl";

    /// <summary>Throws unless <paramref name="replica"/> can be a single folder name of blob paths.</summary>
    public static void ValidateReplica(string replica)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(replica);
        if (replica.Contains('/', StringComparison.Ordinal) || replica.Contains('\\', StringComparison.Ordinal) || replica is "." or "..")
        {
            // A slash would nest one replica's folder inside another's and make prefix listing ambiguous.
            throw new ArgumentException($"replica name '{replica}' cannot be a blob folder name: it must not contain '/' or '\\' or be '.' or '..'", nameof(replica));
        }
    }

    /// <summary>The folder prefix of <paramref name="replica"/>'s blobs, with its trailing slash.</summary>
    public static string ReplicaPrefix(string replica) => replica + "/";

    /// <summary>The blob holding segment <paramref name="segment"/> (a file name like <c>audit-000000000001.jsonl</c>).</summary>
    public static string SegmentBlobName(string replica, string segment)
    {
        if (!TryParseSegmentName(segment, out _))
        {
            throw new ArgumentException($"'{segment}' is not a segment file name (audit-<12+ digits>.jsonl)", nameof(segment));
        }

        return ReplicaPrefix(replica) + segment;
    }

    /// <summary>The segment file name for a segment (or continuation blob) whose first record is <paramref name="firstSequence"/>.</summary>
    public static string SegmentFileName(long firstSequence) =>
        string.Create(CultureInfo.InvariantCulture, $"{SegmentPrefix}{firstSequence:D12}{SegmentSuffix}");

    /// <summary>The blob holding <paramref name="replica"/>'s published checkpoints.</summary>
    public static string CheckpointsBlob(string replica) => ReplicaPrefix(replica) + CheckpointsBlobName;

    /// <summary>Reads the first seq from a segment file name; false for anything else.</summary>
    public static bool TryParseSegmentName(string name, out long firstSequence)
    {
        firstSequence = 0;
        if (!name.StartsWith(SegmentPrefix, StringComparison.Ordinal) || !name.EndsWith(SegmentSuffix, StringComparison.Ordinal))
        {
            return false;
        }

        var digits = name.AsSpan(SegmentPrefix.Length, name.Length - SegmentPrefix.Length - SegmentSuffix.Length);
        return digits.Length >= 12 && !digits.ContainsAnyExceptInRange('0', '9')
            && long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out firstSequence);
    }

    /// <summary>
    /// The replica's segment blobs, oldest first. Sorted by the number, not the name: a thirteen-digit name would sort
    /// before a twelve-digit one.
    /// </summary>
    public static async Task<List<SegmentBlob>> ListSegmentsAsync(BlobContainerClient container, string replica, CancellationToken cancellationToken)
    {
        var prefix = ReplicaPrefix(replica);
        var segments = new List<SegmentBlob>();
        await foreach (var item in container.GetBlobsAsync(new GetBlobsOptions { Prefix = prefix }, cancellationToken).ConfigureAwait(false))
        {
            var fileName = item.Name[prefix.Length..];
            if (fileName.Contains('/', StringComparison.Ordinal) || !TryParseSegmentName(fileName, out var first))
            {
                continue;
            }

            segments.Add(new SegmentBlob(item.Name, fileName, first, item.Properties.ContentLength ?? 0));
        }

        segments.Sort(static (a, b) => a.FirstSequence != b.FirstSequence
            ? a.FirstSequence.CompareTo(b.FirstSequence)
            : string.CompareOrdinal(a.FileName, b.FileName));
        return segments;
    }

    /// <summary>
    /// The last complete line (without its newline) of the first <paramref name="length"/> bytes of
    /// <paramref name="blob"/>, fetched with range requests from the end; <see langword="null"/> when the length is 0.
    /// </summary>
    /// <exception cref="InvalidDataException">The blob does not end with a newline: something other than this sink wrote to it.</exception>
    public static async Task<byte[]?> ReadLastLineAsync(BlobBaseClient blob, long length, CancellationToken cancellationToken)
    {
        if (length <= 0)
        {
            return null;
        }

        long window = InitialTailBytes;
        while (true)
        {
            var start = Math.Max(0, length - window);
            var response = await blob.DownloadContentAsync(
                new BlobDownloadOptions { Range = new HttpRange(start, length - start) },
                cancellationToken).ConfigureAwait(false);
            var bytes = response.Value.Content.ToMemory();
            if (bytes.Length != length - start)
            {
                throw new IOException($"{blob.Name} returned {bytes.Length} bytes where {length - start} were asked for; it changed while being read");
            }

            var span = bytes.Span;
            if (span[^1] != (byte)'\n')
            {
                throw new InvalidDataException(
                    $"{blob.Name} does not end with a newline after {length} bytes; the sink only appends whole lines, so something else wrote to it. It needs a person: the sink will not append after a torn line.");
            }

            var lineStart = span[..^1].LastIndexOf((byte)'\n') + 1;
            if (lineStart > 0 || start == 0)
            {
                return span[lineStart..^1].ToArray();
            }

            window *= 2;
        }
    }

    /// <summary>Reads <c>seq</c> from a line that starts <c>{"seq":N,</c> (a log record) or holds a top-level <c>seq</c> (a checkpoint).</summary>
    /// <exception cref="InvalidDataException">The line has no numeric <c>seq</c>.</exception>
    public static long ReadSequence(ReadOnlySpan<byte> line, string where)
    {
        try
        {
            var reader = new Utf8JsonReader(line);
            if (reader.Read() && reader.TokenType == JsonTokenType.StartObject)
            {
                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    var isSeq = reader.ValueTextEquals("seq"u8);
                    reader.Read();
                    if (isSeq && reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var sequence))
                    {
                        return sequence;
                    }

                    reader.Skip();
                }
            }
        }
        catch (JsonException)
        {
            // Reported below with the blob's name.
        }

        throw new InvalidDataException($"the last line of {where} has no numeric \"seq\"; it was not written by this sink");
    }

    /// <summary>SHA-256 of <paramref name="line"/> plus its newline, lowercase hex: the chain hash of a record.</summary>
    public static string HashLine(ReadOnlySpan<byte> line)
    {
        using var hasher = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hasher.AppendData(line);
        hasher.AppendData("\n"u8);
        return Convert.ToHexStringLower(hasher.GetHashAndReset());
    }
}

/// <summary>One segment blob of a replica as listed.</summary>
/// <param name="BlobName">The full blob name (<c>{replica}/audit-….jsonl</c>).</param>
/// <param name="FileName">The segment file name.</param>
/// <param name="FirstSequence">The first seq, from the name.</param>
/// <param name="Length">The blob's length when listed.</param>
internal readonly record struct SegmentBlob(string BlobName, string FileName, long FirstSequence, long Length);
