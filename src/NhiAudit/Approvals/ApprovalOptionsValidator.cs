using Microsoft.Extensions.Options;

namespace NhiAudit.Approvals;

/// <summary>Refuses, at startup, approval settings that cannot work: a non-positive timeout or grant cap, a webhook that is not an absolute http(s) URL.</summary>
internal sealed class ApprovalOptionsValidator : IValidateOptions<ApprovalOptions>
{
    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, ApprovalOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = Collect(options);
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    /// <summary>Every problem of <paramref name="options"/>.</summary>
    public static List<string> Collect(ApprovalOptions options)
    {
        var failures = new List<string>();
        if (options.Timeout <= TimeSpan.Zero || options.Timeout > TimeSpan.FromDays(1))
        {
            failures.Add($"NhiAudit:Approvals:Timeout must be positive and at most one day (is {options.Timeout}).");
        }

        if (options.MaxGrant < TimeSpan.Zero)
        {
            failures.Add($"NhiAudit:Approvals:MaxGrant must not be negative (is {options.MaxGrant}).");
        }

        if (!string.IsNullOrWhiteSpace(options.WebhookUrl)
            && (!Uri.TryCreate(options.WebhookUrl, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps)))
        {
            failures.Add($"NhiAudit:Approvals:WebhookUrl '{options.WebhookUrl}' is not an absolute http or https URL.");
        }

        return failures;
    }
}
