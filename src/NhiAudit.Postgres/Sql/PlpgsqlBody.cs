using System.Text;

namespace NhiAudit.Postgres.Sql;

/// <summary>What one piece of a PL/pgSQL body is to the gateway.</summary>
internal enum PlpgsqlItemKind : byte
{
    /// <summary>A SQL statement the body runs (INSERT, DROP, SELECT … INTO, CALL …); PERFORM and RETURN QUERY become SELECTs.</summary>
    Sql,

    /// <summary>An expression the body evaluates (a condition, an assignment, RAISE's arguments): only the calls in it matter.</summary>
    Expression,

    /// <summary>EXECUTE of a constant string (literals joined with <c>||</c>): the text is the SQL it runs.</summary>
    DynamicConstant,

    /// <summary>EXECUTE of a computed string: the text is the EXECUTE statement; what it runs cannot be read.</summary>
    DynamicComputed,

    /// <summary>The body cannot be read (an unterminated string or comment): the text says why.</summary>
    Unreadable,
}

/// <summary>One piece of a PL/pgSQL body.</summary>
/// <param name="Kind">What it is.</param>
/// <param name="Text">Its text (see <see cref="PlpgsqlItemKind"/>).</param>
internal readonly record struct PlpgsqlItem(PlpgsqlItemKind Kind, string Text);

/// <summary>
/// Reads a PL/pgSQL body (a DO block, a function) into the SQL statements, expressions and dynamic SQL it runs,
/// skipping its block structure: labels, DECLARE, BEGIN, EXCEPTION WHEN … THEN, END [IF|LOOP|CASE], IF/ELSIF/ELSE,
/// CASE/WHEN, LOOP, WHILE, FOR, FOREACH, assignments, RAISE, RETURN, NULL, EXIT, CONTINUE, GET DIAGNOSTICS, FETCH,
/// MOVE, CLOSE, OPEN. Everything else is SQL, as PL/pgSQL itself treats it. Linear in the body's length; never throws.
/// </summary>
internal static class PlpgsqlBody
{
    /// <summary>Splits <paramref name="body"/> into the pieces it runs.</summary>
    public static List<PlpgsqlItem> Parse(string body)
    {
        var items = new List<PlpgsqlItem>();
        var tokens = new List<SqlToken>();
        var lexer = new SqlLexer(body);
        while (lexer.TryRead(out var token))
        {
            if (token.Unterminated)
            {
                items.Add(new PlpgsqlItem(PlpgsqlItemKind.Unreadable, "the body has an unterminated string, identifier or comment"));
                return items;
            }

            if (!token.IsComment)
            {
                tokens.Add(token);
            }
        }

        var reader = new Reader(body, tokens, items);
        reader.Run();
        return items;
    }

    private sealed class Reader(string body, List<SqlToken> tokens, List<PlpgsqlItem> items)
    {
        private bool _declaring;

        public void Run()
        {
            int start = 0;
            int depth = 0;
            for (int i = 0; i < tokens.Count; i++)
            {
                switch (tokens[i].Kind)
                {
                    case SqlTokenKind.OpenParen:
                        depth++;
                        break;
                    case SqlTokenKind.CloseParen when depth > 0:
                        depth--;
                        break;
                    case SqlTokenKind.Semicolon when depth == 0:
                        Segment(start, i);
                        start = i + 1;
                        break;
                }
            }

            Segment(start, tokens.Count);
        }

        private bool Is(int i, int end, string word) =>
            i < end && tokens[i].Kind == SqlTokenKind.Identifier && tokens[i].Length == word.Length
            && body.AsSpan(tokens[i].Start, word.Length).Equals(word, StringComparison.OrdinalIgnoreCase);

        private bool IsOperator(int i, int end, char c) =>
            i < end && tokens[i].Kind == SqlTokenKind.Operator && body[tokens[i].Start] == c;

