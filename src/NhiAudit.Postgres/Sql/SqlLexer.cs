namespace NhiAudit.Postgres.Sql;

/// <summary>
/// A PostgreSQL lexer reduced to what decides statement boundaries and structure: comments,
/// every kind of quoted string, quoted identifiers, dollar quotes, parameters and punctuation.
/// It follows src/backend/parser/scan.l rule for rule where that changes where a string or
/// comment ends, because a disagreement with the server is a way to hide a statement from the audit.
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item><c>--</c> comments run to \n or \r; <c>/* */</c> comments nest.</item>
/// <item>A closing quote followed by whitespace containing a newline (and optional <c>--</c> comments) and another
/// quote continues the same string in the same mode (scan.l's quotecontinue): <c>E'a'⏎'\''</c> is one E-string.</item>
/// <item><c>$tag$</c> starts a dollar quote only where a token starts; a <c>$</c> inside an identifier belongs to the
/// identifier (<c>a$$b</c>), <c>$1</c> is a parameter, and the tag cannot start with a digit.</item>
/// <item>Numbers stop before identifier characters, as PostgreSQL before 15 lexed them (<c>1a$$</c> is 1 then
/// <c>a$$</c>); PostgreSQL 15+ rejects such input outright, so either way the server cannot see a different split.</item>
/// </list>
/// Linear time: every loop advances the position.
/// </remarks>
internal ref struct SqlLexer
{
    private readonly ReadOnlySpan<char> _text;
    private readonly bool _standardConformingStrings;
    private int _position;

    /// <summary>Creates a lexer over <paramref name="text"/>.</summary>
    /// <param name="text">SQL text.</param>
    /// <param name="standardConformingStrings">The session's standard_conforming_strings (on by default since PostgreSQL 9.1); off makes backslash an escape in plain '' strings.</param>
    public SqlLexer(ReadOnlySpan<char> text, bool standardConformingStrings = true)
    {
        _text = text;
        _standardConformingStrings = standardConformingStrings;
        _position = 0;
    }

    /// <summary>Reads the next token, skipping whitespace; comments are returned as tokens.</summary>
    /// <returns>False at the end of the text.</returns>
    public bool TryRead(out SqlToken token)
    {
        ReadOnlySpan<char> text = _text;
        int pos = _position;
        while (pos < text.Length && IsSpace(text[pos]))
        {
            pos++;
        }

        if (pos >= text.Length)
        {
            _position = pos;
            token = default;
            return false;
        }

        int start = pos;
        char c = text[pos];
        char next = pos + 1 < text.Length ? text[pos + 1] : '\0';
        switch (c)
        {
            case '-' when next == '-':
                pos += 2;
                while (pos < text.Length && text[pos] is not ('\n' or '\r'))
                {
                    pos++;
                }

                token = new SqlToken(SqlTokenKind.LineComment, start, pos - start);
                break;
            case '/' when next == '*':
                token = ReadBlockComment(start);
                pos = token.End;
                break;
            case '\'':
                token = ReadString(start, start + 1, _standardConformingStrings ? SqlStringStyle.Standard : SqlStringStyle.Escape);
                pos = token.End;
                break;
            case '"':
                token = ReadQuotedIdentifier(start, start + 1, SqlStringStyle.None);
                pos = token.End;
                break;
            case 'e' or 'E' when next == '\'':
                token = ReadString(start, start + 2, SqlStringStyle.Escape);
                pos = token.End;
                break;
            case 'b' or 'B' when next == '\'':
                token = ReadString(start, start + 2, SqlStringStyle.Bit);
                pos = token.End;
                break;
            case 'x' or 'X' when next == '\'':
                token = ReadString(start, start + 2, SqlStringStyle.Hex);
                pos = token.End;
                break;
            case 'u' or 'U' when next == '&' && pos + 2 < text.Length && text[pos + 2] == '\'':
                token = ReadString(start, start + 3, SqlStringStyle.Unicode);
                pos = token.End;
                break;
            case 'u' or 'U' when next == '&' && pos + 2 < text.Length && text[pos + 2] == '"':
                token = ReadQuotedIdentifier(start, start + 3, SqlStringStyle.Unicode);
                pos = token.End;
                break;
            case '$' when IsDigit(next):
                pos += 2;
                while (pos < text.Length && IsDigit(text[pos]))
                {
                    pos++;
                }

                token = new SqlToken(SqlTokenKind.Parameter, start, pos - start);
                break;
            case '$':
                token = TryReadDollarString(start, out SqlToken dollar) ? dollar : new SqlToken(SqlTokenKind.Operator, start, 1);
                pos = token.End;
                break;
            case ';':
                token = new SqlToken(SqlTokenKind.Semicolon, start, 1);
                pos++;
                break;
            case '(':
                token = new SqlToken(SqlTokenKind.OpenParen, start, 1);
                pos++;
                break;
            case ')':
                token = new SqlToken(SqlTokenKind.CloseParen, start, 1);
                pos++;
                break;
            case ',':
                token = new SqlToken(SqlTokenKind.Comma, start, 1);
                pos++;
                break;
            case '.' when IsDigit(next):
                pos = ReadNumber(pos);
                token = new SqlToken(SqlTokenKind.Number, start, pos - start);
                break;
            case '.':
                token = new SqlToken(SqlTokenKind.Dot, start, 1);
                pos++;
                break;
            default:
                if (IsIdentifierStart(c))
                {
                    pos++;
                    while (pos < text.Length && IsIdentifierPart(text[pos]))
                    {
                        pos++;
                    }

                    token = new SqlToken(SqlTokenKind.Identifier, start, pos - start);
                }
                else if (IsDigit(c))
                {
                    pos = ReadNumber(pos);
                    token = new SqlToken(SqlTokenKind.Number, start, pos - start);
                }
                else
                {
                    token = new SqlToken(SqlTokenKind.Operator, start, 1);
                    pos++;
                }

                break;
        }

        _position = pos;
        return true;
    }

    /// <summary>PostgreSQL's <c>space</c>: space, \t, \n, \r, \f, \v. Other Unicode spaces are identifier characters to the server.</summary>
    public static bool IsSpace(char c) => c is ' ' or '\t' or '\n' or '\r' or '\f' or '\v';

    /// <summary><c>ident_start</c>: ASCII letters, '_' and every non-ASCII character.</summary>
    public static bool IsIdentifierStart(char c) => (uint)((c | 0x20) - 'a') <= 'z' - 'a' || c == '_' || c >= 0x80;

    /// <summary><c>ident_cont</c>: ident_start plus digits and '$'.</summary>
    public static bool IsIdentifierPart(char c) => IsIdentifierStart(c) || IsDigit(c) || c == '$';

    private static bool IsDigit(char c) => (uint)(c - '0') <= 9;

    /// <summary>Digits, one decimal point (not "..", which is a range operator in PL/pgSQL), an exponent only when digits follow.</summary>
    private readonly int ReadNumber(int pos)
    {
        ReadOnlySpan<char> text = _text;
        while (pos < text.Length && IsDigit(text[pos]))
        {
            pos++;
        }

        if (pos < text.Length && text[pos] == '.' && !(pos + 1 < text.Length && text[pos + 1] == '.'))
        {
            pos++;
            while (pos < text.Length && IsDigit(text[pos]))
            {
                pos++;
            }
        }

        if (pos < text.Length && text[pos] is 'e' or 'E')
        {
            int p = pos + 1;
            if (p < text.Length && text[p] is '+' or '-')
            {
                p++;
            }

            if (p < text.Length && IsDigit(text[p]))
            {
                pos = p;
                while (pos < text.Length && IsDigit(text[pos]))
                {
                    pos++;
                }
            }
        }

        return pos;
    }

    private readonly SqlToken ReadBlockComment(int start)
    {
        ReadOnlySpan<char> text = _text;
        int depth = 0;
        int pos = start + 2;
        while (pos < text.Length)
        {
            char c = text[pos];
            if (c == '/' && pos + 1 < text.Length && text[pos + 1] == '*')
            {
                depth++;
                pos += 2;
            }
            else if (c == '*' && pos + 1 < text.Length && text[pos + 1] == '/')
            {
                pos += 2;
                if (depth == 0)
                {
                    return new SqlToken(SqlTokenKind.BlockComment, start, pos - start);
                }

                depth--;
            }
            else
            {
                pos++;
            }
        }

        return new SqlToken(SqlTokenKind.BlockComment, start, text.Length - start, Unterminated: true);
    }

    /// <summary>Scans a string body from <paramref name="bodyStart"/> (just after the opening quote).</summary>
    private readonly SqlToken ReadString(int start, int bodyStart, SqlStringStyle style)
    {
        ReadOnlySpan<char> text = _text;
        bool doubling = style is SqlStringStyle.Standard or SqlStringStyle.Escape or SqlStringStyle.Unicode;
        int pos = bodyStart;
        while (pos < text.Length)
        {
            char c = text[pos];
            if (c == '\'')
            {
                if (doubling && pos + 1 < text.Length && text[pos + 1] == '\'')
                {
                    pos += 2;
                    continue;
                }

                int continuation = QuoteContinuation(pos + 1);
                if (continuation >= 0)
                {
                    pos = continuation + 1;
                    continue;
                }

                return new SqlToken(SqlTokenKind.String, start, pos + 1 - start, style);
            }

            // xeescape is [\\][^0-7] and the octal/hex forms; none can contain a quote beyond the
            // escaped character, so skipping exactly one character after the backslash is exact.
            pos += c == '\\' && style == SqlStringStyle.Escape ? 2 : 1;
        }

        return new SqlToken(SqlTokenKind.String, start, text.Length - start, style, Unterminated: true);
    }

    /// <summary>
    /// scan.l's <c>quotecontinue</c>: <c>{horiz_whitespace}*{newline}{special_whitespace}*'</c>, where
    /// horiz_whitespace is [ \t\f] or a -- comment and special_whitespace is spaces or a -- comment followed by a newline.
    /// Returns the position of the continuing quote, or -1.
    /// </summary>
    private readonly int QuoteContinuation(int pos)
    {
        ReadOnlySpan<char> text = _text;
        while (pos < text.Length)
        {
            char c = text[pos];
            if (c is ' ' or '\t' or '\f')
            {
                pos++;
            }
            else if (c == '-' && pos + 1 < text.Length && text[pos + 1] == '-')
            {
                pos += 2;
                while (pos < text.Length && text[pos] is not ('\n' or '\r'))
                {
                    pos++;
                }
            }
            else
            {
                break;
            }
        }

        if (pos >= text.Length || text[pos] is not ('\n' or '\r'))
        {
            return -1;
        }

        pos++;
        while (pos < text.Length)
        {
            char c = text[pos];
            if (IsSpace(c))
            {
                pos++;
            }
            else if (c == '-' && pos + 1 < text.Length && text[pos + 1] == '-')
            {
                int end = pos + 2;
                while (end < text.Length && text[end] is not ('\n' or '\r'))
                {
                    end++;
                }

                if (end >= text.Length)
                {
                    // A comment without its newline is not special_whitespace.
                    return -1;
                }

                pos = end + 1;
            }
            else
            {
                break;
            }
        }

        return pos < text.Length && text[pos] == '\'' ? pos : -1;
    }

    private readonly SqlToken ReadQuotedIdentifier(int start, int bodyStart, SqlStringStyle style)
    {
        ReadOnlySpan<char> text = _text;
        int pos = bodyStart;
        while (pos < text.Length)
        {
            if (text[pos] == '"')
            {
                if (pos + 1 < text.Length && text[pos + 1] == '"')
                {
                    pos += 2;
                    continue;
                }

                return new SqlToken(SqlTokenKind.QuotedIdentifier, start, pos + 1 - start, style);
            }

            pos++;
        }

        return new SqlToken(SqlTokenKind.QuotedIdentifier, start, text.Length - start, style, Unterminated: true);
    }

    /// <summary><c>\$({dolq_start}{dolq_cont}*)?\$</c> then everything up to the same delimiter.</summary>
    private readonly bool TryReadDollarString(int start, out SqlToken token)
    {
        ReadOnlySpan<char> text = _text;
        int pos = start + 1;
        if (pos < text.Length && text[pos] != '$')
        {
            if (!IsIdentifierStart(text[pos]))
            {
                token = default;
                return false;
            }

            pos++;
            while (pos < text.Length && (IsIdentifierStart(text[pos]) || IsDigit(text[pos])))
            {
                pos++;
            }
        }

        if (pos >= text.Length || text[pos] != '$')
        {
            // dolqfailed: PostgreSQL returns the '$' alone and lexes the rest normally.
            token = default;
            return false;
        }

        ReadOnlySpan<char> delimiter = text[start..(pos + 1)];
        int bodyStart = pos + 1;
        int close = text[bodyStart..].IndexOf(delimiter, StringComparison.Ordinal);
        token = close < 0
            ? new SqlToken(SqlTokenKind.DollarString, start, text.Length - start, Unterminated: true)
            : new SqlToken(SqlTokenKind.DollarString, start, bodyStart + close + delimiter.Length - start);
        return true;
    }
}
