namespace NhiAudit.Masking;

/// <summary>
/// The value detectors over UTF-8 bytes. Each <c>Find*</c> returns the first match whose pattern starts at or after
/// <c>from</c>: the span to replace (<c>start</c>, <c>length</c>). Every detector jumps between candidates with a
/// vectorized search (<c>@</c>, a digit, <c>eyJ</c>, <c>B</c>/<c>b</c>, <c>==</c>, <c>=</c>, <c>-----BEGIN</c>), so a
/// value without candidates costs one pass per enabled detector. Nothing here allocates.
/// </summary>
internal static class SensitiveValueScanner
{
    /// <summary>The number of detector kinds (bits of <see cref="SensitiveValueKinds.All"/>).</summary>
    public const int KindCount = 9;

    /// <summary>A connection-string secret shorter than this is not a secret (and keeps the output bound of 4 bytes per input byte).</summary>
    private const int MinConnectionStringValue = 2;

    /// <summary>How far after <c>-----BEGIN</c> / <c>-----END</c> the label may run.</summary>
    private const int PemLabelWindow = 80;

    /// <summary>Finds the next match of detector <paramref name="kindIndex"/> (bit index of <see cref="SensitiveValueKinds"/>).</summary>
    public static bool Find(int kindIndex, ReadOnlySpan<byte> s, int from, out int start, out int length) => kindIndex switch
    {
        0 => FindEmail(s, from, out start, out length),
        1 => FindCreditCard(s, from, out start, out length),
        2 => FindIban(s, from, out start, out length),
        3 => FindUsSsn(s, from, out start, out length),
        4 => FindJwt(s, from, out start, out length),
        5 => FindBearerToken(s, from, out start, out length),
        6 => FindAzureStorageKey(s, from, out start, out length),
        7 => FindAzureConnectionStringSecret(s, from, out start, out length),
        8 => FindPemPrivateKey(s, from, out start, out length),
        _ => throw new ArgumentOutOfRangeException(nameof(kindIndex)),
    };

    // ---- e-mail: local@label(.label)*.tld ------------------------------------------------------------

    /// <summary><c>[A-Za-z0-9._%+-]+@</c> then dot-separated <c>[A-Za-z0-9-]+</c> labels ending with a TLD of at least two letters.</summary>
    public static bool FindEmail(ReadOnlySpan<byte> s, int from, out int start, out int length)
    {
        var at = from;
        while (at < s.Length)
        {
            var rel = s[at..].IndexOf((byte)'@');
            if (rel < 0)
            {
                break;
            }

            at += rel;
            var localStart = at;
            while (localStart > from && IsEmailLocal(s[localStart - 1]))
            {
                localStart--;
            }

            if (localStart < at)
            {
                var end = EmailDomainEnd(s, at + 1);
                if (end > 0)
                {
                    start = localStart;
                    length = end - localStart;
                    return true;
                }
            }

            at++;
        }

        start = length = 0;
        return false;
    }

    /// <summary>The end of the longest domain starting at <paramref name="i"/> whose last label is a TLD, or -1.</summary>
    private static int EmailDomainEnd(ReadOnlySpan<byte> s, int i)
    {
        var pos = i;
        var labels = 0;
        var end = -1;
        while (true)
        {
            var labelStart = pos;
            var letters = true;
            while (pos < s.Length && IsDomainLabel(s[pos]))
            {
                letters &= IsAsciiLetter(s[pos]);
                pos++;
            }

            if (pos == labelStart)
            {
                return end;
            }

            labels++;
            if (labels >= 2 && letters && pos - labelStart >= 2)
            {
                end = pos;
            }

            if (pos + 1 < s.Length && s[pos] == (byte)'.' && IsDomainLabel(s[pos + 1]))
            {
                pos++;
            }
            else
            {
                return end;
            }
        }
    }

    // ---- payment card: 13-19 digits, single space/dash between groups, Luhn ---------------------------

