using NhiAudit.IntegrationTests.Infrastructure;
using Npgsql;

namespace NhiAudit.IntegrationTests.Gateway;

/// <summary>
/// The gateway reads SQL text the way the server will, or refuses it. With standard_conforming_strings off (or a
/// multibyte client encoding) a statement could hide inside what the gateway takes for a string literal.
/// </summary>
[Collection(PostgresCollectionDefinition.Name)]
public sealed class LexicalSafetyTests(PostgresServerFixture fixture) : IAsyncLifetime
{
    private GatewayHost _gateway = null!;
    private string _table = "";

    public async Task InitializeAsync()
    {
        _gateway = await GatewayHost.StartAsync(fixture.Server);
        _table = "hidden_" + Guid.NewGuid().ToString("N")[..8];
        await using var admin = new NpgsqlConnection(fixture.Server.ConnectionString());
        await admin.OpenAsync();
        await using var create = new NpgsqlCommand(
            $"CREATE TABLE {_table} (id int); CREATE OR REPLACE FUNCTION flip_{_table}() RETURNS void LANGUAGE plpgsql AS $$ BEGIN PERFORM set_config('standard_conforming_strings', 'off', false); END $$",
            admin);
        await create.ExecuteNonQueryAsync();
    }

    public async Task DisposeAsync() => await _gateway.DisposeAsync();

    private async Task<NpgsqlConnection> OpenAsync(string subject)
    {
        var connection = new NpgsqlConnection(_gateway.ConnectionString(_gateway.MintToken(subject)));
        await connection.OpenAsync();
        return connection;
    }

    private async Task AssertNothingInsertedAsync() =>
        Assert.Equal(0, await fixture.Server.ExecuteScalarIntAsync($"SELECT count(*) FROM {_table}"));

    [Fact]
    public async Task Turning_standard_conforming_strings_off_is_refused_and_the_session_goes_on()
    {
        await using var connection = await OpenAsync("lexical-set");
        foreach (var sql in new[] { "SET standard_conforming_strings = off", "SELECT set_config('standard_conforming_strings', 'off', false)" })
        {
            await using var set = new NpgsqlCommand(sql, connection);
            var error = await Assert.ThrowsAsync<PostgresException>(() => set.ExecuteNonQueryAsync());
            Assert.Equal("0A000", error.SqlState);
        }

        await using var still = new NpgsqlCommand("SHOW standard_conforming_strings", connection);
        Assert.Equal("on", await still.ExecuteScalarAsync());
        var refused = (await _gateway.ReadRecordsAsync()).OfType("pg.request").Where(r => r.Subject() == "lexical-set" && r.Str("refused") is not null).ToList();
        Assert.Equal(2, refused.Count);
    }

    [Fact]
    public async Task A_string_whose_meaning_depends_on_the_setting_is_refused_whole_in_the_simple_protocol()
    {
        // With the setting off this is a SELECT and an INSERT to the server, but two SELECTs to a gateway that assumed on.
        var sql = $"SELECT '\\' ; SELECT '; INSERT INTO {_table} VALUES (1); --'";
        var result = await ProcessRunner.RunAsync(
            PostgresBinaries.Psql,
            ["-X", _gateway.LibpqConnectionString(), "-c", sql],
            timeout: TimeSpan.FromSeconds(30),
            env: GatewayHost.LibpqEnvironment(_gateway.MintToken("lexical-psql")));
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("standard_conforming_strings", result.StandardError, StringComparison.Ordinal);
        await AssertNothingInsertedAsync();
    }

