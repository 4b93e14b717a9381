using System.Security.Cryptography;
using NhiAudit.Ssh.Transport;

namespace NhiAudit.Ssh.HostKeys;

/// <summary>An RSA host key signing with rsa-sha2-256 or rsa-sha2-512 (RFC 8332); ssh-rsa (SHA-1) is not offered.</summary>
public sealed class RsaHostKey : SshHostKey
{
    private readonly RSA _rsa;
    private readonly byte[] _publicKeyBlob;

    /// <summary>Wraps an RSA private key (at least 2048 bits).</summary>
    public RsaHostKey(RSA rsa)
    {
        ArgumentNullException.ThrowIfNull(rsa);
        if (rsa.KeySize < 2048)
        {
            throw new ArgumentException("RSA host keys must have at least 2048 bits", nameof(rsa));
        }

        _rsa = rsa;
        var parameters = rsa.ExportParameters(includePrivateParameters: false);
        _publicKeyBlob = new SshWriter().WriteString("ssh-rsa").WriteMpint(parameters.Exponent).WriteMpint(parameters.Modulus).ToArray();
    }

    /// <inheritdoc />
    public override string KeyType => "ssh-rsa";

    /// <inheritdoc />
    public override IReadOnlyList<string> SignatureAlgorithms { get; } = ["rsa-sha2-512", "rsa-sha2-256"];

    /// <inheritdoc />
    public override ReadOnlyMemory<byte> PublicKeyBlob => _publicKeyBlob;

    /// <inheritdoc />
    public override byte[] Sign(string algorithm, ReadOnlySpan<byte> data)
    {
        var hash = HashFor(algorithm);
        return SignatureBlob(algorithm, _rsa.SignData(data.ToArray(), hash, RSASignaturePadding.Pkcs1));
    }

    internal static bool Verify(ref SshReader keyReader, string algorithm, ReadOnlySpan<byte> data, ReadOnlySpan<byte> signature)
    {
        var exponent = keyReader.ReadPositiveMpint();
        var modulus = keyReader.ReadPositiveMpint();
        using var rsa = RSA.Create();
        rsa.ImportParameters(new RSAParameters { Exponent = exponent.ToArray(), Modulus = modulus.ToArray() });
        return rsa.VerifyData(data, signature, HashFor(algorithm), RSASignaturePadding.Pkcs1);
    }

    private static HashAlgorithmName HashFor(string algorithm) => algorithm switch
    {
        "rsa-sha2-256" => HashAlgorithmName.SHA256,
        "rsa-sha2-512" => HashAlgorithmName.SHA512,
        _ => throw new ArgumentException($"RSA keys do not sign with {algorithm}", nameof(algorithm)),
    };

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _rsa.Dispose();
        }

        base.Dispose(disposing);
    }
}