    /// <summary>
    /// 13 to 19 digits, optionally grouped by single spaces or dashes, not touching another letter or digit, passing
    /// Luhn. Within a run of digit groups the leftmost group start with a valid number wins, with its longest number.
    /// </summary>
    public static bool FindCreditCard(ReadOnlySpan<byte> s, int from, out int start, out int length)
    {
        var i = from;
        while (i < s.Length)
        {
            var rel = s[i..].IndexOfAnyInRange((byte)'0', (byte)'9');
            if (rel < 0)
            {
                break;
            }

            i += rel;
            if (i > 0 && IsAsciiLetterOrDigit(s[i - 1]))
            {
                while (i < s.Length && IsAsciiDigit(s[i]))
                {
                    i++;
                }

                continue;
            }

            var group = i;
            while (true)
            {
                var end = CardEndAt(s, group);
                if (end > 0)
                {
                    start = group;
                    length = end - group;
                    return true;
                }

                var p = group;
                while (p < s.Length && IsAsciiDigit(s[p]))
                {
                    p++;
                }

                if (p + 1 < s.Length && IsCardSeparator(s[p]) && IsAsciiDigit(s[p + 1]))
                {
                    group = p + 1;
                    continue;
                }

                i = p;
                break;
            }
        }

        start = length = 0;
        return false;
    }

    /// <summary>The end of the longest Luhn-valid card number starting at <paramref name="start"/>, or -1.</summary>
    private static int CardEndAt(ReadOnlySpan<byte> s, int start)
    {
        var best = -1;
        var digits = 0;
        var pos = start;
        while (true)
        {
            while (pos < s.Length && IsAsciiDigit(s[pos]))
            {
                digits++;
                pos++;
                if (digits > 19)
                {
                    return best;
                }
            }

            if (digits >= 13 && (pos == s.Length || !IsAsciiLetterOrDigit(s[pos])) && Luhn(s[start..pos]))
            {
                best = pos;
            }

            if (pos + 1 < s.Length && IsCardSeparator(s[pos]) && IsAsciiDigit(s[pos + 1]))
            {
                pos++;
            }
            else
            {
                return best;
            }
        }
    }

    /// <summary>The Luhn check over the digits of <paramref name="number"/> (separators skipped).</summary>
    internal static bool Luhn(ReadOnlySpan<byte> number)
    {
        var sum = 0;
        var doubleIt = false;
        for (var i = number.Length - 1; i >= 0; i--)
        {
            if (!IsAsciiDigit(number[i]))
            {
                continue;
            }

            var d = number[i] - '0';
            if (doubleIt)
            {
                d *= 2;
                if (d > 9)
                {
                    d -= 9;
                }
            }

            sum += d;
            doubleIt = !doubleIt;
        }

        return sum % 10 == 0;
    }

    // ---- IBAN ------------------------------------------------------------------------------------------

    /// <summary>
    /// Two uppercase letters, two digits and 11 to 30 uppercase letters or digits (either contiguous or in groups of four
    /// separated by single spaces), 15 to 34 characters in all, ISO 7064 mod-97 equal to 1, not touching a letter or digit.
    /// </summary>
    public static bool FindIban(ReadOnlySpan<byte> s, int from, out int start, out int length)
    {
        var i = from;
        while (i + 15 <= s.Length)
        {
            var rel = s[i..].IndexOfAnyInRange((byte)'A', (byte)'Z');
            if (rel < 0)
            {
                break;
            }

            i += rel;
            if (i + 15 > s.Length)
            {
                break;
            }

            if (IsUpper(s[i + 1]) && IsAsciiDigit(s[i + 2]) && IsAsciiDigit(s[i + 3]) && (i == 0 || !IsAsciiLetterOrDigit(s[i - 1])))
            {
                var end = IbanEndAt(s, i);
                if (end > 0)
                {
                    start = i;
                    length = end - i;
                    return true;
                }
            }

            i++;
        }

        start = length = 0;
        return false;
    }

    private static int IbanEndAt(ReadOnlySpan<byte> s, int i)
    {
        var pos = i + 4;
        if (pos < s.Length && IsUpperOrDigit(s[pos]))
        {
            while (pos < s.Length && IsUpperOrDigit(s[pos]))
            {
                pos++;
            }

            var n = pos - i;
            return n is >= 15 and <= 34 && (pos == s.Length || !IsAsciiLetterOrDigit(s[pos])) && IbanChecksumHolds(s[i..pos]) ? pos : -1;
        }

        var best = -1;
        var total = 4;
        while (pos + 1 < s.Length && s[pos] == (byte)' ' && IsUpperOrDigit(s[pos + 1]))
        {
            var groupStart = pos + 1;
            var groupEnd = groupStart;
            while (groupEnd < s.Length && groupEnd - groupStart < 4 && IsUpperOrDigit(s[groupEnd]))
            {
                groupEnd++;
            }

            if (groupEnd < s.Length && IsAsciiLetterOrDigit(s[groupEnd]))
            {
                break;
            }

            total += groupEnd - groupStart;
            if (total > 34)
            {
                break;
            }

            if (total >= 15 && IbanChecksumHolds(s[i..groupEnd]))
            {
                best = groupEnd;
            }

            if (groupEnd - groupStart < 4)
            {
                break;
            }

            pos = groupEnd;
        }

        return best;
    }

