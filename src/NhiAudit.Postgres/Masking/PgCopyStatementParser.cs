using System.Text;
using NhiAudit.Postgres.Sql;

namespace NhiAudit.Postgres.Masking;

/// <summary>A <c>COPY … TO STDOUT</c> statement: what it reads and how the server formats its rows.</summary>
/// <param name="Relation">The table, normalized (unquoted parts lower-cased, joined by '.'), or null for <c>COPY (query)</c>.</param>
/// <param name="Columns">The column list, normalized, or null when none was given.</param>
/// <param name="Query">The inner text of <c>COPY (query)</c>, as written (trimmed), or null.</param>
/// <param name="Format">Text, CSV or binary.</param>
/// <param name="Delimiter">The field delimiter byte.</param>
/// <param name="Quote">The CSV quote byte.</param>
/// <param name="Escape">The CSV escape byte.</param>
/// <param name="NullString">How NULL is written.</param>
/// <param name="Header">True when the first line is a header (text and CSV).</param>
internal sealed record PgCopyOutStatement(
    string? Relation,
    IReadOnlyList<string>? Columns,
    string? Query,
    PgCopyFormat Format,
    byte Delimiter,
    byte Quote,
    byte Escape,
    string NullString,
    bool Header);

/// <summary>What <see cref="PgCopyStatementParser.Parse"/> made of a statement.</summary>
internal enum PgCopyParseResult
{
    /// <summary>Not a COPY whose rows come to the client (another statement, COPY FROM, COPY TO a server file or program).</summary>
    NotCopyToStdout,

    /// <summary>A COPY … TO STDOUT that was understood.</summary>
    CopyToStdout,

    /// <summary>A COPY … TO STDOUT (or a COPY whose direction is unclear) that was not understood: refuse it when masking applies.</summary>
    Unreadable,
}

/// <summary>
/// Reads <c>COPY</c> statements: <c>COPY [BINARY] [schema.]table [(col, …)] TO STDOUT …</c> and <c>COPY (query) TO STDOUT …</c>,
/// with the options in the modern parenthesized form or the legacy keyword form.
/// </summary>
internal static class PgCopyStatementParser
{
    /// <summary>Parses one statement.</summary>
    /// <param name="sql">The statement's text (a trailing semicolon is allowed).</param>
    /// <param name="statement">The statement when <see cref="PgCopyParseResult.CopyToStdout"/>.</param>
    /// <param name="error">Why when <see cref="PgCopyParseResult.Unreadable"/>.</param>
    public static PgCopyParseResult Parse(string sql, out PgCopyOutStatement? statement, out string? error)
    {
        ArgumentNullException.ThrowIfNull(sql);
        statement = null;
        error = null;
        var tokens = new List<SqlToken>();
        var lexer = new SqlLexer(sql);
        while (lexer.TryRead(out SqlToken token))
        {
            if (!token.IsComment)
            {
                if (tokens.Count == 0 && !IsKeyword(sql, token, "copy"))
                {
                    // Not a COPY: no need to read the rest of the statement (this runs for every statement while masking).
                    return PgCopyParseResult.NotCopyToStdout;
                }

                tokens.Add(token);
            }
        }

        while (tokens.Count > 0 && tokens[^1].Kind == SqlTokenKind.Semicolon)
        {
            tokens.RemoveAt(tokens.Count - 1);
        }

        if (tokens.Count == 0 || !IsKeyword(sql, tokens[0], "copy"))
        {
            return PgCopyParseResult.NotCopyToStdout;
        }

        var parser = new Parser(sql, tokens);
        try
        {
            PgCopyParseResult result = parser.Run(out statement);
            return result;
        }
        catch (FormatException ex)
        {
            statement = null;
            if (parser.LooksLikeCopyFrom())
            {
                return PgCopyParseResult.NotCopyToStdout;
            }

            error = "COPY statement not understood by the masking gateway: " + ex.Message;
            return PgCopyParseResult.Unreadable;
        }
    }

