using Azure.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using NhiAudit.Audit;
using NhiAudit.IntegrationTests.Infrastructure;
using Npgsql;

namespace NhiAudit.IntegrationTests.Gateway;

/// <summary>No request bypasses the log: when it cannot be written, nothing reaches the server.</summary>
[Collection(PostgresCollectionDefinition.Name)]
public sealed class AuditFailureTests(PostgresServerFixture fixture)
{
    [Fact]
    public async Task When_the_log_cannot_be_written_the_statement_is_refused_and_never_reaches_the_server()
    {
        var log = new SwitchableAuditLog();
        await using var gateway = await GatewayHost.StartAsync(fixture.Server, o => o.ConfigureServices = services =>
            services.Replace(ServiceDescriptor.Singleton<IAuditLog>(sp => log.Wrap(FileAuditLog.Open(sp.GetRequiredService<IOptions<AuditOptions>>().Value)))));
        var table = "never_" + Guid.NewGuid().ToString("N")[..8];
        await using (var admin = new NpgsqlConnection(fixture.Server.ConnectionString()))
        {
            await admin.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE TABLE {table} (id int)", admin);
            await create.ExecuteNonQueryAsync();
        }

        var token = gateway.MintToken("disk-full-job");
        await using var connection = new NpgsqlConnection(gateway.ConnectionString(token));
        await connection.OpenAsync();
        await using (var before = new NpgsqlCommand("SELECT 1", connection))
        {
            Assert.Equal(1, await before.ExecuteScalarAsync());
        }

        log.Failing = true;
        await using (var insert = new NpgsqlCommand($"INSERT INTO {table} VALUES (42)", connection))
        {
            var error = await Assert.ThrowsAsync<PostgresException>(() => insert.ExecuteNonQueryAsync());
            Assert.Equal("58030", error.SqlState);
            Assert.Contains("audit log", error.MessageText, StringComparison.Ordinal);
        }

        // While the log is down nobody gets in: the session start cannot be recorded either.
        await using (var refused = new NpgsqlConnection(gateway.ConnectionString(token)))
        {
            var error = await Assert.ThrowsAsync<PostgresException>(() => refused.OpenAsync());
            Assert.Equal("58030", error.SqlState);
        }

        Assert.Equal(0, await fixture.Server.ExecuteScalarIntAsync($"SELECT count(*) FROM {table}"));
        Assert.DoesNotContain($"INSERT INTO {table}", await fixture.Server.ReadLogAsync(), StringComparison.Ordinal);

        // The disk comes back: so does the gateway, with an unbroken chain.
        log.Failing = false;
        await using (var after = new NpgsqlConnection(gateway.ConnectionString(token)))
        {
            await after.OpenAsync();
            await using var insert = new NpgsqlCommand($"INSERT INTO {table} VALUES (43)", after);
            Assert.Equal(1, await insert.ExecuteNonQueryAsync());
        }

        await gateway.ReadRecordsAsync();
        var verification = AuditVerifier.Verify(gateway.AuditDirectory);
        Assert.True(verification.IsIntact, verification.Problem?.Message);
    }

    [Fact]
    public async Task The_upstream_login_can_use_an_azure_token_credential()
    {
        // Azure Database for PostgreSQL takes an Entra access token as the password. Here the real server's
        // cleartext-password role stands in for it, and the credential hands out that password as its "token".
        var credential = new StaticTokenCredential(PostgresServer.ClearPassword);
        await using var gateway = await GatewayHost.StartAsync(fixture.Server, o =>
        {
            o.UpstreamUser = PostgresServer.ClearUser;
            o.UpstreamPassword = "";
            o.Extra["NhiAudit:Postgres:Targets:0:Upstream:UseAzureIdentity"] = "true";
            o.ConfigureServices = services => services.AddSingleton<TokenCredential>(credential);
        });
        await using var connection = new NpgsqlConnection(gateway.ConnectionString(gateway.MintToken("mi-job")));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT current_user", connection);
        Assert.Equal(PostgresServer.ClearUser, await command.ExecuteScalarAsync());
        Assert.Equal(["https://ossrdbms-aad.database.windows.net/.default"], credential.RequestedScopes.Distinct());
    }

    private sealed class StaticTokenCredential(string token) : TokenCredential
    {
        public List<string> RequestedScopes { get; } = [];

        public override AccessToken GetToken(TokenRequestContext requestContext, CancellationToken cancellationToken)
        {
            RequestedScopes.AddRange(requestContext.Scopes);
            return new AccessToken(token, DateTimeOffset.UtcNow.AddHours(1));
        }

        public override ValueTask<AccessToken> GetTokenAsync(TokenRequestContext requestContext, CancellationToken cancellationToken) =>
            new(GetToken(requestContext, cancellationToken));
    }

    /// <summary>The real file log, with a switch that makes every write fail the way a full disk does.</summary>
    private sealed class SwitchableAuditLog : IAuditLog
    {
        private IAuditLog _inner = null!;

        public volatile bool Failing;

        public SwitchableAuditLog Wrap(IAuditLog inner)
        {
            _inner = inner;
            return this;
        }

        public ValueTask<long> AppendAsync(ReadOnlyMemory<byte> recordBody, AuditAppendMode mode = AuditAppendMode.Request, CancellationToken cancellationToken = default) =>
            Failing && mode == AuditAppendMode.Request
                ? ValueTask.FromException<long>(new AuditLogUnavailableException("audit log write failed: No space left on device"))
                : _inner.AppendAsync(recordBody, mode, cancellationToken);

        public ValueTask FlushAsync(CancellationToken cancellationToken = default) =>
            Failing ? ValueTask.FromException(new AuditLogUnavailableException("audit log write failed: No space left on device")) : _inner.FlushAsync(cancellationToken);

        public ValueTask CommitAsync(CancellationToken cancellationToken = default) =>
            Failing ? ValueTask.FromException(new AuditLogUnavailableException("audit log write failed: No space left on device")) : _inner.CommitAsync(cancellationToken);

        public ValueTask DisposeAsync() => _inner.DisposeAsync();
    }
}
