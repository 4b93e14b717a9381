using NhiAudit.IntegrationTests.Infrastructure;
using Npgsql;

namespace NhiAudit.Sinks.Postgres.Tests.Infrastructure;

/// <summary>One PostgreSQL 15 server for every test in the <see cref="SinkPostgresCollectionDefinition"/>; each test uses its own schema.</summary>
public sealed class SinkPostgresFixture : IAsyncLifetime
{
    private PostgresServer? _server;

    public PostgresServer Server => _server ?? throw new InvalidOperationException("fixture not initialized");

    public async Task InitializeAsync() => _server = await PostgresServer.StartAsync(new PostgresServerOptions());

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }

    /// <summary>Sink options for a fresh schema (the app user owns the database, so the sink may create it).</summary>
    public PostgresSinkOptions NewSinkOptions(int? port = null)
    {
        var connection = new NpgsqlConnectionStringBuilder(Server.ConnectionString())
        {
            Port = port ?? Server.Port,
            // A cut relay must fail calls quickly instead of hanging the pump for the default 30 s.
            Timeout = 5,
            CommandTimeout = 15,
        };
        return new PostgresSinkOptions
        {
            ConnectionString = connection.ConnectionString,
            Schema = "s_" + Guid.NewGuid().ToString("N")[..12],
        };
    }

    /// <summary>The same tables reached directly rather than through a relay.</summary>
    public PostgresSinkOptions Direct(PostgresSinkOptions options) => new()
    {
        ConnectionString = new NpgsqlConnectionStringBuilder(options.ConnectionString) { Port = Server.Port }.ConnectionString,
        Schema = options.Schema,
        Table = options.Table,
        CheckpointTable = options.CheckpointTable,
    };
}

[CollectionDefinition(Name)]
public sealed class SinkPostgresCollectionDefinition : ICollectionFixture<SinkPostgresFixture>
{
    public const string Name = "postgres-sink";
}
