using System.Security.Cryptography;

namespace NhiAudit.Postgres.Gateway;

/// <summary>Short random session ids: unique enough to join our records with the server's log lines, short enough for application_name.</summary>
internal static class SessionIds
{
    private const string Alphabet = "abcdefghijkmnpqrstuvwxyz23456789";

    public static string Next()
    {
        Span<byte> random = stackalloc byte[12];
        RandomNumberGenerator.Fill(random);
        return string.Create(12, random.ToArray(), static (chars, bytes) =>
        {
            for (var i = 0; i < chars.Length; i++)
            {
                chars[i] = Alphabet[bytes[i] & 31];
            }
        });
    }
}
