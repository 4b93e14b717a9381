using System.CommandLine;
using System.Globalization;
using NhiAudit.Audit;

namespace NhiAudit.Proxy.Commands;

/// <summary>
/// <c>nhiaudit verify DIR [DIR…] [--public-key PEM]… [--checkpoint FILE]…</c>: verifies one chain per directory (one per
/// replica). Exit 0 when every chain is intact, 1 naming the first problem of each chain that is not, 2 for usage errors.
/// </summary>
internal static class VerifyCommand
{
    public static Command Create()
    {
        var directories = new Argument<DirectoryInfo[]>("directory")
        {
            Description = "Audit directories (Audit:Directory), one per replica.",
            Arity = ArgumentArity.OneOrMore,
        };
        var publicKeys = new Option<FileInfo[]>("--public-key")
        {
            Description = "PEM public key (or the private key file) that signs checkpoints; repeat for key rotation. Without it signatures are not checked.",
            AllowMultipleArgumentsPerToken = true,
        };
        var checkpoints = new Option<FileInfo[]>("--checkpoint")
        {
            Description = "The last checkpoint published for a replica (checkpoint.json as copied to a sink or witness); detects a cut tail. Repeat per replica.",
            AllowMultipleArgumentsPerToken = true,
        };
        var command = new Command("verify", "Verify the hash chains, checkpoint signatures and published checkpoints of audit logs.")
        {
            directories,
            publicKeys,
            checkpoints,
        };
        command.SetAction(parse => Run(parse.GetValue(directories)!, parse.GetValue(publicKeys) ?? [], parse.GetValue(checkpoints) ?? []));
        return command;
    }

    private static int Run(DirectoryInfo[] directories, FileInfo[] keyFiles, FileInfo[] checkpointFiles)
    {
        var keys = new List<AuditCheckpointVerifier>();
        var published = new List<(AuditCheckpoint Checkpoint, string File)>();
        try
        {
            foreach (var dir in directories)
            {
                if (!dir.Exists)
                {
                    Console.Error.WriteLine($"nhiaudit verify: {dir.FullName} does not exist");
                    return 2;
                }
            }

            foreach (var file in keyFiles)
            {
                keys.Add(AuditCheckpointVerifier.FromFile(file.FullName));
            }

            foreach (var file in checkpointFiles)
            {
                published.Add((AuditCheckpoint.Parse(File.ReadAllText(file.FullName)), file.Name));
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException)
        {
            Console.Error.WriteLine($"nhiaudit verify: {ex.Message}");
            return 2;
        }

        try
        {
            return VerifyAll(directories, keys, published);
        }
        finally
        {
            foreach (var key in keys)
            {
                key.Dispose();
            }
        }
    }

    private static int VerifyAll(DirectoryInfo[] directories, List<AuditCheckpointVerifier> keys, List<(AuditCheckpoint Checkpoint, string File)> published)
    {
        var several = directories.Length > 1;
        var failed = 0;
        var seenReplicas = new Dictionary<string, string>(StringComparer.Ordinal);
        var usedCheckpoints = new HashSet<int>();
        foreach (var dir in directories)
        {
            // The chain's first record (log.opened or log.segment) names the replica, so the right published
            // checkpoint can be matched to it before the one full pass.
            var replica = FirstReplica(dir.FullName);
            var match = published.FindIndex(p => p.Checkpoint.Replica == replica);
            if (match < 0 && published.Count == 1 && directories.Length == 1)
            {
                match = 0; // one log, one checkpoint: check it even if it names another replica (that is a finding)
            }

            if (match >= 0)
            {
                usedCheckpoints.Add(match);
            }

            var result = AuditVerifier.Verify(dir.FullName, new AuditVerifyOptions
            {
                PublicKeys = keys,
                Checkpoint = match >= 0 ? published[match].Checkpoint : null,
            });
            var name = result.Replica ?? "(unnamed)";
            var prefix = several ? $"[{name}] " : "";
            if (result.Replica is not null && seenReplicas.TryGetValue(result.Replica, out var other))
            {
                Console.Error.WriteLine($"{prefix}TAMPERED: {dir.FullName} and {other} both claim to be replica {result.Replica}: one chain was copied or forged");
                failed++;
                continue;
            }

            if (result.Replica is not null)
            {
                seenReplicas[result.Replica] = dir.FullName;
            }

            if (result.IsIntact)
            {
                var range = result.LastSequence is null ? "empty" : $"seq {result.FirstSequence.ToString(CultureInfo.InvariantCulture)}..{result.LastSequence.Value.ToString(CultureInfo.InvariantCulture)}";
                Console.WriteLine($"{prefix}OK: {result.RecordCount} records, chain intact, last seq={result.LastSequence} hash={result.LastHash}");
                Console.WriteLine($"{prefix}  replica={name} {range}; {Checkpoints(result, keys)}{PublishedSummary(result, match >= 0 ? published[match] : null)}");
                if (result.FirstSequence > 1)
                {
                    Console.WriteLine($"{prefix}  records before seq={result.FirstSequence} were removed by retention (log.retention record found)");
                }

                continue;
            }

            failed++;
            var problem = result.Problem!;
            Console.Error.WriteLine($"{prefix}TAMPERED: {problem.Message}");
            Console.Error.WriteLine($"{prefix}  kind={problem.Kind} file={problem.File} line={problem.Line} seq={problem.Sequence?.ToString(CultureInfo.InvariantCulture) ?? "?"}");
        }

        for (var i = 0; i < published.Count; i++)
        {
            if (!usedCheckpoints.Contains(i))
            {
                Console.Error.WriteLine($"MISSING: checkpoint {published[i].File} is for replica {published[i].Checkpoint.Replica}, but no given directory holds that replica's chain");
                failed++;
            }
        }

        return failed == 0 ? 0 : 1;
    }

    private static string? FirstReplica(string directory)
    {
        using var cursor = new AuditLogCursor(directory);
        try
        {
            return cursor.TryRead(out var first) && first.Type is "log.opened" or "log.segment" ? SearchCommand.ReplicaOf(first) : null;
        }
        catch (AuditChainBrokenException)
        {
            return null; // the full pass names what is wrong
        }
    }

    private static string Checkpoints(AuditVerificationResult result, List<AuditCheckpointVerifier> keys) =>
        result.CheckpointCount == 0
            ? "no checkpoints in the chain"
            : result.SignaturesChecked
                ? $"{result.CheckpointCount} checkpoints, signatures verified (key {string.Join(", ", keys.Select(k => k.KeyId))})"
                : $"{result.CheckpointCount} checkpoints, signatures NOT checked (give --public-key)";

    private static string PublishedSummary(AuditVerificationResult result, (AuditCheckpoint Checkpoint, string File)? published) =>
        published is not { } p
            ? "; no published checkpoint given, so a cut tail cannot be ruled out"
            : result.CheckpointMatched == true
                ? $"; holds seq={p.Checkpoint.Sequence} of published checkpoint {p.File}, so its tail was not cut before it"
                : $"; published checkpoint {p.File} (seq={p.Checkpoint.Sequence}) predates the kept log and could not be matched";
}