        private string Text(int from, int to) =>
            from >= to ? string.Empty : body.Substring(tokens[from].Start, tokens[to - 1].End - tokens[from].Start);

        private void Add(PlpgsqlItemKind kind, int from, int to)
        {
            if (from < to)
            {
                items.Add(new PlpgsqlItem(kind, Text(from, to)));
            }
        }

        /// <summary>Index of <paramref name="word"/> at parenthesis depth 0 and outside CASE … END, or <paramref name="end"/>.</summary>
        private int Find(int from, int end, string word)
        {
            int depth = 0;
            int cases = 0;
            for (int i = from; i < end; i++)
            {
                switch (tokens[i].Kind)
                {
                    case SqlTokenKind.OpenParen:
                        depth++;
                        continue;
                    case SqlTokenKind.CloseParen:
                        depth = Math.Max(0, depth - 1);
                        continue;
                }

                if (depth > 0)
                {
                    continue;
                }

                if (Is(i, end, word) && cases == 0)
                {
                    return i;
                }

                if (Is(i, end, "CASE"))
                {
                    cases++;
                }
                else if (Is(i, end, "END") && cases > 0)
                {
                    cases--;
                }
            }

            return end;
        }

        private void Segment(int i, int end)
        {
            while (i < end)
            {
                // <<label>>
                if (IsOperator(i, end, '<') && IsOperator(i + 1, end, '<'))
                {
                    int close = i + 2;
                    while (close < end && !(IsOperator(close, end, '>') && IsOperator(close + 1, end, '>')))
                    {
                        close++;
                    }

                    i = close + 2;
                    continue;
                }

                if (Is(i, end, "DECLARE"))
                {
                    _declaring = true;
                    i++;
                    continue;
                }

                if (Is(i, end, "BEGIN"))
                {
                    _declaring = false;
                    i++;
                    continue;
                }

                if (_declaring)
                {
                    Declaration(i, end);
                    return;
                }

                if (Is(i, end, "END"))
                {
                    // END [IF | LOOP | CASE] [label]: closes a block; nothing runs.
                    return;
                }

                if (Is(i, end, "EXCEPTION") || Is(i, end, "WHEN"))
                {
                    // A handler (EXCEPTION WHEN cond THEN) or a CASE arm (WHEN expr THEN): the statement follows THEN.
                    int then = Find(i + 1, end, "THEN");
                    Add(PlpgsqlItemKind.Expression, Is(i, end, "EXCEPTION") ? end : i + 1, then);
                    i = then + 1;
                    continue;
                }

                if (Is(i, end, "IF") || Is(i, end, "ELSIF") || Is(i, end, "ELSEIF"))
                {
                    int then = Find(i + 1, end, "THEN");
                    Add(PlpgsqlItemKind.Expression, i + 1, then);
                    i = then + 1;
                    continue;
                }

                if (Is(i, end, "ELSE") || Is(i, end, "LOOP"))
                {
                    i++;
                    continue;
                }

                if (Is(i, end, "CASE"))
                {
                    int when = Find(i + 1, end, "WHEN");
                    Add(PlpgsqlItemKind.Expression, i + 1, when);
                    i = when;
                    continue;
                }

                if (Is(i, end, "WHILE"))
                {
                    int loop = Find(i + 1, end, "LOOP");
                    Add(PlpgsqlItemKind.Expression, i + 1, loop);
                    i = loop + 1;
                    continue;
                }

                if (Is(i, end, "FOREACH"))
                {
                    int array = Find(i + 1, end, "ARRAY");
                    int loop = Find(array, end, "LOOP");
                    Add(PlpgsqlItemKind.Expression, array + 1, loop);
                    i = loop + 1;
                    continue;
                }

                if (Is(i, end, "FOR"))
                {
                    i = ForLoop(i, end);
                    continue;
                }

                Statement(i, end);
                return;
            }
        }

