using System.Globalization;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace NhiAudit.Identity;

/// <summary>
/// Validates workload tokens (Entra ID, GitHub Actions OIDC, a <see cref="DevelopmentIssuer"/>) against the configured
/// issuers: signature, issuer, audience, lifetime and an asymmetric-only algorithm allow-list. The issuer is chosen by
/// the token's unvalidated <c>iss</c> claim and then everything is validated against that issuer's keys only.
/// </summary>
/// <remarks>
/// Never throws for bad input: any refusal is a <see cref="WorkloadAuthenticationResult.Fail"/> whose reason is safe to
/// show the client and never repeats the token. Only cancellation of the caller's token propagates.
/// </remarks>
public sealed class WorkloadTokenValidator : IWorkloadAuthenticator
{
    /// <summary>The longest token accepted, in characters. Real workload tokens are 1–4 KB; anything far larger is refused before parsing.</summary>
    public const int MaxTokenLength = 16 * 1024;

    private const int MaxEchoLength = 80;

    private readonly JsonWebTokenHandler _handler = new() { MaximumTokenSizeInBytes = MaxTokenLength, MapInboundClaims = false };
    private readonly Dictionary<string, TrustedIssuer[]> _byIssuer;
    private readonly TrustedIssuer[] _discovered;
    private readonly TimeSpan _clockSkew;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;

    /// <summary>Creates the validator from DI-bound options.</summary>
    /// <param name="options">The identity options; invalid options throw <see cref="OptionsValidationException"/> here.</param>
    /// <param name="timeProvider">The clock used for <c>nbf</c>/<c>exp</c>.</param>
    /// <param name="logger">Where key-source problems are reported.</param>
    public WorkloadTokenValidator(IOptions<IdentityOptions> options, TimeProvider timeProvider, ILogger<WorkloadTokenValidator> logger)
        : this(Unwrap(options), timeProvider, (ILogger)logger)
    {
    }

    /// <summary>Creates the validator from options built in code.</summary>
    /// <param name="options">The identity options; invalid options throw <see cref="OptionsValidationException"/>.</param>
    /// <param name="timeProvider">The clock used for <c>nbf</c>/<c>exp</c>; the system clock when null.</param>
    /// <param name="logger">Where key-source problems are reported; nothing is logged when null.</param>
    /// <exception cref="OptionsValidationException">The options are invalid.</exception>
    /// <exception cref="InvalidOperationException">A configured JWKS file cannot be read.</exception>
    public WorkloadTokenValidator(IdentityOptions options, TimeProvider? timeProvider = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);

        // Validated here as well as by the options pipeline, so code that news this up cannot skip the checks.
        IdentityOptionsValidator.ThrowIfInvalid(options);
        _timeProvider = timeProvider ?? TimeProvider.System;
        _logger = logger ?? NullLogger.Instance;
        _clockSkew = options.ClockSkew;

        var byIssuer = new Dictionary<string, List<TrustedIssuer>>(StringComparer.Ordinal);
        var discovered = new List<TrustedIssuer>();
        foreach (var issuerOptions in options.Issuers)
        {
            var issuer = TrustedIssuer.Create(issuerOptions, _timeProvider, _logger);
            if (issuer.ConfiguredIssuer is { } iss)
            {
                if (!byIssuer.TryGetValue(iss, out var list))
                {
                    byIssuer[iss] = list = [];
                }

                list.Add(issuer);
            }
            else
            {
                discovered.Add(issuer);
            }
        }

