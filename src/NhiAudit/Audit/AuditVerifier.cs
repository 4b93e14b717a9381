using System.Security.Cryptography;

namespace NhiAudit.Audit;

/// <summary>Checks that an audit log directory still holds the chain <see cref="FileAuditLog"/> wrote.</summary>
/// <remarks>
/// <para>
/// Every line of every segment (in sequence order) must be a JSON object whose first fields are <c>seq</c> and
/// <c>prev</c>; <c>seq</c> counts up by one from 1 across segments, and <c>prev</c> is the SHA-256 of the previous
/// line's exact bytes including its newline (64 zeros for the first record). The first problem is named with the
/// record a reader should look at.
/// </para>
/// <para>
/// What the chain alone cannot show: an edit of the very last record (no later record commits to its hash), and
/// records cut off the end of the log, or a whole log rewritten from the start. Signed checkpoints and a published
/// <see cref="AuditVerificationResult.LastHash"/> close those gaps.
/// </para>
/// <para>Segments are streamed line by line, so memory use is bounded by the longest record, not by segment size.</para>
/// </remarks>
public static partial class AuditVerifier
{
    /// <summary>Verifies the hash chain of the log in <paramref name="directory"/>.</summary>
    /// <param name="directory">The directory holding the <c>audit-*.jsonl</c> segments.</param>
    /// <returns>Whether the log is intact and, if not, the first problem.</returns>
    /// <exception cref="DirectoryNotFoundException"><paramref name="directory"/> does not exist.</exception>
    public static AuditVerificationResult Verify(string directory) => Verify(directory, null);

    /// <summary>
    /// Verifies the log in <paramref name="directory"/>: the hash chain, every <c>log.checkpoint</c> record (its place
    /// in the chain and, given public keys, its signature), segments removed by retention, and optionally a published
    /// checkpoint the log must still contain.
    /// </summary>
    /// <param name="directory">The directory holding the <c>audit-*.jsonl</c> segments.</param>
    /// <param name="options">Public keys and the published checkpoint; <see langword="null"/> checks the chain only.</param>
    /// <returns>Whether the log is intact and, if not, the first problem.</returns>
    /// <exception cref="DirectoryNotFoundException"><paramref name="directory"/> does not exist.</exception>
    public static AuditVerificationResult Verify(string directory, AuditVerifyOptions? options)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        if (!Directory.Exists(directory))
        {
            throw new DirectoryNotFoundException($"audit log directory {directory} does not exist");
        }

        var segments = AuditSegments.List(directory);
        var chain = new ChainState();
        var evidence = new EvidenceState(options ?? new AuditVerifyOptions());
        Span<byte> prev = stackalloc byte[SHA256.HashSizeInBytes];
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        using var lines = new AuditLogLines(segments);
        while (lines.TryReadLine(out var line, out var complete))
        {
            if (!complete)
            {
                return evidence.Result(chain, Torn(lines, line.Length));
            }

            SHA256.HashData(line, hash);
            if (!AuditLineParser.TryParse(line[..^1], out var sequence, prev, out var error))
            {
                return evidence.Result(chain, new AuditVerificationProblem
                {
                    File = lines.File,
                    Line = lines.LineNumber,
                    Sequence = sequence,
                    Kind = AuditProblemKind.Malformed,
                    Message = $"{lines.File} line {lines.LineNumber} is not an audit record ({error}): it was edited or corrupted",
                });
            }

            if (lines.Index == 0 && sequence > 1 && segments[0].FirstSequence == sequence)
            {
                // The kept log starts later: retention removed older segments, which a log.retention record must say.
                // (Only where the segment's name agrees: an edited seq in a log that starts at 1 is an edit.)
                chain.StartAfter(sequence.Value - 1, prev);
                evidence.StartedAt(sequence.Value, prev, lines.File);
            }

            if (sequence == chain.LastSequence + 1 && prev.SequenceEqual(chain.LastHash))
            {
                if (line.IndexOf("\"type\":\"log."u8) >= 0 && evidence.Inspect(line[..^1], sequence.Value, chain, lines.File, lines.LineNumber) is { } problem)
                {
                    return evidence.Result(chain, problem);
                }

                chain.Accept(sequence.Value, hash, lines.File, lines.LineNumber);
                evidence.Accepted(sequence.Value, hash, lines.File, lines.LineNumber);
                continue;
            }

            var current = new LineInfo(sequence!.Value, prev.ToArray(), hash.ToArray(), lines.File, lines.LineNumber, lines.Index);
            var next = ReadNext(lines);
            return evidence.Result(chain, Classify(chain, current, next, segments));
        }

