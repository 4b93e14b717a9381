using System.Globalization;
using System.Text;

namespace NhiAudit.Postgres.Sql;

/// <summary>Turns identifier and string-literal tokens into their values.</summary>
internal static class SqlText
{
    /// <summary>
    /// The value of one identifier part: unquoted identifiers are lower-cased (ASCII only, as
    /// PostgreSQL's downcase_identifier does for UTF-8), quoted ones keep their case with <c>""</c>
    /// undoubled, and <c>U&amp;"…"</c> has its <c>\XXXX</c> / <c>\+XXXXXX</c> escapes decoded.
    /// </summary>
    public static string IdentifierValue(string sql, in SqlToken token)
    {
        ReadOnlySpan<char> raw = sql.AsSpan(token.Start, token.Length);
        if (token.Kind == SqlTokenKind.Identifier)
        {
            int upper = raw.IndexOfAnyInRange('A', 'Z');
            if (upper < 0)
            {
                return sql.Substring(token.Start, token.Length);
            }

            return string.Create(raw.Length, (sql, token.Start), static (span, state) =>
            {
                ReadOnlySpan<char> source = state.sql.AsSpan(state.Start, span.Length);
                for (int i = 0; i < span.Length; i++)
                {
                    char c = source[i];
                    span[i] = c is >= 'A' and <= 'Z' ? (char)(c + 32) : c;
                }
            });
        }

        // Quoted: strip the prefix and quotes.
        int prefix = token.Style == SqlStringStyle.Unicode ? 3 : 1;
        int bodyLength = raw.Length - prefix - (token.Unterminated ? 0 : 1);
        ReadOnlySpan<char> body = bodyLength > 0 ? raw.Slice(prefix, bodyLength) : default;
        string value = body.Contains("\"\"", StringComparison.Ordinal) ? body.ToString().Replace("\"\"", "\"", StringComparison.Ordinal) : body.ToString();
        return token.Style == SqlStringStyle.Unicode ? DecodeUnicodeEscapes(value, '\\') : value;
    }

    /// <summary>
    /// The value of a string or dollar-quoted token, or null for other tokens. Handles <c>''</c>,
    /// E-string backslash escapes, continuation segments and <c>U&amp;</c> escapes. B'' and X''
    /// strings are returned as written.
    /// </summary>
    public static string? StringValue(string sql, in SqlToken token)
    {
        ReadOnlySpan<char> raw = sql.AsSpan(token.Start, token.Length);
        if (token.Kind == SqlTokenKind.DollarString)
        {
            int tagEnd = raw[1..].IndexOf('$') + 1;
            int bodyEnd = token.Unterminated ? raw.Length : raw.Length - (tagEnd + 1);
            return bodyEnd > tagEnd + 1 ? raw[(tagEnd + 1)..bodyEnd].ToString() : string.Empty;
        }

        if (token.Kind != SqlTokenKind.String)
        {
            return null;
        }

        var value = new StringBuilder(raw.Length);
        int pos = raw.IndexOf('\'') + 1;
        bool escapes = token.Style == SqlStringStyle.Escape;
        bool doubling = token.Style is SqlStringStyle.Standard or SqlStringStyle.Escape or SqlStringStyle.Unicode;
        while (pos < raw.Length)
        {
            char c = raw[pos];
            if (c == '\'')
            {
                if (doubling && pos + 1 < raw.Length && raw[pos + 1] == '\'')
                {
                    value.Append('\'');
                    pos += 2;
                    continue;
                }

                // End of a segment: the lexer only kept going if a continuation follows; find its quote,
                // skipping whitespace and -- comments (which may themselves contain quotes).
                pos++;
                while (pos < raw.Length && raw[pos] != '\'')
                {
                    if (raw[pos] == '-' && pos + 1 < raw.Length && raw[pos + 1] == '-')
                    {
                        while (pos < raw.Length && raw[pos] is not ('\n' or '\r'))
                        {
                            pos++;
                        }
                    }
                    else
                    {
                        pos++;
                    }
                }

                pos++;
                continue;
            }

            if (c == '\\' && escapes && pos + 1 < raw.Length)
            {
                pos = AppendEscape(raw, pos + 1, value);
                continue;
            }

            value.Append(c);
            pos++;
        }

        string result = value.ToString();
        return token.Style == SqlStringStyle.Unicode ? DecodeUnicodeEscapes(result, '\\') : result;
    }