    private static bool IsKeyword(string sql, in SqlToken token, string keyword) =>
        token.Kind == SqlTokenKind.Identifier && sql.AsSpan(token.Start, token.Length).Equals(keyword, StringComparison.OrdinalIgnoreCase);

    private sealed class Parser(string sql, List<SqlToken> tokens)
    {
        private int _position = 1;
        private PgCopyFormat _format = PgCopyFormat.Text;
        private string? _delimiter;
        private string? _null;
        private string? _quote;
        private string? _escape;
        private bool _header;

        public PgCopyParseResult Run(out PgCopyOutStatement? statement)
        {
            statement = null;
            string? relation = null;
            List<string>? columns = null;
            string? query = null;
            if (AcceptKeyword("binary"))
            {
                _format = PgCopyFormat.Binary;
            }

            if (Peek(SqlTokenKind.OpenParen))
            {
                int open = _position;
                int close = MatchingParen(open);
                query = sql[tokens[open].End..tokens[close].Start].Trim();
                if (query.Length == 0)
                {
                    throw new FormatException("empty query");
                }

                _position = close + 1;
            }
            else
            {
                relation = QualifiedName();
                if (Peek(SqlTokenKind.OpenParen))
                {
                    columns = NameList();
                }
            }

            if (AcceptKeyword("from"))
            {
                return PgCopyParseResult.NotCopyToStdout;
            }

            if (!AcceptKeyword("to"))
            {
                throw new FormatException("expected TO or FROM after the table or query");
            }

            if (AcceptKeyword("program") || Peek(SqlTokenKind.String) || Peek(SqlTokenKind.DollarString))
            {
                return PgCopyParseResult.NotCopyToStdout;
            }

            // PostgreSQL's grammar takes STDIN and STDOUT alike as "the client" (copy_file_name).
            if (!AcceptKeyword("stdout") && !AcceptKeyword("stdin"))
            {
                throw new FormatException("expected STDOUT after TO");
            }

            ParseOptions();
            if (_position < tokens.Count)
            {
                throw new FormatException($"unexpected '{Text(tokens[_position])}' at offset {tokens[_position].Start}");
            }

            bool csv = _format == PgCopyFormat.Csv;
            byte delimiter = SingleByte(_delimiter, csv ? (byte)',' : (byte)'\t', "DELIMITER");
            byte quote = SingleByte(_quote, (byte)'"', "QUOTE");
            byte escape = SingleByte(_escape, quote, "ESCAPE");
            if (delimiter is (byte)'\n' or (byte)'\r')
            {
                throw new FormatException("the delimiter cannot be a newline or carriage return");
            }

            statement = new PgCopyOutStatement(relation, columns, query, _format, delimiter, quote, escape, _null ?? (csv ? string.Empty : "\\N"), _header);
            return PgCopyParseResult.CopyToStdout;
        }

        /// <summary>When the statement cannot be read: a FROM at depth 0 before any TO makes it a COPY FROM.</summary>
        public bool LooksLikeCopyFrom()
        {
            int depth = 0;
            foreach (SqlToken token in tokens)
            {
                if (token.Kind == SqlTokenKind.OpenParen)
                {
                    depth++;
                }
                else if (token.Kind == SqlTokenKind.CloseParen)
                {
                    depth--;
                }
                else if (depth == 0 && IsKeyword(sql, token, "to"))
                {
                    return false;
                }
                else if (depth == 0 && IsKeyword(sql, token, "from"))
                {
                    return true;
                }
            }

            return false;
        }

        private void ParseOptions()
        {
            _ = AcceptKeyword("with");
            if (Peek(SqlTokenKind.OpenParen))
            {
                ParseModernOptions();
            }
            else
            {
                ParseLegacyOptions();
            }
        }

