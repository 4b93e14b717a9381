using NhiAudit.IntegrationTests.Infrastructure;
using Npgsql;

namespace NhiAudit.IntegrationTests.Gateway;

/// <summary>A startup setting is the SET it amounts to: a rule against a SET holds for <c>-c name=value</c> too.</summary>
[Collection(PostgresCollectionDefinition.Name)]
public sealed class StartupSettingPolicyTests(PostgresServerFixture fixture) : IAsyncLifetime
{
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync() => _gateway = await GatewayHost.StartAsync(fixture.Server, o =>
    {
        o.Extra["NhiAudit:Policy:Rules:0:Name"] = "no-role-switch";
        o.Extra["NhiAudit:Policy:Rules:0:When"] = "request.action == 'SET' && request.text.startsWith('SET role ')";
        o.Extra["NhiAudit:Policy:Rules:0:Effect"] = "Deny";
        o.Extra["NhiAudit:Policy:Rules:0:Reason"] = "jobs keep the gateway's role";
    });

    public async Task DisposeAsync() => await _gateway.DisposeAsync();

    [Fact]
    public async Task A_denied_setting_is_refused_as_a_statement_or_as_a_startup_option()
    {
        var direct = _gateway.ConnectionString(_gateway.MintToken("role-as-statement"));
        await using (var connection = new NpgsqlConnection(direct))
        {
            await connection.OpenAsync();
            await using var set = new NpgsqlCommand("SET role TO 'postgres'", connection);
            Assert.Equal("42501", (await Assert.ThrowsAsync<PostgresException>(() => set.ExecuteNonQueryAsync())).SqlState);
        }

        await using (var connection = new NpgsqlConnection(_gateway.ConnectionString(_gateway.MintToken("role-as-option"), b => b.Options = "-c role=postgres")))
        {
            var error = await Assert.ThrowsAsync<PostgresException>(() => connection.OpenAsync());
            Assert.Equal("42501", error.SqlState);
            Assert.Equal("startup setting role: jobs keep the gateway's role", error.MessageText);
        }

        // Other settings still pass.
        await using (var connection = new NpgsqlConnection(_gateway.ConnectionString(_gateway.MintToken("timeout-as-option"), b => b.Options = "-c statement_timeout=4321")))
        {
            await connection.OpenAsync();
            await using var show = new NpgsqlCommand("SHOW statement_timeout", connection);
            Assert.Equal("4321ms", await show.ExecuteScalarAsync());
        }

        var refused = (await _gateway.ReadRecordsAsync()).OfType("pg.auth.failed").First(r => r.Str("reason") is { } reason && reason.StartsWith("startup setting role", StringComparison.Ordinal));
        Assert.Equal("42501", refused.Str("sqlstate"));
    }
}
