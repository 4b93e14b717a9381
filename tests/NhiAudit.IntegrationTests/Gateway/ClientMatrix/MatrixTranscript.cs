using System.Data.Common;
using System.Globalization;
using System.Text;
using Npgsql;

namespace NhiAudit.IntegrationTests.Gateway.ClientMatrix;

/// <summary>
/// What a client saw while a matrix case ran, one line per observation (rows, command tags, errors with their SQLSTATE,
/// notices, checks), in order. A case runs once direct and once through the gateway; the two transcripts must be equal.
/// The run's unique suffix is written as <c>{sfx}</c>, so the tables of two runs compare equal.
/// </summary>
public sealed class MatrixTranscript(string suffix)
{
    public const string CheckFailedPrefix = "CHECK FAILED: ";
    public const string UnhandledPrefix = "UNHANDLED ";

    private readonly List<string> _lines = [];

    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (_lines)
            {
                return [.. _lines];
            }
        }
    }

    /// <summary>Records one observation (the run's suffix is normalised to <c>{sfx}</c>).</summary>
    public void Add(string line)
    {
        var normalised = line.Replace(suffix, "{sfx}", StringComparison.Ordinal);
        lock (_lines)
        {
            _lines.Add(normalised);
        }
    }

    public void Add(string label, object? value) => Add($"{label}: {Format(value)}");

    /// <summary>Records a check a user would make; a failed check is a difference the comparison shows.</summary>
    public void Check(bool condition, string description)
    {
        if (!condition)
        {
            Add(CheckFailedPrefix + description);
        }
    }

    /// <summary>Every row of <paramref name="reader"/>, one line each, then the number of rows.</summary>
    public async Task RowsAsync(string label, DbDataReader reader, CancellationToken cancellationToken = default)
    {
        var count = 0;
        while (await reader.ReadAsync(cancellationToken))
        {
            var values = new object?[reader.FieldCount];
            for (var i = 0; i < reader.FieldCount; i++)
            {
                values[i] = await reader.IsDBNullAsync(i, cancellationToken) ? null : reader.GetValue(i);
            }

            Add($"{label} row: {string.Join(" | ", values.Select(Format))}");
            count++;
        }

        Add($"{label} rows: {count}");
    }

    /// <summary>Runs <paramref name="sql"/> on <paramref name="connection"/> and records its rows, or its error.</summary>
    public async Task QueryAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken = default)
    {
        await Attempt(sql, async () =>
        {
            await using var command = new NpgsqlCommand(sql, connection);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            do
            {
                await RowsAsync(sql, reader, cancellationToken);
            }
            while (await reader.NextResultAsync(cancellationToken));

            Add($"{sql} -> affected {reader.RecordsAffected}");
        });
    }

    /// <summary>Runs <paramref name="action"/>; an exception becomes a transcript line (type, SQLSTATE, message) instead of failing the case.</summary>
    public async Task Attempt(string label, Func<Task> action)
    {
        try
        {
            await action();
            Add($"{label}: ok");
        }
        catch (Exception ex) when (ex is DbException or OperationCanceledException or TimeoutException or InvalidOperationException or IOException)
        {
            Add($"{label}: {DescribeException(ex)}");
        }
    }

    /// <summary>The exception's type, and its PostgreSQL error (SQLSTATE, severity, message) wherever in the chain it is.</summary>
    public static string DescribeException(Exception ex)
    {
        var text = new StringBuilder(ex.GetType().Name);
        if (FindPostgresException(ex) is { } pg)
        {
            text.Append(CultureInfo.InvariantCulture, $" [{pg.SqlState} {pg.Severity}] {pg.MessageText}");
            if (pg.Detail is { Length: > 0 } detail)
            {
                text.Append(CultureInfo.InvariantCulture, $" DETAIL: {detail}");
            }

            if (!ReferenceEquals(pg, ex))
            {
                text.Append(CultureInfo.InvariantCulture, $" (inside {ex.GetType().Name})");
            }
        }
        else
        {
            text.Append(": ").Append(ex.Message);
            if (ex.InnerException is { } inner)
            {
                text.Append(CultureInfo.InvariantCulture, $" <- {inner.GetType().Name}: {inner.Message}");
            }
        }

        return text.ToString();
    }

    public static PostgresException? FindPostgresException(Exception? ex)
    {
        for (; ex is not null; ex = ex.InnerException)
        {
            if (ex is PostgresException pg)
            {
                return pg;
            }
        }

        return null;
    }

    public static string Format(object? value) => value switch
    {
        null => "NULL",
        string s => s,
        byte[] bytes => "\\x" + Convert.ToHexString(bytes).ToLowerInvariant(),
        DateTime dt => dt.ToString("O", CultureInfo.InvariantCulture),
        DateTimeOffset dto => dto.ToString("O", CultureInfo.InvariantCulture),
        System.Collections.IEnumerable items => "[" + string.Join(", ", items.Cast<object?>().Select(Format)) + "]",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };
}
