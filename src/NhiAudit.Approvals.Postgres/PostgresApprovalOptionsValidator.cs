using Microsoft.Extensions.Options;
using NhiAudit.Postgres.Settings;

namespace NhiAudit.Approvals.Postgres;

/// <summary>Refuses, at startup, shared-approval settings that could only fail later, naming the setting at fault.</summary>
internal sealed class PostgresApprovalOptionsValidator : IValidateOptions<PostgresApprovalOptions>
{
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
        PostgresSettingChecks.CheckConnectionString(failures, $"{PostgresApprovalOptions.SectionName}:ConnectionString", options.ConnectionString);
        PostgresSettingChecks.CheckIdentifier(failures, $"{PostgresApprovalOptions.SectionName}:Schema", options.Schema);
        return failures;
    }
}