        private void ParseModernOptions()
        {
            Expect(SqlTokenKind.OpenParen, "(");
            while (true)
            {
                string name = Name("option name");
                switch (name)
                {
                    case "format":
                        {
                            string format = OptionWord("FORMAT");
                            _format = format switch
                            {
                                "text" => PgCopyFormat.Text,
                                "csv" => PgCopyFormat.Csv,
                                "binary" => PgCopyFormat.Binary,
                                _ => throw new FormatException($"unknown COPY format '{format}'"),
                            };
                            break;
                        }

                    case "delimiter": _delimiter = StringArgument("DELIMITER"); break;
                    case "null": _null = StringArgument("NULL"); break;
                    case "default": _ = StringArgument("DEFAULT"); break;
                    case "quote": _quote = StringArgument("QUOTE"); break;
                    case "escape": _escape = StringArgument("ESCAPE"); break;
                    case "encoding": _ = StringArgument("ENCODING"); break;
                    case "header":
                        _header = AtOptionEnd() || OptionWord("HEADER") switch
                        {
                            "true" or "on" or "1" or "match" => true,
                            "false" or "off" or "0" => false,
                            var h => throw new FormatException($"HEADER requires a Boolean value or \"match\", not '{h}'"),
                        };
                        break;
                    case "freeze":
                        if (!AtOptionEnd())
                        {
                            _ = OptionWord("FREEZE");
                        }

                        break;
                    case "force_quote" or "force_not_null" or "force_null":
                        if (Peek(SqlTokenKind.OpenParen))
                        {
                            _ = NameList();
                        }
                        else if (Peek(SqlTokenKind.Operator) && Text(tokens[_position]) == "*")
                        {
                            _position++;
                        }
                        else
                        {
                            throw new FormatException($"{name.ToUpperInvariant()} expects a column list or *");
                        }

                        break;
                    default:
                        throw new FormatException($"unknown COPY option '{name}'");
                }

                if (Accept(SqlTokenKind.Comma))
                {
                    continue;
                }

                Expect(SqlTokenKind.CloseParen, ")");
                return;
            }
        }

        private void ParseLegacyOptions()
        {
            while (_position < tokens.Count)
            {
                if (AcceptKeyword("binary"))
                {
                    _format = PgCopyFormat.Binary;
                }
                else if (AcceptKeyword("csv"))
                {
                    _format = PgCopyFormat.Csv;
                }
                else if (AcceptKeyword("header"))
                {
                    _header = true;
                }
                else if (AcceptKeyword("delimiter"))
                {
                    _ = AcceptKeyword("as");
                    _delimiter = StringArgument("DELIMITER");
                }
                else if (AcceptKeyword("null"))
                {
                    _ = AcceptKeyword("as");
                    _null = StringArgument("NULL");
                }
                else if (AcceptKeyword("quote"))
                {
                    _ = AcceptKeyword("as");
                    _quote = StringArgument("QUOTE");
                }
                else if (AcceptKeyword("escape"))
                {
                    _ = AcceptKeyword("as");
                    _escape = StringArgument("ESCAPE");
                }
                else if (AcceptKeyword("encoding"))
                {
                    _ = StringArgument("ENCODING");
                }
                else if (AcceptKeyword("force"))
                {
                    if (AcceptKeyword("not"))
                    {
                        ExpectKeyword("null");
                    }
                    else if (!AcceptKeyword("quote") && !AcceptKeyword("null"))
                    {
                        throw new FormatException("expected QUOTE, NOT NULL or NULL after FORCE");
                    }

                    if (Peek(SqlTokenKind.Operator) && Text(tokens[_position]) == "*")
                    {
                        _position++;
                    }
                    else
                    {
                        _ = Name("column");
                        while (Accept(SqlTokenKind.Comma))
                        {
                            _ = Name("column");
                        }
                    }
                }
                else
                {
                    throw new FormatException($"unknown COPY option '{Text(tokens[_position])}' at offset {tokens[_position].Start}");
                }
            }
        }

        private bool AtOptionEnd() => !(_position < tokens.Count) || Peek(SqlTokenKind.Comma) || Peek(SqlTokenKind.CloseParen);

