using Microsoft.Extensions.Logging;
using Microsoft.IdentityModel.Tokens;

namespace NhiAudit.Identity;

/// <summary>One configured issuer, ready to validate: its options, key source and algorithm allow-list.</summary>
internal sealed class TrustedIssuer
{
    private TrustedIssuer(IssuerOptions options, SigningKeySource keySource)
    {
        Options = options;
        KeySource = keySource;
        Algorithms = [.. options.EffectiveAlgorithms];
    }

    /// <summary>The issuer's options.</summary>
    public IssuerOptions Options { get; }

    /// <summary>The name used in logs.</summary>
    public string Name => string.IsNullOrEmpty(Options.Name) ? Options.Issuer ?? Options.Authority ?? "?" : Options.Name;

    /// <summary>The configured <c>iss</c>, or null when it is taken from discovery.</summary>
    public string? ConfiguredIssuer => string.IsNullOrWhiteSpace(Options.Issuer) ? null : Options.Issuer;

    /// <summary>Where the keys come from.</summary>
    public SigningKeySource KeySource { get; }

    /// <summary>The accepted <c>alg</c> values.</summary>
    public HashSet<string> Algorithms { get; }

    /// <summary>Creates the issuer and its key source (a JWKS file is read now).</summary>
    public static TrustedIssuer Create(IssuerOptions options, TimeProvider timeProvider, ILogger logger)
    {
        SigningKeySource source = !string.IsNullOrWhiteSpace(options.JwksFile)
            ? new JwksFileKeySource(options.JwksFile, options.Name, timeProvider, logger)
            : !string.IsNullOrWhiteSpace(options.JwksUri)
                ? ConfigurationManagerKeySource.ForJwksUri(options.JwksUri, timeProvider)
                : ConfigurationManagerKeySource.ForAuthority(options.Authority!, timeProvider);
        return new TrustedIssuer(options, source);
    }

    /// <summary>Builds the validation parameters for one token.</summary>
    /// <param name="validIssuer">The one <c>iss</c> value accepted.</param>
    /// <param name="keys">The issuer's current keys.</param>
    /// <param name="tokenHasKeyId">
    /// Whether the token names a key (<c>kid</c>). When it does, only that key is tried: trying every key would let a
    /// token pick whichever key the attacker likes best and hides key-rotation problems.
    /// </param>
    /// <param name="clockSkew">Allowed clock difference.</param>
    /// <param name="timeProvider">The clock.</param>
    public TokenValidationParameters CreateParameters(string validIssuer, IssuerKeys keys, bool tokenHasKeyId, TimeSpan clockSkew, TimeProvider timeProvider) => new()
    {
        ValidateIssuer = true,
        ValidIssuer = validIssuer,
        ValidateAudience = true,
        ValidAudiences = Options.Audiences,
        IssuerSigningKeys = keys.Keys,
        TryAllIssuerSigningKeys = !tokenHasKeyId,
        ValidAlgorithms = Algorithms,
        RequireSignedTokens = true,
        RequireExpirationTime = true,
        RequireAudience = true,
        ValidateLifetime = true,
        ClockSkew = clockSkew,

        // TokenValidationParameters.TimeProvider is internal in IdentityModel 8.x, so the lifetime check is ours: it
        // uses the injected clock (tests, and gateways that pin time) and must also enforce RequireExpirationTime,
        // which IdentityModel skips once a custom validator is set.
        LifetimeValidator = (notBefore, expires, _, _) => LifetimeCheck.Validate(notBefore, expires, clockSkew, timeProvider),
        SaveSigninToken = false,
    };
}
