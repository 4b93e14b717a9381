using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using NhiAudit.Identity;

namespace NhiAudit.Tests.Identity;

/// <summary>OIDC discovery and JWKS URLs served by a real HTTP listener on 127.0.0.1.</summary>
public sealed class OidcDiscoveryTests : IAsyncLifetime
{
    private readonly TestDirectory _directory = new();
    private readonly LoopbackHttpServer _server = new();
    private DevelopmentIssuer _issuer = null!;

    public Task InitializeAsync()
    {
        _issuer = DevelopmentIssuer.LoadOrCreate(_directory.Sub("idp"), _server.BaseUrl);
        _server.Serve("/.well-known/openid-configuration", JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["issuer"] = _server.BaseUrl,
            ["jwks_uri"] = _server.BaseUrl + "/keys",
            ["id_token_signing_alg_values_supported"] = new[] { "ES256" },
            ["response_types_supported"] = new[] { "id_token" },
            ["subject_types_supported"] = new[] { "public" },
        }));
        _server.Serve("/keys", File.ReadAllText(_issuer.JwksPath));
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        _issuer.Dispose();
        await _server.DisposeAsync();
        _directory.Dispose();
    }

    private static WorkloadTokenValidator Validator(IssuerOptions issuer) => new(new IdentityOptions { Issuers = [issuer] });

    [Fact]
    public async Task Authority_alone_discovers_issuer_and_keys()
    {
        var validator = Validator(new IssuerOptions { Name = "idp", Authority = _server.BaseUrl, Audiences = ["nhiaudit"] });
        var token = _issuer.MintToken(new TokenRequest { Subject = "job", Repository = "o/r", Workflow = "ci", RunId = "7" });

        var result = await validator.AuthenticateAsync(token);

        Assert.True(result.Succeeded, result.Failure);
        Assert.Equal(_server.BaseUrl, result.Identity!.Issuer);
        Assert.Equal("o/r/ci#7", result.Identity.DisplayName);
        Assert.Contains("/.well-known/openid-configuration", _server.Requests);
        Assert.Contains("/keys", _server.Requests);
    }

    [Fact]
    public async Task Discovery_document_is_cached()
    {
        var validator = Validator(new IssuerOptions { Name = "idp", Authority = _server.BaseUrl + "/", Audiences = ["nhiaudit"] });
        for (var i = 0; i < 5; i++)
        {
            var result = await validator.AuthenticateAsync(_issuer.MintToken(new TokenRequest { Subject = "job" + i }));
            Assert.True(result.Succeeded, result.Failure);
        }

        Assert.Single(_server.Requests, r => r == "/.well-known/openid-configuration");
    }

    [Fact]
    public async Task Authority_with_explicit_issuer_accepts_only_that_issuer()
    {
        var validator = Validator(new IssuerOptions { Name = "idp", Authority = _server.BaseUrl, Issuer = "https://expected.example", Audiences = ["nhiaudit"] });
        var token = _issuer.MintToken(new TokenRequest { Subject = "job" });

        var result = await validator.AuthenticateAsync(token);

        Assert.Equal($"token issuer '{_server.BaseUrl}' is not trusted", result.Failure);
    }

    [Fact]
    public async Task Token_from_an_issuer_the_discovery_does_not_name_is_refused()
    {
        var validator = Validator(new IssuerOptions { Name = "idp", Authority = _server.BaseUrl, Audiences = ["nhiaudit"] });
        using var other = new TestDirectory();
        using var stranger = DevelopmentIssuer.LoadOrCreate(other.Path, "https://stranger.example");

        var result = await validator.AuthenticateAsync(stranger.MintToken(new TokenRequest { Subject = "job" }));

        Assert.Equal("token issuer 'https://stranger.example' is not trusted", result.Failure);
    }

    [Fact]
    public async Task Jwks_uri_source_validates()
    {
        var validator = Validator(new IssuerOptions { Name = "idp", JwksUri = _server.BaseUrl + "/keys", Issuer = _server.BaseUrl, Audiences = ["nhiaudit"] });

        var result = await validator.AuthenticateAsync(_issuer.MintToken(new TokenRequest { Subject = "job", Kind = WorkloadKind.ServicePrincipal }));

        Assert.True(result.Succeeded, result.Failure);
        Assert.Equal(WorkloadKind.ServicePrincipal, result.Identity!.Kind);
    }

    [Fact]
    public async Task Unreachable_authority_fails_without_throwing()
    {
        var port = FreePort();
        var validator = Validator(new IssuerOptions { Name = "down", Authority = $"http://127.0.0.1:{port}", Issuer = _server.BaseUrl, Audiences = ["nhiaudit"] });

        var result = await validator.AuthenticateAsync(_issuer.MintToken(new TokenRequest { Subject = "job" }));

        Assert.Equal("the token issuer's signing keys are unavailable", result.Failure);
    }

    [Fact]
    public async Task Unreachable_authority_without_issuer_reports_untrusted_issuer()
    {
        var port = FreePort();
        var validator = Validator(new IssuerOptions { Name = "down", Authority = $"http://127.0.0.1:{port}", Audiences = ["nhiaudit"] });

        var result = await validator.AuthenticateAsync(_issuer.MintToken(new TokenRequest { Subject = "job" }));

        Assert.Equal($"token issuer '{_server.BaseUrl}' is not trusted", result.Failure);
    }

    [Fact]
    public async Task Failed_discovery_is_not_retried_for_every_token()
    {
        await using var broken = new LoopbackHttpServer();
        var validator = Validator(new IssuerOptions { Name = "broken", Authority = broken.BaseUrl, Audiences = ["nhiaudit"] });

        for (var i = 0; i < 5; i++)
        {
            var result = await validator.AuthenticateAsync(_issuer.MintToken(new TokenRequest { Subject = "job" }));
            Assert.Equal($"token issuer '{_server.BaseUrl}' is not trusted", result.Failure);
        }

        Assert.Single(broken.Requests);
    }

    [Fact]
    public async Task Rotated_discovery_keys_are_fetched_when_a_token_names_an_unknown_kid()
    {
        var validator = Validator(new IssuerOptions { Name = "idp", Authority = _server.BaseUrl, Audiences = ["nhiaudit"] });
        Assert.True((await validator.AuthenticateAsync(_issuer.MintToken(new TokenRequest { Subject = "job" }))).Succeeded);

        using var rotatedDirectory = new TestDirectory();
        using var rotated = DevelopmentIssuer.LoadOrCreate(rotatedDirectory.Path, _server.BaseUrl);
        _server.Serve("/keys", File.ReadAllText(rotated.JwksPath));
        var token = rotated.MintToken(new TokenRequest { Subject = "job" });

        var first = await validator.AuthenticateAsync(token);
        Assert.Equal($"token signing key '{rotated.KeyId}' is not trusted", first.Failure);

        // The unknown kid requested a refresh; IdentityModel refreshes in the background, so allow it a moment.
        WorkloadAuthenticationResult? later = null;
        for (var i = 0; i < 50 && later?.Succeeded != true; i++)
        {
            await Task.Delay(100);
            later = await validator.AuthenticateAsync(token);
        }

        Assert.True(later!.Succeeded, later.Failure);
    }

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }
}
