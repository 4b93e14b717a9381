using NhiAudit.Identity;

namespace NhiAudit.Tests.Identity;

/// <summary>A development issuer in a temp directory plus a validator that trusts it.</summary>
internal sealed class DevIssuerContext : IDisposable
{
    public const string IssuerUrl = "https://issuer.local";

    private readonly TestDirectory _directory = new();

    public DevIssuerContext(Action<IdentityOptions>? configure = null, TimeProvider? clock = null)
    {
        Issuer = DevelopmentIssuer.LoadOrCreate(_directory.Sub("issuer"), IssuerUrl);
        Options = new IdentityOptions
        {
            Issuers =
            [
                new IssuerOptions { Name = "local", Issuer = IssuerUrl, JwksFile = Issuer.JwksPath, Audiences = ["nhiaudit"] },
            ],
        };
        configure?.Invoke(Options);
        Validator = new WorkloadTokenValidator(Options, clock);
    }

    public DevelopmentIssuer Issuer { get; }

    public IdentityOptions Options { get; }

    public WorkloadTokenValidator Validator { get; }

    public string Directory => _directory.Path;

    public string KeyPath => System.IO.Path.Combine(_directory.Sub("issuer"), DevelopmentIssuer.KeyFileName);

    public async Task<WorkloadIdentity> AssertValidAsync(string token)
    {
        var result = await Validator.AuthenticateAsync(token);
        Assert.True(result.Succeeded, $"expected success, got: {result.Failure}");
        Assert.Null(result.Failure);
        return result.Identity!;
    }

    public async Task<string> AssertRefusedAsync(string token, string? expectedReason = null)
    {
        var result = await Validator.AuthenticateAsync(token);
        Assert.False(result.Succeeded);
        Assert.Null(result.Identity);
        Assert.False(string.IsNullOrWhiteSpace(result.Failure));
        if (token.Length >= 8)
        {
            Assert.DoesNotContain(token, result.Failure, StringComparison.Ordinal);
        }

        if (expectedReason is not null)
        {
            Assert.Equal(expectedReason, result.Failure);
        }

        return result.Failure!;
    }

    public void Dispose()
    {
        Issuer.Dispose();
        _directory.Dispose();
    }
}
