using System.Globalization;
using System.Text;
using NhiAudit.IntegrationTests.Infrastructure;
using Npgsql;

namespace NhiAudit.IntegrationTests.Gateway;

/// <summary>The evidence after a crash, and the verifier a reviewer runs on it, through the real <c>nhiaudit</c> program.</summary>
[Collection(PostgresCollectionDefinition.Name)]
public sealed class CrashAndVerifyTests(PostgresServerFixture fixture)
{
    [Fact]
    public async Task After_SIGKILL_under_load_every_statement_the_server_executed_has_a_request_record()
    {
        var table = "crash_" + Guid.NewGuid().ToString("N")[..8];
        await using (var admin = new NpgsqlConnection(fixture.Server.ConnectionString()))
        {
            await admin.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE TABLE {table} (client int, n int)", admin);
            await create.ExecuteNonQueryAsync();
        }

        await using var gateway = await GatewayProcess.StartAsync(fixture.Server);
        var subject = "crash-" + Guid.NewGuid().ToString("N")[..6];
        var token = await gateway.MintTokenAsync(subject);
        var script = Path.Combine(gateway.Directory, "insert.sql");
        await File.WriteAllTextAsync(script, $"INSERT INTO {table} VALUES (:client_id, 1);\nSELECT count(*) FROM {table} WHERE client = :client_id;\n");

        var env = new Dictionary<string, string>(GatewayHost.LibpqEnvironment(token)) { ["PGSSLMODE"] = "disable" };
        var load = ProcessRunner.RunAsync(
            PostgresBinaries.Pgbench,
            ["-n", "-c", "4", "-j", "2", "-T", "30", "-f", script, "-h", "127.0.0.1", "-p", gateway.Port.ToString(CultureInfo.InvariantCulture), "-U", "ci-job", PostgresServer.AppDatabase],
            timeout: TimeSpan.FromSeconds(90),
            env: env);
        await Task.Delay(TimeSpan.FromSeconds(3));
        gateway.Kill();
        var loadResult = await load;
        Assert.NotEqual(0, loadResult.ExitCode);

        var records = GatewayHost.ReadRecords(gateway.AuditDirectory);
        var requests = records.OfType("pg.request").Where(r => r.Subject() == subject).ToList();
        var auditedInserts = requests.Count(r => r.Str("kind") == "INSERT");
        var rows = await fixture.Server.ExecuteScalarIntAsync($"SELECT count(*) FROM {table}");
        Assert.True(rows > 100, $"only {rows} rows were inserted before the kill");
        Assert.True(auditedInserts >= rows, $"the server committed {rows} inserts but the log holds {auditedInserts} INSERT records");

        // Per session, the server's own statement log never exceeds what we recorded before forwarding.
        var sessions = requests.Select(r => r.SessionId()!).ToHashSet();
        var serverLog = await fixture.Server.ReadLogAsync();
        var executedBySession = ServerStatementLog.ExecutedBySession(serverLog, sessions);
        var auditedBySession = requests.GroupBy(r => r.SessionId()!).ToDictionary(g => g.Key, g => g.Count());
        Assert.NotEmpty(executedBySession);
        foreach (var (session, executed) in executedBySession)
        {
            Assert.True(auditedBySession[session] >= executed, $"session {session}: server executed {executed}, log holds {auditedBySession[session]}");
            Assert.True(auditedBySession[session] - executed <= 1, $"session {session}: log holds {auditedBySession[session]} requests, server executed {executed}: more than the one in flight");
        }

        var verify = await GatewayProcess.RunCliAsync(["verify", gateway.AuditDirectory]);
        Assert.True(verify.ExitCode == 0, verify.Describe("nhiaudit verify after SIGKILL"));

        // A restarted gateway continues the same chain in a new segment.
        await using (var restarted = await GatewayProcess.StartAsync(fixture.Server, gateway.Directory))
        {
            await using var connection = new NpgsqlConnection($"Host=127.0.0.1;Port={restarted.Port};Username=ci-job;Password={await restarted.MintTokenAsync(subject)};Database=app;SSL Mode=Disable;Pooling=false");
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT 'after restart'", connection);
            Assert.Equal("after restart", await command.ExecuteScalarAsync());
        }

        Assert.True(Directory.GetFiles(gateway.AuditDirectory, "audit-*.jsonl").Length >= 2);
        verify = await GatewayProcess.RunCliAsync(["verify", gateway.AuditDirectory]);
        Assert.True(verify.ExitCode == 0, verify.Describe("nhiaudit verify after restart"));
    }

    [Fact]
    public async Task Verify_passes_an_untouched_log_and_names_the_record_after_tampering()
    {
        string auditDirectory;
        await using (var gateway = await GatewayProcess.StartAsync(fixture.Server))
        {
            var token = await gateway.MintTokenAsync("verify-job");
            await using (var connection = new NpgsqlConnection($"Host=127.0.0.1;Port={gateway.Port};Username=ci-job;Password={token};Database=app;SSL Mode=Disable;Pooling=false"))
            {
                await connection.OpenAsync();
                for (var i = 0; i < 10; i++)
                {
                    await using var command = new NpgsqlCommand($"SELECT {i}", connection);
                    await command.ExecuteScalarAsync();
                }
            }

            auditDirectory = gateway.AuditDirectory;
            await Task.Delay(200);
        }

        var ok = await GatewayProcess.RunCliAsync(["verify", auditDirectory]);
        Assert.True(ok.ExitCode == 0, ok.Describe("verify"));
        Assert.StartsWith("OK:", ok.StandardOutput, StringComparison.Ordinal);

        var segment = Directory.GetFiles(auditDirectory, "audit-*.jsonl").Order(StringComparer.Ordinal).First();
        var lines = await File.ReadAllLinesAsync(segment);
        Assert.True(lines.Length > 12);

        // A changed byte in line 6 (seq 6): "SELECT 1" becomes "SELECT 7" or similar.
        var edited = (string[])lines.Clone();
        var at = edited[5].IndexOf("\"type\"", StringComparison.Ordinal) + 3;
        edited[5] = edited[5][..at] + (edited[5][at] == 'y' ? 'Y' : 'y') + edited[5][(at + 1)..];
        await AssertTamperedAsync(edited, "seq=6");

        // A deleted line 6.
        await AssertTamperedAsync([.. lines[..5], .. lines[6..]], "seq=6");

        // Lines 6 and 7 swapped.
        var swapped = (string[])lines.Clone();
        (swapped[5], swapped[6]) = (swapped[6], swapped[5]);
        await AssertTamperedAsync(swapped, "seq=6");

        async Task AssertTamperedAsync(string[] tampered, string expectedName)
        {
            var copy = Path.Combine(PostgresServer.TempRoot, "tampered-" + Guid.NewGuid().ToString("N")[..8]);
            Directory.CreateDirectory(copy);
            await File.WriteAllTextAsync(Path.Combine(copy, Path.GetFileName(segment)), string.Join('\n', tampered) + "\n", new UTF8Encoding(false));
            var result = await GatewayProcess.RunCliAsync(["verify", copy]);
            Assert.Equal(1, result.ExitCode);
            Assert.Contains(expectedName, result.StandardError, StringComparison.Ordinal);
            Directory.Delete(copy, recursive: true);
        }
    }
}
