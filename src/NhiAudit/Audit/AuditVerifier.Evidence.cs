using System.Globalization;
using System.Text.Json;

namespace NhiAudit.Audit;

public static partial class AuditVerifier
{
    /// <summary>
    /// What the chain's own log.* records claim, checked as the walk passes them: checkpoints (position, replica,
    /// signature), retention (which removed records it accounts for), and the published checkpoint at the end.
    /// </summary>
    private sealed class EvidenceState(AuditVerifyOptions options)
    {
        private long _retainedFrom = 1;
        private string? _retainedPrev;
        private string _firstFile = "";
        private bool _retentionExplained;
        private int _checkpoints;
        private string? _replica;
        private (string Hash, string File, int Line)? _checkpointTarget;

        public void StartedAt(long sequence, ReadOnlySpan<byte> prev, string file)
        {
            _retainedFrom = sequence;
            _retainedPrev = Convert.ToHexStringLower(prev);
            _firstFile = file;
        }

        public void Accepted(long sequence, ReadOnlySpan<byte> hash, string file, int line)
        {
            if (options.Checkpoint is { } published && published.Sequence == sequence)
            {
                _checkpointTarget = (Convert.ToHexStringLower(hash), file, line);
            }
        }

        /// <summary>Checks one log.* record that links correctly; returns the problem it reveals, if any.</summary>
        public AuditVerificationProblem? Inspect(ReadOnlySpan<byte> line, long sequence, ChainState chain, string file, int lineNumber)
        {
            JsonDocument document;
            try
            {
                document = JsonDocument.Parse(line.ToArray());
            }
            catch (JsonException)
            {
                return null; // the line parser already accepted it as a record; only its claims are checked here
            }

            using (document)
            {
                var root = document.RootElement;
                var type = root.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
                switch (type)
                {
                    case "log.opened" or "log.segment":
                        if (_replica is null && root.TryGetProperty("replica", out var replica) && replica.ValueKind == JsonValueKind.String)
                        {
                            _replica = replica.GetString();
                        }

                        return null;
                    case "log.retention":
                        if (root.TryGetProperty("throughSeq", out var through) && through.TryGetInt64(out var throughSeq)
                            && root.TryGetProperty("throughHash", out var throughHash) && throughSeq == _retainedFrom - 1
                            && throughHash.GetString() == _retainedPrev)
                        {
                            _retentionExplained = true;
                        }

                        return null;
                    case "log.checkpoint":
                        return InspectCheckpoint(root, sequence, chain, file, lineNumber);
                    default:
                        return null;
                }
            }
        }

        /// <summary>The checks that need the whole walk: an unexplained missing start, and the published checkpoint.</summary>
        public AuditVerificationProblem? Finish(ChainState chain)
        {
            if (_retainedFrom > 1 && !_retentionExplained)
            {
                return new AuditVerificationProblem
                {
                    File = _firstFile,
                    Line = 1,
                    Sequence = 1,
                    Kind = AuditProblemKind.Deleted,
                    Message = _retainedFrom == 2
                        ? $"record seq=1 is missing (deleted): the log starts at seq=2 in {_firstFile} and no log.retention record accounts for it"
                        : $"records seq=1..{_retainedFrom - 1} are missing (deleted): the log starts at seq={_retainedFrom} in {_firstFile} and no log.retention record accounts for them",
                };
            }

            if (options.Checkpoint is not { } published)
            {
                return null;
            }

            var where = $"the published checkpoint (seq={published.Sequence}, {published.Time.UtcDateTime.ToString("O", CultureInfo.InvariantCulture)}, replica {published.Replica})";
            if (_replica is not null && published.Replica != _replica)
            {
                return Problem(chain.LastFile, chain.LastLine, published.Sequence, AuditProblemKind.WrongChain,
                    $"{where} belongs to replica {published.Replica}, but this log is replica {_replica}'s");
            }

            if (options.PublicKeys.Count > 0 && SignatureProblem(published) is { } signatureProblem)
            {
                return Problem(chain.LastFile, chain.LastLine, published.Sequence, AuditProblemKind.ForgedCheckpoint,
                    $"{where} is not genuine: {signatureProblem}");
            }

            if (chain.Count == 0 || published.Sequence > chain.LastSequence)
            {
                var last = chain.Count == 0 ? 0 : chain.LastSequence;
                return Problem(chain.LastFile, chain.LastLine, last + 1, AuditProblemKind.Truncated,
                    last + 1 == published.Sequence
                        ? $"the log ends at seq={last} but {where} covers seq={published.Sequence}: record seq={published.Sequence} was cut off the end"
                        : $"the log ends at seq={last} but {where} covers seq={published.Sequence}: records seq={last + 1}..{published.Sequence} were cut off the end");
            }

            if (_checkpointTarget is { } target && target.Hash != published.Hash)
            {
                return Problem(target.File, target.Line, published.Sequence, AuditProblemKind.Edited,
                    $"record seq={published.Sequence} ({target.File} line {target.Line}) is not the record {where} covers: the log was rewritten up to there");
            }

            return null;
        }