        /// <summary><c>FOR target IN {query | EXECUTE expr | [REVERSE] a .. b | cursor(args)} LOOP</c>; returns the index after LOOP.</summary>
        private int ForLoop(int i, int end)
        {
            int inAt = Find(i + 1, end, "IN");
            int loop = Find(inAt + 1, end, "LOOP");
            int q = inAt + 1;
            if (Is(q, end, "EXECUTE"))
            {
                Dynamic(q + 1, loop, "FOR … IN EXECUTE");
            }
            else if (IsQueryStart(q, end))
            {
                Add(PlpgsqlItemKind.Sql, q, loop);
            }
            else
            {
                Add(PlpgsqlItemKind.Expression, Is(q, end, "REVERSE") ? q + 1 : q, loop);
            }

            return loop + 1;
        }

        private bool IsQueryStart(int i, int end) =>
            Is(i, end, "SELECT") || Is(i, end, "WITH") || Is(i, end, "VALUES") || Is(i, end, "TABLE") || Is(i, end, "INSERT")
            || Is(i, end, "UPDATE") || Is(i, end, "DELETE") || Is(i, end, "MERGE") || Is(i, end, "EXPLAIN")
            || (i < end && tokens[i].Kind == SqlTokenKind.OpenParen && i + 1 < end && (Is(i + 1, end, "SELECT") || Is(i + 1, end, "WITH") || Is(i + 1, end, "VALUES")));

        /// <summary><c>name [CONSTANT] type [NOT NULL] [{DEFAULT | := | =} expr]</c>, <c>name CURSOR [(args)] {FOR | IS} query</c>, <c>name ALIAS FOR $n</c>.</summary>
        private void Declaration(int i, int end)
        {
            int cursor = Find(i, end, "CURSOR");
            if (cursor < end)
            {
                int query = Find(cursor, end, "FOR");
                if (query == end)
                {
                    query = Find(cursor, end, "IS");
                }

                Add(PlpgsqlItemKind.Sql, query + 1, end);
                return;
            }

            for (int k = i; k < end; k++)
            {
                if (Is(k, end, "DEFAULT") || (IsOperator(k, end, ':') && IsOperator(k + 1, end, '=')) || (IsOperator(k, end, '=') && !IsOperator(k - 1, end, ':')))
                {
                    int from = Is(k, end, "DEFAULT") || IsOperator(k, end, '=') ? k + 1 : k + 2;
                    Add(PlpgsqlItemKind.Expression, from, end);
                    return;
                }
            }
        }

        private void Statement(int i, int end)
        {
            if (Is(i, end, "NULL") || Is(i, end, "GET") || Is(i, end, "FETCH") || Is(i, end, "MOVE") || Is(i, end, "CLOSE"))
            {
                return;
            }

            if (Is(i, end, "RAISE") || Is(i, end, "ASSERT"))
            {
                Add(PlpgsqlItemKind.Expression, i + 1, end);
                return;
            }

            if (Is(i, end, "EXIT") || Is(i, end, "CONTINUE"))
            {
                int when = Find(i + 1, end, "WHEN");
                Add(PlpgsqlItemKind.Expression, when + 1, end);
                return;
            }

            if (Is(i, end, "PERFORM"))
            {
                items.Add(new PlpgsqlItem(PlpgsqlItemKind.Sql, "SELECT " + Text(i + 1, end)));
                return;
            }

            if (Is(i, end, "RETURN"))
            {
                if (Is(i + 1, end, "QUERY") && Is(i + 2, end, "EXECUTE"))
                {
                    Dynamic(i + 3, end, "RETURN QUERY EXECUTE");
                }
                else if (Is(i + 1, end, "QUERY"))
                {
                    Add(PlpgsqlItemKind.Sql, i + 2, end);
                }
                else
                {
                    Add(PlpgsqlItemKind.Expression, Is(i + 1, end, "NEXT") ? i + 2 : i + 1, end);
                }

                return;
            }

            if (Is(i, end, "EXECUTE"))
            {
                Dynamic(i + 1, end, "EXECUTE");
                return;
            }

            if (Is(i, end, "OPEN"))
            {
                int forAt = Find(i + 1, end, "FOR");
                if (Is(forAt + 1, end, "EXECUTE"))
                {
                    Dynamic(forAt + 2, end, "OPEN … FOR EXECUTE");
                }
                else if (forAt < end)
                {
                    Add(PlpgsqlItemKind.Sql, forAt + 1, end);
                }
                else
                {
                    Add(PlpgsqlItemKind.Expression, i + 1, end);
                }

                return;
            }

            if (IsAssignment(i, end, out int value))
            {
                Add(PlpgsqlItemKind.Expression, value, end);
                return;
            }

            Add(PlpgsqlItemKind.Sql, i, end);
        }

