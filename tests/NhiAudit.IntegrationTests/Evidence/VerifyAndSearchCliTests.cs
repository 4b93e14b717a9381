using System.Security.Cryptography;
using System.Text;
using NhiAudit.Audit;
using NhiAudit.IntegrationTests.Gateway;
using NhiAudit.IntegrationTests.Infrastructure;

namespace NhiAudit.IntegrationTests.Evidence;

/// <summary>
/// What an auditor runs over the chains of several replicas: <c>nhiaudit verify</c> with the public key and the
/// checkpoints published elsewhere, and <c>nhiaudit search</c> across them.
/// </summary>
public sealed class VerifyAndSearchCliTests : IAsyncLifetime
{
    private static readonly DateTimeOffset Start = new(2026, 11, 28, 9, 0, 0, TimeSpan.Zero);
    private readonly string _root = Directory.CreateTempSubdirectory("nhiaudit-evidence-").FullName;
    private AuditCheckpointSigner _signer = null!;

    private string KeyFile => Path.Combine(_root, "audit-signing.pem");

    private string PublicKeyFile => Path.Combine(_root, "audit-signing.pub.pem");

    private string DirectoryOf(string replica) => Path.Combine(_root, replica);

    private string PublishedCheckpoint(string replica) => Path.Combine(_root, replica + ".checkpoint.json");

    public async Task InitializeAsync()
    {
        using (var ecdsa = ECDsa.Create(ECCurve.NamedCurves.nistP256))
        {
            await File.WriteAllTextAsync(KeyFile, ecdsa.ExportPkcs8PrivateKeyPem());
        }

        _signer = AuditCheckpointSigner.FromFile(KeyFile);
        await File.WriteAllTextAsync(PublicKeyFile, _signer.PublicKey.ExportPem());

        // Two replicas serve the same workloads; their records interleave in time.
        await WriteReplicaAsync("gw-a", offset: TimeSpan.Zero);
        await WriteReplicaAsync("gw-b", offset: TimeSpan.FromSeconds(30));
    }

