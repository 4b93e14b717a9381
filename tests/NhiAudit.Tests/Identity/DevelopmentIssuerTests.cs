using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.IdentityModel.Tokens;
using NhiAudit.Identity;

namespace NhiAudit.Tests.Identity;

public sealed class DevelopmentIssuerTests : IDisposable
{
    private readonly TestDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public void First_run_creates_a_private_key_and_a_public_jwks()
    {
        using var issuer = DevelopmentIssuer.LoadOrCreate(_directory.Sub("dev"));

        var keyPath = Path.Combine(_directory.Sub("dev"), DevelopmentIssuer.KeyFileName);
        Assert.True(File.Exists(keyPath));
        Assert.Equal(Path.Combine(_directory.Sub("dev"), DevelopmentIssuer.JwksFileName), issuer.JwksPath);
        Assert.Equal("https://issuer.local", issuer.Issuer);
        Assert.Contains("BEGIN PRIVATE KEY", File.ReadAllText(keyPath), StringComparison.Ordinal);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(keyPath));
        }

        using var jwks = JsonDocument.Parse(File.ReadAllText(issuer.JwksPath));
        var key = Assert.Single(jwks.RootElement.GetProperty("keys").EnumerateArray());
        Assert.Equal("EC", key.GetProperty("kty").GetString());
        Assert.Equal("P-256", key.GetProperty("crv").GetString());
        Assert.Equal("ES256", key.GetProperty("alg").GetString());
        Assert.Equal("sig", key.GetProperty("use").GetString());
        Assert.Equal(issuer.KeyId, key.GetProperty("kid").GetString());
        Assert.False(key.TryGetProperty("d", out _), "the JWKS must not hold the private key");
        Assert.DoesNotContain("PRIVATE", File.ReadAllText(issuer.JwksPath), StringComparison.Ordinal);
    }

    [Fact]
    public void Kid_is_the_RFC7638_thumbprint()
    {
        using var issuer = DevelopmentIssuer.LoadOrCreate(_directory.Sub("dev"));
        using var jwks = JsonDocument.Parse(File.ReadAllText(issuer.JwksPath));
        var key = jwks.RootElement.GetProperty("keys")[0];

        // RFC 7638: SHA-256 over the required members in lexicographic order, no whitespace.
        var canonical = $"{{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"{key.GetProperty("x").GetString()}\",\"y\":\"{key.GetProperty("y").GetString()}\"}}";
        var expected = Base64UrlEncoder.Encode(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(canonical)));

        Assert.Equal(expected, issuer.KeyId);
    }

    [Fact]
    public void Second_run_reuses_the_key()
    {
        string firstKid;
        using (var first = DevelopmentIssuer.LoadOrCreate(_directory.Sub("dev")))
        {
            firstKid = first.KeyId;
        }

        var jwksBefore = File.ReadAllText(Path.Combine(_directory.Sub("dev"), DevelopmentIssuer.JwksFileName));
        using var second = DevelopmentIssuer.LoadOrCreate(_directory.Sub("dev"), "https://other.local");

        Assert.Equal(firstKid, second.KeyId);
        Assert.Equal("https://other.local", second.Issuer);
        Assert.Equal(jwksBefore, File.ReadAllText(second.JwksPath));
    }

    [Fact]
    public async Task Tokens_minted_before_a_restart_still_validate()
    {
        string token;
        using (var first = DevelopmentIssuer.LoadOrCreate(_directory.Sub("dev")))
        {
            token = first.MintToken(new TokenRequest { Subject = "job" });
        }

        using var second = DevelopmentIssuer.LoadOrCreate(_directory.Sub("dev"));
        var validator = new WorkloadTokenValidator(new IdentityOptions
        {
            Issuers = [new IssuerOptions { Name = "local", Issuer = second.Issuer, JwksFile = second.JwksPath, Audiences = ["nhiaudit"] }],
        });

        Assert.True((await validator.AuthenticateAsync(token)).Succeeded);
    }

    [Fact]
    public void Parallel_first_runs_agree_on_one_key()
    {
        var kids = new string[8];
        Parallel.For(0, kids.Length, i =>
        {
            using var issuer = DevelopmentIssuer.LoadOrCreate(_directory.Sub("race"));
            kids[i] = issuer.KeyId;
        });

        Assert.Single(kids.Distinct());
        Assert.DoesNotContain(Directory.GetFiles(_directory.Sub("race")), f => f.EndsWith(".tmp", StringComparison.Ordinal));
    }

    [Fact]
    public void A_key_file_that_is_not_a_P256_key_is_reported()
    {
        Directory.CreateDirectory(_directory.Sub("bad"));
        using (var rsa = RSA.Create(2048))
        {
            File.WriteAllText(Path.Combine(_directory.Sub("bad"), DevelopmentIssuer.KeyFileName), rsa.ExportPkcs8PrivateKeyPem());
        }

        Assert.Throws<InvalidDataException>(() => DevelopmentIssuer.LoadOrCreate(_directory.Sub("bad")));
    }

    [Fact]
    public void Minted_token_header_is_ES256_with_kid()
    {
        using var issuer = DevelopmentIssuer.LoadOrCreate(_directory.Sub("dev"));
        var token = new Microsoft.IdentityModel.JsonWebTokens.JsonWebToken(issuer.MintToken(new TokenRequest { Subject = "job" }));

        Assert.Equal("ES256", token.Alg);
        Assert.Equal(issuer.KeyId, token.Kid);
        Assert.Equal("https://issuer.local", token.Issuer);
        Assert.Equal(["nhiaudit"], token.Audiences);
    }

    [Fact]
    public void Extra_claims_override_shaped_claims()
    {
        using var issuer = DevelopmentIssuer.LoadOrCreate(_directory.Sub("dev"));
        var token = new Microsoft.IdentityModel.JsonWebTokens.JsonWebToken(issuer.MintToken(new TokenRequest
        {
            Subject = "job",
            Repository = "a/b",
            ExtraClaims = new Dictionary<string, object> { ["repository"] = "c/d", ["custom"] = "x" },
        }));

        Assert.Equal("c/d", token.GetPayloadValue<string>("repository"));
        Assert.Equal("x", token.GetPayloadValue<string>("custom"));
    }
}
