using System.Numerics;
using System.Security.Cryptography;
using NhiAudit.Ssh.Transport;

namespace NhiAudit.Ssh.HostKeys;

/// <summary>
/// Reads OpenSSH's own private key format (PROTOCOL.key in the OpenSSH sources): <c>"openssh-key-v1\0"</c>, cipher
/// and KDF names, one public key, and a private section holding two equal check words, the key and a comment.
/// Only unencrypted keys (cipher "none", as <c>ssh-keygen -N ''</c> writes them) are supported.
/// </summary>
internal static class OpenSshPrivateKeyParser
{
    private const string Begin = "-----BEGIN OPENSSH PRIVATE KEY-----";
    private const string End = "-----END OPENSSH PRIVATE KEY-----";

    public static SshHostKey Parse(string text)
    {
        var start = text.IndexOf(Begin, StringComparison.Ordinal) + Begin.Length;
        var end = text.IndexOf(End, start, StringComparison.Ordinal);
        if (end < 0)
        {
            throw new FormatException("OpenSSH private key has no END line");
        }

        var blob = Convert.FromBase64String(text[start..end].Replace("\r", "", StringComparison.Ordinal).Replace("\n", "", StringComparison.Ordinal).Trim());
        try
        {
            return ParseBlob(blob);
        }
        catch (SshProtocolException ex)
        {
            throw new FormatException("OpenSSH private key is malformed: " + ex.Message, ex);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(blob);
        }
    }

    private static SshHostKey ParseBlob(ReadOnlySpan<byte> blob)
    {
        ReadOnlySpan<byte> magic = "openssh-key-v1\0"u8;
        if (!blob.StartsWith(magic))
        {
            throw new FormatException("not an openssh-key-v1 private key");
        }

        var reader = new SshReader(blob[magic.Length..]);
        var cipher = reader.ReadUtf8String();
        var kdf = reader.ReadUtf8String();
        reader.ReadStringBytes(); // kdf options
        if (cipher != "none" || kdf != "none")
        {
            throw new FormatException($"encrypted OpenSSH private keys ({cipher}/{kdf}) are not supported; store the host key without a passphrase");
        }

        if (reader.ReadUInt32() != 1)
        {
            throw new FormatException("OpenSSH private key file must hold exactly one key");
        }

        reader.ReadStringBytes(); // public key
        var privateReader = new SshReader(reader.ReadStringBytes());
        if (privateReader.ReadUInt32() != privateReader.ReadUInt32())
        {
            throw new FormatException("OpenSSH private key check words differ (wrong passphrase or corrupt file)");
        }

        var keyType = privateReader.ReadUtf8String();
        switch (keyType)
        {
            case "ssh-ed25519":
                {
                    privateReader.ReadStringBytes(); // public key
                    var secret = privateReader.ReadStringBytes(); // seed || public key
                    if (secret.Length != 64)
                    {
                        throw new FormatException("ed25519 private key must be 64 bytes");
                    }

                    return Ed25519HostKey.FromSeed(secret[..32]);
                }

            case "ssh-rsa":
                {
                    var n = privateReader.ReadPositiveMpint();
                    var e = privateReader.ReadPositiveMpint();
                    var d = privateReader.ReadPositiveMpint();
                    var iqmp = privateReader.ReadPositiveMpint();
                    var p = privateReader.ReadPositiveMpint();
                    var q = privateReader.ReadPositiveMpint();
                    return new RsaHostKey(CreateRsa(n, e, d, iqmp, p, q));
                }

            case "ecdsa-sha2-nistp256":
                {
                    if (privateReader.ReadUtf8String() != "nistp256")
                    {
                        throw new FormatException("ECDSA key curve does not match its type");
                    }

                    var point = privateReader.ReadStringBytes();
                    var scalar = privateReader.ReadPositiveMpint();
                    if (point.Length != 65 || point[0] != 0x04 || scalar.Length > 32)
                    {
                        throw new FormatException("malformed nistp256 key");
                    }

                    var ecdsa = ECDsa.Create(new ECParameters
                    {
                        Curve = ECCurve.NamedCurves.nistP256,
                        Q = new ECPoint { X = point.Slice(1, 32).ToArray(), Y = point.Slice(33, 32).ToArray() },
                        D = LeftPad(scalar, 32),
                    });
                    return new EcdsaHostKey(ecdsa);
                }

            default:
                throw new FormatException($"unsupported host key type {keyType}");
        }
    }

    /// <summary>.NET wants the CRT parameters OpenSSH does not store (dP, dQ) and fixed field lengths.</summary>
    private static RSA CreateRsa(ReadOnlySpan<byte> n, ReadOnlySpan<byte> e, ReadOnlySpan<byte> d, ReadOnlySpan<byte> iqmp, ReadOnlySpan<byte> p, ReadOnlySpan<byte> q)
    {
        var dValue = new BigInteger(d, isUnsigned: true, isBigEndian: true);
        var pValue = new BigInteger(p, isUnsigned: true, isBigEndian: true);
        var qValue = new BigInteger(q, isUnsigned: true, isBigEndian: true);
        var half = (n.Length + 1) / 2;
        var parameters = new RSAParameters
        {
            Modulus = n.ToArray(),
            Exponent = e.ToArray(),
            D = LeftPad(d, n.Length),
            P = LeftPad(p, half),
            Q = LeftPad(q, half),
            DP = LeftPad((dValue % (pValue - 1)).ToByteArray(isUnsigned: true, isBigEndian: true), half),
            DQ = LeftPad((dValue % (qValue - 1)).ToByteArray(isUnsigned: true, isBigEndian: true), half),
            InverseQ = LeftPad(iqmp, half),
        };
        var rsa = RSA.Create();
        rsa.ImportParameters(parameters);
        return rsa;
    }

    private static byte[] LeftPad(ReadOnlySpan<byte> value, int length)
    {
        if (value.Length > length)
        {
            throw new FormatException("key parameter longer than its field");
        }

        var padded = new byte[length];
        value.CopyTo(padded.AsSpan(length - value.Length));
        return padded;
    }
}

/// <summary>PEM private keys: RSA and ECDSA via .NET's importers, Ed25519 (PKCS#8) via NSec.</summary>
internal static class PemHostKeyParser
{
    public static SshHostKey Parse(string text)
    {
        if (text.Contains("BEGIN RSA PRIVATE KEY", StringComparison.Ordinal))
        {
            var rsa = RSA.Create();
            rsa.ImportFromPem(text);
            return new RsaHostKey(rsa);
        }

        if (text.Contains("BEGIN EC PRIVATE KEY", StringComparison.Ordinal))
        {
            var ecdsa = ECDsa.Create();
            ecdsa.ImportFromPem(text);
            return new EcdsaHostKey(ecdsa);
        }

        if (text.Contains("BEGIN PRIVATE KEY", StringComparison.Ordinal))
        {
            // PKCS#8 does not say the algorithm in its label: try each.
            try
            {
                var rsa = RSA.Create();
                rsa.ImportFromPem(text);
                return new RsaHostKey(rsa);
            }
            catch (CryptographicException)
            {
            }

            try
            {
                var ecdsa = ECDsa.Create();
                ecdsa.ImportFromPem(text);
                return new EcdsaHostKey(ecdsa);
            }
            catch (CryptographicException)
            {
            }

            return Ed25519HostKey.FromPkcs8Pem(text);
        }

        throw new FormatException("unrecognized private key format (expected OpenSSH or PEM, unencrypted)");
    }
}
