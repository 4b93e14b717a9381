using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using NhiAudit.Identity;

namespace NhiAudit.Tests.Identity;

public sealed class WorkloadTokenRejectionTests : IDisposable
{
    private readonly DevIssuerContext _context = new();

    public void Dispose() => _context.Dispose();

    private static string Iso(DateTimeOffset value) => value.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    [Fact]
    public async Task Expired_token_says_when_it_expired()
    {
        var issuedAt = DateTimeOffset.FromUnixTimeSeconds(DateTimeOffset.UtcNow.AddHours(-3).ToUnixTimeSeconds());
        var token = _context.Issuer.MintToken(new TokenRequest { Subject = "job", IssuedAt = issuedAt, Lifetime = TimeSpan.FromHours(1) });

        await _context.AssertRefusedAsync(token, $"token expired at {Iso(issuedAt.AddHours(1))}");
    }

    [Fact]
    public async Task Not_yet_valid_token_says_from_when()
    {
        var notBefore = DateTimeOffset.FromUnixTimeSeconds(DateTimeOffset.UtcNow.AddHours(1).ToUnixTimeSeconds());
        var token = _context.Issuer.MintToken(new TokenRequest
        {
            Subject = "job",
            IssuedAt = DateTimeOffset.UtcNow,
            NotBefore = notBefore,
            Lifetime = TimeSpan.FromHours(3),
        });

        await _context.AssertRefusedAsync(token, $"token is not valid before {Iso(notBefore)}");
    }

