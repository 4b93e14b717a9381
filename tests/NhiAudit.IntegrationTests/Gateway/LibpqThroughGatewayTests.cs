using System.Globalization;
using System.Text.RegularExpressions;
using NhiAudit.IntegrationTests.Infrastructure;

namespace NhiAudit.IntegrationTests.Gateway;

/// <summary>psql and pgbench (libpq) through the gateway, compared with what the real server says it executed.</summary>
[Collection(PostgresCollectionDefinition.Name)]
public sealed partial class LibpqThroughGatewayTests(PostgresServerFixture fixture) : IAsyncLifetime
{
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync() => _gateway = await GatewayHost.StartAsync(fixture.Server);

    public async Task DisposeAsync() => await _gateway.DisposeAsync();

    private Task<ProcessResult> PsqlAsync(string subject, IEnumerable<string> args, string? stdin = null) =>
        ProcessRunner.RunAsync(
            PostgresBinaries.Psql,
            ["-X", "-v", "ON_ERROR_STOP=1", _gateway.LibpqConnectionString(), .. args],
            stdin,
            TimeSpan.FromSeconds(60),
            GatewayHost.LibpqEnvironment(_gateway.MintToken(subject)));

    [Fact]
    public async Task Psql_with_sslmode_require_runs_a_multi_statement_script_and_each_statement_is_audited()
    {
        var table = "psql_" + Guid.NewGuid().ToString("N")[..8];
        var result = await PsqlAsync("psql-job", ["-At", "-c", $"CREATE TABLE {table}(id int); INSERT INTO {table} SELECT generate_series(1,10); SELECT count(*) FROM {table} /* ; not a split */; SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"]);
        Assert.True(result.Succeeded, result.Describe("psql"));
        Assert.Equal("CREATE TABLE\nINSERT 0 10\n10\nt", result.StandardOutput.Trim());

        var records = await _gateway.ReadRecordsAsync();
        var requests = records.OfType("pg.request").Where(r => r.Subject() == "psql-job").ToList();
        Assert.Equal<IEnumerable<string?>>(["CREATE", "INSERT", "SELECT", "SELECT"], requests.Select(r => r.Str("kind")).ToArray());
        Assert.Equal("simple", requests[0].Str("queryMode"));
        Assert.Equal(4, requests[0].GetProperty("of").GetInt32());
        var insert = records.OfType("pg.response").Single(r => r.GetProperty("request").GetInt64() == requests[1].GetProperty("seq").GetInt64());
        Assert.Equal("INSERT 0 10", insert.Str("tag"));

        var start = records.OfType("pg.session.start").Single(r => r.Subject() == "psql-job");
        Assert.True(start.GetProperty("tls").GetBoolean());
        Assert.Equal("FederatedWorkload", start.GetProperty("identity").GetProperty("kind").GetString());
    }

    [Fact]
    public async Task Psql_copy_and_large_object_function_calls_work_and_are_audited()
    {
        var table = "pcopy_" + Guid.NewGuid().ToString("N")[..8];
        var file = Path.Combine(_gateway.Directory, "blob.bin");
        await File.WriteAllBytesAsync(file, Enumerable.Range(0, 300_000).Select(i => (byte)i).ToArray());
        var rows = string.Join('\n', Enumerable.Range(1, 5000).Select(i => $"{i}\tname {i}")) + "\n\\.\n";
        var result = await PsqlAsync(
            "psql-copy",
            ["-At", "-c", $"CREATE TABLE {table}(id int, name text)", "-c", $"COPY {table} FROM STDIN", "-c", $"SELECT sum(id) FROM {table}", "-c", $"\\lo_import {file}"],
            rows);
        Assert.True(result.Succeeded, result.Describe("psql"));
        Assert.Contains("12502500", result.StandardOutput, StringComparison.Ordinal);
        Assert.Matches(LoImportOutput(), result.StandardOutput);

        var records = await _gateway.ReadRecordsAsync();
        var mine = records.Where(r => r.Subject() == "psql-copy").ToList();
        var copy = mine.OfType("pg.request").Single(r => r.Str("kind") == "COPY");
        var copied = records.OfType("pg.response").Single(r => r.GetProperty("request").GetInt64() == copy.GetProperty("seq").GetInt64());
        Assert.Equal("COPY 5000", copied.Str("tag"));
        Assert.Contains(mine.OfType("pg.request"), r => r.Str("kind") == "FUNCTION CALL");
    }

    [Fact]
    public async Task Every_statement_pgbench_ran_on_the_server_has_a_request_record_with_the_identity()
    {
        var direct = new Dictionary<string, string>(PostgresServer.ClientEnvironment) { ["PGPASSWORD"] = PostgresServer.AppPassword, ["PGSSLMODE"] = "require" };
        var init = await ProcessRunner.RunAsync(
            PostgresBinaries.Pgbench,
            ["-i", "-s", "1", "-q", "-h", "127.0.0.1", "-p", fixture.Server.Port.ToString(CultureInfo.InvariantCulture), "-U", PostgresServer.AppUser, PostgresServer.AppDatabase],
            timeout: TimeSpan.FromSeconds(120),
            env: direct);
        Assert.True(init.Succeeded, init.Describe("pgbench -i"));

        var subject = "pgbench-" + Guid.NewGuid().ToString("N")[..6];
        foreach (var mode in new[] { "simple", "prepared" })
        {
            var run = await ProcessRunner.RunAsync(
                PostgresBinaries.Pgbench,
                ["-S", "-n", "-c", "4", "-j", "2", "-T", "3", "-M", mode, "-h", "127.0.0.1", "-p", _gateway.Port.ToString(CultureInfo.InvariantCulture), "-U", "ci-job", PostgresServer.AppDatabase],
                timeout: TimeSpan.FromSeconds(60),
                env: PgbenchEnvironment(_gateway.MintToken(subject)));
            Assert.True(run.Succeeded, run.Describe("pgbench"));
        }

        var records = await _gateway.ReadRecordsAsync();
        var sessions = records.OfType("pg.session.start").Where(r => r.Subject() == subject).Select(r => r.SessionId()!).ToHashSet();
        // Each run: 4 clients plus the connection pgbench opens first to look at the tables.
        Assert.Equal(10, sessions.Count);
        var audited = records.OfType("pg.request").Count(r => r.Subject() == subject);

        // The server's own log (log_statement = all) names our session in application_name; count what it executed.
        var serverLog = await fixture.Server.ReadLogAsync();
        var executed = ServerStatementLog.ExecutedBySession(serverLog, sessions).Values.Sum();
        Assert.True(executed > 1000, $"pgbench executed only {executed} statements");
        Assert.Equal(executed, audited);
    }

    private static Dictionary<string, string> PgbenchEnvironment(string token)
    {
        var env = new Dictionary<string, string>(GatewayHost.LibpqEnvironment(token))
        {
            ["PGSSLMODE"] = "require",
        };
        return env;
    }

    [GeneratedRegex(@"lo_import \d+")]
    private static partial Regex LoImportOutput();
}
