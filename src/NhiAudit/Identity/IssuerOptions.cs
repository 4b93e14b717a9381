namespace NhiAudit.Identity;

/// <summary>
/// One trusted token issuer and where its signing keys come from. Exactly one key source is set:
/// <see cref="Authority"/> (OIDC discovery), <see cref="JwksUri"/> or <see cref="JwksFile"/>.
/// </summary>
public sealed class IssuerOptions
{
    /// <summary>
    /// The algorithms accepted when <see cref="Algorithms"/> is empty: asymmetric signatures only. <c>none</c> and the HMAC
    /// family (<c>HS*</c>) are never accepted, because an HMAC "signature" keyed with a public key is forgeable by anyone.
    /// </summary>
    public static IReadOnlyList<string> DefaultAlgorithms { get; } =
        ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"];

    /// <summary>A short name for logs and error messages, e.g. <c>entra</c> or <c>github</c>.</summary>
    public string Name { get; set; } = "";

    /// <summary>
    /// The OIDC discovery base: metadata is read from <c>&lt;Authority&gt;/.well-known/openid-configuration</c>.
    /// Must be https (plain http is allowed only for loopback addresses, so tests can run a local issuer).
    /// </summary>
    public string? Authority { get; set; }

    /// <summary>
    /// The expected <c>iss</c> claim. Required with <see cref="JwksFile"/> or <see cref="JwksUri"/>; optional with
    /// <see cref="Authority"/>, where it defaults to the issuer the discovery document names.
    /// </summary>
    public string? Issuer { get; set; }

    /// <summary>
    /// A local JWKS file holding the issuer's public keys, for development (see <see cref="DevelopmentIssuer"/>).
    /// A relative path is resolved against the current directory. The file is re-read when it changes.
    /// </summary>
    public string? JwksFile { get; set; }

    /// <summary>A JWKS endpoint to fetch the issuer's public keys from, for issuers without a discovery document.</summary>
    public string? JwksUri { get; set; }

    /// <summary>The accepted <c>aud</c> values; at least one is required, since a token minted for another service must not open this one.</summary>
    public List<string> Audiences { get; set; } = [];

    /// <summary>
    /// The accepted signature algorithms, a subset of <see cref="DefaultAlgorithms"/>. Empty means all of
    /// <see cref="DefaultAlgorithms"/>. (Empty rather than pre-filled because configuration binding appends to a
    /// pre-filled list, which would make it impossible to narrow the list from configuration.)
    /// </summary>
    public List<string> Algorithms { get; set; } = [];

    /// <summary>The algorithms in force: <see cref="Algorithms"/>, or <see cref="DefaultAlgorithms"/> when that is empty.</summary>
    internal IReadOnlyList<string> EffectiveAlgorithms => Algorithms.Count > 0 ? Algorithms : DefaultAlgorithms;
}
