using System.Security.Cryptography;
using NSec.Cryptography;

namespace NhiAudit.Ssh.Transport;

/// <summary>One side's ephemeral key of an ECDH key exchange; derives the shared secret K.</summary>
internal abstract class EphemeralKeyAgreement : IDisposable
{
    /// <summary>Q_C or Q_S as sent on the wire.</summary>
    public abstract byte[] PublicKey { get; }

    /// <summary>K as an unsigned big-endian integer (before mpint encoding).</summary>
    public abstract byte[] DeriveSharedSecret(ReadOnlySpan<byte> peerPublicKey);

    public static EphemeralKeyAgreement Create(string keyExchange) => keyExchange switch
    {
        "curve25519-sha256" or "curve25519-sha256@libssh.org" => new Curve25519KeyAgreement(),
        "ecdh-sha2-nistp256" => new NistP256KeyAgreement(),
        _ => throw new SshProtocolException(SshDisconnectReason.KeyExchangeFailed, $"unsupported key exchange {keyExchange}"),
    };

    public abstract void Dispose();
}

/// <summary>curve25519-sha256 (RFC 8731) on NSec's X25519.</summary>
internal sealed class Curve25519KeyAgreement : EphemeralKeyAgreement
{
    private readonly Key _key = Key.Create(KeyAgreementAlgorithm.X25519);

    public override byte[] PublicKey => _key.PublicKey.Export(KeyBlobFormat.RawPublicKey);

    public override byte[] DeriveSharedSecret(ReadOnlySpan<byte> peerPublicKey)
    {
        if (peerPublicKey.Length != 32
            || !NSec.Cryptography.PublicKey.TryImport(KeyAgreementAlgorithm.X25519, peerPublicKey, KeyBlobFormat.RawPublicKey, out var peer))
        {
            throw new SshProtocolException(SshDisconnectReason.KeyExchangeFailed, "curve25519 public key must be 32 bytes");
        }

        // NSec refuses an all-zero result, which RFC 8731 §3 requires us to abort on.
        using var secret = KeyAgreementAlgorithm.X25519.Agree(_key, peer!, new SharedSecretCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport })
            ?? throw new SshProtocolException(SshDisconnectReason.KeyExchangeFailed, "curve25519 shared secret is zero");

        // RFC 8731 §3.1: the 32 octets of X25519 output are read as a big-endian unsigned integer.
        return secret.Export(SharedSecretBlobFormat.RawSharedSecret);
    }

    public override void Dispose() => _key.Dispose();
}

/// <summary>ecdh-sha2-nistp256 (RFC 5656 §4): K is the x coordinate of the shared point.</summary>
internal sealed class NistP256KeyAgreement : EphemeralKeyAgreement
{
    private readonly ECDiffieHellman _ecdh = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);

    public override byte[] PublicKey => HostKeys.EcdsaHostKey.EncodePoint(_ecdh.ExportParameters(false).Q);

    public override byte[] DeriveSharedSecret(ReadOnlySpan<byte> peerPublicKey)
    {
        if (peerPublicKey.Length != 65 || peerPublicKey[0] != 0x04)
        {
            throw new SshProtocolException(SshDisconnectReason.KeyExchangeFailed, "nistp256 public key must be an uncompressed point");
        }

        try
        {
            // Importing validates that the point lies on the curve (RFC 5656 §4 requires the check).
            using var peer = ECDiffieHellman.Create(new ECParameters
            {
                Curve = ECCurve.NamedCurves.nistP256,
                Q = new ECPoint { X = peerPublicKey.Slice(1, 32).ToArray(), Y = peerPublicKey.Slice(33, 32).ToArray() },
            });
            return _ecdh.DeriveRawSecretAgreement(peer.PublicKey);
        }
        catch (CryptographicException ex)
        {
            throw new SshProtocolException(SshDisconnectReason.KeyExchangeFailed, "invalid nistp256 public key: " + ex.Message);
        }
    }

    public override void Dispose() => _ecdh.Dispose();
}

/// <summary>Exchange hash and key derivation shared by the ECDH methods.</summary>
internal static class KeyDerivation
{
    /// <summary>
    /// H = HASH(V_C || V_S || I_C || I_S || K_S || Q_C || Q_S || K) with strings for all but K, an mpint
    /// (RFC 5656 §4, RFC 8731 §3). All methods here use SHA-256.
    /// </summary>
    public static byte[] ExchangeHash(
        string clientVersion, string serverVersion, ReadOnlySpan<byte> clientKexInit, ReadOnlySpan<byte> serverKexInit,
        ReadOnlySpan<byte> hostKey, ReadOnlySpan<byte> clientPublic, ReadOnlySpan<byte> serverPublic, ReadOnlySpan<byte> sharedSecret)
    {
        var writer = new SshWriter(2048)
            .WriteString(clientVersion).WriteString(serverVersion)
            .WriteString(clientKexInit).WriteString(serverKexInit)
            .WriteString(hostKey).WriteString(clientPublic).WriteString(serverPublic)
            .WriteMpint(sharedSecret);
        return SHA256.HashData(writer.WrittenSpan);
    }

    /// <summary>
    /// RFC 4253 §7.2: key = HASH(K || H || letter || session_id), extended with HASH(K || H || K1 || K2 …) until long
    /// enough. K is hashed in its mpint encoding.
    /// </summary>
    public static byte[] DeriveKey(ReadOnlySpan<byte> sharedSecret, ReadOnlySpan<byte> exchangeHash, char letter, ReadOnlySpan<byte> sessionId, int length)
    {
        var encodedSecret = new SshWriter().WriteMpint(sharedSecret).ToArray();
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(encodedSecret);
        hash.AppendData(exchangeHash);
        hash.AppendData([(byte)letter]);
        hash.AppendData(sessionId);
        var key = new List<byte>(hash.GetHashAndReset());
        while (key.Count < length)
        {
            hash.AppendData(encodedSecret);
            hash.AppendData(exchangeHash);
            hash.AppendData(key.ToArray());
            key.AddRange(hash.GetHashAndReset());
        }

        CryptographicOperations.ZeroMemory(encodedSecret);
        return key.GetRange(0, length).ToArray();
    }
}