        /// <summary>An option argument written as a word, a number or a string, lower-cased.</summary>
        private string OptionWord(string option)
        {
            if (_position >= tokens.Count)
            {
                throw new FormatException($"{option} expects a value");
            }

            SqlToken token = tokens[_position++];
            return token.Kind switch
            {
                SqlTokenKind.Identifier or SqlTokenKind.QuotedIdentifier => SqlText.IdentifierValue(sql, token).ToLowerInvariant(),
                SqlTokenKind.Number => Text(token),
                SqlTokenKind.String or SqlTokenKind.DollarString when !token.Unterminated => (SqlText.StringValue(sql, token) ?? string.Empty).ToLowerInvariant(),
                _ => throw new FormatException($"{option} expects a value, not '{Text(token)}'"),
            };
        }

        private string StringArgument(string option)
        {
            if (_position < tokens.Count)
            {
                SqlToken token = tokens[_position];
                if (token.Kind is SqlTokenKind.String or SqlTokenKind.DollarString && !token.Unterminated && token.Style is not (SqlStringStyle.Bit or SqlStringStyle.Hex))
                {
                    _position++;
                    return SqlText.StringValue(sql, token) ?? string.Empty;
                }
            }

            throw new FormatException($"{option} expects a string literal");
        }

        private static byte SingleByte(string? value, byte fallback, string option)
        {
            if (value is null)
            {
                return fallback;
            }

            if (value.Length != 1 || value[0] > 0x7F)
            {
                throw new FormatException($"the COPY {option} must be a single one-byte character, not '{value}' ({Encoding.UTF8.GetByteCount(value)} bytes)");
            }

            return (byte)value[0];
        }

        private string QualifiedName()
        {
            var name = new StringBuilder(Name("table name"));
            int parts = 1;
            while (Accept(SqlTokenKind.Dot))
            {
                if (++parts > 3)
                {
                    throw new FormatException("a table name has at most three parts");
                }

                name.Append('.').Append(Name("table name"));
            }

            return name.ToString();
        }

        private List<string> NameList()
        {
            Expect(SqlTokenKind.OpenParen, "(");
            var names = new List<string> { Name("column") };
            while (Accept(SqlTokenKind.Comma))
            {
                names.Add(Name("column"));
            }

            Expect(SqlTokenKind.CloseParen, ")");
            return names;
        }

        private string Name(string what)
        {
            if (_position < tokens.Count)
            {
                SqlToken token = tokens[_position];
                if (token.Kind == SqlTokenKind.Identifier || (token.Kind == SqlTokenKind.QuotedIdentifier && !token.Unterminated))
                {
                    _position++;
                    return SqlText.IdentifierValue(sql, token);
                }
            }

            throw new FormatException($"expected a {what}");
        }

        private int MatchingParen(int open)
        {
            int depth = 0;
            for (int i = open; i < tokens.Count; i++)
            {
                if (tokens[i].Unterminated)
                {
                    break;
                }

                if (tokens[i].Kind == SqlTokenKind.OpenParen)
                {
                    depth++;
                }
                else if (tokens[i].Kind == SqlTokenKind.CloseParen && --depth == 0)
                {
                    return i;
                }
            }

            throw new FormatException("unbalanced parentheses around the query");
        }

        private bool Peek(SqlTokenKind kind) => _position < tokens.Count && tokens[_position].Kind == kind;

        private bool Accept(SqlTokenKind kind)
        {
            if (!Peek(kind))
            {
                return false;
            }

            _position++;
            return true;
        }

        private void Expect(SqlTokenKind kind, string what)
        {
            if (!Accept(kind))
            {
                throw new FormatException(_position < tokens.Count ? $"expected '{what}' at offset {tokens[_position].Start}" : $"expected '{what}' at the end");
            }
        }

        private bool AcceptKeyword(string keyword)
        {
            if (_position < tokens.Count && IsKeyword(sql, tokens[_position], keyword))
            {
                _position++;
                return true;
            }

            return false;
        }

        private void ExpectKeyword(string keyword)
        {
            if (!AcceptKeyword(keyword))
            {
                throw new FormatException($"expected {keyword.ToUpperInvariant()}");
            }
        }

        private string Text(in SqlToken token) => sql.Substring(token.Start, token.Length);
    }
}
