namespace NhiAudit.Postgres.Protocol;

/// <summary>
/// Which client encodings the SQL lexer can read safely after UTF-8 decoding.
/// </summary>
/// <remarks>
/// The gateway lexes SQL as UTF-8. That is exact for UTF8 and keeps every ASCII byte (quotes,
/// backslashes, semicolons) in place for SQL_ASCII, the LATIN/WIN single-byte encodings and the
/// EUC family, where multibyte characters use only bytes ≥ 0x80. SJIS, BIG5, GBK, UHC, GB18030
/// and JOHAB can put 0x5C ('\') or 0x27 (') inside a multibyte character: with those the server
/// (which converts to its own encoding before lexing) and the gateway would split strings
/// differently — the classic GBK injection — so the relay must refuse them (FATAL/ERROR 0A000) in
/// the startup <c>client_encoding</c> and whenever ParameterStatus reports a change.
/// </remarks>
internal static class PgClientEncoding
{
    /// <summary>True when <paramref name="encoding"/> keeps ASCII bytes unambiguous, so the SQL lexer sees what the server sees.</summary>
    /// <param name="encoding">A PostgreSQL encoding name as sent in <c>client_encoding</c> (case and '_'/'-' insensitive).</param>
    public static bool IsAsciiSafe(string encoding)
    {
        ArgumentNullException.ThrowIfNull(encoding);
        Span<char> normalized = stackalloc char[Math.Min(encoding.Length, 32)];
        int n = 0;
        foreach (char c in encoding)
        {
            if (c is '_' or '-' or ' ')
            {
                continue;
            }

            if (n == normalized.Length)
            {
                return false;
            }

            normalized[n++] = char.ToUpperInvariant(c);
        }

        ReadOnlySpan<char> name = normalized[..n];
        return !(name.SequenceEqual("SJIS") || name.SequenceEqual("SHIFTJIS") || name.SequenceEqual("SHIFTJIS2004")
            || name.SequenceEqual("MSKANJI") || name.SequenceEqual("WIN932") || name.SequenceEqual("WINDOWS932")
            || name.SequenceEqual("BIG5") || name.SequenceEqual("WIN950") || name.SequenceEqual("WINDOWS950")
            || name.SequenceEqual("GBK") || name.SequenceEqual("WIN936") || name.SequenceEqual("WINDOWS936") || name.SequenceEqual("CP936")
            || name.SequenceEqual("UHC") || name.SequenceEqual("WIN949") || name.SequenceEqual("WINDOWS949")
            || name.SequenceEqual("GB18030") || name.SequenceEqual("JOHAB"))
            && n > 0;
    }
}
