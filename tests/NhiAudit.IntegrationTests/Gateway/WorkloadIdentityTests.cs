using NhiAudit.Identity;
using NhiAudit.IntegrationTests.Infrastructure;
using Npgsql;

namespace NhiAudit.IntegrationTests.Gateway;

/// <summary>The password is a workload token: who may connect, what the log says about them, and when they must leave.</summary>
[Collection(PostgresCollectionDefinition.Name)]
public sealed class WorkloadIdentityTests(PostgresServerFixture fixture) : IAsyncLifetime
{
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync() => _gateway = await GatewayHost.StartAsync(fixture.Server, o => o.ClockSkew = TimeSpan.Zero);

    public async Task DisposeAsync() => await _gateway.DisposeAsync();

    [Fact]
    public async Task A_garbage_token_fails_the_startup_with_28P01_and_the_attempt_is_audited()
    {
        await using var connection = new NpgsqlConnection(_gateway.ConnectionString("this-is-not-a-token"));
        var error = await Assert.ThrowsAsync<PostgresException>(() => connection.OpenAsync());
        Assert.Equal("28P01", error.SqlState);
        Assert.StartsWith("workload token rejected:", error.MessageText, StringComparison.Ordinal);

        var refused = (await _gateway.ReadRecordsAsync()).OfType("pg.auth.failed").Last();
        Assert.Equal("28P01", refused.Str("sqlstate"));
        Assert.Equal("ci-job", refused.Str("user"));
        Assert.DoesNotContain("this-is-not-a-token", refused.GetRawText(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_expired_token_fails_with_a_message_that_says_so()
    {
        var expired = _gateway.Issuer.MintToken(new TokenRequest
        {
            Subject = "late-job",
            IssuedAt = DateTimeOffset.UtcNow.AddHours(-2),
            NotBefore = DateTimeOffset.UtcNow.AddHours(-2),
            Lifetime = TimeSpan.FromHours(1),
        });
        await using var connection = new NpgsqlConnection(_gateway.ConnectionString(expired));
        var error = await Assert.ThrowsAsync<PostgresException>(() => connection.OpenAsync());
        Assert.Equal("28P01", error.SqlState);
        Assert.Contains("expired", error.MessageText, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_token_for_another_audience_is_refused()
    {
        var token = _gateway.Issuer.MintToken(new TokenRequest { Subject = "other-api", Audience = "api://something-else" });
        await using var connection = new NpgsqlConnection(_gateway.ConnectionString(token));
        var error = await Assert.ThrowsAsync<PostgresException>(() => connection.OpenAsync());
        Assert.Equal("28P01", error.SqlState);
        Assert.Contains("audience", error.MessageText, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_token_from_an_untrusted_issuer_is_refused()
    {
        using var rogue = DevelopmentIssuer.LoadOrCreate(Path.Combine(_gateway.Directory, "rogue"), "https://issuer.test");
        var token = rogue.MintToken(new TokenRequest { Subject = "forged" });
        await using var connection = new NpgsqlConnection(_gateway.ConnectionString(token));
        var error = await Assert.ThrowsAsync<PostgresException>(() => connection.OpenAsync());
        Assert.Equal("28P01", error.SqlState);
    }

    [Theory]
    [InlineData(WorkloadKind.ManagedIdentity, "orders-mi")]
    [InlineData(WorkloadKind.ServicePrincipal, "billing-sp")]
    [InlineData(WorkloadKind.FederatedWorkload, "gh-deploy")]
    public async Task Each_kind_of_workload_is_named_in_its_records(WorkloadKind kind, string subject)
    {
        await using (var connection = new NpgsqlConnection(_gateway.ConnectionString(_gateway.MintToken(subject, kind: kind))))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT 1", connection);
            await command.ExecuteScalarAsync();
        }

        var request = (await _gateway.ReadRecordsAsync()).OfType("pg.request").Last(r => r.Subject() == subject);
        var identity = request.GetProperty("identity");
        Assert.Equal(kind.ToString(), identity.GetProperty("kind").GetString());
        switch (kind)
        {
            case WorkloadKind.ManagedIdentity:
                Assert.EndsWith("/orders-mi", identity.GetProperty("mirid").GetString(), StringComparison.Ordinal);
                break;
            case WorkloadKind.FederatedWorkload:
                Assert.Equal("contoso/orders", identity.GetProperty("repository").GetString());
                Assert.Equal("4242", identity.GetProperty("runId").GetString());
                break;
        }
    }

    [Fact]
    public async Task The_session_ends_when_the_token_expires()
    {
        var token = _gateway.MintToken("short-lived", lifetime: TimeSpan.FromSeconds(3));
        await using var connection = new NpgsqlConnection(_gateway.ConnectionString(token));
        await connection.OpenAsync();
        await using (var first = new NpgsqlCommand("SELECT 1", connection))
        {
            Assert.Equal(1, await first.ExecuteScalarAsync());
        }

        await Task.Delay(TimeSpan.FromSeconds(5));
        await using var late = new NpgsqlCommand("SELECT 2", connection);
        var error = await Assert.ThrowsAnyAsync<Exception>(() => late.ExecuteScalarAsync());
        if ((error as PostgresException ?? error.InnerException as PostgresException) is { } postgres)
        {
            Assert.Equal("28000", postgres.SqlState);
            Assert.Contains("expired", postgres.MessageText, StringComparison.Ordinal);
        }
        else
        {
            // The gateway sent its FATAL and closed the socket at expiry; under load the client's late write can fail
            // on the closed socket before Npgsql reads that FATAL. The record below still says why the session ended.
            Assert.True(error is NpgsqlException { InnerException: IOException or System.Net.Sockets.SocketException }, error.ToString());
        }

        var end = (await _gateway.ReadRecordsAsync()).OfType("pg.session.end").Single(r => r.Subject() == "short-lived");
        Assert.Equal("workload token expired", end.Str("endReason"));
    }

    [Fact]
    public async Task Neither_the_token_nor_the_upstream_password_ever_reaches_the_log()
    {
        var token = _gateway.MintToken("secret-keeper");
        await using (var connection = new NpgsqlConnection(_gateway.ConnectionString(token)))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT 1", connection);
            await command.ExecuteScalarAsync();
        }

        await _gateway.ReadRecordsAsync();
        foreach (var file in Directory.GetFiles(_gateway.AuditDirectory, "audit-*.jsonl"))
        {
            var text = await File.ReadAllTextAsync(file);
            Assert.DoesNotContain(token, text, StringComparison.Ordinal);
            Assert.DoesNotContain(token.Split('.')[2], text, StringComparison.Ordinal);
            Assert.DoesNotContain(PostgresServer.AppPassword, text, StringComparison.Ordinal);
        }
    }
}