    /// <summary>Decodes one E-string escape starting after the backslash; returns the next position.</summary>
    private static int AppendEscape(ReadOnlySpan<char> raw, int pos, StringBuilder value)
    {
        char c = raw[pos];
        switch (c)
        {
            case 'b': value.Append('\b'); return pos + 1;
            case 'f': value.Append('\f'); return pos + 1;
            case 'n': value.Append('\n'); return pos + 1;
            case 'r': value.Append('\r'); return pos + 1;
            case 't': value.Append('\t'); return pos + 1;
            case >= '0' and <= '7':
                {
                    int code = 0, n = 0;
                    while (n < 3 && pos < raw.Length && raw[pos] is >= '0' and <= '7')
                    {
                        code = (code * 8) + (raw[pos] - '0');
                        pos++;
                        n++;
                    }

                    value.Append((char)(code & 0xFF));
                    return pos;
                }

            case 'x' when pos + 1 < raw.Length && char.IsAsciiHexDigit(raw[pos + 1]):
                {
                    pos++;
                    int code = 0, n = 0;
                    while (n < 2 && pos < raw.Length && char.IsAsciiHexDigit(raw[pos]))
                    {
                        code = (code * 16) + HexValue(raw[pos]);
                        pos++;
                        n++;
                    }

                    value.Append((char)code);
                    return pos;
                }

            case 'u' or 'U':
                {
                    int digits = c == 'u' ? 4 : 8;
                    if (pos + digits < raw.Length && TryParseHex(raw.Slice(pos + 1, digits), digits, out int code) && code <= 0x10FFFF)
                    {
                        AppendCodePoint(value, code);
                        return pos + 1 + digits;
                    }

                    value.Append(c);
                    return pos + 1;
                }

            default:
                value.Append(c);
                return pos + 1;
        }
    }

    /// <summary>Decodes <c>U&amp;</c> escapes: <c>\XXXX</c>, <c>\+XXXXXX</c>, and a doubled escape character.</summary>
    private static string DecodeUnicodeEscapes(string value, char escape)
    {
        if (!value.Contains(escape, StringComparison.Ordinal))
        {
            return value;
        }

        var result = new StringBuilder(value.Length);
        int pos = 0;
        while (pos < value.Length)
        {
            char c = value[pos];
            if (c != escape || pos + 1 >= value.Length)
            {
                result.Append(c);
                pos++;
                continue;
            }

            if (value[pos + 1] == escape)
            {
                result.Append(escape);
                pos += 2;
            }
            else if (value[pos + 1] == '+' && pos + 8 <= value.Length && TryParseHex(value.AsSpan(pos + 2, 6), 6, out int code6) && code6 <= 0x10FFFF)
            {
                AppendCodePoint(result, code6);
                pos += 8;
            }
            else if (pos + 5 <= value.Length && TryParseHex(value.AsSpan(pos + 1, 4), 4, out int code4))
            {
                result.Append((char)code4);
                pos += 5;
            }
            else
            {
                result.Append(c);
                pos++;
            }
        }

        return result.ToString();
    }

    private static bool TryParseHex(ReadOnlySpan<char> digits, int count, out int value)
    {
        value = 0;
        if (digits.Length != count)
        {
            return false;
        }

        return int.TryParse(digits, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value) && value >= 0;
    }

    private static int HexValue(char c) => c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;

    private static void AppendCodePoint(StringBuilder builder, int code)
    {
        if (code is >= 0xD800 and <= 0xDFFF)
        {
            builder.Append('\uFFFD');
        }
        else if (code >= 0x10000)
        {
            builder.Append(char.ConvertFromUtf32(code));
        }
        else
        {
            builder.Append((char)code);
        }
    }
}
