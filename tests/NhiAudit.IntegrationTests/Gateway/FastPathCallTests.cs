using System.Buffers.Binary;
using NhiAudit.IntegrationTests.Infrastructure;
using Npgsql;

namespace NhiAudit.IntegrationTests.Gateway;

/// <summary>
/// The fast-path FunctionCall message names a function only by OID: libpq's large-object calls pass, any other
/// function is code the gateway cannot read and is refused (42501) before it runs.
/// </summary>
[Collection(PostgresCollectionDefinition.Name)]
public sealed class FastPathCallTests(PostgresServerFixture fixture) : IAsyncLifetime
{
    private GatewayHost _gateway = null!;
    private string _table = "";
    private uint _dropper;

    public async Task InitializeAsync()
    {
        _gateway = await GatewayHost.StartAsync(fixture.Server, o =>
        {
            o.ClientTlsRequired = false;
            o.Extra["NhiAudit:Policy:Rules:0:Name"] = "no-drop";
            o.Extra["NhiAudit:Policy:Rules:0:When"] = "request.action == 'DROP'";
            o.Extra["NhiAudit:Policy:Rules:0:Effect"] = "Deny";
        });
        _table = "fastpath_" + Guid.NewGuid().ToString("N")[..8];
        await using var app = new NpgsqlConnection(fixture.Server.ConnectionString());
        await app.OpenAsync();
        await using var create = new NpgsqlCommand(
            $"CREATE TABLE {_table} (id int); CREATE FUNCTION drop_{_table}() RETURNS void LANGUAGE plpgsql AS $$ BEGIN DROP TABLE {_table}; END $$; SELECT 'drop_{_table}'::regproc::oid",
            app);
        _dropper = (uint)(await create.ExecuteScalarAsync())!;
    }

    public async Task DisposeAsync() => await _gateway.DisposeAsync();

    private static byte[] FunctionCall(uint oid)
    {
        var body = new byte[4 + 2 + 2 + 2];
        BinaryPrimitives.WriteUInt32BigEndian(body, oid);
        return RawPgClient.Message((byte)'F', body); // no argument formats, no arguments, text result
    }

    [Fact]
    public async Task A_fast_path_call_of_a_function_the_gateway_cannot_read_is_refused_and_the_table_stays()
    {
        await using var client = await RawPgClient.LoginAsync(_gateway.Port, _gateway.MintToken("fast-path"));
        await client.SendAsync(FunctionCall(_dropper));
        var answer = await client.ReadUntilAsync((byte)'Z');
        var error = Assert.Single(answer, m => m.Type == (byte)'E');
        Assert.Equal("42501", RawPgClient.ErrorField(error.Body, 'C'));
        Assert.Contains("fast-path call of function OID", RawPgClient.ErrorField(error.Body, 'M'), StringComparison.Ordinal);
        Assert.Equal(1, await fixture.Server.ExecuteScalarIntAsync($"SELECT count(*)::int FROM pg_class WHERE relname = '{_table}'"));

        // The session goes on.
        await client.SendAsync(RawPgClient.Query("SELECT 1"));
        Assert.Contains(await client.ReadUntilAsync((byte)'Z'), m => m.Type == (byte)'D');
        var records = await _gateway.ReadRecordsAsync();
        Assert.Contains(records.OfType("pg.request"), r => r.Subject() == "fast-path" && r.Str("kind") == "FUNCTION CALL" && r.Str("refused") is not null);
    }
}
