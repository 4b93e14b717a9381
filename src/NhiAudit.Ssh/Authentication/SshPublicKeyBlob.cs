using System.Security.Cryptography;
using NhiAudit.Ssh.Transport;

namespace NhiAudit.Ssh.Authentication;

/// <summary>Plain (non-certificate) public key blobs: which types are accepted, their shape, fingerprints.</summary>
internal static class SshPublicKeyBlob
{
    public const string Ed25519 = "ssh-ed25519";
    public const string Rsa = "ssh-rsa";
    public const string EcdsaP256 = "ecdsa-sha2-nistp256";

    /// <summary>The smallest RSA modulus accepted from a client or CA key.</summary>
    public const int MinRsaBits = 2048;

    /// <summary>
    /// Checks that <paramref name="blob"/> is a well-formed ssh-ed25519, ssh-rsa (at least 2048 bits) or
    /// ecdsa-sha2-nistp256 public key with nothing trailing, and returns its type. Never throws.
    /// </summary>
    public static bool TryGetKeyType(ReadOnlySpan<byte> blob, out string keyType, out string error)
    {
        keyType = "";
        try
        {
            var reader = new SshReader(blob);
            var type = reader.ReadUtf8String();
            switch (type)
            {
                case Ed25519:
                    if (reader.ReadStringBytes().Length != 32)
                    {
                        error = "ssh-ed25519 key is not 32 bytes";
                        return false;
                    }

                    break;
                case EcdsaP256:
                    var curve = reader.ReadUtf8String();
                    var q = reader.ReadStringBytes();
                    if (curve != "nistp256" || q.Length != 65 || q[0] != 0x04)
                    {
                        error = "ecdsa-sha2-nistp256 key is not an uncompressed P-256 point";
                        return false;
                    }

                    break;
                case Rsa:
                    reader.ReadPositiveMpint();
                    var modulus = reader.ReadPositiveMpint();
                    if (modulus.Length * 8 < MinRsaBits)
                    {
                        error = $"RSA keys need at least {MinRsaBits} bits";
                        return false;
                    }

                    break;
                default:
                    error = $"key type {type} is not accepted";
                    return false;
            }

            if (!reader.IsAtEnd)
            {
                error = "trailing bytes after the public key";
                return false;
            }

            keyType = type;
            error = "";
            return true;
        }
        catch (SshProtocolException ex)
        {
            error = "malformed public key: " + ex.Message;
            return false;
        }
    }

    /// <summary>
    /// Whether the signature algorithm <paramref name="algorithm"/> is one we accept for a plain key of
    /// <paramref name="keyType"/>: ssh-rsa (SHA-1) never.
    /// </summary>
    public static bool AlgorithmMatchesKeyType(string algorithm, string keyType) => keyType switch
    {
        Ed25519 => algorithm == Ed25519,
        Rsa => algorithm is "rsa-sha2-256" or "rsa-sha2-512",
        EcdsaP256 => algorithm == EcdsaP256,
        _ => false,
    };

    /// <summary>Verifies <paramref name="signatureBlob"/> over <paramref name="data"/>; false (never an exception) for malformed input.</summary>
    public static bool Verify(ReadOnlySpan<byte> publicKeyBlob, string algorithm, ReadOnlySpan<byte> data, ReadOnlySpan<byte> signatureBlob)
    {
        try
        {
            return HostKeys.SshHostKey.Verify(publicKeyBlob, algorithm, data, signatureBlob);
        }
        catch (Exception ex) when (ex is SshProtocolException or CryptographicException or ArgumentException)
        {
            return false;
        }
    }

    /// <summary>The OpenSSH fingerprint: <c>SHA256:</c> and the unpadded base64 of the blob's SHA-256.</summary>
    public static string Fingerprint(ReadOnlySpan<byte> blob) =>
        "SHA256:" + Convert.ToBase64String(SHA256.HashData(blob)).TrimEnd('=');

    /// <summary>
    /// Parses one <c>authorized_keys</c> line without options (<c>TYPE BASE64 [comment]</c>) into the key blob.
    /// </summary>
    public static byte[] ParseAuthorizedKeyLine(string line, out string comment)
    {
        ArgumentNullException.ThrowIfNull(line);
        var parts = line.Trim().Split((char[]?)null, 3, StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length < 2)
        {
            throw new FormatException("an authorized key line needs a key type and base64 key data");
        }

        if (parts[0] is not (Ed25519 or Rsa or EcdsaP256))
        {
            throw new FormatException($"'{parts[0]}' is not an accepted key type (ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256); authorized_keys options are not supported");
        }

        byte[] blob;
        try
        {
            blob = Convert.FromBase64String(parts[1]);
        }
        catch (FormatException ex)
        {
            throw new FormatException("the key data is not base64", ex);
        }

        if (!TryGetKeyType(blob, out var type, out var error))
        {
            throw new FormatException(error);
        }

        if (type != parts[0])
        {
            throw new FormatException($"the line says {parts[0]} but the key data is {type}");
        }

        comment = parts.Length > 2 ? parts[2].Trim() : "";
        return blob;
    }
}