        public AuditVerificationResult Result(ChainState chain, AuditVerificationProblem? problem) => chain.Result(problem) with
        {
            Replica = _replica,
            FirstSequence = _retainedFrom,
            CheckpointCount = _checkpoints,
            SignaturesChecked = options.PublicKeys.Count > 0,
            CheckpointMatched = options.Checkpoint is { } published && problem is null
                ? _checkpointTarget is not null && _checkpointTarget.Value.Hash == published.Hash
                : null,
        };

        private AuditVerificationProblem? InspectCheckpoint(JsonElement root, long sequence, ChainState chain, string file, int line)
        {
            _checkpoints++;
            AuditCheckpoint checkpoint;
            try
            {
                checkpoint = AuditCheckpoint.FromJson(root.GetProperty("checkpoint"));
            }
            catch (Exception ex) when (ex is FormatException or KeyNotFoundException or InvalidOperationException)
            {
                return Problem(file, line, sequence, AuditProblemKind.ForgedCheckpoint,
                    $"the checkpoint record seq={sequence} ({file} line {line}) is malformed: {ex.Message}");
            }

            if (checkpoint.Sequence != chain.LastSequence || checkpoint.Hash != Convert.ToHexStringLower(chain.LastHash))
            {
                return Problem(file, line, sequence, AuditProblemKind.ForgedCheckpoint,
                    $"the checkpoint record seq={sequence} ({file} line {line}) claims seq={checkpoint.Sequence} hash {checkpoint.Hash[..12]}…, but the record before it is seq={chain.LastSequence}: it was forged or moved");
            }

            if (_replica is not null && checkpoint.Replica != _replica)
            {
                return Problem(file, line, sequence, AuditProblemKind.ForgedCheckpoint,
                    $"the checkpoint record seq={sequence} ({file} line {line}) names replica {checkpoint.Replica}, but the log is replica {_replica}'s");
            }

            if (options.PublicKeys.Count > 0 && SignatureProblem(checkpoint) is { } signatureProblem)
            {
                return Problem(file, line, sequence, AuditProblemKind.ForgedCheckpoint,
                    $"the checkpoint record seq={sequence} ({file} line {line}) is not genuine: {signatureProblem}");
            }

            return null;
        }

        private string? SignatureProblem(AuditCheckpoint checkpoint)
        {
            foreach (var key in options.PublicKeys)
            {
                if (key.KeyId == checkpoint.KeyId)
                {
                    return key.Verify(checkpoint) ? null : $"its {checkpoint.Algorithm} signature does not verify with key {key.KeyId} (forged, or edited after signing)";
                }
            }

            return $"it is signed by key {checkpoint.KeyId}, which is not among the given public keys";
        }

        private static AuditVerificationProblem Problem(string file, int line, long sequence, string kind, string message) => new()
        {
            File = file,
            Line = line,
            Sequence = sequence,
            Kind = kind,
            Message = message,
        };
    }
}
