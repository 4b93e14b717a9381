using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using NhiAudit.Audit;
using NhiAudit.Audit.Sinks;
using Npgsql;
using NpgsqlTypes;

namespace NhiAudit.Sinks.Postgres;

/// <summary>
/// A secondary audit sink that copies the primary log's records into a PostgreSQL table, one row per record with the
/// chain fields and the exact line, so the chain can be verified from the table alone; signed checkpoints go to a second
/// table. Batches are written with binary COPY in one transaction, idempotently by (replica, seq).
/// </summary>
/// <remarks>
/// Delivery takes a transaction-scoped advisory lock per replica (<c>pg_advisory_xact_lock(hashtext(replica))</c>), reads
/// the highest stored <c>seq</c> again under it and skips records already stored, so a batch resent after a lost
/// acknowledgement, or by a second pump for the same replica, is stored once. A batch that would leave a gap, or whose
/// records do not continue the stored chain (two logs writing under one replica name), is refused with an exception.
/// </remarks>
public sealed class PostgresAuditSink : IAuditSink, IAsyncDisposable, IDisposable
{
    /// <summary>The sink's <see cref="Name"/>.</summary>
    public const string SinkName = "postgres";

    /// <summary>Lines are stored as text; a byte sequence that is not UTF-8 could not be stored verbatim, so it is refused rather than altered.</summary>
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly NpgsqlDataSource _dataSource;
    private readonly PostgresSinkSql _sql;
    private readonly ILogger _logger;
    private readonly string _copyCommand;
    private readonly string _lastStoredQuery;
    private readonly string _hashAtQuery;
    private readonly string _deliveredQuery;
    private readonly string _insertCheckpoint;

    /// <summary>Creates the sink; nothing is sent to the database before the first call.</summary>
    /// <param name="options">The connection string and table names.</param>
    /// <param name="logger">Receives schema and resend messages (never the connection string).</param>
    /// <exception cref="ArgumentException">The options are invalid (see <c>AddPostgresSink</c>'s validation).</exception>
    public PostgresAuditSink(PostgresSinkOptions options, ILogger<PostgresAuditSink>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _sql = new PostgresSinkSql(options);
        _dataSource = PostgresSinkDataSource.Create(options);
        _logger = logger ?? (ILogger)NullLogger.Instance;
        _copyCommand = $"COPY {_sql.Records} (replica, seq, prev, hash, time, type, segment, line, record) FROM STDIN (FORMAT BINARY)";
        _lastStoredQuery = $"SELECT seq, hash FROM {_sql.Records} WHERE replica = $1 ORDER BY seq DESC LIMIT 1";
        _hashAtQuery = $"SELECT hash FROM {_sql.Records} WHERE replica = $1 AND seq = $2";
        _deliveredQuery = $"SELECT coalesce(max(seq), 0) FROM {_sql.Records} WHERE replica = $1";
        _insertCheckpoint = $"""
            INSERT INTO {_sql.Checkpoints} (replica, seq, hash, time, alg, key_id, sig, json)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            ON CONFLICT (replica, seq) DO NOTHING
            """;
    }

    /// <inheritdoc />
    public string Name => SinkName;

