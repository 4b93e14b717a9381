using System.Text.Json;
using NhiAudit.IntegrationTests.Infrastructure;
using Npgsql;

namespace NhiAudit.IntegrationTests.Gateway;

/// <summary>Policy through the gateway: denied statements fail with 42501 and never reach the server; the session goes on.</summary>
[Collection(PostgresCollectionDefinition.Name)]
public sealed class PolicyDenyTests(PostgresServerFixture fixture) : IAsyncLifetime
{
    private GatewayHost _gateway = null!;
    private string _table = "";
    private string _policyFile = "";

    public async Task InitializeAsync()
    {
        _table = "guarded_" + Guid.NewGuid().ToString("N")[..8];
        _policyFile = Path.Combine(PostgresServer.TempRoot, "policy-" + Guid.NewGuid().ToString("N")[..8] + ".json");
        await WritePolicyAsync(
            new { Name = "no-drop", When = "request.action == 'DROP'", Effect = "Deny", Reason = "dropping objects is not allowed through the gateway" },
            new { Name = "no-truncate", When = "request.action == 'TRUNCATE'", Effect = "Deny", Reason = (string?)null },
            new { Name = "no-bulk-delete", When = "request.action == 'DELETE' && !request.hasWhere", Effect = "Deny", Reason = (string?)"DELETE without WHERE" });
        _gateway = await GatewayHost.StartAsync(fixture.Server, o => o.Extra["NhiAudit:Policy:File"] = _policyFile);
        await using var admin = new NpgsqlConnection(fixture.Server.ConnectionString());
        await admin.OpenAsync();
        await using var create = new NpgsqlCommand($"CREATE TABLE {_table} (id int); INSERT INTO {_table} SELECT generate_series(1, 10)", admin);
        await create.ExecuteNonQueryAsync();
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        File.Delete(_policyFile);
    }

    private Task WritePolicyAsync(params object[] rules) =>
        File.WriteAllTextAsync(_policyFile, JsonSerializer.Serialize(new { Policy = new { Rules = rules } }));

    private async Task<NpgsqlConnection> OpenAsync(string subject)
    {
        var connection = new NpgsqlConnection(_gateway.ConnectionString(_gateway.MintToken(subject)));
        await connection.OpenAsync();
        return connection;
    }

    private Task<int> RowsAsync() => fixture.Server.ExecuteScalarIntAsync($"SELECT count(*) FROM {_table}");

    [Theory]
    [InlineData("DROP TABLE {0}", "no-drop", "dropping objects is not allowed through the gateway")]
    [InlineData("TRUNCATE {0}", "no-truncate", "denied by policy rule 'no-truncate'")]
    [InlineData("/* tidy up */ DELETE FROM {0}", "no-bulk-delete", "DELETE without WHERE")]
    [InlineData("WITH d AS (DELETE FROM {0} RETURNING *) SELECT count(*) FROM d", "no-bulk-delete", "DELETE without WHERE")]
    public async Task A_denied_statement_fails_with_42501_in_both_protocols_and_the_session_continues(string template, string rule, string message)
    {
        var sql = string.Format(System.Globalization.CultureInfo.InvariantCulture, template, _table);
        await using var connection = await OpenAsync("policy-" + rule);

        // Extended protocol (Npgsql's default).
        await using (var command = new NpgsqlCommand(sql, connection))
        {
            var error = await Assert.ThrowsAsync<PostgresException>(() => command.ExecuteNonQueryAsync());
            Assert.Equal("42501", error.SqlState);
            Assert.Equal(message, error.MessageText);
        }

        // Simple protocol, inside a multi-statement string: nothing of it runs.
        var psql = await ProcessRunner.RunAsync(
            PostgresBinaries.Psql,
            ["-X", _gateway.LibpqConnectionString(), "-c", $"INSERT INTO {_table} VALUES (99); {sql}"],
            timeout: TimeSpan.FromSeconds(30),
            env: GatewayHost.LibpqEnvironment(_gateway.MintToken("policy-psql-" + rule)));
        Assert.NotEqual(0, psql.ExitCode);
        Assert.Contains(message, psql.StandardError, StringComparison.Ordinal);

        await using (var after = new NpgsqlCommand($"SELECT count(*) FROM {_table}", connection))
        {
            Assert.Equal(10L, await after.ExecuteScalarAsync());
        }

        Assert.Equal(10, await RowsAsync());
        var records = await _gateway.ReadRecordsAsync();
        var denied = records.OfType("pg.request").Where(r => r.Str("refused") == message).ToList();
        Assert.Equal(2, denied.Count);
        Assert.All(denied, r => Assert.Equal(rule, r.GetProperty("policy").GetProperty("rule").GetString()));
        var response = records.OfType("pg.response").Single(r => r.GetProperty("request").GetInt64() == denied[0].GetProperty("seq").GetInt64());
        Assert.Equal("42501", response.Str("sqlstate"));
    }

    [Fact]
    public async Task Allowed_statements_record_the_decision_and_a_delete_with_where_runs()
    {
        await using var connection = await OpenAsync("policy-allowed");
        await using var delete = new NpgsqlCommand($"DELETE FROM {_table} WHERE id = 10", connection);
        Assert.Equal(1, await delete.ExecuteNonQueryAsync());
        var record = (await _gateway.ReadRecordsAsync()).OfType("pg.request").Single(r => r.Subject() == "policy-allowed" && r.Str("kind") == "DELETE");
        Assert.Equal("Allow", record.GetProperty("policy").GetProperty("effect").GetString());
        Assert.Equal("(default)", record.GetProperty("policy").GetProperty("rule").GetString());
    }

    [Fact]
    public async Task The_policy_file_reloads_while_sessions_stay_open()
    {
        await using var connection = await OpenAsync("policy-reload");
        await using (var select = new NpgsqlCommand($"SELECT count(*) FROM {_table}", connection))
        {
            Assert.Equal(10L, await select.ExecuteScalarAsync());
        }

        await WritePolicyAsync(new { Name = "read-only-job", When = $"identity.subject == 'policy-reload' && request.action != 'SELECT'", Effect = "Deny", Reason = "this job is read-only" });
        var deadline = DateTime.UtcNow.AddSeconds(20);
        PostgresException? error = null;
        while (DateTime.UtcNow < deadline)
        {
            await using var insert = new NpgsqlCommand($"INSERT INTO {_table} VALUES (11)", connection);
            try
            {
                await insert.ExecuteNonQueryAsync();
                await using var undo = new NpgsqlCommand($"DELETE FROM {_table} WHERE id = 11", connection);
                await undo.ExecuteNonQueryAsync();
                await Task.Delay(200);
            }
            catch (PostgresException ex)
            {
                error = ex;
                break;
            }
        }

        Assert.NotNull(error);
        Assert.Equal("42501", error.SqlState);
        Assert.Equal("this job is read-only", error.MessageText);

        // The same, still open session keeps reading.
        await using var stillOpen = new NpgsqlCommand($"SELECT 'still reading' FROM {_table} LIMIT 1", connection);
        Assert.Equal("still reading", await stillOpen.ExecuteScalarAsync());
    }
}
