using Microsoft.Extensions.Options;
using NhiAudit.Identity;

namespace NhiAudit.Tests.Identity;

public sealed class IdentityOptionsValidationTests
{
    private static IdentityOptions With(IssuerOptions issuer) => new() { Issuers = [issuer] };

    private static IssuerOptions Good() => new() { Name = "local", Issuer = "https://issuer.local", JwksFile = "jwks.json", Audiences = ["nhiaudit"] };

    private static string Fails(IdentityOptions options)
    {
        var result = new IdentityOptionsValidator().Validate(Options.DefaultName, options);
        Assert.True(result.Failed);
        var ex = Assert.Throws<OptionsValidationException>(() => new WorkloadTokenValidator(options));
        Assert.Equal(result.FailureMessage, ex.Message);
        return result.FailureMessage;
    }

    [Fact]
    public void A_good_issuer_passes()
    {
        Assert.True(new IdentityOptionsValidator().Validate(null, With(Good())).Succeeded);
    }

    [Fact]
    public void No_issuers_is_allowed_and_trusts_nothing()
    {
        Assert.True(new IdentityOptionsValidator().Validate(null, new IdentityOptions()).Succeeded);
    }

    [Fact]
    public void Issuer_without_key_source_fails()
    {
        var issuer = Good();
        issuer.JwksFile = null;

        Assert.Contains("issuer 'local': no key source; set one of Authority, JwksUri or JwksFile", Fails(With(issuer)), StringComparison.Ordinal);
    }

    [Fact]
    public void Issuer_with_two_key_sources_fails()
    {
        var issuer = Good();
        issuer.Authority = "https://login.example";

        Assert.Contains("set only one of Authority, JwksUri or JwksFile", Fails(With(issuer)), StringComparison.Ordinal);
    }

    [Fact]
    public void Issuer_without_audience_fails()
    {
        var issuer = Good();
        issuer.Audiences = [];

        Assert.Contains("issuer 'local': at least one non-empty Audience is required", Fails(With(issuer)), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("HS256")]
    [InlineData("HS512")]
    [InlineData("none")]
    [InlineData("es256")]
    [InlineData("EdDSA")]
    public void Algorithm_outside_the_asymmetric_allow_list_fails(string algorithm)
    {
        var issuer = Good();
        issuer.Algorithms = ["ES256", algorithm];

        Assert.Contains($"algorithm '{algorithm}' is not allowed", Fails(With(issuer)), StringComparison.Ordinal);
    }

    [Fact]
    public void JwksFile_without_Issuer_fails()
    {
        var issuer = Good();
        issuer.Issuer = null;

        Assert.Contains("Issuer (the expected 'iss' claim) is required with JwksFile or JwksUri", Fails(With(issuer)), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("http://login.example.com/tenant/v2.0")]
    [InlineData("not a url")]
    [InlineData("ftp://127.0.0.1/")]
    public void Authority_must_be_https_except_loopback(string authority)
    {
        var issuer = new IssuerOptions { Name = "entra", Authority = authority, Audiences = ["api://nhiaudit"] };

        Assert.Contains($"Authority '{authority}' must be an absolute https URL", Fails(With(issuer)), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("http://127.0.0.1:5000")]
    [InlineData("http://localhost:5000/")]
    [InlineData("https://login.microsoftonline.com/tenant/v2.0")]
    public void Https_or_loopback_authority_passes(string authority)
    {
        var issuer = new IssuerOptions { Name = "entra", Authority = authority, Audiences = ["api://nhiaudit"] };

        Assert.True(new IdentityOptionsValidator().Validate(null, With(issuer)).Succeeded);
    }

    [Fact]
    public void Duplicate_issuer_names_fail()
    {
        Assert.Contains("issuer name 'local' is used twice", Fails(new IdentityOptions { Issuers = [Good(), Good()] }), StringComparison.Ordinal);
    }

    [Fact]
    public void Negative_clock_skew_fails()
    {
        Assert.Contains("ClockSkew", Fails(new IdentityOptions { ClockSkew = TimeSpan.FromSeconds(-1) }), StringComparison.Ordinal);
    }

    [Fact]
    public void Empty_algorithm_list_means_the_asymmetric_defaults()
    {
        Assert.Equal(["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"], IssuerOptions.DefaultAlgorithms);
        Assert.Equal(IssuerOptions.DefaultAlgorithms, new IssuerOptions().EffectiveAlgorithms);
    }

    [Fact]
    public void Missing_jwks_file_stops_construction_with_its_path()
    {
        var issuer = Good();
        issuer.JwksFile = Path.Combine(Path.GetTempPath(), "does-not-exist-" + Guid.NewGuid().ToString("N"), "jwks.json");

        var ex = Assert.Throws<InvalidOperationException>(() => new WorkloadTokenValidator(With(issuer)));

        Assert.Contains(issuer.JwksFile, ex.Message, StringComparison.Ordinal);
        Assert.Contains("'local'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Jwks_file_with_only_a_symmetric_key_is_refused()
    {
        using var directory = new TestDirectory();
        var path = directory.Sub("jwks.json");
        File.WriteAllText(path, """{"keys":[{"kty":"oct","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0","kid":"h","alg":"HS256"}]}""");
        var issuer = Good();
        issuer.JwksFile = path;

        var ex = Assert.Throws<InvalidOperationException>(() => new WorkloadTokenValidator(With(issuer)));

        Assert.Contains("no asymmetric signing keys", ex.Message, StringComparison.Ordinal);
    }
}
