using System.Buffers;

namespace NhiAudit.Postgres.Sql;

internal static partial class SqlEffects
{
    /// <summary>The non-comment tokens of one statement (up to its terminator), with matched parentheses; arrays are pooled.</summary>
    private sealed class Tokens : IDisposable
    {
        private SqlToken[] _tokens;
        private int[] _match;
        private int[] _parent;

        public Tokens(string sql)
        {
            Sql = sql;
            _tokens = ArrayPool<SqlToken>.Shared.Rent(32);
            var lexer = new SqlLexer(sql);
            var tracker = new StatementBoundaryTracker();
            int count = 0;
            while (lexer.TryRead(out var token))
            {
                if (tracker.IsTerminator(sql, token))
                {
                    if (count > 0)
                    {
                        break;
                    }

                    continue;
                }

                if (token.IsComment)
                {
                    Unterminated |= token.Unterminated;
                    continue;
                }

                Unterminated |= token.Unterminated;
                if (count == _tokens.Length)
                {
                    var bigger = ArrayPool<SqlToken>.Shared.Rent(count * 2);
                    _tokens.AsSpan(0, count).CopyTo(bigger);
                    ArrayPool<SqlToken>.Shared.Return(_tokens);
                    _tokens = bigger;
                }

                _tokens[count++] = token;
            }

            Count = count;
            _match = ArrayPool<int>.Shared.Rent(Math.Max(count, 1));
            _parent = ArrayPool<int>.Shared.Rent(Math.Max(count, 1));
            int open = -1;
            for (int i = 0; i < count; i++)
            {
                _match[i] = -1;
                switch (_tokens[i].Kind)
                {
                    case SqlTokenKind.OpenParen:
                        _parent[i] = open;
                        _match[i] = count;
                        open = i;
                        break;
                    case SqlTokenKind.CloseParen when open >= 0:
                        _match[open] = i;
                        _match[i] = open;
                        _parent[i] = _parent[open];
                        open = _parent[open];
                        break;
                    default:
                        _parent[i] = open;
                        break;
                }
            }
        }

        public string Sql { get; }

        public int Count { get; }

        /// <summary>True when a string, quoted identifier or comment runs to the end of the text.</summary>
        public bool Unterminated { get; }

        public SqlToken this[int i] => _tokens[i];

        /// <summary>The open parenthesis enclosing token <paramref name="i"/>, -1 at the top level.</summary>
        public int Parent(int i) => _parent[i];

        /// <summary>For a parenthesis, the index of its partner (<see cref="Count"/> when unclosed).</summary>
        public int Match(int i) => _match[i];

        public ReadOnlySpan<char> Word(int i) => Sql.AsSpan(_tokens[i].Start, _tokens[i].Length);

        public bool Is(int i, string keyword) =>
            (uint)i < (uint)Count && _tokens[i].Kind == SqlTokenKind.Identifier && _tokens[i].Length == keyword.Length
            && Word(i).Equals(keyword, StringComparison.OrdinalIgnoreCase);

        public bool IsKind(int i, SqlTokenKind kind) => (uint)i < (uint)Count && _tokens[i].Kind == kind;

        public bool IsName(int i) => IsKind(i, SqlTokenKind.Identifier) || IsKind(i, SqlTokenKind.QuotedIdentifier);

        public bool IsOperator(int i, char c) => IsKind(i, SqlTokenKind.Operator) && Sql[_tokens[i].Start] == c;

        /// <summary>Index of the next token at the same depth (skips a whole parenthesized group).</summary>
        public int Next(int i) => _tokens[i].Kind == SqlTokenKind.OpenParen ? Math.Min(_match[i], Count - 1) + 1 : i + 1;

        /// <summary>End (exclusive) of the group that contains token <paramref name="i"/>.</summary>
        public int GroupEnd(int i) => _parent[i] < 0 ? Count : Math.Min(_match[_parent[i]], Count);

        /// <summary>The text from token <paramref name="from"/> to before token <paramref name="to"/>.</summary>
        public string Text(int from, int to)
        {
            to = Math.Min(to, Count);
            return from >= to ? string.Empty : Sql.Substring(_tokens[from].Start, _tokens[to - 1].End - _tokens[from].Start);
        }

        /// <summary>The identifier's value as the server reads it (unquoted folded to lower case).</summary>
        public string Name(int i) => SqlText.IdentifierValue(Sql, _tokens[i]);

        /// <summary>The identifier's value for a lookup, folded into <paramref name="buffer"/> without allocating when it can.</summary>
        public ReadOnlySpan<char> FoldedName(int i, Span<char> buffer)
        {
            var word = Word(i);
            if (_tokens[i].Kind != SqlTokenKind.Identifier)
            {
                return Name(i);
            }

            if (word.IndexOfAnyInRange('A', 'Z') < 0)
            {
                return word;
            }

            if (word.Length > buffer.Length)
            {
                return Name(i);
            }

            for (int k = 0; k < word.Length; k++)
            {
                char c = word[k];
                buffer[k] = c is >= 'A' and <= 'Z' ? (char)(c + 32) : c;
            }

            return buffer[..word.Length];
        }

        /// <summary>Reads <c>[[db.]schema.]name</c> at <paramref name="i"/>: its last two parts and the index after it; false when no name is there.</summary>
        public bool QualifiedName(int i, out string? schema, out string name, out int after)
        {
            schema = null;
            name = string.Empty;
            after = i;
            if (!IsName(i))
            {
                return false;
            }

            int last = i;
            while (IsKind(last + 1, SqlTokenKind.Dot) && IsName(last + 2))
            {
                last += 2;
            }

            name = Name(last);
            schema = last > i ? Name(last - 2) : null;
            after = last + 1;
            return true;
        }

        /// <summary>The value of a string token, or of an identifier (LANGUAGE plpgsql / 'plpgsql').</summary>
        public string? Value(int i) =>
            (uint)i >= (uint)Count ? null
            : _tokens[i].Kind is SqlTokenKind.String or SqlTokenKind.DollarString ? SqlText.StringValue(Sql, _tokens[i])
            : IsName(i) ? Name(i)
            : null;

        public void Dispose()
        {
            ArrayPool<SqlToken>.Shared.Return(_tokens);
            ArrayPool<int>.Shared.Return(_match);
            ArrayPool<int>.Shared.Return(_parent);
        }
    }
}
