using Npgsql;

namespace NhiAudit.Postgres.Settings;

/// <summary>
/// The checks the PostgreSQL-backed packages (the audit sink, shared approvals) make of their settings at start-up.
/// Compiled into each of them (a linked source file), since they share no assembly that references Npgsql.
/// </summary>
internal static class PostgresSettingChecks
{
    /// <summary>PostgreSQL truncates longer identifiers (NAMEDATALEN - 1), which would silently rename a schema or table.</summary>
    public const int MaxIdentifierLength = 63;

    /// <summary>Adds a problem when <paramref name="connectionString"/> is missing or not an Npgsql connection string.</summary>
    /// <param name="problems">Where problems are collected.</param>
    /// <param name="setting">The setting's configuration path, e.g. <c>NhiAudit:Sinks:Postgres:ConnectionString</c>.</param>
    /// <param name="connectionString">The value.</param>
    public static void CheckConnectionString(List<string> problems, string setting, string? connectionString)
    {
        if (string.IsNullOrWhiteSpace(connectionString))
        {
            problems.Add($"{setting} is required (an Npgsql connection string).");
            return;
        }

        try
        {
            _ = new NpgsqlConnectionStringBuilder(connectionString);
        }
        catch (ArgumentException)
        {
            // The parser's message may quote the string, password included, so it is not passed on.
            problems.Add($"{setting} is not a valid Npgsql connection string.");
        }
    }

    /// <summary>Adds a problem when <paramref name="value"/> is not a plain identifier (see <see cref="IsPlainIdentifier"/>).</summary>
    /// <param name="problems">Where problems are collected.</param>
    /// <param name="setting">The setting's configuration path.</param>
    /// <param name="value">The value.</param>
    public static void CheckIdentifier(List<string> problems, string setting, string? value)
    {
        if (!IsPlainIdentifier(value))
        {
            problems.Add($"{setting} must be 1 to {MaxIdentifierLength} ASCII letters, digits or underscores, not starting with a digit (got '{value}').");
        }
    }

    /// <summary>
    /// Identifiers are spliced into SQL (quoted), so only a plain name is allowed: a letter or underscore, then letters,
    /// digits or underscores.
    /// </summary>
    /// <param name="value">The identifier.</param>
    /// <returns>Whether it is one.</returns>
    public static bool IsPlainIdentifier(string? value)
    {
        if (string.IsNullOrEmpty(value) || value.Length > MaxIdentifierLength || char.IsAsciiDigit(value[0]))
        {
            return false;
        }

        foreach (var c in value)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c != '_')
            {
                return false;
            }
        }

        return true;
    }
}
