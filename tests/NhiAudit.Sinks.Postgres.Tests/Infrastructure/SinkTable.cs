using System.Security.Cryptography;
using System.Text;
using Npgsql;

namespace NhiAudit.Sinks.Postgres.Tests.Infrastructure;

/// <summary>One row of the records table, as stored.</summary>
public sealed record SinkRow(long Sequence, string Prev, string Hash, string? Type, string Line, bool HasRecord);

/// <summary>Reads the sink's tables directly with SQL, independent of the reader under test.</summary>
public static class SinkTable
{
    public static async Task<List<SinkRow>> ReadRowsAsync(PostgresSinkOptions options, string replica)
    {
        await using var connection = new NpgsqlConnection(options.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(
            $"SELECT seq, prev, hash, type, line, record IS NOT NULL FROM \"{options.Schema}\".\"{options.Table}\" WHERE replica = $1 ORDER BY seq", connection);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = replica });
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<SinkRow>();
        while (await reader.ReadAsync())
        {
            rows.Add(new SinkRow(reader.GetInt64(0), reader.GetString(1), reader.GetString(2), reader.IsDBNull(3) ? null : reader.GetString(3), reader.GetString(4), reader.GetBoolean(5)));
        }

        return rows;
    }

    /// <summary>
    /// The README's verification query: rows whose line does not hash to their hash, whose prev is not the previous
    /// row's hash, or whose seq does not follow the previous one. Zero means the chain verifies from the table.
    /// </summary>
    public static async Task<long> CountChainProblemsInSqlAsync(PostgresSinkOptions options, string replica)
    {
        await using var connection = new NpgsqlConnection(options.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"""
            SELECT count(*) FROM (
                SELECT seq,
                       CASE
                         WHEN encode(sha256(convert_to(line || E'\n', 'UTF8')), 'hex') <> hash THEN 'line was edited'
                         WHEN lag(seq) OVER w IS NOT NULL AND seq <> lag(seq) OVER w + 1 THEN 'records missing before it'
                         WHEN lag(hash) OVER w IS NOT NULL AND prev <> lag(hash) OVER w THEN 'prev does not match'
                       END AS problem
                FROM "{options.Schema}"."{options.Table}"
                WHERE replica = $1
                WINDOW w AS (ORDER BY seq)) chain
            WHERE problem IS NOT NULL
            """, connection);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = replica });
        return (long)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>Checks the rows in C#: seqs 1..<paramref name="lastSequence"/> exactly once and in order, hash = sha256(line + "\n"), prev = previous hash.</summary>
    public static void AssertCompleteChain(IReadOnlyList<SinkRow> rows, long lastSequence)
    {
        Assert.Equal(lastSequence, rows.Count);
        string? previousHash = null;
        for (var i = 0; i < rows.Count; i++)
        {
            var row = rows[i];
            Assert.Equal(i + 1, row.Sequence);
            var computed = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(row.Line + "\n")));
            Assert.Equal(computed, row.Hash);
            if (previousHash is not null)
            {
                Assert.Equal(previousHash, row.Prev);
            }

            previousHash = row.Hash;
        }
    }

    public static async Task<long> CountCheckpointsAsync(PostgresSinkOptions options, string replica)
    {
        await using var connection = new NpgsqlConnection(options.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"SELECT count(*) FROM \"{options.Schema}\".\"{options.CheckpointTable}\" WHERE replica = $1", connection);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = replica });
        return (long)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>Polls <paramref name="condition"/> until it holds; fails with <paramref name="what"/> after <paramref name="timeout"/>.</summary>
    public static async Task WaitUntilAsync(Func<bool> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"timed out after {timeout} waiting for: {what}");
            }

            await Task.Delay(20);
        }
    }
}
