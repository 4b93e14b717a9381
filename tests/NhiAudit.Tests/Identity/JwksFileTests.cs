using System.Text;
using System.Text.Json.Nodes;
using NhiAudit.Identity;

namespace NhiAudit.Tests.Identity;

public sealed class JwksFileTests : IDisposable
{
    private readonly TestDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    private static WorkloadTokenValidator Trusting(string jwksPath, TimeProvider? clock = null) => new(new IdentityOptions
    {
        Issuers = [new IssuerOptions { Name = "local", Issuer = DevIssuerContext.IssuerUrl, JwksFile = jwksPath, Audiences = ["nhiaudit"] }],
    }, clock);

    [Fact]
    public async Task Rotated_key_is_picked_up_once_the_file_changes()
    {
        var clock = new ManualClock(DateTimeOffset.UtcNow);
        var dir = _directory.Sub("dev");
        using var before = DevelopmentIssuer.LoadOrCreate(dir);
        var validator = Trusting(before.JwksPath, clock);
        var oldToken = before.MintToken(new TokenRequest { Subject = "job" });
        Assert.True((await validator.AuthenticateAsync(oldToken)).Succeeded);

        File.Delete(Path.Combine(dir, DevelopmentIssuer.KeyFileName));
        using var after = DevelopmentIssuer.LoadOrCreate(dir);
        Assert.NotEqual(before.KeyId, after.KeyId);
        var newToken = after.MintToken(new TokenRequest { Subject = "job" });

        // The unknown kid asks the file source to look again at once instead of waiting for its check interval.
        var first = await validator.AuthenticateAsync(newToken);
        var second = await validator.AuthenticateAsync(newToken);
        Assert.True(first.Succeeded || second.Succeeded, $"{first.Failure} / {second.Failure}");

        clock.Advance(TimeSpan.FromSeconds(5));
        Assert.False((await validator.AuthenticateAsync(oldToken)).Succeeded);
    }

    [Fact]
    public async Task Broken_rewrite_keeps_the_previous_keys()
    {
        var clock = new ManualClock(DateTimeOffset.UtcNow);
        using var issuer = DevelopmentIssuer.LoadOrCreate(_directory.Sub("dev"));
        var validator = Trusting(issuer.JwksPath, clock);
        var token = issuer.MintToken(new TokenRequest { Subject = "job" });

        File.WriteAllText(issuer.JwksPath, "{ half-written");
        clock.Advance(TimeSpan.FromSeconds(5));

        Assert.True((await validator.AuthenticateAsync(token)).Succeeded);
    }

    [Fact]
    public async Task Symmetric_key_published_beside_the_real_one_is_never_used()
    {
        using var issuer = DevelopmentIssuer.LoadOrCreate(_directory.Sub("dev"));
        var secret = Encoding.UTF8.GetBytes("an-hmac-secret-published-by-mistake!");
        var jwks = JsonNode.Parse(File.ReadAllText(issuer.JwksPath))!;
        jwks["keys"]!.AsArray().Add(new JsonObject { ["kty"] = "oct", ["kid"] = "hmac", ["alg"] = "HS256", ["k"] = TokenForge.B64(secret) });
        var path = _directory.Sub("mixed-jwks.json");
        File.WriteAllText(path, jwks.ToJsonString());
        var validator = Trusting(path);

        var forged = TokenForge.SignHs256(secret, new { alg = "HS256", typ = "JWT", kid = "hmac" }, TokenForge.Claims());
        var genuine = issuer.MintToken(new TokenRequest { Subject = "job" });

        Assert.Equal("token algorithm 'HS256' is not allowed", (await validator.AuthenticateAsync(forged)).Failure);
        Assert.True((await validator.AuthenticateAsync(genuine)).Succeeded);
    }
}
