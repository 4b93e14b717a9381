using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace NhiAudit.Postgres.Protocol;

/// <summary>
/// The response to AuthenticationMD5Password: <c>"md5" + md5hex(md5hex(password + user) + salt)</c>.
/// </summary>
/// <remarks>
/// MD5 is broken as a hash; it is used here only because an upstream server configured with
/// <c>md5</c> authentication demands exactly this computation. Prefer SCRAM upstream.
/// </remarks>
internal static class Md5Password
{
    /// <summary>Computes the 35-character MD5 password response.</summary>
    /// <param name="user">The PostgreSQL user name the gateway logs in as.</param>
    /// <param name="password">The password.</param>
    /// <param name="salt">The 4-byte salt from the server.</param>
    public static string Compute(string user, string password, ReadOnlySpan<byte> salt)
    {
        ArgumentNullException.ThrowIfNull(user);
        ArgumentNullException.ThrowIfNull(password);
        if (salt.Length != 4)
        {
            throw new ArgumentException("The MD5 salt is exactly 4 bytes.", nameof(salt));
        }

        // Inner: md5(password || user) as 32 lower-case hex characters.
        byte[] inner = Encoding.UTF8.GetBytes(password + user);
        Span<byte> hash = stackalloc byte[16];
#pragma warning disable CA5351 // The md5 authentication method is defined with MD5; there is no choice of algorithm.
        MD5.HashData(inner, hash);
        CryptographicOperations.ZeroMemory(inner);

        // Outer: md5(innerHex || salt).
        Span<byte> outerInput = stackalloc byte[36];
        WriteHexAscii(hash, outerInput);
        salt.CopyTo(outerInput[32..]);
        MD5.HashData(outerInput, hash);
#pragma warning restore CA5351

        var result = new StringBuilder(35).Append("md5");
        foreach (byte b in hash)
        {
            result.Append(b.ToString("x2", CultureInfo.InvariantCulture));
        }

        return result.ToString();
    }

    private static void WriteHexAscii(ReadOnlySpan<byte> bytes, Span<byte> destination)
    {
        for (int i = 0; i < bytes.Length; i++)
        {
            destination[2 * i] = Hex(bytes[i] >> 4);
            destination[(2 * i) + 1] = Hex(bytes[i] & 0xF);
        }

        static byte Hex(int nibble) => (byte)(nibble < 10 ? '0' + nibble : 'a' + nibble - 10);
    }
}
