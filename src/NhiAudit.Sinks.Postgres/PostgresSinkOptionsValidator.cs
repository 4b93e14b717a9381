using Microsoft.Extensions.Options;
using Npgsql;

namespace NhiAudit.Sinks.Postgres;

/// <summary>Rejects PostgreSQL sink settings that could only fail later, naming the setting at fault.</summary>
internal sealed class PostgresSinkOptionsValidator : IValidateOptions<PostgresSinkOptions>
{
    /// <summary>PostgreSQL truncates longer identifiers (NAMEDATALEN - 1), which would silently rename a table.</summary>
    private const int MaxIdentifierLength = 63;

    /// <summary>The configuration path named in messages, so an operator finds the setting.</summary>
    private const string SectionPath = "NhiAudit:Sinks:Postgres";

    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, PostgresSinkOptions options)
    {
        var problems = FindProblems(options);
        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }

    /// <summary>Every problem with <paramref name="options"/>, one message each; empty when they are usable.</summary>
    public static List<string> FindProblems(PostgresSinkOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var problems = new List<string>();
        if (string.IsNullOrWhiteSpace(options.ConnectionString))
        {
            problems.Add($"{SectionPath}:ConnectionString is required (an Npgsql connection string).");
        }
        else
        {
            try
            {
                _ = new NpgsqlConnectionStringBuilder(options.ConnectionString);
            }
            catch (ArgumentException)
            {
                // The parser's message may quote the string, password included, so it is not passed on.
                problems.Add($"{SectionPath}:ConnectionString is not a valid Npgsql connection string.");
            }
        }

        CheckIdentifier(problems, nameof(PostgresSinkOptions.Schema), options.Schema);
        CheckIdentifier(problems, nameof(PostgresSinkOptions.Table), options.Table);
        CheckIdentifier(problems, nameof(PostgresSinkOptions.CheckpointTable), options.CheckpointTable);
        if (options.Table is { Length: > 0 } table && string.Equals(table, options.CheckpointTable, StringComparison.Ordinal))
        {
            problems.Add($"{SectionPath}:Table and {SectionPath}:CheckpointTable must differ (both are '{table}').");
        }

        return problems;
    }

    /// <summary>Throws <see cref="ArgumentException"/> listing every problem, for callers that build the sink without DI.</summary>
    public static void ThrowIfInvalid(PostgresSinkOptions options)
    {
        var problems = FindProblems(options);
        if (problems.Count > 0)
        {
            throw new ArgumentException("invalid PostgreSQL sink options: " + string.Join(" ", problems), nameof(options));
        }
    }

    /// <summary>
    /// Identifiers are spliced into SQL (quoted), so only a plain name is allowed: a letter or underscore, then letters,
    /// digits or underscores.
    /// </summary>
    internal static bool IsPlainIdentifier(string? value)
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

    private static void CheckIdentifier(List<string> problems, string setting, string? value)
    {
        if (!IsPlainIdentifier(value))
        {
            problems.Add($"{SectionPath}:{setting} must be 1 to {MaxIdentifierLength} ASCII letters, digits or underscores, not starting with a digit (got '{value}').");
        }
    }
}