        /// <summary><c>target[.field | [subscript]]* {:= | =} expr</c>.</summary>
        private bool IsAssignment(int i, int end, out int value)
        {
            value = end;
            if (i >= end || tokens[i].Kind is not (SqlTokenKind.Identifier or SqlTokenKind.QuotedIdentifier))
            {
                return false;
            }

            int k = i + 1;
            while (k < end)
            {
                if (tokens[k].Kind == SqlTokenKind.Dot && k + 1 < end && tokens[k + 1].Kind is SqlTokenKind.Identifier or SqlTokenKind.QuotedIdentifier)
                {
                    k += 2;
                }
                else if (IsOperator(k, end, '['))
                {
                    int depth = 0;
                    while (k < end)
                    {
                        if (IsOperator(k, end, '['))
                        {
                            depth++;
                        }
                        else if (IsOperator(k, end, ']') && --depth == 0)
                        {
                            k++;
                            break;
                        }

                        k++;
                    }
                }
                else
                {
                    break;
                }
            }

            if (IsOperator(k, end, ':') && IsOperator(k + 1, end, '='))
            {
                value = k + 2;
                return true;
            }

            if (IsOperator(k, end, '=') && !IsOperator(k + 1, end, '='))
            {
                value = k + 1;
                return true;
            }

            return false;
        }

        /// <summary>EXECUTE's command string up to INTO/USING: constant when it is only string literals joined with <c>||</c>.</summary>
        private void Dynamic(int from, int end, string what)
        {
            int stop = Math.Min(Find(from, end, "INTO"), Find(from, end, "USING"));
            var constant = ConstantString(from, stop);
            if (constant is not null)
            {
                items.Add(new PlpgsqlItem(PlpgsqlItemKind.DynamicConstant, constant));
            }
            else
            {
                items.Add(new PlpgsqlItem(PlpgsqlItemKind.DynamicComputed, what + " " + Text(from, stop)));
            }

            // USING arguments and INTO targets are expressions: their calls run too.
            if (stop < end)
            {
                Add(PlpgsqlItemKind.Expression, stop + 1, end);
            }
        }

        private string? ConstantString(int from, int to)
        {
            // Parentheses around the whole expression do not change it.
            while (to - from >= 2 && tokens[from].Kind == SqlTokenKind.OpenParen && tokens[to - 1].Kind == SqlTokenKind.CloseParen)
            {
                from++;
                to--;
            }

            if (from >= to)
            {
                return null;
            }

            var builder = new StringBuilder();
            for (int k = from; k < to; k++)
            {
                var token = tokens[k];
                if (token.Kind is SqlTokenKind.String or SqlTokenKind.DollarString && token.Style is not (SqlStringStyle.Bit or SqlStringStyle.Hex))
                {
                    builder.Append(SqlText.StringValue(body, token));
                    if (k + 1 == to)
                    {
                        return builder.ToString();
                    }

                    if (!(IsOperator(k + 1, to, '|') && IsOperator(k + 2, to, '|') && tokens[k + 2].Start == tokens[k + 1].End))
                    {
                        return null;
                    }

                    k += 2;
                    continue;
                }

                return null;
            }

            return null;
        }
    }
}
