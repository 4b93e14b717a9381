using Microsoft.Extensions.Options;

namespace NhiAudit.Identity;

/// <summary>
/// Refuses, at startup, an identity configuration that would trust forged or unscoped tokens: an issuer without a key
/// source or audience, or one that allows <c>none</c> or a symmetric (HMAC) algorithm.
/// </summary>
internal sealed class IdentityOptionsValidator : IValidateOptions<IdentityOptions>
{
    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, IdentityOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = Collect(options);
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    /// <summary>Throws <see cref="OptionsValidationException"/> listing every problem; used when options come without DI.</summary>
    public static void ThrowIfInvalid(IdentityOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = Collect(options);
        if (failures.Count > 0)
        {
            throw new OptionsValidationException(Options.DefaultName, typeof(IdentityOptions), failures);
        }
    }

    private static List<string> Collect(IdentityOptions options)
    {
        var failures = new List<string>();
        if (options.ClockSkew < TimeSpan.Zero || options.ClockSkew > TimeSpan.FromMinutes(10))
        {
            failures.Add($"NhiAudit:Identity:ClockSkew must be between 0 and 10 minutes (is {options.ClockSkew}).");
        }

        if (options.SessionGrace < TimeSpan.Zero)
        {
            failures.Add($"NhiAudit:Identity:SessionGrace must not be negative (is {options.SessionGrace}).");
        }

        if (string.IsNullOrWhiteSpace(options.ApproverRole))
        {
            failures.Add("NhiAudit:Identity:ApproverRole must not be empty.");
        }

        for (var i = 0; i < options.SshKeys.Count; i++)
        {
            var key = options.SshKeys[i];
            if (key is null || string.IsNullOrWhiteSpace(key.PublicKey) || string.IsNullOrWhiteSpace(key.Subject))
            {
                failures.Add($"NhiAudit:Identity:SshKeys:{i} needs both a PublicKey and a Subject.");
            }
        }

        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < options.Issuers.Count; i++)
        {
            var issuer = options.Issuers[i];
            if (issuer is null)
            {
                failures.Add($"NhiAudit:Identity:Issuers:{i} is empty.");
                continue;
            }

            var label = string.IsNullOrWhiteSpace(issuer.Name) ? $"Issuers:{i}" : $"issuer '{issuer.Name}'";
            if (!string.IsNullOrWhiteSpace(issuer.Name) && !names.Add(issuer.Name))
            {
                failures.Add($"NhiAudit:Identity: issuer name '{issuer.Name}' is used twice.");
            }

            ValidateKeySource(issuer, label, failures);

            if (issuer.Audiences.Count == 0 || issuer.Audiences.Exists(string.IsNullOrWhiteSpace))
            {
                failures.Add($"NhiAudit:Identity {label}: at least one non-empty Audience is required; without one, a token minted for any other service would be accepted.");
            }

            foreach (var algorithm in issuer.Algorithms)
            {
                if (!IssuerOptions.DefaultAlgorithms.Contains(algorithm, StringComparer.Ordinal))
                {
                    failures.Add($"NhiAudit:Identity {label}: algorithm '{algorithm}' is not allowed; use asymmetric algorithms only ({string.Join(", ", IssuerOptions.DefaultAlgorithms)}). 'none' and HS* are never accepted.");
                }
            }
        }

        return failures;
    }

    private static void ValidateKeySource(IssuerOptions issuer, string label, List<string> failures)
    {
        var sources = (string.IsNullOrWhiteSpace(issuer.Authority) ? 0 : 1)
            + (string.IsNullOrWhiteSpace(issuer.JwksUri) ? 0 : 1)
            + (string.IsNullOrWhiteSpace(issuer.JwksFile) ? 0 : 1);
        if (sources == 0)
        {
            failures.Add($"NhiAudit:Identity {label}: no key source; set one of Authority, JwksUri or JwksFile.");
            return;
        }

        if (sources > 1)
        {
            failures.Add($"NhiAudit:Identity {label}: set only one of Authority, JwksUri or JwksFile.");
        }

        if (!string.IsNullOrWhiteSpace(issuer.Authority) && !IsAcceptableUrl(issuer.Authority))
        {
            failures.Add($"NhiAudit:Identity {label}: Authority '{issuer.Authority}' must be an absolute https URL (http only for 127.0.0.1/localhost).");
        }

        if (!string.IsNullOrWhiteSpace(issuer.JwksUri) && !IsAcceptableUrl(issuer.JwksUri))
        {
            failures.Add($"NhiAudit:Identity {label}: JwksUri '{issuer.JwksUri}' must be an absolute https URL (http only for 127.0.0.1/localhost).");
        }

        if (string.IsNullOrWhiteSpace(issuer.Authority) && string.IsNullOrWhiteSpace(issuer.Issuer))
        {
            failures.Add($"NhiAudit:Identity {label}: Issuer (the expected 'iss' claim) is required with JwksFile or JwksUri.");
        }
    }

    private static bool IsAcceptableUrl(string value) =>
        Uri.TryCreate(value, UriKind.Absolute, out var uri)
        && (uri.Scheme == Uri.UriSchemeHttps || (uri.Scheme == Uri.UriSchemeHttp && uri.IsLoopback));
}
