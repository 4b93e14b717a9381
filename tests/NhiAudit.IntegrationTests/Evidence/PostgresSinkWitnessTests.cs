using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using NhiAudit.Audit;
using NhiAudit.IntegrationTests.Gateway;
using NhiAudit.IntegrationTests.Infrastructure;
using Npgsql;

namespace NhiAudit.IntegrationTests.Evidence;

/// <summary>
/// The reference gateway with a PostgreSQL sink and a signing key: the sink receives the chain and its signed
/// checkpoints, <c>nhiaudit search --postgres</c> reads it back, and the sink's checkpoint is the witness that
/// catches a log whose tail was cut on the gateway's disk.
/// </summary>
[Collection(PostgresCollectionDefinition.Name)]
public sealed class PostgresSinkWitnessTests(PostgresServerFixture fixture)
{
    [Fact]
    public async Task The_sink_holds_the_chain_and_its_checkpoint_catches_a_cut_tail_on_the_gateway()
    {
        var sinkDatabase = await fixture.Server.CreateDatabaseAsync();
        var sinkConnection = fixture.Server.ConnectionString(PostgresServer.AdminUser, PostgresServer.AdminPassword, sinkDatabase);
        var directory = Path.Combine(PostgresServer.TempRoot, "witness-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(directory);
        var keyFile = Path.Combine(directory, "audit-signing.pem");
        using (var ecdsa = ECDsa.Create(ECCurve.NamedCurves.nistP256))
        {
            await File.WriteAllTextAsync(keyFile, ecdsa.ExportPkcs8PrivateKeyPem());
        }

        var publicKey = Path.Combine(directory, "audit-signing.pub.pem");
        using (var signer = AuditCheckpointSigner.FromFile(keyFile))
        {
            await File.WriteAllTextAsync(publicKey, signer.PublicKey.ExportPem());
        }

        var auditDirectory = Path.Combine(directory, "audit");
        var adminPort = FreePort.Get();
        await using (var gateway = await GatewayProcess.StartAsync(fixture.Server, directory, configure: section =>
        {
            section["Audit"] = new { Directory = auditDirectory, Durability = "WriteAhead", Replica = "gw-witness", SigningKeyFile = keyFile, CheckpointInterval = "00:00:00.500" };
            section["Sinks"] = new { Postgres = new { ConnectionString = sinkConnection } };
            section["Admin"] = new { Listen = $"127.0.0.1:{adminPort.ToString(CultureInfo.InvariantCulture)}" };
        }))
        {
            var token = await gateway.MintTokenAsync("release-job");
            await using var connection = new NpgsqlConnection($"Host=127.0.0.1;Port={gateway.Port};Username=ci-job;Password={token};Database=app;SSL Mode=Disable;Pooling=false;Server Compatibility Mode=NoTypeLoading");
            await connection.OpenAsync();
            for (var i = 0; i < 20; i++)
            {
                await using var command = new NpgsqlCommand($"SELECT {i.ToString(CultureInfo.InvariantCulture)} AS n", connection);
                await command.ExecuteScalarAsync();
            }

            // The sink catches up with the log, checkpoints included.
            await WaitForAsync(async () => await CheckpointCountAsync(sinkConnection) > 0 && await MaxSeqAsync(sinkConnection) >= LastSequence(auditDirectory) - 2);

            // The admin API shows the same: the sink's progress, and the newest checkpoint for a witness to fetch.
            using var admin = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{adminPort.ToString(CultureInfo.InvariantCulture)}/") };
            using var sinks = JsonDocument.Parse(await admin.GetStringAsync(new Uri("sinks", UriKind.Relative)));
            var postgres = Assert.Single(sinks.RootElement.EnumerateArray());
            Assert.Equal("postgres", postgres.GetProperty("name").GetString());
            Assert.True(postgres.GetProperty("healthy").GetBoolean());
            Assert.True(postgres.GetProperty("deliveredSequence").GetInt64() > 20);
            var fetched = AuditCheckpoint.Parse(await admin.GetStringAsync(new Uri("checkpoint", UriKind.Relative)));
            using var key = AuditCheckpointVerifier.FromFile(publicKey);
            Assert.True(key.Verify(fetched));
            Assert.Equal("gw-witness", fetched.Replica);
        }

        var search = await GatewayProcess.RunCliAsync(["search", "--postgres", sinkConnection, "--identity", "release-job", "--protocol", "postgres", "--action", "SELECT"]);
        Assert.True(search.ExitCode == 0, search.Describe("search --postgres"));
        Assert.Contains("20 matching record(s)", search.StandardError, StringComparison.Ordinal);
        Assert.All(search.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => Assert.StartsWith("gw-witness", l, StringComparison.Ordinal));

        // The witness: the newest checkpoint as the sink published it.
        var witness = Path.Combine(directory, "witness-checkpoint.json");
        await File.WriteAllTextAsync(witness, await LatestCheckpointJsonAsync(sinkConnection));
        var ok = await GatewayProcess.RunCliAsync(["verify", auditDirectory, "--public-key", publicKey, "--checkpoint", witness]);
        Assert.True(ok.ExitCode == 0, ok.Describe("verify"));
        Assert.Contains("signatures verified", ok.StandardOutput, StringComparison.Ordinal);

        // Someone with access to the gateway's disk cuts the log's last records; the chain alone still verifies.
        var checkpoint = AuditCheckpoint.Parse(await File.ReadAllTextAsync(witness));
        var segment = Directory.GetFiles(auditDirectory, "audit-*.jsonl").Order(StringComparer.Ordinal).Last();
        var kept = (await File.ReadAllLinesAsync(segment)).TakeWhile(l => !l.StartsWith($"{{\"seq\":{(checkpoint.Sequence - 1).ToString(CultureInfo.InvariantCulture)},", StringComparison.Ordinal));
        await File.WriteAllTextAsync(segment, string.Concat(kept.Select(l => l + "\n")));
        var chainOnly = await GatewayProcess.RunCliAsync(["verify", auditDirectory, "--public-key", publicKey]);
        Assert.True(chainOnly.ExitCode == 0, chainOnly.Describe("verify without the witness"));

        var cut = await GatewayProcess.RunCliAsync(["verify", auditDirectory, "--public-key", publicKey, "--checkpoint", witness]);
        Assert.Equal(1, cut.ExitCode);
        Assert.Contains("kind=Truncated", cut.StandardError, StringComparison.Ordinal);
        Assert.Contains($"the log ends at seq={checkpoint.Sequence - 2}", cut.StandardError, StringComparison.Ordinal);
    }

    private static long LastSequence(string auditDirectory) =>
        AuditVerifier.Verify(auditDirectory).LastSequence ?? 0;

    private static async Task<long> MaxSeqAsync(string connectionString) =>
        await ScalarAsync<long>(connectionString, "SELECT coalesce(max(seq), 0) FROM nhiaudit.audit_records WHERE replica = 'gw-witness'");

    private static async Task<long> CheckpointCountAsync(string connectionString) =>
        await ScalarAsync<long>(connectionString, "SELECT count(*) FROM nhiaudit.audit_checkpoints WHERE replica = 'gw-witness'");

    private static async Task<string> LatestCheckpointJsonAsync(string connectionString) =>
        await ScalarAsync<string>(connectionString, "SELECT json FROM nhiaudit.audit_checkpoints WHERE replica = 'gw-witness' ORDER BY seq DESC LIMIT 1");

    private static async Task<T> ScalarAsync<T>(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        try
        {
            return (T)(await command.ExecuteScalarAsync())!;
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UndefinedTable)
        {
            return default!; // the sink creates its tables on first delivery
        }
    }

    private static async Task WaitForAsync(Func<Task<bool>> condition)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        while (!await condition())
        {
            await Task.Delay(200, timeout.Token);
        }
    }
}
