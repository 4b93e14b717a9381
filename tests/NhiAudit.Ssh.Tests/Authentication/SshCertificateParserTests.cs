using NhiAudit.Ssh.Authentication;

namespace NhiAudit.Ssh.Tests.Authentication;

/// <summary>The certificate parser on real ssh-keygen certificates and on malformed input (never an unexpected exception).</summary>
public sealed class SshCertificateParserTests(AuthenticationFixture fixture) : IClassFixture<AuthenticationFixture>
{
    private byte[] CertificateBlob(string name) =>
        Convert.FromBase64String(File.ReadAllText(fixture.PathOf(name) + "-cert.pub").Split(' ')[1]);

    [Fact]
    public void Parses_an_ssh_keygen_user_certificate()
    {
        var before = (ulong)DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        Assert.True(SshCertificate.TryParse(CertificateBlob("cert-source-ok"), out var certificate, out var error), error);
        Assert.Equal("ssh-ed25519-cert-v01@openssh.com", certificate.CertificateType);
        Assert.Equal("ssh-ed25519", certificate.KeyType);
        Assert.Equal(SshCertificateKind.User, certificate.Kind);
        Assert.Equal("source-ok-job", certificate.KeyId);
        Assert.Equal(["workload"], certificate.Principals);
        Assert.Equal("10.0.0.0/8,127.0.0.1/32", certificate.CriticalOptions["source-address"]);
        Assert.Contains("permit-pty", certificate.Extensions);
        Assert.True(certificate.ValidAfter <= before && certificate.ValidBefore > before);
        Assert.True(certificate.VerifyCertificateAuthoritySignature());
        Assert.Equal(
            File.ReadAllText(fixture.PathOf("cert-source-ok") + ".pub").Split(' ')[1],
            Convert.ToBase64String(certificate.PublicKeyBlob.Span));
        Assert.Equal(
            File.ReadAllText(fixture.PathOf("ca") + ".pub").Split(' ')[1],
            Convert.ToBase64String(certificate.SignatureKeyBlob.Span));
    }

    [Theory]
    [InlineData("cert-ecdsa", "ecdsa-sha2-nistp256-cert-v01@openssh.com", SshCertificateKind.User)]
    [InlineData("cert-rsa", "ssh-rsa-cert-v01@openssh.com", SshCertificateKind.User)]
    [InlineData("cert-rsa-ca", "ssh-ed25519-cert-v01@openssh.com", SshCertificateKind.User)]
    [InlineData("cert-host", "ssh-ed25519-cert-v01@openssh.com", SshCertificateKind.Host)]
    public void Parses_every_certificate_type_and_checks_the_CA_signature(string name, string type, SshCertificateKind kind)
    {
        Assert.True(SshCertificate.TryParse(CertificateBlob(name), out var certificate, out var error), error);
        Assert.Equal(type, certificate.CertificateType);
        Assert.Equal(kind, certificate.Kind);
        Assert.True(certificate.VerifyCertificateAuthoritySignature());
    }

    [Fact]
    public void A_changed_byte_in_the_signed_part_breaks_the_CA_signature()
    {
        var blob = CertificateBlob("cert-ed25519");
        var keyIdOffset = blob.AsSpan().IndexOf("deploy-job"u8);
        blob[keyIdOffset] = (byte)'D';
        Assert.True(SshCertificate.TryParse(blob, out var certificate, out _));
        Assert.Equal("Deploy-job", certificate.KeyId);
        Assert.False(certificate.VerifyCertificateAuthoritySignature());
    }

    [Theory]
    [InlineData(new byte[0])]
    [InlineData(new byte[] { 0, 0, 0 })]
    [InlineData(new byte[] { 0xff, 0xff, 0xff, 0xff })]
    [InlineData(new byte[] { 0, 0, 0, 7, (byte)'s', (byte)'s', (byte)'h', (byte)'-', (byte)'r', (byte)'s', (byte)'a' })]
    public void Malformed_blobs_are_refused_with_a_reason(byte[] blob)
    {
        Assert.False(SshCertificate.TryParse(blob, out var certificate, out var error));
        Assert.Null(certificate);
        Assert.False(string.IsNullOrEmpty(error));
    }

    [Fact]
    public void Truncations_and_trailing_bytes_are_refused()
    {
        var blob = CertificateBlob("cert-rsa");
        for (var length = 0; length < blob.Length; length++)
        {
            Assert.False(SshCertificate.TryParse(blob.AsSpan(0, length), out _, out _));
        }

        Assert.False(SshCertificate.TryParse([.. blob, 0], out _, out var error));
        Assert.Contains("trailing", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Seeded_mutations_of_real_certificates_never_throw()
    {
        var random = new Random(20261128);
        var seeds = new[] { "cert-ed25519", "cert-ecdsa", "cert-rsa", "cert-force", "cert-host" }.Select(CertificateBlob).ToArray();
        for (var iteration = 0; iteration < 3000; iteration++)
        {
            var blob = (byte[])seeds[iteration % seeds.Length].Clone();
            for (var flips = random.Next(1, 8); flips > 0; flips--)
            {
                blob[random.Next(blob.Length)] = (byte)random.Next(256);
            }

            if (random.Next(4) == 0)
            {
                blob = blob[..random.Next(blob.Length)];
            }

            if (SshCertificate.TryParse(blob, out var certificate, out var error))
            {
                certificate.VerifyCertificateAuthoritySignature();
            }
            else
            {
                Assert.False(string.IsNullOrEmpty(error));
            }
        }
    }

    /// <summary>Arbitrary bytes, alone and behind each certificate type name so the fuzzing reaches past the first field.</summary>
    [FsCheck.Xunit.Property(MaxTest = 500)]
    public void Arbitrary_bytes_never_throw(byte[] tail)
    {
        ParseAndVerify(tail);
        foreach (var type in new[] { "ssh-ed25519-cert-v01@openssh.com", "ecdsa-sha2-nistp256-cert-v01@openssh.com", "ssh-rsa-cert-v01@openssh.com" })
        {
            var name = System.Text.Encoding.ASCII.GetBytes(type);
            ParseAndVerify([0, 0, 0, (byte)name.Length, .. name, .. tail]);
        }
    }

    private static void ParseAndVerify(byte[] blob)
    {
        if (SshCertificate.TryParse(blob, out var certificate, out var error))
        {
            certificate.VerifyCertificateAuthoritySignature();
        }
        else
        {
            Assert.False(string.IsNullOrEmpty(error));
        }
    }
}