    [Fact]
    public async Task Startup_options_that_would_change_the_reading_are_refused()
    {
        var env = GatewayHost.LibpqEnvironment(_gateway.MintToken("lexical-options"));
        env["PGOPTIONS"] = "-c standard_conforming_strings=off";
        var result = await ProcessRunner.RunAsync(PostgresBinaries.Psql, ["-X", _gateway.LibpqConnectionString(), "-c", "SELECT 1"], timeout: TimeSpan.FromSeconds(30), env: env);
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("standard_conforming_strings must stay on", result.StandardError, StringComparison.Ordinal);

        env = GatewayHost.LibpqEnvironment(_gateway.MintToken("lexical-options-encoding"));
        env["PGOPTIONS"] = "--client-encoding=GBK";
        result = await ProcessRunner.RunAsync(PostgresBinaries.Psql, ["-X", _gateway.LibpqConnectionString(), "-c", "SELECT 1"], timeout: TimeSpan.FromSeconds(30), env: env);
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("client_encoding GBK", result.StandardError, StringComparison.Ordinal);

        env = GatewayHost.LibpqEnvironment(_gateway.MintToken("lexical-sjis"));
        env["PGCLIENTENCODING"] = "SJIS";
        result = await ProcessRunner.RunAsync(PostgresBinaries.Psql, ["-X", _gateway.LibpqConnectionString(), "-c", "SELECT 1"], timeout: TimeSpan.FromSeconds(30), env: env);
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("client_encoding", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Safe_startup_options_reach_the_server_and_the_session_start_record()
    {
        var env = GatewayHost.LibpqEnvironment(_gateway.MintToken("safe-options"));
        env["PGOPTIONS"] = "-c statement_timeout=1234 --search-path=pg_catalog,public -c standard_conforming_strings=on";
        var result = await ProcessRunner.RunAsync(
            PostgresBinaries.Psql,
            ["-X", "-At", _gateway.LibpqConnectionString(), "-c", "SELECT current_setting('statement_timeout') || '|' || current_setting('search_path')"],
            timeout: TimeSpan.FromSeconds(30),
            env: env);
        Assert.True(result.ExitCode == 0, result.StandardError);
        Assert.Equal("1234ms|pg_catalog,public", result.StandardOutput.Trim());
        var start = (await _gateway.ReadRecordsAsync()).OfType("pg.session.start").Single(r => r.Subject() == "safe-options");
        var settings = start.GetProperty("settings");
        Assert.Equal("1234", settings.GetProperty("statement_timeout").GetString());
        Assert.Equal("pg_catalog,public", settings.GetProperty("search_path").GetString());

        env["PGOPTIONS"] = "-B 1000";
        result = await ProcessRunner.RunAsync(PostgresBinaries.Psql, ["-X", _gateway.LibpqConnectionString(), "-c", "SELECT 1"], timeout: TimeSpan.FromSeconds(30), env: env);
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("'-B' is not passed through the gateway", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Resets_and_safe_settings_pass_and_leave_the_reading_unchanged()
    {
        await using var connection = await OpenAsync("lexical-resets");
        foreach (var sql in new[]
        {
            "DISCARD ALL", "RESET ALL", "RESET standard_conforming_strings", "RESET client_encoding", "SET client_encoding = 'UTF8'",
            "SET standard_conforming_strings = on", "SET LOCAL standard_conforming_strings TO DEFAULT", "SELECT set_config('client_encoding', 'UTF8', false)",
            "SET NAMES 'UTF8'",
        })
        {
            await using var command = new NpgsqlCommand(sql, connection);
            await command.ExecuteNonQueryAsync();
        }

        await using var check = new NpgsqlCommand("SELECT current_setting('standard_conforming_strings') || '|' || current_setting('client_encoding')", connection);
        Assert.Equal("on|UTF8", await check.ExecuteScalarAsync());

        // What would really leave the reading changed is still refused, and the session goes on.
        foreach (var sql in new[] { "SET client_encoding = 'SJIS'", "SET NAMES 'BIG5'", "SELECT set_config('client_encoding', $$GBK$$, false)", "ALTER ROLE CURRENT_USER SET client_encoding = 'SJIS'" })
        {
            await using var command = new NpgsqlCommand(sql, connection);
            var error = await Assert.ThrowsAsync<PostgresException>(() => command.ExecuteNonQueryAsync());
            Assert.Equal("0A000", error.SqlState);
        }

        Assert.Equal("on|UTF8", await check.ExecuteScalarAsync());
    }

    [Fact]
    public async Task In_the_extended_protocol_the_execute_is_refused_and_the_rest_of_the_batch_discarded()
    {
        await using var connection = await OpenAsync("lexical-extended");
        await using var batch = new NpgsqlBatch(connection)
        {
            BatchCommands =
            {
                new NpgsqlBatchCommand("SELECT 1"),
                new NpgsqlBatchCommand("SELECT E'a' || '\\'"),
                new NpgsqlBatchCommand($"INSERT INTO {_table} VALUES (2)"),
            },
        };
        var error = await Assert.ThrowsAsync<PostgresException>(() => batch.ExecuteNonQueryAsync());
        Assert.Equal("0A000", error.SqlState);
        await AssertNothingInsertedAsync();

        await using var after = new NpgsqlCommand("SELECT 'usable'", connection);
        Assert.Equal("usable", await after.ExecuteScalarAsync());
    }

    [Fact]
    public async Task A_function_whose_body_flips_the_setting_is_refused_before_it_runs()
    {
        await using var connection = await OpenAsync("lexical-function");
        await using var flip = new NpgsqlCommand($"SELECT flip_{_table}()", connection);
        var error = await Assert.ThrowsAsync<PostgresException>(() => flip.ExecuteNonQueryAsync());
        Assert.Equal("42501", error.SqlState);
        Assert.Contains("would change how SQL text is read", error.MessageText, StringComparison.Ordinal);

        await using var still = new NpgsqlCommand("SHOW standard_conforming_strings", connection);
        Assert.Equal("on", await still.ExecuteScalarAsync());
    }

    [Fact]
    public async Task A_function_changed_behind_the_gateways_back_to_flip_the_setting_ends_the_session()
    {
        // Harmless when the gateway reads the catalog; replaced directly on the server, where the gateway cannot see it.
        var function = $"later_{_table}";
        await using (var admin = new NpgsqlConnection(fixture.Server.ConnectionString()))
        {
            await admin.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE OR REPLACE FUNCTION {function}() RETURNS void LANGUAGE plpgsql AS $$ BEGIN NULL; END $$", admin);
            await create.ExecuteNonQueryAsync();
        }

        await using var connection = await OpenAsync("lexical-changed-function");
        await using (var harmless = new NpgsqlCommand($"SELECT {function}()", connection))
        {
            await harmless.ExecuteNonQueryAsync();
        }

        await using (var admin = new NpgsqlConnection(fixture.Server.ConnectionString()))
        {
            await admin.OpenAsync();
            await using var replace = new NpgsqlCommand($"CREATE OR REPLACE FUNCTION {function}() RETURNS void LANGUAGE plpgsql AS $$ BEGIN PERFORM set_config('standard_conforming_strings', 'off', false); END $$", admin);
            await replace.ExecuteNonQueryAsync();
        }

        // The server reports the change; the gateway can no longer read statements as the server does and ends the session.
        await using var flip = new NpgsqlCommand($"SELECT {function}()", connection);
        var error = await Assert.ThrowsAnyAsync<Exception>(() => flip.ExecuteNonQueryAsync());
        var postgres = error as PostgresException ?? error.InnerException as PostgresException;
        Assert.NotNull(postgres);
        Assert.Equal("0A000", postgres.SqlState);
        Assert.Contains("standard_conforming_strings", postgres.MessageText, StringComparison.Ordinal);
        var end = (await _gateway.ReadRecordsAsync()).OfType("pg.session.end").Single(r => r.Subject() == "lexical-changed-function");
        Assert.StartsWith("protocol violation", end.Str("endReason"), StringComparison.Ordinal);
    }
}
