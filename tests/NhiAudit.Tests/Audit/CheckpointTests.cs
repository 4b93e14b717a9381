using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using NhiAudit.Audit;
using NSec.Cryptography;
using static NhiAudit.Tests.Audit.AuditLogFiles;

namespace NhiAudit.Tests.Audit;

/// <summary>
/// Signed checkpoints, as an auditor uses them: the log signs its own progress, publishes the newest checkpoint, and
/// <c>verify</c> uses the public key and the published checkpoint to catch what the hash chain alone cannot — a log
/// rewritten and re-chained by someone with write access, a forged signature, a cut tail.
/// </summary>
public sealed class CheckpointTests : IDisposable
{
    private readonly AuditTestDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    public static TheoryData<string> Algorithms => new() { "ES256", "Ed25519" };

    [Theory]
    [MemberData(nameof(Algorithms))]
    public async Task A_signed_log_verifies_with_its_public_key_and_publishes_its_newest_checkpoint(string algorithm)
    {
        using var signer = AuditCheckpointSigner.FromPem(NewKeyPem(algorithm));
        await WriteSignedLogAsync(signer, records: 40);

        var published = AuditCheckpoint.Parse(File.ReadAllText(Path.Combine(_dir.Path, FileAuditLog.CheckpointFileName)));
        var result = AuditVerifier.Verify(_dir.Path, new AuditVerifyOptions { PublicKeys = [signer.PublicKey], Checkpoint = published });

        Assert.True(result.IsIntact, result.Problem?.Message);
        Assert.True(result.SignaturesChecked);
        Assert.True(result.CheckpointCount >= 2, $"expected periodic checkpoints, found {result.CheckpointCount}");
        Assert.True(result.CheckpointMatched);
        Assert.Equal("replica-a", result.Replica);
        Assert.Equal(algorithm, published.Algorithm);
        Assert.Equal(signer.KeyId, published.KeyId);
        Assert.True(signer.PublicKey.Verify(published));

        // The public key travels as PEM; the verifier built from it is the same key.
        using var fromPem = AuditCheckpointVerifier.FromPem(signer.PublicKey.ExportPem());
        Assert.Equal(signer.KeyId, fromPem.KeyId);
        Assert.True(fromPem.Verify(published));
    }

    [Fact]
    public async Task A_record_edited_with_chain_and_checkpoint_claims_rebuilt_is_caught_only_by_the_signatures()
    {
        using var signer = AuditCheckpointSigner.FromPem(NewKeyPem("Ed25519"));
        await WriteSignedLogAsync(signer, records: 40);
        var lines = AllLines(_dir.Path);
        var target = lines.FindIndex(l => Encoding.UTF8.GetString(l).Contains("\"n\":3,", StringComparison.Ordinal));
        lines[target] = Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(lines[target]).Replace("select 3", "select 0", StringComparison.Ordinal));
        Rechain(lines, from: target + 1);
        SaveAsOneSegment(lines);

        // An attacker who re-hashes the chain and the checkpoints' claims fools every check but the signatures.
        Assert.True(AuditVerifier.Verify(_dir.Path).IsIntact);

        var problem = AuditVerifier.Verify(_dir.Path, new AuditVerifyOptions { PublicKeys = [signer.PublicKey] }).Problem;

