using NhiAudit.IntegrationTests.Infrastructure;
using Npgsql;

namespace NhiAudit.IntegrationTests.Gateway;

/// <summary>What the records say a statement is, for statements written to confuse a proxy, in both protocols.</summary>
[Collection(PostgresCollectionDefinition.Name)]
public sealed class ClassificationThroughGatewayTests(PostgresServerFixture fixture) : IAsyncLifetime
{
    private GatewayHost _gateway = null!;
    private string _table = "";

    public async Task InitializeAsync()
    {
        _gateway = await GatewayHost.StartAsync(fixture.Server);
        _table = "cls_" + Guid.NewGuid().ToString("N")[..8];
        await using var admin = new NpgsqlConnection(fixture.Server.ConnectionString());
        await admin.OpenAsync();
        await using var create = new NpgsqlCommand($"CREATE TABLE {_table} (id int, note text); INSERT INTO {_table} SELECT generate_series(1, 5), 'n'", admin);
        await create.ExecuteNonQueryAsync();
    }

    public async Task DisposeAsync() => await _gateway.DisposeAsync();

    // The table name inside a dollar-quoted or escaped string is text, not a table: those rows expect no table.
    public static TheoryData<string, string, bool?, bool> Statements => new()
    {
        { "/* a comment; with a semicolon */ SELECT count(*) FROM {0} -- trailing; comment", "SELECT", null, true },
        { "SELECT $tag$ ; DELETE FROM {0}; $tag$ AS not_a_delete", "SELECT", null, false },
        { "SELECT E'it\\'s; DROP TABLE {0}; --' AS quoted", "SELECT", null, false },
        { "WITH gone AS (DELETE FROM {0} WHERE id = 5 RETURNING *) SELECT count(*) FROM gone", "DELETE", true, true },
        { "WITH changed AS (UPDATE {0} SET note = 'x' RETURNING id) SELECT count(*) FROM changed", "UPDATE", false, true },
        { "UPDATE \"{0}\" SET note = (SELECT 'y' WHERE true) WHERE id = 1", "UPDATE", true, true },
        { "DELETE FROM {0} USING (SELECT 1 AS one WHERE true) s WHERE false", "DELETE", true, true },
    };

    [Theory]
    [MemberData(nameof(Statements))]
    public async Task Tricky_statements_are_classified_as_the_server_runs_them(string template, string kind, bool? hasWhere, bool touchesTable)
    {
        var sql = string.Format(System.Globalization.CultureInfo.InvariantCulture, template, _table);
        var subject = "cls-" + Guid.NewGuid().ToString("N")[..6];
        await using (var connection = new NpgsqlConnection(_gateway.ConnectionString(_gateway.MintToken(subject))))
        {
            await connection.OpenAsync();

            // Extended protocol, prepared and executed twice.
            await using var command = new NpgsqlCommand(sql, connection);
            await command.PrepareAsync();
            await command.ExecuteNonQueryAsync();
            await command.ExecuteNonQueryAsync();
        }

        var psql = await ProcessRunner.RunAsync(
            PostgresBinaries.Psql,
            ["-X", "-v", "ON_ERROR_STOP=1", _gateway.LibpqConnectionString(), "-c", $"SELECT 1; {sql}"],
            timeout: TimeSpan.FromSeconds(30),
            env: GatewayHost.LibpqEnvironment(_gateway.MintToken(subject)));
        Assert.True(psql.Succeeded, psql.Describe("psql"));

        var requests = (await _gateway.ReadRecordsAsync()).OfType("pg.request").Where(r => r.Subject() == subject && r.Str("text") == sql).ToList();
        Assert.Equal(3, requests.Count);
        Assert.Equal(["extended", "extended", "simple"], requests.Select(r => r.Str("queryMode")));
        Assert.All(requests, r =>
        {
            Assert.Equal(kind, r.Str("kind"));
            Assert.Equal(hasWhere, r.TryGetProperty("hasWhere", out var w) ? w.GetBoolean() : null);
            var tables = r.TryGetProperty("tables", out var t) ? t.EnumerateArray().Select(e => e.GetString()).ToList() : [];
            Assert.Equal(touchesTable, tables.Contains(_table));
        });
    }
}
