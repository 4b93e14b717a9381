using NhiAudit.IntegrationTests.Infrastructure;

namespace NhiAudit.Approvals.Postgres.Tests;

/// <summary>One throwaway PostgreSQL 15 server for the test class; each test uses its own schema.</summary>
public sealed class PostgresServerFixture : IAsyncLifetime
{
    public PostgresServer Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await PostgresServer.StartAsync(new PostgresServerOptions());

    public async Task DisposeAsync() => await Server.DisposeAsync();
}