        return evidence.Result(chain, evidence.Finish(chain));
    }

    private static AuditVerificationProblem Torn(AuditLogLines lines, int bytes) => new()
    {
        File = lines.File,
        Line = lines.LineNumber,
        Kind = AuditProblemKind.Torn,
        Message = lines.InLastSegment
            ? $"the final record ({lines.File} line {lines.LineNumber}, {bytes} bytes) is torn: it has no newline, so a crash interrupted its write or the file was cut"
            : $"{lines.File} line {lines.LineNumber} is torn ({bytes} bytes without a newline) although later segments follow: the log was not recovered after a crash, or was altered",
    };

    /// <summary>The line after a broken link, which tells an inserted line from an edited or deleted one.</summary>
    private static LineInfo? ReadNext(AuditLogLines lines)
    {
        if (!lines.TryReadLine(out var line, out var complete) || !complete)
        {
            return null;
        }

        var prev = new byte[SHA256.HashSizeInBytes];
        if (!AuditLineParser.TryParse(line[..^1], out var sequence, prev, out _) || sequence is null)
        {
            return null;
        }

        return new LineInfo(sequence.Value, prev, SHA256.HashData(line), lines.File, lines.LineNumber, lines.Index);
    }

    private static AuditVerificationProblem Classify(ChainState chain, LineInfo current, LineInfo? next, List<AuditSegment> segments)
    {
        var s = current.Sequence;
        var last = chain.LastSequence;
        var expected = last + 1;

        // The next line carries on exactly where the chain stopped: the current line is one too many.
        if (next is not null && next.Sequence == expected && next.Prev.AsSpan().SequenceEqual(chain.LastHash))
        {
            if (s == expected + 1 && current.Prev.AsSpan().SequenceEqual(next.Hash))
            {
                return Problem(current, expected, AuditProblemKind.Reordered,
                    $"records seq={expected} and seq={expected + 1} were swapped: {current.Where} holds seq={expected + 1} and {next.Where} holds seq={expected}");
            }

            if (s > expected)
            {
                var original = FindLater(segments, next.Index, s);
                return original is null
                    ? Problem(current, s, AuditProblemKind.Reordered,
                        $"record seq={s} was moved: it is at {current.Where}, but the chain continues there with seq={expected} at {next.Where}")
                    : Problem(current, s, AuditProblemKind.Inserted,
                        $"{current.Where} (seq={s}) was inserted: a copy of the record at {original}; expected seq={expected}");
            }

            return Problem(current, s, AuditProblemKind.Inserted,
                $"{current.Where} (seq={s}) was inserted: expected seq={expected}, and the chain continues at {next.Where}");
        }

        if (s == expected)
        {
            if (last == 0)
            {
                return Problem(current, s, AuditProblemKind.Edited,
                    $"record seq=1 ({current.Where}) was edited: its prev is not the 64 zeros that start a log");
            }

            return new AuditVerificationProblem
            {
                File = chain.LastFile,
                Line = chain.LastLine,
                Sequence = last,
                Kind = AuditProblemKind.Edited,
                Message = $"record seq={last} ({chain.LastFile} line {chain.LastLine}) was edited: its hash does not match prev of seq={expected} ({current.Where}); or that prev was altered",
            };
        }

        if (current.Prev.AsSpan().SequenceEqual(chain.LastHash))
        {
            return Problem(current, expected, AuditProblemKind.Edited,
                $"record seq={expected} ({current.Where}) was edited: it chains to seq={last} but its seq field reads {s}");
        }

        if (last >= 1 && s == last && current.Prev.AsSpan().SequenceEqual(chain.HashBeforeLast))
        {
            return new AuditVerificationProblem
            {
                File = chain.LastFile,
                Line = chain.LastLine,
                Sequence = last,
                Kind = AuditProblemKind.Inserted,
                Message = $"{chain.LastFile} line {chain.LastLine} (seq={last}) was inserted: the record after it ({current.Where}) has the same seq and chains to the line before it",
            };
        }

        if (s < expected)
        {
            return Problem(current, s, AuditProblemKind.Inserted,
                $"{current.Where} (seq={s}) was inserted or reordered: expected seq={expected}");
        }

        var moved = FindLater(segments, current.Index, expected);
        if (moved is not null)
        {
            return Problem(current, expected, AuditProblemKind.Reordered,
                $"record seq={expected} was moved: it is at {moved}, but belongs before {current.Where}");
        }

        return Problem(current, expected, AuditProblemKind.Deleted, s == expected + 1
            ? $"record seq={expected} is missing (deleted) before {current.Where}"
            : $"records seq={expected}..{s - 1} are missing (deleted) before {current.Where}");
    }

    private static AuditVerificationProblem Problem(LineInfo at, long sequence, string kind, string message) => new()
    {
        File = at.File,
        Line = at.Line,
        Sequence = sequence,
        Kind = kind,
        Message = message,
    };

    /// <summary>Where a record with <paramref name="sequence"/> sits after line <paramref name="afterIndex"/>; a second pass, only on failure.</summary>
    private static string? FindLater(List<AuditSegment> segments, long afterIndex, long sequence)
    {
        Span<byte> prev = stackalloc byte[SHA256.HashSizeInBytes];
        using var lines = new AuditLogLines(segments);
        while (lines.TryReadLine(out var line, out var complete))
        {
            if (lines.Index <= afterIndex || !complete)
            {
                continue;
            }

            // A line broken after its seq still tells where that seq went.
            _ = AuditLineParser.TryParse(line[..^1], out var found, prev, out _);
            if (found == sequence)
            {
                return $"{lines.File} line {lines.LineNumber}";
            }
        }

        return null;
    }

    private sealed record LineInfo(long Sequence, byte[] Prev, byte[] Hash, string File, int Line, long Index)
    {
        public string Where => $"{File} line {Line}";
    }

    /// <summary>The verified part of the chain: its last two hashes and where its last record is.</summary>
    private sealed class ChainState
    {
        public long LastSequence { get; private set; }

        public long Count { get; private set; }

        public byte[] LastHash { get; private set; } = new byte[SHA256.HashSizeInBytes];

        public byte[] HashBeforeLast { get; private set; } = new byte[SHA256.HashSizeInBytes];

        public string LastFile { get; private set; } = "";

        public int LastLine { get; private set; }

        public void StartAfter(long sequence, ReadOnlySpan<byte> hash)
        {
            LastSequence = sequence;
            hash.CopyTo(LastHash);
        }

        public void Accept(long sequence, ReadOnlySpan<byte> hash, string file, int line)
        {
            (HashBeforeLast, LastHash) = (LastHash, HashBeforeLast);
            hash.CopyTo(LastHash);
            LastSequence = sequence;
            LastFile = file;
            LastLine = line;
            Count++;
        }

        public AuditVerificationResult Result(AuditVerificationProblem? problem) => new()
        {
            IsIntact = problem is null,
            RecordCount = Count,
            LastSequence = Count > 0 ? LastSequence : null,
            LastHash = Count > 0 ? Convert.ToHexStringLower(LastHash) : null,
            Problem = problem,
        };
    }
}
