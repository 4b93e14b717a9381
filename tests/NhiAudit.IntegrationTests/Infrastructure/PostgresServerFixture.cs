namespace NhiAudit.IntegrationTests.Infrastructure;

/// <summary>
/// One PostgreSQL server shared by every test class in the "postgres" collection (log_statement = all, TLS on).
/// Use <c>[Collection(PostgresCollectionDefinition.Name)]</c> (or <c>[Collection("postgres")]</c>) and take <see cref="PostgresServerFixture"/> in the constructor.
/// Tests that need their own tables should use <see cref="PostgresServer.CreateDatabaseAsync"/> or unique names.
/// Two-phase commit is enabled (max_prepared_transactions), so clients' PREPARE TRANSACTION can be tested.
/// </summary>
public sealed class PostgresServerFixture : IAsyncLifetime
{
    private PostgresServer? _server;

    public PostgresServer Server => _server ?? throw new InvalidOperationException("fixture not initialized");

    public async Task InitializeAsync() =>
        _server = await PostgresServer.StartAsync(new PostgresServerOptions { LogAllStatements = true, ExtraConfiguration = ["max_prepared_transactions = 10"] }).ConfigureAwait(false);

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync().ConfigureAwait(false);
        }
    }
}

[CollectionDefinition(Name)]
public sealed class PostgresCollectionDefinition : ICollectionFixture<PostgresServerFixture>
{
    public const string Name = "postgres";
}