    /// <inheritdoc />
    /// <remarks>Only a contiguous prefix of each chain is ever stored, so the highest stored <c>seq</c> is the answer.</remarks>
    public async ValueTask<long> GetDeliveredSequenceAsync(string replica, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(replica);
        await _sql.EnsureSchemaAsync(_dataSource, _logger, cancellationToken).ConfigureAwait(false);
        await using var command = _dataSource.CreateCommand(_deliveredQuery);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = replica });
        var result = await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
        return Convert.ToInt64(result, System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <inheritdoc />
    /// <exception cref="ArgumentException">The batch is empty, or its records are not consecutive links of one chain.</exception>
    /// <exception cref="PostgresAuditSinkConflictException">
    /// The batch would leave a gap after the stored records, or does not continue the stored chain.
    /// </exception>
    public async ValueTask DeliverAsync(string replica, IReadOnlyList<AuditLogEntry> records, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(replica);
        ArgumentNullException.ThrowIfNull(records);
        EnsureConsecutive(records);
        await _sql.EnsureSchemaAsync(_dataSource, _logger, cancellationToken).ConfigureAwait(false);

        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);

        // Serializes writers of one replica until commit, so the stored maximum read next cannot change under us.
        await using (var lockCommand = new NpgsqlCommand("SELECT pg_advisory_xact_lock(hashtext($1))", connection, transaction))
        {
            lockCommand.Parameters.Add(new NpgsqlParameter<string> { TypedValue = replica });
            await lockCommand.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        var (storedSequence, storedHash) = await ReadLastStoredAsync(connection, transaction, replica, cancellationToken).ConfigureAwait(false);
        var alreadyStored = CountAlreadyStored(records, storedSequence);
        if (alreadyStored > 0)
        {
            // A resend after a lost acknowledgement: what overlaps must be the very records stored, or two logs share this replica name.
            var lastOverlap = records[alreadyStored - 1];
            var hashThere = lastOverlap.Sequence == storedSequence
                ? storedHash
                : await ReadHashAtAsync(connection, transaction, replica, lastOverlap.Sequence, cancellationToken).ConfigureAwait(false);
            if (!string.Equals(hashThere, lastOverlap.Hash, StringComparison.Ordinal))
            {
                throw new PostgresAuditSinkConflictException(
                    $"replica '{replica}': the table holds seq {lastOverlap.Sequence} with hash {hashThere ?? "(missing)"}, but the log's record has hash {lastOverlap.Hash}; " +
                    "the table was written from a different chain (are two logs using one replica name?)");
            }

            _logger.LogInformation(
                "PostgreSQL audit sink: replica {Replica} already holds seq {First}..{Last} of this batch (a resend); storing only the rest",
                replica, records[0].Sequence, lastOverlap.Sequence);
        }

        if (alreadyStored == records.Count)
        {
            return; // nothing new; the transaction rolls back, which only releases the lock
        }

        var first = records[alreadyStored];
        if (first.Sequence != storedSequence + 1)
        {
            throw new PostgresAuditSinkConflictException(
                $"replica '{replica}': the batch starts at seq {first.Sequence} but the table holds up to seq {storedSequence}; storing it would leave a gap");
        }

        if (storedSequence > 0 && !string.Equals(first.Prev, storedHash, StringComparison.Ordinal))
        {
            throw new PostgresAuditSinkConflictException(
                $"replica '{replica}': seq {first.Sequence} has prev {first.Prev}, but the table's seq {storedSequence} has hash {storedHash}; " +
                "the batch does not continue the stored chain (are two logs using one replica name?)");
        }

        await using (var importer = await connection.BeginBinaryImportAsync(_copyCommand, cancellationToken).ConfigureAwait(false))
        {
            for (var i = alreadyStored; i < records.Count; i++)
            {
                await WriteRowAsync(importer, replica, records[i], cancellationToken).ConfigureAwait(false);
            }

            await importer.CompleteAsync(cancellationToken).ConfigureAwait(false);
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    /// <remarks>A checkpoint already stored (same replica and seq) is left as it is.</remarks>
    public async ValueTask PublishCheckpointAsync(AuditCheckpoint checkpoint, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        await _sql.EnsureSchemaAsync(_dataSource, _logger, cancellationToken).ConfigureAwait(false);
        await using var command = _dataSource.CreateCommand(_insertCheckpoint);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = checkpoint.Replica });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = checkpoint.Sequence });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = checkpoint.Hash });
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = checkpoint.Time.ToUniversalTime() });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = checkpoint.Algorithm });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = checkpoint.KeyId });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = checkpoint.Signature });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = checkpoint.ToJson(), NpgsqlDbType = NpgsqlDbType.Jsonb });
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync() => _dataSource.DisposeAsync();

    /// <inheritdoc />
    public void Dispose() => _dataSource.Dispose();

    private static void EnsureConsecutive(IReadOnlyList<AuditLogEntry> records)
    {
        if (records.Count == 0)
        {
            throw new ArgumentException("a batch holds at least one record", nameof(records));
        }

        for (var i = 1; i < records.Count; i++)
        {
            if (records[i].Sequence != records[i - 1].Sequence + 1 || !string.Equals(records[i].Prev, records[i - 1].Hash, StringComparison.Ordinal))
            {
                throw new ArgumentException(
                    $"the batch is not one piece of a chain: seq {records[i].Sequence} does not follow seq {records[i - 1].Sequence}", nameof(records));
            }
        }
    }

    private static int CountAlreadyStored(IReadOnlyList<AuditLogEntry> records, long storedSequence)
    {
        var count = 0;
        while (count < records.Count && records[count].Sequence <= storedSequence)
        {
            count++;
        }

        return count;
    }

    private static async Task WriteRowAsync(NpgsqlBinaryImporter importer, string replica, AuditLogEntry entry, CancellationToken cancellationToken)
    {
        string line;
        try
        {
            line = StrictUtf8.GetString(entry.Line.Span);
        }
        catch (DecoderFallbackException ex)
        {
            throw new PostgresAuditSinkConflictException($"replica '{replica}': seq {entry.Sequence} is not valid UTF-8 and cannot be stored verbatim", ex);
        }

        await importer.StartRowAsync(cancellationToken).ConfigureAwait(false);
        await importer.WriteAsync(replica, NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
        await importer.WriteAsync(entry.Sequence, NpgsqlDbType.Bigint, cancellationToken).ConfigureAwait(false);
        await importer.WriteAsync(entry.Prev, NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
        await importer.WriteAsync(entry.Hash, NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
        await importer.WriteAsync(entry.Time.ToUniversalTime(), NpgsqlDbType.TimestampTz, cancellationToken).ConfigureAwait(false);
        if (entry.Type is null)
        {
            await importer.WriteNullAsync(cancellationToken).ConfigureAwait(false);
        }
        else
        {
            await importer.WriteAsync(entry.Type, NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
        }

        await importer.WriteAsync(entry.Segment, NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
        await importer.WriteAsync(line, NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
        if (JsonbCompatibility.CanStoreAsJsonb(entry.Line.Span))
        {
            await importer.WriteAsync(line, NpgsqlDbType.Jsonb, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            await importer.WriteNullAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<(long Sequence, string? Hash)> ReadLastStoredAsync(
        NpgsqlConnection connection, NpgsqlTransaction transaction, string replica, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(_lastStoredQuery, connection, transaction);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = replica });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false)
            ? (reader.GetInt64(0), reader.GetString(1))
            : (0, null);
    }

    private async Task<string?> ReadHashAtAsync(
        NpgsqlConnection connection, NpgsqlTransaction transaction, string replica, long sequence, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(_hashAtQuery, connection, transaction);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = replica });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = sequence });
        return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) as string;
    }
}
