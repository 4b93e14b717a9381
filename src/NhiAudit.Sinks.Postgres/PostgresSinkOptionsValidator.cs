using Microsoft.Extensions.Options;
using NhiAudit.Postgres.Settings;

namespace NhiAudit.Sinks.Postgres;

/// <summary>Rejects PostgreSQL sink settings that could only fail later, naming the setting at fault.</summary>
internal sealed class PostgresSinkOptionsValidator : IValidateOptions<PostgresSinkOptions>
{
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
        PostgresSettingChecks.CheckConnectionString(problems, $"{SectionPath}:ConnectionString", options.ConnectionString);
        PostgresSettingChecks.CheckIdentifier(problems, $"{SectionPath}:{nameof(PostgresSinkOptions.Schema)}", options.Schema);
        PostgresSettingChecks.CheckIdentifier(problems, $"{SectionPath}:{nameof(PostgresSinkOptions.Table)}", options.Table);
        PostgresSettingChecks.CheckIdentifier(problems, $"{SectionPath}:{nameof(PostgresSinkOptions.CheckpointTable)}", options.CheckpointTable);
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
}
