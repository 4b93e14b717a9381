using System.Globalization;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using NhiAudit.Audit;
using Npgsql;
using NpgsqlTypes;

namespace NhiAudit.Sinks.Postgres;

/// <summary>
/// Reads back what <see cref="PostgresAuditSink"/> stored: records (for <c>nhiaudit search</c>), the replicas present,
/// their newest checkpoints, and a check of each chain from the table alone. It never creates or changes tables.
/// </summary>
public sealed class PostgresAuditSinkReader : IAsyncDisposable, IDisposable
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly PostgresSinkSql _sql;

    /// <summary>Creates a reader over the tables named in <paramref name="options"/>.</summary>
    /// <param name="options">The connection string and table names (the same as the sink's).</param>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    public PostgresAuditSinkReader(PostgresSinkOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _sql = new PostgresSinkSql(options);
        _dataSource = PostgresSinkDataSource.Create(options);
    }

    /// <summary>
    /// Streams stored records ordered by replica, then <c>seq</c>. <see cref="AuditLogEntry.Line"/> is the stored line's
    /// exact bytes.
    /// </summary>
    /// <param name="replica">Only this replica's chain, or every replica when <see langword="null"/>.</param>
    /// <param name="fromSequence">The lowest <c>seq</c> returned (1 for all).</param>
    /// <param name="since">Only records whose <c>time</c> is at or after this, when given.</param>
    /// <param name="until">Only records whose <c>time</c> is at or before this, when given.</param>
    /// <param name="cancellationToken">Stops the stream.</param>
    public async IAsyncEnumerable<AuditLogEntry> ReadAsync(
        string? replica,
        long fromSequence = 1,
        DateTimeOffset? since = null,
        DateTimeOffset? until = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await foreach (var record in ReadRecordsAsync(replica, fromSequence, since, until, cancellationToken).ConfigureAwait(false))
        {
            yield return record.Entry;
        }
    }

    /// <summary>
    /// Like <see cref="ReadAsync"/>, with each record's replica, which tells the chains apart when
    /// <paramref name="replica"/> is <see langword="null"/>.
    /// </summary>
    /// <param name="replica">Only this replica's chain, or every replica when <see langword="null"/>.</param>
    /// <param name="fromSequence">The lowest <c>seq</c> returned (1 for all).</param>
    /// <param name="since">Only records whose <c>time</c> is at or after this, when given.</param>
    /// <param name="until">Only records whose <c>time</c> is at or before this, when given.</param>
    /// <param name="cancellationToken">Stops the stream.</param>
    public async IAsyncEnumerable<StoredAuditRecord> ReadRecordsAsync(
        string? replica,
        long fromSequence = 1,
        DateTimeOffset? since = null,
        DateTimeOffset? until = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var sql = new StringBuilder($"SELECT replica, seq, prev, hash, time, type, segment, line FROM {_sql.Records} WHERE seq >= $1");
        await using var command = _dataSource.CreateCommand();
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = Math.Max(fromSequence, 1) });
        if (replica is not null)
        {
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = replica });
            sql.Append(CultureInfo.InvariantCulture, $" AND replica = ${command.Parameters.Count}");
        }

        if (since is { } from)
        {
            command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = from.ToUniversalTime(), NpgsqlDbType = NpgsqlDbType.TimestampTz });
            sql.Append(CultureInfo.InvariantCulture, $" AND time >= ${command.Parameters.Count}");
        }

        if (until is { } to)
        {
            command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = to.ToUniversalTime(), NpgsqlDbType = NpgsqlDbType.TimestampTz });
            sql.Append(CultureInfo.InvariantCulture, $" AND time <= ${command.Parameters.Count}");
        }

        sql.Append(" ORDER BY replica, seq");
        command.CommandText = sql.ToString();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            yield return new StoredAuditRecord(
                reader.GetString(0),
                new AuditLogEntry
                {
                    Sequence = reader.GetInt64(1),
                    Prev = reader.GetString(2),
                    Hash = reader.GetString(3),
                    Time = reader.GetFieldValue<DateTimeOffset>(4),
                    Type = reader.IsDBNull(5) ? null : reader.GetString(5),
                    Segment = reader.GetString(6),
                    Line = Encoding.UTF8.GetBytes(reader.GetString(7)),
                });
        }
    }

    /// <summary>The replicas with at least one stored record, in order.</summary>
    /// <param name="cancellationToken">Cancels the query.</param>
    public async Task<IReadOnlyList<string>> ListReplicasAsync(CancellationToken cancellationToken = default)
    {
        // A loose index scan over the primary key: one probe per replica instead of reading every row.
        await using var command = _dataSource.CreateCommand($"""
            WITH RECURSIVE replicas(replica) AS (
                SELECT min(replica) FROM {_sql.Records}
                UNION ALL
                SELECT (SELECT min(replica) FROM {_sql.Records} WHERE replica > replicas.replica)
                FROM replicas WHERE replicas.replica IS NOT NULL)
            SELECT replica FROM replicas WHERE replica IS NOT NULL
            """);
        var replicas = new List<string>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            replicas.Add(reader.GetString(0));
        }

        return replicas;
    }

    /// <summary>The stored checkpoint of <paramref name="replica"/> with the highest <c>seq</c>, or <see langword="null"/> when there is none.</summary>
    /// <param name="replica">The replica.</param>
    /// <param name="cancellationToken">Cancels the query.</param>
    public async Task<AuditCheckpoint?> GetLatestCheckpointAsync(string replica, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(replica);
        await using var command = _dataSource.CreateCommand($"SELECT json::text FROM {_sql.Checkpoints} WHERE replica = $1 ORDER BY seq DESC LIMIT 1");
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = replica });
        // The JSON column, not the typed ones, is read back: timestamptz keeps microseconds, the signed time has ticks.
        return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is string json ? AuditCheckpoint.Parse(json) : null;
    }

    /// <summary>
    /// Checks <paramref name="replica"/>'s chain from the table alone: <c>seq</c> runs without gaps, each row's
    /// <c>hash</c> is the SHA-256 of its <c>line</c> plus a newline, and each <c>prev</c> is the previous row's hash.
    /// The first row's own <c>prev</c> cannot be checked (its predecessor is not in the table when the log was pruned).
    /// </summary>
    /// <param name="replica">The replica.</param>
    /// <param name="cancellationToken">Cancels the check.</param>
    public async Task<PostgresChainVerification> VerifyChainAsync(string replica, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(replica);
        long checkedCount = 0;
        long lastSequence = 0;
        string? lastHash = null;
        var hash = new byte[SHA256.HashSizeInBytes];
        await foreach (var entry in ReadAsync(replica, cancellationToken: cancellationToken).ConfigureAwait(false))
        {
            string? problem = null;
            if (lastHash is not null && entry.Sequence != lastSequence + 1)
            {
                problem = $"seq {entry.Sequence} follows seq {lastSequence}: records are missing";
            }
            else if (lastHash is not null && !string.Equals(entry.Prev, lastHash, StringComparison.Ordinal))
            {
                problem = $"seq {entry.Sequence} has prev {entry.Prev}, but seq {lastSequence} has hash {lastHash}";
            }
            else if (!string.Equals(ComputeHash(entry.Line.Span, hash), entry.Hash, StringComparison.Ordinal))
            {
                problem = $"seq {entry.Sequence}: the line does not hash to the stored hash {entry.Hash} (the line was edited)";
            }
            else if (!LineCarriesChainFields(entry))
            {
                problem = $"seq {entry.Sequence}: the line's own seq or prev differs from the row's";
            }

            if (problem is not null)
            {
                return new PostgresChainVerification
                {
                    Replica = replica,
                    RecordsChecked = checkedCount,
                    LastSequence = lastSequence,
                    FirstBadSequence = entry.Sequence,
                    Problem = problem,
                };
            }

            checkedCount++;
            lastSequence = entry.Sequence;
            lastHash = entry.Hash;
        }

        return new PostgresChainVerification { Replica = replica, RecordsChecked = checkedCount, LastSequence = lastSequence };
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync() => _dataSource.DisposeAsync();

    /// <inheritdoc />
    public void Dispose() => _dataSource.Dispose();

    private static string ComputeHash(ReadOnlySpan<byte> line, Span<byte> hash)
    {
        using var hasher = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hasher.AppendData(line);
        hasher.AppendData("\n"u8);
        hasher.GetHashAndReset(hash);
        return Convert.ToHexStringLower(hash);
    }

    /// <summary>The row's seq and prev columns are copies; the hashed line is what counts, so the two must agree.</summary>
    private static bool LineCarriesChainFields(AuditLogEntry entry)
    {
        try
        {
            var reader = new Utf8JsonReader(entry.Line.Span);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return false;
            }

            long? sequence = null;
            string? prev = null;
            while ((sequence is null || prev is null) && reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("seq"u8))
                {
                    reader.Read();
                    sequence = reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var value) ? value : -1;
                }
                else if (reader.ValueTextEquals("prev"u8))
                {
                    reader.Read();
                    prev = reader.TokenType == JsonTokenType.String ? reader.GetString() : "";
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            return sequence == entry.Sequence && string.Equals(prev, entry.Prev, StringComparison.Ordinal);
        }
        catch (JsonException)
        {
            return false;
        }
    }
}
