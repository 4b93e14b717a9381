using System.Globalization;
using Npgsql;
using Xunit.Abstractions;

namespace NhiAudit.IntegrationTests.Infrastructure;

/// <summary>Smoke tests of the test infrastructure itself: if these fail, every PostgreSQL test would.</summary>
[Collection(PostgresCollectionDefinition.Name)]
public sealed class PostgresServerTests(PostgresServerFixture fixture)
{
    private readonly PostgresServer _server = fixture.Server;

    [Fact]
    public async Task App_logs_in_over_tls_with_scram()
    {
        await using var conn = new NpgsqlConnection(_server.ConnectionString());
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("select ssl from pg_stat_ssl where pid = pg_backend_pid()", conn);
        Assert.Equal(true, await cmd.ExecuteScalarAsync());
    }

    [Fact]
    public async Task App_verifies_the_self_signed_certificate_with_verify_full()
    {
        var csb = new NpgsqlConnectionStringBuilder(_server.ConnectionString())
        {
            SslMode = SslMode.VerifyFull,
            RootCertificate = _server.CertificateFile,
            Pooling = false,
        };
        await using var conn = new NpgsqlConnection(csb.ConnectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("select ssl from pg_stat_ssl where pid = pg_backend_pid()", conn);
        Assert.Equal(true, await cmd.ExecuteScalarAsync());
    }

    [Fact]
    public async Task Verify_full_without_the_root_certificate_is_refused()
    {
        var csb = new NpgsqlConnectionStringBuilder(_server.ConnectionString()) { SslMode = SslMode.VerifyFull, Pooling = false };
        await using var conn = new NpgsqlConnection(csb.ConnectionString);
        await Assert.ThrowsAnyAsync<Exception>(() => conn.OpenAsync());
    }

    [Fact]
    public async Task Md5user_logs_in_with_md5_and_its_password_is_stored_as_md5()
    {
        Assert.Equal(1, await _server.ExecuteScalarIntAsync("select count(*) from pg_authid where rolname = 'md5user' and rolpassword like 'md5%'"));
        var csb = new NpgsqlConnectionStringBuilder(_server.ConnectionString(PostgresServer.Md5User, PostgresServer.Md5Password)) { SslMode = SslMode.Disable, Pooling = false };
        await using var conn = new NpgsqlConnection(csb.ConnectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("select current_user", conn);
        Assert.Equal("md5user", await cmd.ExecuteScalarAsync());
    }

    [Fact]
    public async Task Clearuser_logs_in_with_a_cleartext_password()
    {
        var csb = new NpgsqlConnectionStringBuilder(_server.ConnectionString(PostgresServer.ClearUser, PostgresServer.ClearPassword)) { Pooling = false };
        await using var conn = new NpgsqlConnection(csb.ConnectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("select current_user", conn);
        Assert.Equal("clearuser", await cmd.ExecuteScalarAsync());
    }

    [Fact]
    public async Task A_wrong_password_is_refused()
    {
        var csb = new NpgsqlConnectionStringBuilder(_server.ConnectionString(password: "wrong")) { Pooling = false };
        await using var conn = new NpgsqlConnection(csb.ConnectionString);
        var e = await Assert.ThrowsAsync<PostgresException>(() => conn.OpenAsync());
        Assert.Equal("28P01", e.SqlState);
    }

    [Fact]
    public async Task Log_statement_all_writes_each_statement_with_the_prefix()
    {
        var marker = "marker_" + Guid.NewGuid().ToString("N");
        var csb = new NpgsqlConnectionStringBuilder(_server.ConnectionString()) { ApplicationName = "smoke-test", Pooling = false };
        await using (var conn = new NpgsqlConnection(csb.ConnectionString))
        {
            await conn.OpenAsync();
            await using var cmd = new NpgsqlCommand($"select '{marker}'", conn);
            await cmd.ExecuteScalarAsync();
        }

        var log = await _server.WaitForLogAsync(marker);
        var line = log.Split('\n').First(l => l.Contains(marker, StringComparison.Ordinal));
        Assert.Contains("app=smoke-test user=app db=app ", line, StringComparison.Ordinal);
        // Npgsql uses the extended protocol: log_statement writes "execute <unnamed>: …"; psql's simple query gives "statement: …".
        Assert.Contains("execute <unnamed>: select '" + marker + "'", line, StringComparison.Ordinal);

        var psql = await _server.RunPsqlAsync(["-c", $"select '{marker}_psql'"]);
        Assert.True(psql.Succeeded, psql.Describe("psql"));
        log = await _server.WaitForLogAsync(marker + "_psql");
        Assert.Contains($"user=app db=app LOG:  statement: select '{marker}_psql'", log, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Psql_runs_against_the_server()
    {
        var result = await _server.RunPsqlAsync(["-At", "-c", "select 40 + 2", "-c", "select ssl from pg_stat_ssl where pid = pg_backend_pid()"]);
        Assert.True(result.Succeeded, result.Describe("psql"));
        Assert.Equal("42\nt", result.StandardOutput.Trim());
    }

    [Fact]
    public async Task Pgbench_initializes_and_runs_select_only()
    {
        var db = await _server.CreateDatabaseAsync();
        var conn = _server.LibpqConnectionString(database: db);
        var init = await ProcessRunner.RunAsync(PostgresBinaries.Pgbench, ["-i", "-s", "1", "-q", conn], null, TimeSpan.FromSeconds(120), PostgresServer.ClientEnvironment);
        Assert.True(init.Succeeded, init.Describe("pgbench -i"));

        var run = await ProcessRunner.RunAsync(PostgresBinaries.Pgbench, ["-S", "-T", "2", "-c", "2", "-j", "2", conn], null, TimeSpan.FromSeconds(60), PostgresServer.ClientEnvironment);
        Assert.True(run.Succeeded, run.Describe("pgbench -S"));
        Assert.Matches(@"tps = \d+", run.StandardOutput);
    }

    [Fact]
    public async Task Pgbouncer_in_session_mode_relays_to_the_server()
    {
        Assert.True(PgBouncer.Executable is not null, "pgbouncer is not installed (eng/prereqs.sh installs it)");
        var db = await _server.CreateDatabaseAsync();
        var init = await ProcessRunner.RunAsync(PostgresBinaries.Pgbench, ["-i", "-s", "1", "-q", _server.LibpqConnectionString(database: db)],
            null, TimeSpan.FromSeconds(120), PostgresServer.ClientEnvironment);
        Assert.True(init.Succeeded, init.Describe("pgbench -i"));

        await using var bouncer = await PgBouncer.StartAsync(_server);
        await using (var conn = new NpgsqlConnection(bouncer.ConnectionString(database: db)))
        {
            await conn.OpenAsync();
            await using var cmd = new NpgsqlCommand("select current_setting('port')", conn);
            Assert.Equal(_server.Port.ToString(CultureInfo.InvariantCulture), await cmd.ExecuteScalarAsync());
        }

        var run = await ProcessRunner.RunAsync(PostgresBinaries.Pgbench, ["-S", "-T", "1", "-c", "2", "-j", "2", bouncer.LibpqConnectionString(database: db)],
            null, TimeSpan.FromSeconds(60), PostgresServer.ClientEnvironment);
        Assert.True(run.Succeeded, run.Describe("pgbench -S via pgbouncer"));

        var port = bouncer.Port;
        await bouncer.DisposeAsync();
        Assert.False(FreePort.IsListening(port));
    }
}

/// <summary>Tests that need a server of their own (options, stop/restart, cleanup).</summary>
public sealed class PostgresServerLifecycleTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Without_tls_and_with_extra_configuration()
    {
        await using var server = await PostgresServer.StartAsync(new PostgresServerOptions { Tls = false, ExtraConfiguration = ["work_mem = '7MB'"] });
        Assert.Equal("7MB", await server.ExecuteScalarAsync("show work_mem"));
        Assert.Equal("off", await server.ExecuteScalarAsync("show ssl"));
        Assert.Equal("none", await server.ExecuteScalarAsync("show log_statement"));

        var csb = new NpgsqlConnectionStringBuilder(server.ConnectionString()) { SslMode = SslMode.Require, Pooling = false };
        await using var conn = new NpgsqlConnection(csb.ConnectionString);
        await Assert.ThrowsAnyAsync<Exception>(() => conn.OpenAsync());
    }

    [Fact]
    public async Task Stop_restart_and_dispose_remove_everything()
    {
        var server = await PostgresServer.StartAsync();
        output.WriteLine($"started {server} in {server.StartDuration.TotalMilliseconds:F0} ms");
        var dir = server.Directory;
        var port = server.Port;
        Assert.True(Directory.Exists(server.DataDirectory));
        Assert.True(FreePort.IsListening(port));

        var sw = System.Diagnostics.Stopwatch.StartNew();
        await server.StopAsync();
        output.WriteLine($"stopped in {sw.ElapsedMilliseconds} ms");
        Assert.False(FreePort.IsListening(port));
        sw.Restart();
        await server.RestartAsync();
        output.WriteLine($"restarted in {sw.ElapsedMilliseconds} ms");
        Assert.Equal(1, await server.ExecuteScalarIntAsync("select 1"));

        sw.Restart();
        await server.DisposeAsync();
        output.WriteLine($"disposed in {sw.ElapsedMilliseconds} ms");
        Assert.False(FreePort.IsListening(port));
        Assert.False(Directory.Exists(dir));
    }

    [Fact]
    public async Task Two_servers_start_in_parallel_on_different_ports()
    {
        var started = await Task.WhenAll(PostgresServer.StartAsync(), PostgresServer.StartAsync());
        try
        {
            Assert.NotEqual(started[0].Port, started[1].Port);
            output.WriteLine($"parallel starts: {started[0].StartDuration.TotalMilliseconds:F0} ms, {started[1].StartDuration.TotalMilliseconds:F0} ms");
            foreach (var s in started)
            {
                Assert.Equal(s.Port, await s.ExecuteScalarIntAsync("select current_setting('port')::int"));
            }
        }
        finally
        {
            foreach (var s in started)
            {
                await s.DisposeAsync();
            }
        }
    }
}

public sealed class ProcessRunnerTests
{
    [Fact]
    public async Task Captures_exit_code_stdout_stderr_and_stdin()
    {
        var r = await ProcessRunner.RunAsync("sh", ["-c", "cat; echo err >&2; exit 3"], "hello", TimeSpan.FromSeconds(10), null);
        Assert.Equal(3, r.ExitCode);
        Assert.Equal("hello", r.StandardOutput);
        Assert.Equal("err\n", r.StandardError);
        Assert.False(r.TimedOut);
    }

    [Fact]
    public async Task Kills_on_timeout()
    {
        var r = await ProcessRunner.RunAsync("sleep", ["30"], null, TimeSpan.FromMilliseconds(300), null);
        Assert.True(r.TimedOut);
        Assert.Equal(-1, r.ExitCode);
        Assert.True(r.Elapsed < TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task Passes_and_removes_environment_variables()
    {
        var r = await ProcessRunner.RunAsync("sh", ["-c", "echo \"$NHI_A-${HOME:-nohome}\""], null, TimeSpan.FromSeconds(10),
            new Dictionary<string, string> { ["NHI_A"] = "x", ["HOME"] = "" });
        Assert.Equal("x-nohome\n", r.StandardOutput);
    }
}
