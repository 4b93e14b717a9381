using NhiAudit.Ssh.Transport;

namespace NhiAudit.Ssh.HostKeys;

/// <summary>
/// A private key the gateway signs the exchange hash with (RFC 4253 §8). One key may serve several signature
/// algorithms (an RSA key serves rsa-sha2-256 and rsa-sha2-512).
/// </summary>
public abstract class SshHostKey : IDisposable
{
    /// <summary>The public key type, e.g. <c>ssh-ed25519</c>, <c>ssh-rsa</c>, <c>ecdsa-sha2-nistp256</c>.</summary>
    public abstract string KeyType { get; }

    /// <summary>Signature algorithms this key can produce, as host key algorithm names.</summary>
    public abstract IReadOnlyList<string> SignatureAlgorithms { get; }

    /// <summary>The public key blob (RFC 4253 §6.6), the K_S of the exchange hash.</summary>
    public abstract ReadOnlyMemory<byte> PublicKeyBlob { get; }

    /// <summary>Signs <paramref name="data"/> and returns the signature blob <c>string algorithm || string signature</c>.</summary>
    public abstract byte[] Sign(string algorithm, ReadOnlySpan<byte> data);

    /// <summary>The OpenSSH fingerprint, <c>SHA256:</c> and unpadded base64 of the SHA-256 of the public key blob.</summary>
    public string Fingerprint => "SHA256:" + Convert.ToBase64String(System.Security.Cryptography.SHA256.HashData(PublicKeyBlob.Span)).TrimEnd('=');

    /// <summary>The public key in authorized_keys / known_hosts form.</summary>
    public string PublicKeyText => KeyType + " " + Convert.ToBase64String(PublicKeyBlob.Span);

    /// <summary>
    /// Loads an unencrypted private key: OpenSSH format (<c>-----BEGIN OPENSSH PRIVATE KEY-----</c>, any of the
    /// supported types) or PEM (RSA and ECDSA P-256 in PKCS#1, SEC 1 or PKCS#8; Ed25519 in PKCS#8).
    /// </summary>
    public static SshHostKey Load(string path) => Parse(File.ReadAllText(path));

    /// <summary>Parses key text; see <see cref="Load"/>.</summary>
    public static SshHostKey Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Contains("-----BEGIN OPENSSH PRIVATE KEY-----", StringComparison.Ordinal))
        {
            return OpenSshPrivateKeyParser.Parse(text);
        }

        return PemHostKeyParser.Parse(text);
    }

    /// <summary>
    /// Checks a signature blob made by the key in <paramref name="publicKeyBlob"/> with <paramref name="algorithm"/>
    /// (the client side of the transport, toward an upstream sshd).
    /// </summary>
    public static bool Verify(ReadOnlySpan<byte> publicKeyBlob, string algorithm, ReadOnlySpan<byte> data, ReadOnlySpan<byte> signatureBlob)
    {
        var signatureReader = new SshReader(signatureBlob);
        var signatureAlgorithm = signatureReader.ReadUtf8String();
        var signature = signatureReader.ReadStringBytes();
        if (signatureAlgorithm != algorithm)
        {
            return false;
        }

        var keyReader = new SshReader(publicKeyBlob);
        var keyType = keyReader.ReadUtf8String();
        return keyType switch
        {
            "ssh-ed25519" when algorithm == "ssh-ed25519" => Ed25519HostKey.Verify(ref keyReader, data, signature),
            "ssh-rsa" when algorithm is "rsa-sha2-256" or "rsa-sha2-512" => RsaHostKey.Verify(ref keyReader, algorithm, data, signature),
            "ecdsa-sha2-nistp256" when algorithm == "ecdsa-sha2-nistp256" => EcdsaHostKey.Verify(ref keyReader, data, signature),
            _ => false,
        };
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases the private key.</summary>
    protected virtual void Dispose(bool disposing)
    {
    }

    internal static byte[] SignatureBlob(string algorithm, ReadOnlySpan<byte> signature) =>
        new SshWriter().WriteString(algorithm).WriteString(signature).ToArray();
}
