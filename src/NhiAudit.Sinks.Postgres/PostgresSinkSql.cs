using Microsoft.Extensions.Logging;
using Npgsql;

namespace NhiAudit.Sinks.Postgres;

/// <summary>
/// The SQL the sink and the reader run, with the configured (validated, quoted) table names spliced in once, and the
/// one-time creation of the schema.
/// </summary>
internal sealed class PostgresSinkSql
{
    /// <summary>Serializes concurrent first starts (two gateways, one database): CREATE … IF NOT EXISTS can race.</summary>
    private const string SchemaLockKey = "nhiaudit.sinks.postgres.schema";

    private volatile bool _schemaReady;

    /// <summary>Checks <paramref name="options"/> and prepares the statements for its tables.</summary>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    public PostgresSinkSql(PostgresSinkOptions options)
    {
        PostgresSinkOptionsValidator.ThrowIfInvalid(options);
        Options = options;
        var schema = Quote(options.Schema);
        Records = schema + "." + Quote(options.Table);
        Checkpoints = schema + "." + Quote(options.CheckpointTable);
        CreateStatements = $"""
            CREATE SCHEMA IF NOT EXISTS {schema};
            CREATE TABLE IF NOT EXISTS {Records} (
                replica text NOT NULL,
                seq bigint NOT NULL CHECK (seq > 0),
                prev text NOT NULL,
                hash text NOT NULL,
                time timestamptz NOT NULL,
                type text,
                segment text NOT NULL,
                line text NOT NULL,
                record jsonb,
                PRIMARY KEY (replica, seq));
            CREATE INDEX IF NOT EXISTS {Quote(options.Table + "_time_idx")} ON {Records} (time);
            CREATE TABLE IF NOT EXISTS {Checkpoints} (
                replica text NOT NULL,
                seq bigint NOT NULL,
                hash text NOT NULL,
                time timestamptz NOT NULL,
                alg text NOT NULL,
                key_id text NOT NULL,
                sig text NOT NULL,
                json jsonb NOT NULL,
                PRIMARY KEY (replica, seq));
            """;
    }

    /// <summary>The options the statements were built from.</summary>
    public PostgresSinkOptions Options { get; }

    /// <summary>The records table, schema-qualified and quoted.</summary>
    public string Records { get; }

    /// <summary>The checkpoints table, schema-qualified and quoted.</summary>
    public string Checkpoints { get; }

    /// <summary>The idempotent DDL that creates the schema, both tables and the time index.</summary>
    public string CreateStatements { get; }

    /// <summary>Creates the schema and tables when <see cref="PostgresSinkOptions.CreateSchema"/> is set; a failure is retried on the next call.</summary>
    public async ValueTask EnsureSchemaAsync(NpgsqlDataSource dataSource, ILogger logger, CancellationToken cancellationToken)
    {
        if (_schemaReady || !Options.CreateSchema)
        {
            return;
        }

        // Two callers racing here both run the idempotent statements; the advisory lock keeps them from colliding.
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using (var lockCommand = new NpgsqlCommand("SELECT pg_advisory_xact_lock(hashtext($1))", connection, transaction))
        {
            lockCommand.Parameters.Add(new NpgsqlParameter { Value = SchemaLockKey });
            await lockCommand.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await using (var create = new NpgsqlCommand(CreateStatements, connection, transaction))
        {
            await create.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        _schemaReady = true;
        logger.LogDebug("PostgreSQL audit sink tables {Records} and {Checkpoints} are in place", Records, Checkpoints);
    }

    /// <summary>Double-quotes a validated identifier, so its case is kept and it can never be a keyword.</summary>
    private static string Quote(string identifier) => "\"" + identifier + "\"";
}