    [Fact]
    public async Task Lifetime_uses_the_injected_clock()
    {
        var clock = new ManualClock(DateTimeOffset.UtcNow);
        using var context = new DevIssuerContext(clock: clock);
        var token = context.Issuer.MintToken(new TokenRequest { Subject = "job", IssuedAt = clock.GetUtcNow(), Lifetime = TimeSpan.FromMinutes(5) });
        await context.AssertValidAsync(token);

        clock.Advance(TimeSpan.FromMinutes(6));

        var reason = await context.AssertRefusedAsync(token);
        Assert.StartsWith("token expired at ", reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Wrong_audience_is_named()
    {
        var token = _context.Issuer.MintToken(new TokenRequest { Subject = "job", Audience = "api://someone-else" });

        await _context.AssertRefusedAsync(token, "token audience 'api://someone-else' is not accepted");
    }

    [Fact]
    public async Task Unknown_issuer_is_named()
    {
        using var other = new TestDirectory();
        using var stranger = DevelopmentIssuer.LoadOrCreate(other.Path, "https://evil.example");
        var token = stranger.MintToken(new TokenRequest { Subject = "job" });

        await _context.AssertRefusedAsync(token, "token issuer 'https://evil.example' is not trusted");
    }

    [Fact]
    public async Task Token_from_another_key_with_its_own_kid_is_refused()
    {
        using var other = new TestDirectory();
        using var impostor = DevelopmentIssuer.LoadOrCreate(other.Path, DevIssuerContext.IssuerUrl);
        var token = impostor.MintToken(new TokenRequest { Subject = "job" });

        await _context.AssertRefusedAsync(token, $"token signing key '{impostor.KeyId}' is not trusted");
    }

    [Fact]
    public async Task Token_from_another_key_claiming_the_trusted_kid_has_an_invalid_signature()
    {
        using var attackerKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var token = TokenForge.SignEs256(attackerKey, new { alg = "ES256", typ = "JWT", kid = _context.Issuer.KeyId }, TokenForge.Claims());

        await _context.AssertRefusedAsync(token, "token signature is invalid");
    }

    [Fact]
    public async Task Token_from_another_key_without_kid_has_an_invalid_signature()
    {
        using var attackerKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var token = TokenForge.SignEs256(attackerKey, new { alg = "ES256", typ = "JWT" }, TokenForge.Claims());

        await _context.AssertRefusedAsync(token, "token signature is invalid");
    }

    [Fact]
    public async Task Hand_built_token_signed_with_the_real_key_is_accepted()
    {
        // Proves the forge helpers are right, so the refusals around it are about the attack and not the helper.
        using var key = TokenForge.LoadKey(_context.KeyPath);
        var token = TokenForge.SignEs256(key, new { alg = "ES256", typ = "JWT", kid = _context.Issuer.KeyId }, TokenForge.Claims(sub: "hand-built"));

        var identity = await _context.AssertValidAsync(token);
        Assert.Equal("hand-built", identity.Subject);
    }

    [Fact]
    public async Task Tampered_payload_breaks_the_signature()
    {
        var token = _context.Issuer.MintToken(new TokenRequest { Subject = "job", Roles = ["Reader"] });
        var parts = token.Split('.');
        var payload = Encoding.UTF8.GetString(Base64UrlEncoder.DecodeBytes(parts[1]));
        var tampered = payload.Replace("\"Reader\"", "\"NhiAudit.Approver\"", StringComparison.Ordinal);
        Assert.NotEqual(payload, tampered);

        await _context.AssertRefusedAsync($"{parts[0]}.{TokenForge.B64(tampered)}.{parts[2]}", "token signature is invalid");
    }

    [Fact]
    public async Task Truncated_signature_is_refused()
    {
        var token = _context.Issuer.MintToken(new TokenRequest { Subject = "job" });

        await _context.AssertRefusedAsync(token[..^10], "token signature is invalid");
    }

    [Theory]
    [InlineData("none")]
    [InlineData("None")]
    [InlineData("NONE")]
    public async Task Alg_none_is_refused(string alg)
    {
        var token = TokenForge.Unsigned(new { alg, typ = "JWT", kid = _context.Issuer.KeyId }, TokenForge.Claims());

        await _context.AssertRefusedAsync(token, "token is not signed");
    }

    [Fact]
    public async Task Alg_none_with_a_junk_signature_is_refused()
    {
        var token = TokenForge.Unsigned(new { alg = "none", typ = "JWT" }, TokenForge.Claims()) + "c2lnbmF0dXJl";

        await _context.AssertRefusedAsync(token, "token is not signed");
    }

    [Fact]
    public async Task Es256_header_with_empty_signature_is_refused()
    {
        var token = TokenForge.Unsigned(new { alg = "ES256", typ = "JWT", kid = _context.Issuer.KeyId }, TokenForge.Claims());

        await _context.AssertRefusedAsync(token, "token is not signed");
    }

    public static TheoryData<string> PublicKeyRenderings => ["jwks.json", "spki-der", "spki-pem", "x-y"];

    [Theory]
    [MemberData(nameof(PublicKeyRenderings))]
    public async Task HS256_signed_with_the_public_key_is_refused(string rendering)
    {
        // The classic key-confusion attack: the public key is public, so an HMAC over it is forgeable by anyone.
        using var key = TokenForge.LoadKey(_context.KeyPath);
        var secret = rendering switch
        {
            "jwks.json" => File.ReadAllBytes(_context.Issuer.JwksPath),
            "spki-der" => key.ExportSubjectPublicKeyInfo(),
            "spki-pem" => Encoding.ASCII.GetBytes(key.ExportSubjectPublicKeyInfoPem()),
            _ => [.. key.ExportParameters(false).Q.X!, .. key.ExportParameters(false).Q.Y!],
        };
        var token = TokenForge.SignHs256(secret, new { alg = "HS256", typ = "JWT", kid = _context.Issuer.KeyId }, TokenForge.Claims());

        await _context.AssertRefusedAsync(token, "token algorithm 'HS256' is not allowed");
    }

    [Fact]
    public async Task Key_confusion_is_refused_by_the_validation_parameters_too()
    {
        // Defence in depth: even if the early algorithm check were removed, the parameters handed to IdentityModel
        // (asymmetric keys only, ValidAlgorithms allow-list) must refuse an HS256 token.
        var secret = File.ReadAllBytes(_context.Issuer.JwksPath);
        var token = TokenForge.SignHs256(secret, new { alg = "HS256", typ = "JWT", kid = _context.Issuer.KeyId }, TokenForge.Claims());
        var issuer = TrustedIssuer.Create(_context.Options.Issuers[0], TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        var keys = await issuer.KeySource.GetKeysAsync(CancellationToken.None);
        var parameters = issuer.CreateParameters(DevIssuerContext.IssuerUrl, keys, tokenHasKeyId: true, TimeSpan.Zero, TimeProvider.System);

        var result = await new JsonWebTokenHandler().ValidateTokenAsync(token, parameters);

        Assert.False(result.IsValid);
    }

    [Fact]
    public async Task Algorithm_outside_the_issuer_list_is_refused()
    {
        using var context = new DevIssuerContext(o => o.Issuers[0].Algorithms = ["RS256"]);
        var token = context.Issuer.MintToken(new TokenRequest { Subject = "job" });

        await context.AssertRefusedAsync(token, "token algorithm 'ES256' is not allowed");
    }

    [Fact]
    public async Task Token_without_exp_is_refused()
    {
        using var key = TokenForge.LoadKey(_context.KeyPath);
        var claims = TokenForge.Claims();
        claims.Remove("exp");
        var token = TokenForge.SignEs256(key, new { alg = "ES256", typ = "JWT", kid = _context.Issuer.KeyId }, claims);

        await _context.AssertRefusedAsync(token, "token has no expiry (exp)");
    }

    [Fact]
    public async Task Token_without_subject_is_refused()
    {
        using var key = TokenForge.LoadKey(_context.KeyPath);
        var claims = TokenForge.Claims();
        claims.Remove("sub");
        var token = TokenForge.SignEs256(key, new { alg = "ES256", typ = "JWT", kid = _context.Issuer.KeyId }, claims);

        await _context.AssertRefusedAsync(token, "token has no subject (oid or sub)");
    }

    [Fact]
    public async Task Token_without_audience_is_refused()
    {
        using var key = TokenForge.LoadKey(_context.KeyPath);
        var claims = TokenForge.Claims();
        claims.Remove("aud");
        var token = TokenForge.SignEs256(key, new { alg = "ES256", typ = "JWT", kid = _context.Issuer.KeyId }, claims);

        await _context.AssertRefusedAsync(token, "token has no audience");
    }

    [Fact]
    public async Task Token_without_issuer_is_refused()
    {
        using var key = TokenForge.LoadKey(_context.KeyPath);
        var claims = TokenForge.Claims();
        claims.Remove("iss");
        var token = TokenForge.SignEs256(key, new { alg = "ES256", typ = "JWT", kid = _context.Issuer.KeyId }, claims);

        await _context.AssertRefusedAsync(token, "token has no issuer");
    }

    [Fact]
    public async Task Echoed_claim_values_are_shortened_and_made_printable()
    {
        var token = _context.Issuer.MintToken(new TokenRequest { Subject = "job", Audience = "evil\r\n" + new string('a', 500) });

        var reason = await _context.AssertRefusedAsync(token);

        Assert.StartsWith("token audience 'evil??aaaa", reason, StringComparison.Ordinal);
        Assert.True(reason.Length < 150, reason);
        Assert.DoesNotContain('\n', reason);
    }

    public static TheoryData<string, string> Garbage => new()
    {
        { "", "no token was presented" },
        { "   ", "no token was presented" },
        { "hello", "token is not a JWT" },
        { "a.b", "token is not a JWT" },
        { "a.b.c", "token is not a JWT" },
        { "...", "token is not a JWT" },
        { "a.b.c.d", "token is not a JWT" },
        { "a.b.c.d.e", "encrypted tokens (JWE) are not accepted" },
        { "Bearer abc.def.ghi", "token is not a JWT" },
        { "eyJhbGciOiJFUzI1NiJ9.bm90IGpzb24.c2ln", "token is not a JWT" },
        { "bm90IGpzb24.eyJpc3MiOiJ4In0.c2ln", "token is not a JWT" },
        { "eyJhbGciOiJFUzI1NiJ9.W10.c2ln", "token is not a JWT" },
        { "eyJhbGciOlsxLDJdfQ.e30.c2ln", "token is not a JWT" },
    };

    [Theory]
    [MemberData(nameof(Garbage))]
    public async Task Garbage_is_refused_with_a_reason(string input, string expected)
    {
        await _context.AssertRefusedAsync(input, expected);
    }

    [Fact]
    public async Task Null_token_is_refused()
    {
        var result = await _context.Validator.AuthenticateAsync(null!);

        Assert.Equal("no token was presented", result.Failure);
    }

    [Fact]
    public async Task One_megabyte_token_is_refused_before_parsing()
    {
        var huge = "eyJhbGciOiJFUzI1NiJ9." + new string('A', 1024 * 1024) + ".c2ln";

        await _context.AssertRefusedAsync(huge, $"token is too large (more than {WorkloadTokenValidator.MaxTokenLength} characters)");
    }

    [Fact]
    public async Task Deeply_nested_json_is_refused()
    {
        var nested = "{\"iss\":" + new string('[', 5000) + new string(']', 5000) + "}";
        var token = $"{TokenForge.B64("{\"alg\":\"ES256\"}")}.{TokenForge.B64(nested)}.c2ln";

        await _context.AssertRefusedAsync(token);
    }
}
