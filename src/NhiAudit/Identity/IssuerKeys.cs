using Microsoft.IdentityModel.Tokens;

namespace NhiAudit.Identity;

/// <summary>A snapshot of one issuer's signing keys.</summary>
/// <param name="DiscoveredIssuer">The issuer named by the discovery document, when the keys came from OIDC discovery.</param>
/// <param name="Keys">The asymmetric signing keys; symmetric keys are never included.</param>
internal sealed record IssuerKeys(string? DiscoveredIssuer, IReadOnlyList<SecurityKey> Keys)
{
    /// <summary>
    /// Keeps only asymmetric signature keys. A JWKS that (by mistake or malice) publishes an <c>oct</c> key must not
    /// turn into an HMAC secret: that is how key-confusion forgeries work.
    /// </summary>
    public static List<SecurityKey> AsymmetricOnly(IEnumerable<SecurityKey> keys)
    {
        var result = new List<SecurityKey>();
        foreach (var key in keys)
        {
            var usable = key switch
            {
                RsaSecurityKey or ECDsaSecurityKey or X509SecurityKey => true,
                JsonWebKey jwk => (jwk.Kty == JsonWebAlgorithmsKeyTypes.RSA || jwk.Kty == JsonWebAlgorithmsKeyTypes.EllipticCurve)
                    && (string.IsNullOrEmpty(jwk.Use) || jwk.Use == JsonWebKeyUseNames.Sig),
                _ => false,
            };
            if (usable)
            {
                result.Add(key);
            }
        }

        return result;
    }
}