        _byIssuer = byIssuer.ToDictionary(p => p.Key, p => p.Value.ToArray(), StringComparer.Ordinal);
        _discovered = [.. discovered];
    }

    /// <inheritdoc />
    public async ValueTask<WorkloadAuthenticationResult> AuthenticateAsync(string token, CancellationToken cancellationToken = default)
    {
        try
        {
            return await AuthenticateCoreAsync(token, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception ex)
        {
            // Last line of defence for the "never throws" contract. IdentityModel hides PII in its messages by default,
            // so the exception can be logged; the client only gets a generic reason.
            _logger.LogWarning(ex, "Unexpected failure while validating a workload token");
            return WorkloadAuthenticationResult.Fail("token could not be validated");
        }
    }

    private async ValueTask<WorkloadAuthenticationResult> AuthenticateCoreAsync(string? token, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(token))
        {
            return Fail("no token was presented");
        }

        if (token.Length > MaxTokenLength)
        {
            return Fail($"token is too large (more than {MaxTokenLength} characters)");
        }

        token = token.Trim();
        switch (token.AsSpan().Count('.'))
        {
            case 2:
                break;
            case 4:
                return Fail("encrypted tokens (JWE) are not accepted");
            default:
                return Fail("token is not a JWT");
        }

        JsonWebToken jwt;
        try
        {
            // Parsed without trusting anything yet: only to learn which issuer's rules apply.
            jwt = new JsonWebToken(token);
        }
        catch (Exception)
        {
            return Fail("token is not a JWT");
        }

        var algorithm = jwt.Alg;
        if (string.IsNullOrEmpty(algorithm) || string.Equals(algorithm, "none", StringComparison.OrdinalIgnoreCase) || token.EndsWith('.'))
        {
            return Fail("token is not signed");
        }

        if (!IssuerOptions.DefaultAlgorithms.Contains(algorithm, StringComparer.Ordinal))
        {
            return Fail($"token algorithm '{Echo(algorithm)}' is not allowed");
        }

        var iss = jwt.Issuer;
        if (string.IsNullOrEmpty(iss))
        {
            return Fail("token has no issuer");
        }

        var candidates = await FindIssuersAsync(iss, cancellationToken).ConfigureAwait(false);
        if (candidates.Count == 0)
        {
            return Fail($"token issuer '{Echo(iss)}' is not trusted");
        }

        string? firstFailure = null;
        foreach (var (issuer, keys) in candidates)
        {
            var failure = await ValidateWithAsync(token, jwt, issuer, keys, cancellationToken).ConfigureAwait(false);
            if (failure.Succeeded)
            {
                return failure;
            }

            firstFailure ??= failure.Failure;
        }

        return Fail(firstFailure ?? "token is invalid");
    }

    private async ValueTask<WorkloadAuthenticationResult> ValidateWithAsync(string token, JsonWebToken jwt, TrustedIssuer issuer, IssuerKeys? keys, CancellationToken cancellationToken)
    {
        if (!issuer.Algorithms.Contains(jwt.Alg))
        {
            return Fail($"token algorithm '{Echo(jwt.Alg)}' is not allowed");
        }

        if (keys is null)
        {
            try
            {
                keys = await issuer.KeySource.GetKeysAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
            {
                _logger.LogWarning(ex, "Signing keys of issuer {Issuer} are unavailable", issuer.Name);
                return Fail("the token issuer's signing keys are unavailable");
            }
        }

        var validIssuer = issuer.ConfiguredIssuer ?? keys.DiscoveredIssuer;
        if (validIssuer is null)
        {
            _logger.LogWarning("Issuer {Issuer}: discovery named no issuer and none is configured", issuer.Name);
            return Fail($"token issuer '{Echo(jwt.Issuer)}' is not trusted");
        }

        var parameters = issuer.CreateParameters(validIssuer, keys, !string.IsNullOrEmpty(jwt.Kid), _clockSkew, _timeProvider);
        var result = await _handler.ValidateTokenAsync(token, parameters).ConfigureAwait(false);
        if (!result.IsValid)
        {
            if (result.Exception is SecurityTokenSignatureKeyNotFoundException)
            {
                // Possibly a key rotation we have not seen yet; the key source rate-limits the refresh.
                issuer.KeySource.RequestRefresh();
            }

            return Fail(Describe(result.Exception, jwt));
        }

        if (result.SecurityToken is not JsonWebToken validated)
        {
            return Fail("token is invalid");
        }

        var identity = TokenClaimsMapper.Map(validated, validIssuer);
        return identity is null ? Fail("token has no subject (oid or sub)") : WorkloadAuthenticationResult.Success(identity);
    }

    private async ValueTask<List<(TrustedIssuer Issuer, IssuerKeys? Keys)>> FindIssuersAsync(string iss, CancellationToken cancellationToken)
    {
        var matches = new List<(TrustedIssuer, IssuerKeys?)>();
        if (_byIssuer.TryGetValue(iss, out var configured))
        {
            foreach (var issuer in configured)
            {
                matches.Add((issuer, null));
            }
        }

        // Issuers configured by Authority alone learn their iss from discovery; the configuration manager caches the
        // document, so this costs a fetch only the first time (and after its refresh interval).
        foreach (var issuer in _discovered)
        {
            try
            {
                var keys = await issuer.KeySource.GetKeysAsync(cancellationToken).ConfigureAwait(false);
                if (string.Equals(keys.DiscoveredIssuer, iss, StringComparison.Ordinal))
                {
                    matches.Add((issuer, keys));
                }
            }
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
            {
                _logger.LogWarning(ex, "OIDC discovery for issuer {Issuer} failed", issuer.Name);
            }
        }

        return matches;
    }

    private static string Describe(Exception? exception, JsonWebToken jwt) => exception switch
    {
        SecurityTokenExpiredException expired => $"token expired at {Timestamp(expired.Expires)}",
        SecurityTokenNotYetValidException early => $"token is not valid before {Timestamp(early.NotBefore)}",
        SecurityTokenNoExpirationException => "token has no expiry (exp)",
        SecurityTokenInvalidLifetimeException => "token lifetime is invalid",
        SecurityTokenInvalidAudienceException => jwt.Audiences.Any()
            ? $"token audience '{Echo(string.Join(", ", jwt.Audiences))}' is not accepted"
            : "token has no audience",
        SecurityTokenInvalidIssuerException => $"token issuer '{Echo(jwt.Issuer)}' is not trusted",
        SecurityTokenSignatureKeyNotFoundException when !string.IsNullOrEmpty(jwt.Kid) => $"token signing key '{Echo(jwt.Kid)}' is not trusted",
        SecurityTokenInvalidSignatureException => "token signature is invalid",
        SecurityTokenInvalidAlgorithmException => $"token algorithm '{Echo(jwt.Alg)}' is not allowed",
        SecurityTokenMalformedException or ArgumentException => "token is malformed",
        _ => "token is invalid",
    };

    private static string Timestamp(DateTime utc) =>
        DateTime.SpecifyKind(utc, DateTimeKind.Utc).ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    /// <summary>
    /// A claim value fit to repeat in a reason: short and printable, since it came from an unauthenticated token and
    /// ends up in client messages and logs.
    /// </summary>
    private static string Echo(string? value)
    {
        if (string.IsNullOrEmpty(value))
        {
            return "";
        }

        var builder = new StringBuilder(Math.Min(value.Length, MaxEchoLength) + 1);
        foreach (var c in value)
        {
            if (builder.Length == MaxEchoLength)
            {
                builder.Append('…');
                break;
            }

            builder.Append(c is >= ' ' and < (char)0x7f ? c : '?');
        }

        return builder.ToString();
    }

    private static WorkloadAuthenticationResult Fail(string reason) => WorkloadAuthenticationResult.Fail(reason);

    private static IdentityOptions Unwrap(IOptions<IdentityOptions> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options.Value;
    }
}