    /// <summary>ISO 7064 mod 97-10 over the IBAN (spaces skipped): the first four characters moved to the end, letters as 10..35.</summary>
    internal static bool IbanChecksumHolds(ReadOnlySpan<byte> iban)
    {
        var remainder = 0;
        var seen = 0;
        for (var pass = 0; pass < 2; pass++)
        {
            seen = 0;
            foreach (var b in iban)
            {
                if (b == (byte)' ')
                {
                    continue;
                }

                var inHead = seen < 4;
                seen++;
                if (inHead != (pass == 1))
                {
                    continue;
                }

                if (IsAsciiDigit(b))
                {
                    remainder = ((remainder * 10) + (b - '0')) % 97;
                }
                else if (IsUpper(b))
                {
                    remainder = ((remainder * 100) + (b - 'A' + 10)) % 97;
                }
                else
                {
                    return false;
                }
            }
        }

        return seen >= 5 && remainder == 1;
    }

    // ---- US SSN ----------------------------------------------------------------------------------------

    /// <summary><c>AAA-GG-SSSS</c> with area not 000, 666 or 9xx, group not 00, serial not 0000, not touching digits or a dash-and-digit.</summary>
    public static bool FindUsSsn(ReadOnlySpan<byte> s, int from, out int start, out int length)
    {
        var i = from;
        while (i + 11 <= s.Length)
        {
            var rel = s[i..].IndexOf((byte)'-');
            if (rel < 0)
            {
                break;
            }

            // The first dash sits at offset 3 of the number.
            var candidate = i + rel - 3;
            if (candidate >= i && candidate + 11 <= s.Length && IsSsnAt(s, candidate))
            {
                start = candidate;
                length = 11;
                return true;
            }

            i += rel + 1;
        }

        start = length = 0;
        return false;
    }

    private static bool IsSsnAt(ReadOnlySpan<byte> s, int i)
    {
        var v = s.Slice(i, 11);
        if (!(IsAsciiDigit(v[0]) && IsAsciiDigit(v[1]) && IsAsciiDigit(v[2]) && v[3] == (byte)'-' && IsAsciiDigit(v[4]) && IsAsciiDigit(v[5])
            && v[6] == (byte)'-' && IsAsciiDigit(v[7]) && IsAsciiDigit(v[8]) && IsAsciiDigit(v[9]) && IsAsciiDigit(v[10])))
        {
            return false;
        }

        if (i > 0 && (IsAsciiDigit(s[i - 1]) || (s[i - 1] == (byte)'-' && i > 1 && IsAsciiDigit(s[i - 2]))))
        {
            return false;
        }

        var e = i + 11;
        if (e < s.Length && (IsAsciiDigit(s[e]) || (s[e] == (byte)'-' && e + 1 < s.Length && IsAsciiDigit(s[e + 1]))))
        {
            return false;
        }

        var area = ((v[0] - '0') * 100) + ((v[1] - '0') * 10) + (v[2] - '0');
        var group = ((v[4] - '0') * 10) + (v[5] - '0');
        var serial = ((v[7] - '0') * 1000) + ((v[8] - '0') * 100) + ((v[9] - '0') * 10) + (v[10] - '0');
        return area != 0 && area != 666 && area < 900 && group != 0 && serial != 0;
    }

    // ---- JWT -------------------------------------------------------------------------------------------

    /// <summary><c>eyJ…</c>: three base64url segments joined by dots (header and payload at least two characters, signature possibly empty).</summary>
    public static bool FindJwt(ReadOnlySpan<byte> s, int from, out int start, out int length)
    {
        var i = from;
        while (i < s.Length)
        {
            var rel = s[i..].IndexOf("eyJ"u8);
            if (rel < 0)
            {
                break;
            }

            i += rel;
            var p = SkipBase64Url(s, i);
            if (p < s.Length && s[p] == (byte)'.')
            {
                var q = SkipBase64Url(s, p + 1);
                if (q - (p + 1) >= 2 && q < s.Length && s[q] == (byte)'.')
                {
                    var r = SkipBase64Url(s, q + 1);
                    start = i;
                    length = r - i;
                    return true;
                }
            }

            // Every eyJ inside this header run ends at the same place and fails the same way.
            i = Math.Max(p, i + 1);
        }

        start = length = 0;
        return false;
    }

