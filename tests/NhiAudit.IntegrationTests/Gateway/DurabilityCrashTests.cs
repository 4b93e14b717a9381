using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using NhiAudit.Audit;
using NhiAudit.IntegrationTests.Infrastructure;
using Npgsql;
using Xunit.Abstractions;

namespace NhiAudit.IntegrationTests.Gateway;

/// <summary>
/// SIGKILL of the real <c>nhiaudit</c> process under pgbench load, at each durability level: what the server executed
/// (rows in a table) against what the log holds (request records naming those rows).
/// </summary>
/// <remarks>
/// A SIGKILL loses the process's memory, not the operating system's page cache, so it tells Buffered (records batched
/// in memory) from WriteAhead and Durable (records handed to the kernel before forwarding). Whether Durable's fsync
/// survives a host crash (power loss) cannot be shown by killing a process; that is what its fsync is for.
/// </remarks>
[Collection(PostgresCollectionDefinition.Name)]
public sealed class DurabilityCrashTests(PostgresServerFixture fixture, ITestOutputHelper output)
{
    private const string Subject = "crash-probe";

    [Theory]
    [InlineData("Buffered")]
    [InlineData("WriteAhead")]
    [InlineData("Durable")]
    public async Task After_SIGKILL_under_pgbench_load_the_log_holds_every_executed_insert_unless_buffered(string durability)
    {
        var table = "probe_" + Guid.NewGuid().ToString("N")[..8];
        await fixture.Server.ExecuteAsync($"CREATE TABLE {table} (client int, n int, PRIMARY KEY (client, n)); GRANT ALL ON {table} TO {PostgresServer.AppUser}");

        var directory = Path.Combine(PostgresServer.TempRoot, "gwp-crash-" + durability.ToLowerInvariant() + "-" + Guid.NewGuid().ToString("N")[..6]);
        try
        {
            await using var gateway = await GatewayProcess.StartAsync(fixture.Server, directory, durability);
            var token = await gateway.MintTokenAsync(Subject);

            // Each client counts its own inserts (-D n=0, then n+1 per transaction), so (client, n) names one statement
            // both in the table and, with -M simple, literally in the text of its request record.
            var script = Path.Combine(directory, "probe.sql");
            await File.WriteAllTextAsync(script, $"\\set n :n + 1\nINSERT INTO {table} (client, n) VALUES (:client_id, :n);\n");
            var environment = new Dictionary<string, string>(GatewayHost.LibpqEnvironment(token)) { ["PGSSLMODE"] = "disable" };
            var load = ProcessRunner.RunAsync(
                PostgresBinaries.Pgbench,
                ["-n", "-M", "simple", "-c", "8", "-j", "2", "-T", "60", "-D", "n=0", "-f", script,
                 "-h", "127.0.0.1", "-p", gateway.Port.ToString(CultureInfo.InvariantCulture), "-U", "ci-job", PostgresServer.AppDatabase],
                timeout: TimeSpan.FromSeconds(120),
                env: environment);

            await WaitForFirstRowAsync(table, load);
            await Task.Delay(TimeSpan.FromSeconds(2));
            gateway.Kill();
            var loadResult = await load;
            Assert.True(loadResult.ExitCode != 0, loadResult.Describe("pgbench should lose its connections when the gateway dies"));

            var executed = await ReadExecutedAsync(table);
            var logged = LoggedInserts(GatewayHost.ReadRecords(gateway.AuditDirectory), table);
            var missing = executed.Except(logged).Count();
            var inFlight = logged.Except(executed).Count();
            output.WriteLine($"{durability} executed={executed.Count} logged={logged.Count} missing={missing} (logged but not executed: {inFlight}, the statements in flight)");
            Assert.True(executed.Count > 100, $"only {executed.Count} inserts ran before the kill: too little load to show anything");

            if (durability != "Buffered")
            {
                // The guarantee: a statement reaches the server only after its record reached the operating system.
                Assert.True(missing == 0, $"{durability}: {missing} of {executed.Count} inserts the server executed have no request record");
            }

            // Every level: a restarted gateway recovers what the crash left (a torn line is cut and recorded), continues
            // the chain in a new segment and says the previous one was not closed.
            await using var restarted = await GatewayProcess.StartAsync(fixture.Server, directory, durability);
            await using (var connection = new NpgsqlConnection($"Host=127.0.0.1;Port={restarted.Port};Username=ci-job;Password={await restarted.MintTokenAsync(Subject)};Database=app;SSL Mode=Disable;Pooling=false"))
            {
                await connection.OpenAsync();
                await using var count = new NpgsqlCommand($"SELECT count(*) FROM {table}", connection);
                Assert.Equal((long)executed.Count, await count.ExecuteScalarAsync());
            }

            var opened = GatewayHost.ReadRecords(restarted.AuditDirectory).OfType("log.opened").Last();
            Assert.Equal(durability, opened.Str("durability"));
            Assert.True(
                opened.TryGetProperty("previousClosed", out var previousClosed) && previousClosed.ValueKind == JsonValueKind.False,
                $"the restarted segment's log.opened should say previousClosed:false, got {opened}");

            var verification = AuditVerifier.Verify(restarted.AuditDirectory);
            Assert.True(verification.IsIntact, $"{durability}: the chain does not verify after the restart: {verification.Problem?.Message}");
        }
        finally
        {
            TryDeleteDirectory(directory);
        }
    }

    private static HashSet<(int Client, int N)> LoggedInserts(IEnumerable<JsonElement> records, string table)
    {
        var insert = new Regex($@"^INSERT INTO {table} \(client, n\) VALUES \((?<client>\d+), (?<n>\d+)\)", RegexOptions.CultureInvariant);
        var logged = new HashSet<(int, int)>();
        foreach (var record in records.OfType("pg.request").Where(r => r.Subject() == Subject))
        {
            if (record.Str("text") is { } text && insert.Match(text) is { Success: true } match)
            {
                logged.Add((int.Parse(match.Groups["client"].Value, CultureInfo.InvariantCulture), int.Parse(match.Groups["n"].Value, CultureInfo.InvariantCulture)));
            }
        }

        return logged;
    }

    private async Task<HashSet<(int Client, int N)>> ReadExecutedAsync(string table)
    {
        var executed = new HashSet<(int, int)>();
        await using var connection = new NpgsqlConnection(fixture.Server.ConnectionString());
        await connection.OpenAsync();
        await using var select = new NpgsqlCommand($"SELECT client, n FROM {table}", connection);
        await using var reader = await select.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            executed.Add((reader.GetInt32(0), reader.GetInt32(1)));
        }

        return executed;
    }

    /// <summary>Waits until pgbench is inserting, so the kill lands under load rather than during its logins.</summary>
    private async Task WaitForFirstRowAsync(string table, Task<ProcessResult> load)
    {
        for (var attempt = 0; attempt < 600; attempt++)
        {
            if (load.IsCompleted)
            {
                Assert.Fail((await load).Describe("pgbench stopped before the gateway was killed"));
            }

            if (await fixture.Server.ExecuteScalarIntAsync($"SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT 1) AS any_row") > 0)
            {
                return;
            }

            await Task.Delay(100);
        }

        Assert.Fail("pgbench inserted nothing through the gateway within a minute");
    }

    private static void TryDeleteDirectory(string directory)
    {
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a leftover temp folder is harmless.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
