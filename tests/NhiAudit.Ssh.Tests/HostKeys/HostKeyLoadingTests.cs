using NhiAudit.Ssh.HostKeys;
using NhiAudit.Ssh.Tests.Support;

namespace NhiAudit.Ssh.Tests.HostKeys;

public sealed class HostKeyLoadingTests
{
    [Theory]
    [InlineData("ed25519", "ssh-ed25519")]
    [InlineData("rsa", "ssh-rsa")]
    [InlineData("ecdsa", "ecdsa-sha2-nistp256")]
    [InlineData("rsa-pem", "ssh-rsa")]
    [InlineData("ecdsa-pem", "ecdsa-sha2-nistp256")]
    public void Private_key_files_from_ssh_keygen_load_and_match_their_public_key(string name, string keyType)
    {
        using var key = TestHostKeys.Load(name);
        var publicLine = File.ReadAllText(TestHostKeys.PathOf(name + ".pub")).Split(' ');

        Assert.Equal(keyType, key.KeyType);
        Assert.Equal(publicLine[0] + " " + publicLine[1], key.PublicKeyText);
    }

    [Theory]
    [InlineData("ed25519")]
    [InlineData("rsa")]
    [InlineData("ecdsa")]
    public void Signatures_verify_with_every_algorithm_the_key_offers(string name)
    {
        using var key = TestHostKeys.Load(name);
        var data = "exchange hash"u8.ToArray();
        foreach (var algorithm in key.SignatureAlgorithms)
        {
            var signature = key.Sign(algorithm, data);
            Assert.True(SshHostKey.Verify(key.PublicKeyBlob.Span, algorithm, data, signature), algorithm);
            Assert.False(SshHostKey.Verify(key.PublicKeyBlob.Span, algorithm, "other"u8, signature), algorithm);
        }
    }

    [Fact]
    public void Encrypted_OpenSSH_keys_are_refused_with_a_clear_message()
    {
        var path = Path.Combine(TestHostKeys.Directory, "encrypted");
        var start = new System.Diagnostics.ProcessStartInfo("ssh-keygen") { RedirectStandardOutput = true };
        foreach (var argument in new[] { "-t", "ed25519", "-N", "secret", "-q", "-f", path })
        {
            start.ArgumentList.Add(argument);
        }

        using (var process = System.Diagnostics.Process.Start(start)!)
        {
            process.WaitForExit();
        }

        var ex = Assert.Throws<FormatException>(() => SshHostKey.Load(path));
        Assert.Contains("not supported", ex.Message, StringComparison.Ordinal);
    }
}