        Assert.NotNull(problem);
        Assert.Equal(AuditProblemKind.ForgedCheckpoint, problem.Kind);
        Assert.Contains("is not genuine", problem.Message, StringComparison.Ordinal);
        Assert.Contains("signature does not verify", problem.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_record_edited_and_only_the_chain_rebuilt_is_caught_by_the_checkpoint_after_it_even_without_keys()
    {
        using var signer = AuditCheckpointSigner.FromPem(NewKeyPem("ES256"));
        await WriteSignedLogAsync(signer, records: 40);
        var lines = AllLines(_dir.Path);
        var target = lines.FindIndex(l => Encoding.UTF8.GetString(l).Contains("\"n\":3,", StringComparison.Ordinal));
        lines[target] = Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(lines[target]).Replace("select 3", "select 0", StringComparison.Ordinal));
        Rechain(lines, from: target + 1, fixCheckpointClaims: false);
        SaveAsOneSegment(lines);

        var problem = AuditVerifier.Verify(_dir.Path).Problem;

        Assert.NotNull(problem);
        Assert.Equal(AuditProblemKind.ForgedCheckpoint, problem.Kind);
        Assert.Contains("but the record before it is", problem.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_forged_checkpoint_signature_is_named()
    {
        using var signer = AuditCheckpointSigner.FromPem(NewKeyPem("ES256"));
        using var attacker = AuditCheckpointSigner.FromPem(NewKeyPem("ES256"));
        await WriteSignedLogAsync(signer, records: 20);
        var lines = AllLines(_dir.Path);
        var index = lines.FindIndex(l => Encoding.UTF8.GetString(l).Contains("\"log.checkpoint\"", StringComparison.Ordinal));
        var seq = SequenceOf(lines[index]);
        var original = CheckpointIn(lines[index]);
        var forged = original with { Signature = attacker.Sign(original.Replica, original.Sequence, original.Hash, original.Time).Signature };
        var escaped = (string value) => JsonEncodedText.Encode(value).ToString(); // the log escapes '+' in base64
        lines[index] = Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(lines[index]).Replace(escaped(original.Signature), escaped(forged.Signature), StringComparison.Ordinal));
        Assert.NotEqual(original.Signature, CheckpointIn(lines[index]).Signature);
        Rechain(lines, from: index + 1);
        SaveAsOneSegment(lines);

        var problem = AuditVerifier.Verify(_dir.Path, new AuditVerifyOptions { PublicKeys = [signer.PublicKey] }).Problem;

        Assert.NotNull(problem);
        Assert.Equal((AuditProblemKind.ForgedCheckpoint, seq), (problem.Kind, problem.Sequence));
        Assert.Contains($"seq={seq}", problem.Message, StringComparison.Ordinal);
        Assert.Contains("signature does not verify", problem.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_checkpoint_signed_by_an_unknown_key_is_named()
    {
        using var signer = AuditCheckpointSigner.FromPem(NewKeyPem("Ed25519"));
        using var other = AuditCheckpointSigner.FromPem(NewKeyPem("Ed25519"));
        await WriteSignedLogAsync(signer, records: 10);

        var problem = AuditVerifier.Verify(_dir.Path, new AuditVerifyOptions { PublicKeys = [other.PublicKey] }).Problem;

        Assert.NotNull(problem);
        Assert.Equal(AuditProblemKind.ForgedCheckpoint, problem.Kind);
        Assert.Contains($"signed by key {signer.KeyId}, which is not among the given public keys", problem.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_cut_tail_is_detected_with_the_published_checkpoint_and_names_the_missing_records()
    {
        using var signer = AuditCheckpointSigner.FromPem(NewKeyPem("ES256"));
        await WriteSignedLogAsync(signer, records: 30);
        var published = AuditCheckpoint.Parse(File.ReadAllText(Path.Combine(_dir.Path, FileAuditLog.CheckpointFileName)));
        var lines = AllLines(_dir.Path);
        var keep = lines.FindIndex(l => SequenceOf(l) == published.Sequence - 5);
        SaveAsOneSegment(lines.Take(keep + 1).ToList());

        Assert.True(AuditVerifier.Verify(_dir.Path, new AuditVerifyOptions { PublicKeys = [signer.PublicKey] }).IsIntact); // the chain alone cannot tell
        var result = AuditVerifier.Verify(_dir.Path, new AuditVerifyOptions { PublicKeys = [signer.PublicKey], Checkpoint = published });

        Assert.False(result.IsIntact);
        Assert.Equal(AuditProblemKind.Truncated, result.Problem!.Kind);
        Assert.Contains($"the log ends at seq={published.Sequence - 5}", result.Problem.Message, StringComparison.Ordinal);
        Assert.Contains($"records seq={published.Sequence - 4}..{published.Sequence} were cut off the end", result.Problem.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_forged_published_checkpoint_and_one_of_another_replica_are_refused()
    {
        using var signer = AuditCheckpointSigner.FromPem(NewKeyPem("Ed25519"));
        await WriteSignedLogAsync(signer, records: 10);
        var published = AuditCheckpoint.Parse(File.ReadAllText(Path.Combine(_dir.Path, FileAuditLog.CheckpointFileName)));
        var keys = new[] { signer.PublicKey };

        var forged = published with { Sequence = published.Sequence - 1 };
        var forgedProblem = AuditVerifier.Verify(_dir.Path, new AuditVerifyOptions { PublicKeys = keys, Checkpoint = forged }).Problem;
        var otherReplica = signer.Sign("replica-b", published.Sequence, published.Hash, published.Time);
        var replicaProblem = AuditVerifier.Verify(_dir.Path, new AuditVerifyOptions { PublicKeys = keys, Checkpoint = otherReplica }).Problem;

        Assert.Equal(AuditProblemKind.ForgedCheckpoint, forgedProblem!.Kind);
        Assert.Equal(AuditProblemKind.WrongChain, replicaProblem!.Kind);
        Assert.Contains("belongs to replica replica-b, but this log is replica replica-a's", replicaProblem.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_rewritten_log_that_still_reaches_the_checkpoint_seq_is_caught_by_its_hash()
    {
        using var signer = AuditCheckpointSigner.FromPem(NewKeyPem("ES256"));
        await WriteSignedLogAsync(signer, records: 10);
        var published = AuditCheckpoint.Parse(File.ReadAllText(Path.Combine(_dir.Path, FileAuditLog.CheckpointFileName)));

        // Someone rebuilds the whole log from scratch with their own key, long enough to reach the checkpoint's seq.
        var forgedDir = new AuditTestDirectory();
        using (forgedDir)
        {
            using var attacker = AuditCheckpointSigner.FromPem(NewKeyPem("ES256"));
            await using (var log = FileAuditLog.Open(Options(forgedDir.Path), signer: attacker))
            {
                for (var i = 0; i < published.Sequence + 5; i++)
                {
                    await log.AppendAsync(Body(i));
                }
            }

            var problem = AuditVerifier.Verify(forgedDir.Path, new AuditVerifyOptions { PublicKeys = [signer.PublicKey], Checkpoint = published }).Problem;

            Assert.NotNull(problem);
            Assert.Equal(AuditProblemKind.ForgedCheckpoint, problem.Kind); // its own checkpoints are by an unknown key
            var chainOnly = AuditVerifier.Verify(forgedDir.Path, new AuditVerifyOptions { Checkpoint = published }).Problem;
            Assert.Equal((AuditProblemKind.Edited, published.Sequence), (chainOnly!.Kind, chainOnly.Sequence));
        }
    }

    [Fact]
    public async Task Segments_rotate_by_size_and_the_chain_runs_through_them()
    {
        using var signer = AuditCheckpointSigner.FromPem(NewKeyPem("Ed25519"));
        var options = Options(_dir.Path);
        options.MaxSegmentBytes = 4096;
        options.FlushInterval = TimeSpan.FromMilliseconds(5);
        await using (var log = FileAuditLog.Open(options, signer: signer))
        {
            for (var i = 0; i < 200; i++)
            {
                await log.AppendAsync(Body(i));
                if (i % 20 == 0)
                {
                    await WaitUntilAsync(() => SegmentNames(_dir.Path).Length > i / 40);
                }
            }
        }

        var segments = SegmentNames(_dir.Path);
        var result = AuditVerifier.Verify(_dir.Path, new AuditVerifyOptions { PublicKeys = [signer.PublicKey] });

        Assert.True(segments.Length >= 3, $"expected rotation, found {segments.Length} segment(s)");
        Assert.True(result.IsIntact, result.Problem?.Message);
        var text = string.Join("", AllLines(_dir.Path).Select(l => Encoding.UTF8.GetString(l)));
        Assert.Contains("\"type\":\"log.rotated\",\"next\":\"" + segments[1] + "\"", text, StringComparison.Ordinal);
        Assert.Contains("\"type\":\"log.segment\",\"previous\":\"" + segments[0] + "\"", text, StringComparison.Ordinal);

        // Each rotated segment starts with the record its name promises.
        foreach (var name in segments)
        {
            var first = Lines(Path.Combine(_dir.Path, name))[0];
            Assert.Equal(long.Parse(name["audit-".Length..^".jsonl".Length], System.Globalization.CultureInfo.InvariantCulture), SequenceOf(first));
        }

        using var cursor = new AuditLogCursor(_dir.Path);
        var read = new List<long>();
        while (cursor.TryRead(out var entry))
        {
            read.Add(entry.Sequence);
        }

        Assert.Equal(Enumerable.Range(1, (int)result.LastSequence!.Value).Select(i => (long)i), read);
    }

    [Fact]
    public async Task Retention_removes_old_segments_and_says_so_and_a_deletion_beyond_it_is_still_caught()
    {
        var clock = new FixedTimeProvider(DateTimeOffset.UtcNow);
        var options = Options(_dir.Path);
        options.MaxSegmentBytes = 4096;
        options.FlushInterval = TimeSpan.FromMilliseconds(5);
        options.Retention = TimeSpan.FromDays(7);
        await using (var log = FileAuditLog.Open(options, clock))
        {
            await AppendUntilSegmentsAsync(log, 3);

            var before = SegmentNames(_dir.Path);

            // Eight days later the old segments are past retention; the next tick removes them.
            clock.Now += TimeSpan.FromDays(8);
            await WaitUntilAsync(() => !SegmentNames(_dir.Path).Contains(before[0]));
            await log.AppendAsync(Body(999));
        }

        var remaining = SegmentNames(_dir.Path);
        var result = AuditVerifier.Verify(_dir.Path);

        Assert.True(result.IsIntact, result.Problem?.Message);
        Assert.True(result.FirstSequence > 1);
        var retention = AllLines(_dir.Path).Select(l => Encoding.UTF8.GetString(l)).Single(l => l.Contains("\"log.retention\"", StringComparison.Ordinal));
        Assert.Contains($"\"throughSeq\":{result.FirstSequence - 1}", retention, StringComparison.Ordinal);

        // Deleting one more segment by hand is not retention: verify names what is missing.
        File.Delete(Path.Combine(_dir.Path, remaining[0]));
        var problem = AuditVerifier.Verify(_dir.Path).Problem;

        Assert.NotNull(problem);
        Assert.Equal(AuditProblemKind.Deleted, problem.Kind);
        Assert.Contains("no log.retention record accounts for them", problem.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Retention_keeps_segments_a_secondary_sink_has_not_received()
    {
        var clock = new FixedTimeProvider(DateTimeOffset.UtcNow);
        var options = Options(_dir.Path);
        options.MaxSegmentBytes = 4096;
        options.Retention = TimeSpan.FromDays(7);
        long delivered = 0;
        await using (var log = FileAuditLog.Open(options, clock))
        {
            log.RetentionFloor = () => Volatile.Read(ref delivered);
            await AppendUntilSegmentsAsync(log, 3);

            var before = SegmentNames(_dir.Path);
            clock.Now += TimeSpan.FromDays(8);
            await Task.Delay(200); // several ticks: retention runs, but the sink has nothing yet
            Assert.Equal(before, SegmentNames(_dir.Path).Take(before.Length));

            // The sink catches up through the first segment: now that one (and only that one) may go.
            var firstLast = AuditChainTail.ReadLastRecord(Path.Combine(_dir.Path, before[0]))!.Value.Sequence;
            Volatile.Write(ref delivered, firstLast);
            clock.Now += TimeSpan.FromMinutes(2);
            await WaitUntilAsync(() => !SegmentNames(_dir.Path).Contains(before[0]));
            Assert.Contains(before[1], SegmentNames(_dir.Path));
        }

        Assert.True(AuditVerifier.Verify(_dir.Path).IsIntact);
    }

    [Fact]
    public async Task A_first_record_whose_seq_was_edited_is_an_edit_not_a_retained_start()
    {
        using var signer = AuditCheckpointSigner.FromPem(NewKeyPem("Ed25519"));
        await WriteSignedLogAsync(signer, records: 5);
        var lines = AllLines(_dir.Path);
        lines[0] = Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(lines[0]).Replace("{\"seq\":1,", "{\"seq\":2,", StringComparison.Ordinal));
        SaveAsOneSegment(lines);

        var problem = AuditVerifier.Verify(_dir.Path).Problem;

        Assert.NotNull(problem);
        Assert.Equal(1, problem.Line);
    }

    [Theory]
    [InlineData("")]
    [InlineData("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----")]
    [InlineData("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----")]
    public void A_key_that_cannot_sign_is_refused_with_a_reason(string pem) =>
        Assert.Throws<FormatException>(() => AuditCheckpointSigner.FromPem(pem));

    [Fact]
    public void Rsa_and_p384_keys_are_refused()
    {
        using var rsa = RSA.Create(2048);
        using var p384 = ECDsa.Create(ECCurve.NamedCurves.nistP384);

        Assert.Throws<FormatException>(() => AuditCheckpointSigner.FromPem(rsa.ExportPkcs8PrivateKeyPem()));
        var ex = Assert.Throws<FormatException>(() => AuditCheckpointSigner.FromPem(p384.ExportPkcs8PrivateKeyPem()));
        Assert.Contains("P-256", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_log_whose_signing_key_file_is_unusable_does_not_open()
    {
        var options = Options(_dir.Path);
        options.SigningKeyFile = _dir.File("missing.pem");

        var ex = Assert.Throws<AuditLogUnavailableException>(() => FileAuditLog.Open(options));

        Assert.Contains("checkpoint signing key", ex.Message, StringComparison.Ordinal);
    }

    internal static string NewKeyPem(string algorithm)
    {
        if (algorithm == "ES256")
        {
            using var ecdsa = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            return ecdsa.ExportPkcs8PrivateKeyPem();
        }

        using var key = Key.Create(SignatureAlgorithm.Ed25519, new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport });
        return Encoding.ASCII.GetString(key.Export(KeyBlobFormat.PkixPrivateKeyText));
    }

    private static AuditOptions Options(string directory) => new()
    {
        Directory = directory,
        Replica = "replica-a",
        CheckpointInterval = TimeSpan.FromMilliseconds(20),
        FlushInterval = TimeSpan.FromMilliseconds(5),
    };

    private static byte[] Body(int n) => Encoding.UTF8.GetBytes($"{{\"type\":\"pg.query\",\"n\":{n},\"sql\":\"select {n}\"}}");

    private async Task WriteSignedLogAsync(AuditCheckpointSigner signer, int records)
    {
        await using var log = FileAuditLog.Open(Options(_dir.Path), signer: signer);
        for (var i = 0; i < records; i++)
        {
            await log.AppendAsync(Body(i));
            if (i % 10 == 9)
            {
                // Let a checkpoint land between batches so the log holds several.
                var seen = log.LastCheckpoint?.Sequence ?? 0;
                await WaitUntilAsync(() => (log.LastCheckpoint?.Sequence ?? 0) > seen);
            }
        }
    }

    /// <summary>Appends until the log has rotated into <paramref name="segments"/> files.</summary>
    private async Task AppendUntilSegmentsAsync(FileAuditLog log, int segments)
    {
        // Rotation happens on the flush timer, one segment per tick: let it catch up now and then.
        for (var i = 0; SegmentNames(_dir.Path).Length < segments; i++)
        {
            Assert.True(i < 20_000, "the log never rotated");
            await log.AppendAsync(Body(i));
            if (i % 20 == 19)
            {
                await Task.Delay(20);
            }
        }
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (!condition())
        {
            await Task.Delay(10, timeout.Token);
        }
    }

    private void SaveAsOneSegment(List<byte[]> lines)
    {
        foreach (var name in SegmentNames(_dir.Path))
        {
            File.Delete(Path.Combine(_dir.Path, name));
        }

        WriteLines(Path.Combine(_dir.Path, "audit-000000000001.jsonl"), lines);
    }

    private static long SequenceOf(byte[] line)
    {
        using var doc = JsonDocument.Parse(line);
        return doc.RootElement.GetProperty("seq").GetInt64();
    }

    private static AuditCheckpoint CheckpointIn(byte[] line) => AuditCheckpoint.Parse(Encoding.UTF8.GetString(line));

    /// <summary>What someone with write access does after an edit: recompute every later prev so the chain links again.</summary>
    /// <remarks>With <paramref name="fixCheckpointClaims"/> it also rewrites each checkpoint's claimed hash (it cannot re-sign).</remarks>
    private static void Rechain(List<byte[]> lines, int from, bool fixCheckpointClaims = true)
    {
        for (var i = Math.Max(from, 1); i < lines.Count; i++)
        {
            var text = Encoding.UTF8.GetString(lines[i]);
            var prev = Convert.ToHexStringLower(SHA256.HashData(lines[i - 1]));
            text = ReplaceHex(text, "\"prev\":\"", prev);
            if (fixCheckpointClaims && text.Contains("\"log.checkpoint\"", StringComparison.Ordinal))
            {
                text = ReplaceHex(text, "\"hash\":\"", prev);
            }

            lines[i] = Encoding.UTF8.GetBytes(text);
        }

        static string ReplaceHex(string text, string key, string hex)
        {
            var at = text.IndexOf(key, StringComparison.Ordinal) + key.Length;
            return string.Concat(text.AsSpan(0, at), hex, text.AsSpan(at + 64));
        }
    }
}
