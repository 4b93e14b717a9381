using Microsoft.Extensions.Options;
using Npgsql;

namespace NhiAudit.Approvals.Postgres;

/// <summary>Refuses, at startup, shared-approval settings that could only fail later, naming the setting at fault.</summary>
internal sealed class PostgresApprovalOptionsValidator : IValidateOptions<PostgresApprovalOptions>
{
    /// <summary>PostgreSQL truncates longer identifiers (NAMEDATALEN - 1), which would silently rename the schema.</summary>
    private const int MaxIdentifierLength = 63;

    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, PostgresApprovalOptions options)
    {
        var failures = Collect(options);
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    /// <summary>Every problem of <paramref name="options"/>, one message each; empty when they are usable.</summary>
    public static List<string> Collect(PostgresApprovalOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        if (string.IsNullOrWhiteSpace(options.ConnectionString))
        {
            failures.Add($"{PostgresApprovalOptions.SectionName}:ConnectionString is required (an Npgsql connection string).");
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
                failures.Add($"{PostgresApprovalOptions.SectionName}:ConnectionString is not a valid Npgsql connection string.");
            }
        }

        if (!IsPlainIdentifier(options.Schema))
        {
            failures.Add($"{PostgresApprovalOptions.SectionName}:Schema must be 1 to {MaxIdentifierLength} ASCII letters, digits or underscores, not starting with a digit (got '{options.Schema}').");
        }

        return failures;
    }

    /// <summary>The schema is spliced into SQL (quoted), so only a plain name is allowed.</summary>
    private static bool IsPlainIdentifier(string? value)
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
