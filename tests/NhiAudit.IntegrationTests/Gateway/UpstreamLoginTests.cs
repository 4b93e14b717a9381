using NhiAudit.IntegrationTests.Infrastructure;
using Npgsql;

namespace NhiAudit.IntegrationTests.Gateway;

/// <summary>The gateway logs in upstream with its own credential, whatever method and TLS mode the server demands.</summary>
[Collection(PostgresCollectionDefinition.Name)]
public sealed class UpstreamLoginTests(PostgresServerFixture fixture)
{
    [Theory]
    [InlineData(PostgresServer.AppUser, PostgresServer.AppPassword, "Require")]
    [InlineData(PostgresServer.Md5User, PostgresServer.Md5Password, "Require")]
    [InlineData(PostgresServer.ClearUser, PostgresServer.ClearPassword, "Require")]
    [InlineData(PostgresServer.AppUser, PostgresServer.AppPassword, "Disable")]
    [InlineData(PostgresServer.AppUser, PostgresServer.AppPassword, "Prefer")]
    public async Task The_gateway_logs_in_with_scram_md5_or_cleartext_over_each_sslmode(string user, string password, string sslMode)
    {
        await using var gateway = await GatewayHost.StartAsync(fixture.Server, o =>
        {
            o.UpstreamUser = user;
            o.UpstreamPassword = password;
            o.SslMode = sslMode;
        });
        await using var connection = new NpgsqlConnection(gateway.ConnectionString(gateway.MintToken("upstream-" + user)));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT current_user, coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)", connection);
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        Assert.Equal(user, reader.GetString(0));
        Assert.Equal(sslMode != "Disable", reader.GetBoolean(1));
    }

    [Fact]
    public async Task Verify_full_accepts_the_servers_certificate_from_the_configured_ca_and_host_name()
    {
        await using var gateway = await GatewayHost.StartAsync(fixture.Server, o =>
        {
            o.SslMode = "VerifyFull";
            o.CaFile = fixture.Server.CertificateFile;
            o.UpstreamHost = "localhost";
        });
        await using var connection = new NpgsqlConnection(gateway.ConnectionString(gateway.MintToken("verify-full")));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", connection);
        Assert.Equal(true, await command.ExecuteScalarAsync());
    }

    [Fact]
    public async Task Verify_full_refuses_a_server_whose_certificate_the_gateway_cannot_trust()
    {
        await using var gateway = await GatewayHost.StartAsync(fixture.Server, o => o.SslMode = "VerifyFull");
        await using var connection = new NpgsqlConnection(gateway.ConnectionString(gateway.MintToken("verify-full-untrusted")));
        var error = await Assert.ThrowsAsync<PostgresException>(() => connection.OpenAsync());
        Assert.Equal("08006", error.SqlState);
        Assert.StartsWith("upstream:", error.MessageText, StringComparison.Ordinal);
        var refused = (await gateway.ReadRecordsAsync()).OfType("pg.session.refused").ToList();
        Assert.NotEmpty(refused);
        Assert.All(refused, r => Assert.Equal("verify-full-untrusted", r.Subject()));
    }

    [Fact]
    public async Task A_wrong_upstream_password_is_reported_to_the_client_without_revealing_it()
    {
        await using var gateway = await GatewayHost.StartAsync(fixture.Server, o => o.UpstreamPassword = "wrong-secret");
        await using var connection = new NpgsqlConnection(gateway.ConnectionString(gateway.MintToken("bad-upstream")));
        var error = await Assert.ThrowsAsync<PostgresException>(() => connection.OpenAsync());
        Assert.Equal("28P01", error.SqlState);
        Assert.DoesNotContain("wrong-secret", error.MessageText, StringComparison.Ordinal);
    }
}
