using System.Security.Cryptography;
using System.Text;

namespace NhiAudit.Masking;

/// <summary>Loads the HMAC key of the <see cref="MaskingStrategy.Hash"/> strategy.</summary>
public static class MaskingKeys
{
    /// <summary>
    /// The key in <paramref name="path"/> (base64 text, or raw bytes when the file is not base64), or 32 random bytes
    /// when no file is configured. Throws when the file holds fewer than 16 bytes.
    /// </summary>
    /// <param name="path">The key file, or null.</param>
    /// <returns>The key.</returns>
    public static byte[] Load(string? path)
    {
        if (string.IsNullOrWhiteSpace(path))
        {
            return RandomNumberGenerator.GetBytes(32);
        }

        var raw = File.ReadAllBytes(path);
        byte[] key;
        try
        {
            key = Convert.FromBase64String(Encoding.ASCII.GetString(raw).Trim());
        }
        catch (FormatException)
        {
            key = raw;
        }

        return key.Length >= 16
            ? key
            : throw new InvalidOperationException($"the masking key file {path} holds {key.Length} bytes; the Hash strategy needs at least 16");
    }
}