    // ---- Bearer ----------------------------------------------------------------------------------------

    /// <summary><c>Bearer</c> (any case, at a word start), spaces, then a token of at least 8 of <c>A-Za-z0-9-._~+/</c> and trailing <c>=</c>: the token only.</summary>
    public static bool FindBearerToken(ReadOnlySpan<byte> s, int from, out int start, out int length)
    {
        var i = from;
        while (i + 7 <= s.Length)
        {
            var rel = s[i..].IndexOfAny((byte)'B', (byte)'b');
            if (rel < 0)
            {
                break;
            }

            i += rel;
            if (i + 7 <= s.Length && System.Text.Ascii.EqualsIgnoreCase(s.Slice(i, 6), "bearer"u8) && s[i + 6] == (byte)' '
                && (i == 0 || !IsAsciiLetterOrDigit(s[i - 1])))
            {
                var t = i + 7;
                while (t < s.Length && s[t] == (byte)' ')
                {
                    t++;
                }

                var e = t;
                while (e < s.Length && IsBearerTokenChar(s[e]))
                {
                    e++;
                }

                var chars = e - t;
                while (e < s.Length && s[e] == (byte)'=')
                {
                    e++;
                }

                if (chars >= 8)
                {
                    start = t;
                    length = e - t;
                    return true;
                }
            }

            i++;
        }

        start = length = 0;
        return false;
    }

    // ---- Azure storage key -----------------------------------------------------------------------------

    /// <summary>86 characters of <c>A-Za-z0-9+/</c> then <c>==</c> (88 in all), not inside a longer base64 run.</summary>
    public static bool FindAzureStorageKey(ReadOnlySpan<byte> s, int from, out int start, out int length)
    {
        var j = from + 86;
        while (j + 2 <= s.Length)
        {
            var rel = s[j..].IndexOf("=="u8);
            if (rel < 0)
            {
                break;
            }

            j += rel;
            var k = j - 86;
            var ok = (k == 0 || !IsBase64Std(s[k - 1])) && (j + 2 == s.Length || !(IsBase64Std(s[j + 2]) || s[j + 2] == (byte)'='));
            for (var p = j - 1; ok && p >= k; p--)
            {
                ok = IsBase64Std(s[p]);
            }

            if (ok)
            {
                start = k;
                length = 88;
                return true;
            }

            j++;
        }

        start = length = 0;
        return false;
    }

    // ---- Azure connection string / SAS -----------------------------------------------------------------

    /// <summary>
    /// The value after <c>AccountKey=</c>, <c>SharedAccessKey=</c>, <c>SharedAccessSignature=</c> or <c>sig=</c> (any case, at a
    /// word start) up to <c>;</c>, <c>&amp;</c>, whitespace, a quote or the end: the value only, at least two characters.
    /// </summary>
    public static bool FindAzureConnectionStringSecret(ReadOnlySpan<byte> s, int from, out int start, out int length)
    {
        var j = from;
        while (j < s.Length)
        {
            var rel = s[j..].IndexOf((byte)'=');
            if (rel < 0)
            {
                break;
            }

            j += rel;
            if (EndsWithSecretKey(s, from, j))
            {
                var e = j + 1;
                while (e < s.Length && !IsConnectionStringTerminator(s[e]))
                {
                    e++;
                }

                if (e - (j + 1) >= MinConnectionStringValue)
                {
                    start = j + 1;
                    length = e - start;
                    return true;
                }
            }

            j++;
        }

        start = length = 0;
        return false;
    }

    private static bool EndsWithSecretKey(ReadOnlySpan<byte> s, int from, int equals) =>
        EndsWithKey(s, from, equals, "accountkey"u8) || EndsWithKey(s, from, equals, "sharedaccesskey"u8)
        || EndsWithKey(s, from, equals, "sharedaccesssignature"u8) || EndsWithKey(s, from, equals, "sig"u8);

    private static bool EndsWithKey(ReadOnlySpan<byte> s, int from, int equals, ReadOnlySpan<byte> key)
    {
        var k = equals - key.Length;
        return k >= from && System.Text.Ascii.EqualsIgnoreCase(s[k..equals], key) && (k == 0 || !IsAsciiLetterOrDigit(s[k - 1]));
    }

