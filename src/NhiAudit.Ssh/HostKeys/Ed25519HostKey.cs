using NhiAudit.Ssh.Transport;
using NSec.Cryptography;

namespace NhiAudit.Ssh.HostKeys;

/// <summary>ssh-ed25519 (RFC 8709) on NSec.</summary>
public sealed class Ed25519HostKey : SshHostKey
{
    private readonly Key _key;
    private readonly byte[] _publicKeyBlob;

    private Ed25519HostKey(Key key)
    {
        _key = key;
        _publicKeyBlob = new SshWriter().WriteString("ssh-ed25519")
            .WriteString(key.PublicKey.Export(KeyBlobFormat.RawPublicKey)).ToArray();
    }

    /// <summary>Creates a key from its 32-byte seed (the private key of RFC 8032).</summary>
    public static Ed25519HostKey FromSeed(ReadOnlySpan<byte> seed) =>
        new(Key.Import(SignatureAlgorithm.Ed25519, seed, KeyBlobFormat.RawPrivateKey));

    /// <summary>Generates a fresh key (tests, first run).</summary>
    public static Ed25519HostKey Generate() => new(Key.Create(SignatureAlgorithm.Ed25519));

    internal static Ed25519HostKey FromPkcs8Pem(string text) =>
        new(Key.Import(SignatureAlgorithm.Ed25519, System.Text.Encoding.ASCII.GetBytes(text), KeyBlobFormat.PkixPrivateKeyText));

    /// <inheritdoc />
    public override string KeyType => "ssh-ed25519";

    /// <inheritdoc />
    public override IReadOnlyList<string> SignatureAlgorithms { get; } = ["ssh-ed25519"];

    /// <inheritdoc />
    public override ReadOnlyMemory<byte> PublicKeyBlob => _publicKeyBlob;

    /// <inheritdoc />
    public override byte[] Sign(string algorithm, ReadOnlySpan<byte> data) =>
        SignatureBlob("ssh-ed25519", SignatureAlgorithm.Ed25519.Sign(_key, data));

    internal static bool Verify(ref SshReader keyReader, ReadOnlySpan<byte> data, ReadOnlySpan<byte> signature)
    {
        var raw = keyReader.ReadStringBytes();
        if (!PublicKey.TryImport(SignatureAlgorithm.Ed25519, raw, KeyBlobFormat.RawPublicKey, out var publicKey))
        {
            return false;
        }

        return SignatureAlgorithm.Ed25519.Verify(publicKey!, data, signature);
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _key.Dispose();
        }

        base.Dispose(disposing);
    }
}