    public Task DisposeAsync()
    {
        _signer.Dispose();
        Directory.Delete(_root, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task Both_chains_verify_with_the_public_key_and_their_published_checkpoints()
    {
        var result = await Verify(withCheckpoints: true);

        Assert.True(result.ExitCode == 0, result.Describe("verify"));
        Assert.Contains("[gw-a] OK:", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("[gw-b] OK:", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains($"signatures verified (key {_signer.KeyId})", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("holds seq=", result.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_a_published_checkpoint_verify_says_a_cut_tail_cannot_be_ruled_out()
    {
        var result = await GatewayProcess.RunCliAsync(["verify", DirectoryOf("gw-a")]);

        Assert.True(result.ExitCode == 0, result.Describe("verify"));
        Assert.Contains("signatures NOT checked (give --public-key)", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("a cut tail cannot be ruled out", result.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_cut_tail_on_one_replica_is_named_and_the_other_still_passes()
    {
        var checkpoint = AuditCheckpoint.Parse(await File.ReadAllTextAsync(PublishedCheckpoint("gw-b")));
        var segments = Directory.GetFiles(DirectoryOf("gw-b"), "audit-*.jsonl").Order(StringComparer.Ordinal).ToArray();
        var segment = segments[0];
        foreach (var later in segments[1..])
        {
            File.Delete(later);
        }

        var lines = (await File.ReadAllLinesAsync(segment)).Take((int)checkpoint.Sequence - 3).ToArray();
        await File.WriteAllTextAsync(segment, string.Join("", lines.Select(l => l + "\n")));

        var result = await Verify(withCheckpoints: true);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("[gw-a] OK:", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains($"[gw-b] TAMPERED: the log ends at seq={checkpoint.Sequence - 3}", result.StandardError, StringComparison.Ordinal);
        Assert.Contains($"records seq={checkpoint.Sequence - 2}..{checkpoint.Sequence} were cut off the end", result.StandardError, StringComparison.Ordinal);
        Assert.Contains("kind=Truncated", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_forged_published_checkpoint_is_refused()
    {
        using var attacker = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var forger = AuditCheckpointSigner.FromPem(attacker.ExportPkcs8PrivateKeyPem());
        var genuine = AuditCheckpoint.Parse(await File.ReadAllTextAsync(PublishedCheckpoint("gw-a")));
        var forged = forger.Sign("gw-a", genuine.Sequence - 5, genuine.Hash, genuine.Time) with { KeyId = genuine.KeyId };
        await File.WriteAllTextAsync(PublishedCheckpoint("gw-a"), forged.ToJson());

        var result = await Verify(withCheckpoints: true);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("[gw-a] TAMPERED: the published checkpoint", result.StandardError, StringComparison.Ordinal);
        Assert.Contains("signature does not verify", result.StandardError, StringComparison.Ordinal);
        Assert.Contains("kind=ForgedCheckpoint", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_checkpoint_for_a_replica_whose_chain_is_not_given_is_reported_missing()
    {
        var result = await GatewayProcess.RunCliAsync(["verify", DirectoryOf("gw-a"), "--public-key", PublicKeyFile,
            "--checkpoint", PublishedCheckpoint("gw-a"), "--checkpoint", PublishedCheckpoint("gw-b")]);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("is for replica gw-b, but no given directory holds that replica's chain", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Search_finds_one_identitys_deletes_across_replicas_in_time_order()
    {
        var result = await GatewayProcess.RunCliAsync(["search", DirectoryOf("gw-a"), DirectoryOf("gw-b"), "--identity", "deploy-job", "--action", "DELETE"]);

        Assert.True(result.ExitCode == 0, result.Describe("search"));
        var lines = result.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        // Per replica deploy-job ran one SQL DELETE and one kubectl delete (reporting's DELETE is not theirs); gw-b's
        // records are 30 s later than gw-a's, so the merge puts gw-a's first.
        Assert.Equal(4, lines.Length);
        Assert.All(lines, l => Assert.Contains("DELETE", l, StringComparison.OrdinalIgnoreCase));
        Assert.DoesNotContain(lines, l => l.Contains("tmp", StringComparison.Ordinal));
        Assert.Equal(["gw-a", "gw-a", "gw-b", "gw-b"], lines.Select(l => l.Split(' ')[0]));
        Assert.Contains("4 matching record(s)", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Search_filters_by_protocol_and_time_and_prints_exact_lines_as_json()
    {
        var result = await GatewayProcess.RunCliAsync(["search", DirectoryOf("gw-a"), DirectoryOf("gw-b"), "--protocol", "kubernetes",
            "--since", Start.AddMinutes(1).ToString("O", System.Globalization.CultureInfo.InvariantCulture), "--json"]);

        Assert.True(result.ExitCode == 0, result.Describe("search"));
        var lines = result.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.NotEmpty(lines);
        Assert.All(lines, l => Assert.Contains("\"type\":\"k8s.request\"", l, StringComparison.Ordinal));

        // Each printed line is the record byte for byte: its hash is the next record's prev in its own chain.
        var all = Directory.GetDirectories(_root).SelectMany(d => Directory.GetFiles(d, "audit-*.jsonl")).SelectMany(File.ReadAllLines).ToHashSet();
        Assert.All(lines, l => Assert.Contains(l, all));
        Assert.All(lines, l => Assert.DoesNotContain("\"time\":\"2026-11-28T09:00:", l, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Search_rejects_unknown_protocols_and_missing_sources()
    {
        var unknown = await GatewayProcess.RunCliAsync(["search", DirectoryOf("gw-a"), "--protocol", "ftp"]);
        var none = await GatewayProcess.RunCliAsync(["search", "--identity", "x"]);

        Assert.Equal(2, unknown.ExitCode);
        Assert.Contains("unknown --protocol 'ftp'", unknown.StandardError, StringComparison.Ordinal);
        Assert.Equal(2, none.ExitCode);
    }

    private Task<ProcessResult> Verify(bool withCheckpoints) =>
        GatewayProcess.RunCliAsync(withCheckpoints
            ? ["verify", DirectoryOf("gw-a"), DirectoryOf("gw-b"), "--public-key", PublicKeyFile, "--checkpoint", PublishedCheckpoint("gw-a"), "--checkpoint", PublishedCheckpoint("gw-b")]
            : ["verify", DirectoryOf("gw-a"), DirectoryOf("gw-b"), "--public-key", PublicKeyFile]);

    private async Task WriteReplicaAsync(string replica, TimeSpan offset)
    {
        var clock = new SteppingClock(Start + offset);
        var options = new AuditOptions { Directory = DirectoryOf(replica), Replica = replica, CheckpointInterval = TimeSpan.FromMilliseconds(10), FlushInterval = TimeSpan.FromMilliseconds(5) };
        await using (var log = FileAuditLog.Open(options, clock, signer: _signer))
        {
            foreach (var (who, body) in Workload())
            {
                clock.Step(TimeSpan.FromSeconds(10));
                await log.AppendAsync(Encoding.UTF8.GetBytes(body.Replace("WHO", who, StringComparison.Ordinal)));
                await Task.Delay(2);
            }
        }

        // Closing the log signs a last checkpoint over everything before it and writes checkpoint.json.
        // What a sink or a witness would hold: the newest checkpoint, copied out of the gateway's reach.
        File.Copy(Path.Combine(DirectoryOf(replica), FileAuditLog.CheckpointFileName), PublishedCheckpoint(replica));
        await using (var log = FileAuditLog.Open(options, clock, signer: _signer))
        {
            await log.AppendAsync("""{"type":"pg.request","identity":{"subject":"reporting"},"kind":"SELECT","text":"SELECT 1"}"""u8.ToArray());
        }
    }

    private static IEnumerable<(string Who, string Body)> Workload() =>
    [
        ("deploy-job", """{"type":"pg.request","identity":{"subject":"deploy-job","name":"contoso/orders"},"kind":"DELETE","text":"DELETE FROM orders WHERE id = 1"}"""),
        ("reporting", """{"type":"pg.request","identity":{"subject":"WHO"},"kind":"SELECT","text":"SELECT * FROM orders"}"""),
        ("deploy-job", """{"type":"k8s.request","identity":{"subject":"WHO"},"request":{"method":"DELETE","uri":"/api/v1/namespaces/default/pods/web-1","verb":"delete","action":"delete"}}"""),
        ("reporting", """{"type":"pg.request","identity":{"subject":"WHO"},"kind":"DELETE","text":"DELETE FROM tmp"}"""),
        ("deploy-job", """{"type":"k8s.request","identity":{"subject":"WHO"},"request":{"method":"GET","uri":"/api/v1/namespaces/default/pods","verb":"list","action":"list"}}"""),
    ];

    /// <summary>A clock the test moves forward, so record times interleave predictably across replicas.</summary>
    private sealed class SteppingClock(DateTimeOffset start) : TimeProvider
    {
        private long _ticks = start.UtcTicks;

        public void Step(TimeSpan by) => Interlocked.Add(ref _ticks, by.Ticks);

        public override DateTimeOffset GetUtcNow() => new(Interlocked.Read(ref _ticks), TimeSpan.Zero);
    }
}