    // ---- PEM private key -------------------------------------------------------------------------------

    /// <summary>
    /// From <c>-----BEGIN … PRIVATE KEY</c> through the next <c>-----END … PRIVATE KEY-----</c>; without an END line,
    /// to the end of the value (fail closed: a truncated key is still a key).
    /// </summary>
    public static bool FindPemPrivateKey(ReadOnlySpan<byte> s, int from, out int start, out int length)
    {
        var i = from;
        while (i < s.Length)
        {
            var rel = s[i..].IndexOf("-----BEGIN"u8);
            if (rel < 0)
            {
                break;
            }

            i += rel;
            var labelEnd = PrivateKeyLabelEnd(s, i + 10);
            if (labelEnd > 0)
            {
                start = i;
                length = s.Length - i;
                var e = labelEnd;
                while (e < s.Length)
                {
                    var endRel = s[e..].IndexOf("-----END"u8);
                    if (endRel < 0)
                    {
                        break;
                    }

                    e += endRel;
                    var endLabelEnd = PrivateKeyLabelEnd(s, e + 8);
                    if (endLabelEnd > 0)
                    {
                        var close = endLabelEnd;
                        if (s[close..].StartsWith("-----"u8))
                        {
                            close += 5;
                        }

                        length = close - i;
                        break;
                    }

                    e += 8;
                }

                return true;
            }

            i += 10;
        }

        start = length = 0;
        return false;
    }

    /// <summary>
    /// When the label after a BEGIN/END marker (up to <c>-----</c>, a line end or <see cref="PemLabelWindow"/> bytes)
    /// contains <c>PRIVATE KEY</c>, the position after that text; otherwise -1.
    /// </summary>
    private static int PrivateKeyLabelEnd(ReadOnlySpan<byte> s, int labelStart)
    {
        if (labelStart > s.Length)
        {
            return -1;
        }

        var window = s[labelStart..Math.Min(s.Length, labelStart + PemLabelWindow)];
        var stop = window.IndexOf("-----"u8);
        if (stop >= 0)
        {
            window = window[..stop];
        }

        var newline = window.IndexOfAny((byte)'\n', (byte)'\r', (byte)'\\');
        if (newline >= 0)
        {
            window = window[..newline];
        }

        var at = window.IndexOf("PRIVATE KEY"u8);
        return at < 0 ? -1 : labelStart + at + 11;
    }

    // ---- character classes -----------------------------------------------------------------------------

    internal static bool IsAsciiDigit(byte b) => (uint)(b - '0') <= 9;

    internal static bool IsAsciiLetter(byte b) => (uint)((b | 0x20) - 'a') <= 'z' - 'a';

    internal static bool IsAsciiLetterOrDigit(byte b) => IsAsciiDigit(b) || IsAsciiLetter(b);

    private static bool IsUpper(byte b) => (uint)(b - 'A') <= 'Z' - 'A';

    private static bool IsUpperOrDigit(byte b) => IsUpper(b) || IsAsciiDigit(b);

    private static bool IsCardSeparator(byte b) => b is (byte)' ' or (byte)'-';

    private static bool IsEmailLocal(byte b) => IsAsciiLetterOrDigit(b) || b is (byte)'.' or (byte)'_' or (byte)'%' or (byte)'+' or (byte)'-';

    private static bool IsDomainLabel(byte b) => IsAsciiLetterOrDigit(b) || b == (byte)'-';

    private static bool IsBase64Url(byte b) => IsAsciiLetterOrDigit(b) || b is (byte)'-' or (byte)'_';

    private static bool IsBase64Std(byte b) => IsAsciiLetterOrDigit(b) || b is (byte)'+' or (byte)'/';

    private static bool IsBearerTokenChar(byte b) => IsAsciiLetterOrDigit(b) || b is (byte)'-' or (byte)'.' or (byte)'_' or (byte)'~' or (byte)'+' or (byte)'/';

    private static bool IsConnectionStringTerminator(byte b) =>
        b is (byte)';' or (byte)'&' or (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n' or (byte)'"' or (byte)'\'';

    private static int SkipBase64Url(ReadOnlySpan<byte> s, int i)
    {
        while (i < s.Length && IsBase64Url(s[i]))
        {
            i++;
        }

        return i;
    }
}
