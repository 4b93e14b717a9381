using Microsoft.Extensions.Options;
using NhiAudit.Identity;
using NhiAudit.Ssh.Authentication;

namespace NhiAudit.Ssh.Tests.Authentication;

/// <summary>Registered keys and CAs from configuration: authorized_keys lines, NhiAudit:Identity:SshKeys.</summary>
public sealed class AuthorizedKeyConfigurationTests(AuthenticationFixture fixture) : IClassFixture<AuthenticationFixture>
{
    [Fact]
    public void Identity_options_ssh_keys_become_registered_keys()
    {
        var identity = new IdentityOptions
        {
            SshKeys =
            [
                new SshKeyOptions { PublicKey = fixture.PublicKeyLine("user-ed25519"), Subject = "deploy-job", Kind = WorkloadKind.ServicePrincipal },
                new SshKeyOptions { PublicKey = fixture.PublicKeyLine("user-rsa"), Subject = "backup-job", Kind = WorkloadKind.FederatedWorkload },
            ],
        };

        var keys = SshAuthenticationOptions.AuthorizedKeysFrom(identity);

        Assert.Equal(["deploy-job", "backup-job"], keys.Select(k => k.Identity.Subject));
        Assert.Equal(["ssh-ed25519", "ssh-rsa"], keys.Select(k => k.KeyType));
        Assert.Equal(WorkloadKind.ServicePrincipal, keys[0].Identity.Kind);
        Assert.Equal("user-ed25519", keys[0].Identity.DisplayName);
        var fingerprint = AuthenticationFixture.Run("ssh-keygen", "-l", "-E", "sha256", "-f", fixture.PathOf("user-ed25519") + ".pub").Split(' ')[1];
        Assert.Equal(fingerprint, keys[0].Fingerprint);
    }

    [Fact]
    public void Identity_options_validation_requires_key_and_subject()
    {
        var options = new IdentityOptions { SshKeys = [new SshKeyOptions { PublicKey = "", Subject = "job" }] };
        var ex = Assert.Throws<OptionsValidationException>(() => new WorkloadTokenValidator(options));
        Assert.Contains("NhiAudit:Identity:SshKeys:0 needs both a PublicKey and a Subject.", ex.Failures);
    }

    [Theory]
    [InlineData("", "needs a key type")]
    [InlineData("ssh-ed25519", "needs a key type")]
    [InlineData("from=\"10.0.0.1\" ssh-ed25519 AAAA", "options are not supported")]
    [InlineData("ssh-dss AAAAB3NzaC1kc3M=", "not an accepted key type")]
    [InlineData("ssh-ed25519 !!notbase64", "not base64")]
    [InlineData("ssh-ed25519 AAAA", "malformed public key")]
    public void Bad_authorized_key_lines_are_refused(string line, string reason)
    {
        var ex = Assert.Throws<FormatException>(() => SshAuthorizedKey.Parse(line, "job", WorkloadKind.Unknown));
        Assert.Contains(reason, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Key_type_must_match_the_key_data_and_small_rsa_keys_are_refused()
    {
        var ed25519Data = fixture.PublicKeyLine("user-ed25519").Split(' ')[1];
        var mismatch = Assert.Throws<FormatException>(() => SshAuthorizedKey.Parse("ssh-rsa " + ed25519Data, "job", WorkloadKind.Unknown));
        Assert.Contains("key data is ssh-ed25519", mismatch.Message, StringComparison.Ordinal);

        var small = Path.Combine(fixture.Directory, "small-rsa-" + Guid.NewGuid().ToString("N"));
        AuthenticationFixture.Run("ssh-keygen", "-q", "-N", "", "-t", "rsa", "-b", "1024", "-f", small);
        var tooSmall = Assert.Throws<FormatException>(() => SshAuthorizedKey.Parse(File.ReadAllText(small + ".pub"), "job", WorkloadKind.Unknown));
        Assert.Contains("at least 2048 bits", tooSmall.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Certificate_line_is_not_a_registered_key()
    {
        var ex = Assert.Throws<FormatException>(() => SshAuthorizedKey.Parse(File.ReadAllText(fixture.PathOf("cert-ed25519") + "-cert.pub"), "job", WorkloadKind.Unknown));
        Assert.Contains("not an accepted key type", ex.Message, StringComparison.Ordinal);
    }
}
