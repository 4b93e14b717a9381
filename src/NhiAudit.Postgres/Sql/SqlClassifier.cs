using System.Buffers;
using System.Collections.Frozen;
using NhiAudit.Postgres.Protocol;

namespace NhiAudit.Postgres.Sql;

/// <summary>
/// Classifies one SQL statement for policy and audit: its verb (<see cref="SqlStatementInfo.Kind"/>),
/// DDL object kind, the tables it names, whether its UPDATE/DELETE has a WHERE, and a stated
/// session reason. A token-level analysis, not a parser: linear in the statement length, no
/// regular expressions, no recursion deeper than <see cref="MaxNesting"/>.
/// </summary>
/// <remarks>
/// Data-modifying statements hidden inside another statement are found structurally: a
/// parenthesized group that starts with <c>DELETE FROM</c>, <c>INSERT INTO</c>, <c>MERGE INTO</c>
/// or <c>UPDATE name … SET</c> is a data-modifying statement (a CTE body, <c>COPY (…) TO</c>, a rule
/// action). Statements that run such groups now — SELECT, VALUES, INSERT, UPDATE, DELETE, MERGE,
/// COPY, WITH and EXPLAIN ANALYZE — take the most destructive kind among them; definitions
/// (CREATE RULE, PREPARE, CREATE FUNCTION) keep their own kind.
/// </remarks>
internal static class SqlClassifier
{
    /// <summary>Deepest WITH/EXPLAIN/parenthesis nesting followed when finding the main verb.</summary>
    public const int MaxNesting = 32;

    private static readonly FrozenDictionary<string, string> Verbs = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
    {
        ["SELECT"] = "SELECT",
        ["TABLE"] = "SELECT",
        ["VALUES"] = "VALUES",
        ["INSERT"] = "INSERT",
        ["UPDATE"] = "UPDATE",
        ["DELETE"] = "DELETE",
        ["MERGE"] = "MERGE",
        ["COPY"] = "COPY",
        ["CREATE"] = "CREATE",
        ["ALTER"] = "ALTER",
        ["DROP"] = "DROP",
        ["TRUNCATE"] = "TRUNCATE",
        ["GRANT"] = "GRANT",
        ["REVOKE"] = "REVOKE",
        ["COMMENT"] = "COMMENT",
        ["SECURITY"] = "SECURITY LABEL",
        ["BEGIN"] = "BEGIN",
        ["COMMIT"] = "COMMIT",
        ["END"] = "COMMIT",
        ["ROLLBACK"] = "ROLLBACK",
        ["ABORT"] = "ROLLBACK",
        ["SAVEPOINT"] = "SAVEPOINT",
        ["RELEASE"] = "RELEASE",
        ["SET"] = "SET",
        ["SHOW"] = "SHOW",
        ["RESET"] = "RESET",
        ["LISTEN"] = "LISTEN",
        ["NOTIFY"] = "NOTIFY",
        ["UNLISTEN"] = "UNLISTEN",
        ["DECLARE"] = "DECLARE",
        ["FETCH"] = "FETCH",
        ["MOVE"] = "MOVE",
        ["CLOSE"] = "CLOSE",
        ["PREPARE"] = "PREPARE",
        ["EXECUTE"] = "EXECUTE",
        ["DEALLOCATE"] = "DEALLOCATE",
        ["DISCARD"] = "DISCARD",
        ["VACUUM"] = "VACUUM",
        ["ANALYZE"] = "ANALYZE",
        ["ANALYSE"] = "ANALYZE",
        ["CLUSTER"] = "CLUSTER",
        ["REINDEX"] = "REINDEX",
        ["CHECKPOINT"] = "CHECKPOINT",
        ["REFRESH"] = "REFRESH",
        ["IMPORT"] = "IMPORT",
        ["LOAD"] = "LOAD",
        ["REASSIGN"] = "REASSIGN",
        ["CALL"] = "CALL",
        ["DO"] = "DO",
        ["LOCK"] = "LOCK",
    }.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase);

    private static readonly FrozenDictionary<string, string>.AlternateLookup<ReadOnlySpan<char>> VerbLookup =
        Verbs.GetAlternateLookup<ReadOnlySpan<char>>();

    /// <summary>PostgreSQL's reserved and type/function-name keywords: none of them can be an unquoted table name.</summary>
    private static readonly FrozenSet<string> NotTableNames = new[]
    {
        "ALL", "ANALYSE", "ANALYZE", "AND", "ANY", "ARRAY", "AS", "ASC", "ASYMMETRIC", "BOTH", "CASE", "CAST", "CHECK",
        "COLLATE", "COLUMN", "CONSTRAINT", "CREATE", "CURRENT_CATALOG", "CURRENT_DATE", "CURRENT_ROLE", "CURRENT_TIME",
        "CURRENT_TIMESTAMP", "CURRENT_USER", "DEFAULT", "DEFERRABLE", "DESC", "DISTINCT", "DO", "ELSE", "END", "EXCEPT",
        "FALSE", "FETCH", "FOR", "FOREIGN", "FROM", "GRANT", "GROUP", "HAVING", "IN", "INITIALLY", "INTERSECT", "INTO",
        "LATERAL", "LEADING", "LIMIT", "LOCALTIME", "LOCALTIMESTAMP", "NOT", "NULL", "OFFSET", "ON", "ONLY", "OR", "ORDER",
        "PLACING", "PRIMARY", "REFERENCES", "RETURNING", "SELECT", "SESSION_USER", "SOME", "SYMMETRIC", "SYSTEM_USER",
        "TABLE", "THEN", "TO", "TRAILING", "TRUE", "UNION", "UNIQUE", "USER", "USING", "VARIADIC", "WHEN", "WHERE",
        "WINDOW", "WITH", "AUTHORIZATION", "BINARY", "COLLATION", "CONCURRENTLY", "CROSS", "CURRENT_SCHEMA", "FREEZE",
        "FULL", "ILIKE", "INNER", "IS", "ISNULL", "JOIN", "LEFT", "LIKE", "NATURAL", "NOTNULL", "OUTER", "OVERLAPS",
        "RIGHT", "SIMILAR", "TABLESAMPLE", "VERBOSE", "VALUES", "ROWS", "STDIN", "STDOUT",
    }.ToFrozenSet(StringComparer.OrdinalIgnoreCase);

    private static readonly FrozenSet<string>.AlternateLookup<ReadOnlySpan<char>> NotTableNameLookup =
        NotTableNames.GetAlternateLookup<ReadOnlySpan<char>>();

    /// <summary>Keywords that end a FROM/USING list (the clause after it starts).</summary>
    private static readonly FrozenSet<string> FromListStops = new[]
    {
        "WHERE", "GROUP", "HAVING", "WINDOW", "ORDER", "LIMIT", "OFFSET", "FETCH", "FOR", "UNION", "INTERSECT", "EXCEPT",
        "RETURNING", "WHEN", "SET", "DO", "CONFLICT", "FROM", "JOIN", "INTO", "VALUES", "SELECT", "TABLE",
    }.ToFrozenSet(StringComparer.OrdinalIgnoreCase);

    private static readonly FrozenSet<string>.AlternateLookup<ReadOnlySpan<char>> FromListStopLookup =
        FromListStops.GetAlternateLookup<ReadOnlySpan<char>>();

    /// <summary>Classifies a single statement (split multi-statement text with <see cref="SqlStatementSplitter"/> first).</summary>
    /// <param name="statement">The statement text.</param>
    /// <param name="standardConformingStrings">The session's standard_conforming_strings setting.</param>
    public static SqlStatementInfo Classify(string statement, bool standardConformingStrings = true)
    {
        ArgumentNullException.ThrowIfNull(statement);
        SqlToken[] tokens = ArrayPool<SqlToken>.Shared.Rent(64);
        int[]? match = null;
        int[]? parent = null;
        try
        {
            int count = Tokenize(statement, standardConformingStrings, ref tokens, out bool multi);
            if (count == 0)
            {
                return multi ? new SqlStatementInfo { Kind = SqlKinds.Empty, IsMultiStatement = true } : SqlStatementInfo.Empty;
            }

            match = ArrayPool<int>.Shared.Rent(count);
            parent = ArrayPool<int>.Shared.Rent(count);
            var analysis = new Analysis(statement, tokens.AsSpan(0, count), match.AsSpan(0, count), parent.AsSpan(0, count));
            return analysis.Run(multi);
        }
        finally
        {
            ArrayPool<SqlToken>.Shared.Return(tokens);
            if (match is not null)
            {
                ArrayPool<int>.Shared.Return(match);
            }

            if (parent is not null)
            {
                ArrayPool<int>.Shared.Return(parent);
            }
        }
    }

    /// <summary>Collects the first statement's non-comment tokens; <paramref name="multi"/> tells whether another statement follows.</summary>
    private static int Tokenize(string sql, bool standardConformingStrings, ref SqlToken[] tokens, out bool multi)
    {
        var lexer = new SqlLexer(sql, standardConformingStrings);
        var tracker = new StatementBoundaryTracker();
        int count = 0;
        bool ended = false;
        multi = false;
        while (lexer.TryRead(out SqlToken token))
        {
            if (ended)
            {
                if (!token.IsComment && token.Kind != SqlTokenKind.Semicolon)
                {
                    multi = true;
                    break;
                }

                continue;
            }

            if (tracker.IsTerminator(sql, token))
            {
                // A leading ";" before anything else does not end a statement worth classifying.
                ended = count > 0;
                continue;
            }

            if (token.IsComment)
            {
                continue;
            }

            if (count == tokens.Length)
            {
                SqlToken[] bigger = ArrayPool<SqlToken>.Shared.Rent(tokens.Length * 2);
                tokens.AsSpan().CopyTo(bigger);
                ArrayPool<SqlToken>.Shared.Return(tokens);
                tokens = bigger;
            }

            tokens[count++] = token;
        }

        return count;
    }

    private static int Rank(string kind) => kind switch
    {
        SqlKinds.Delete => 4,
        SqlKinds.Update => 3,
        SqlKinds.Merge => 2,
        SqlKinds.Insert => 1,
        _ => 0,
    };

    /// <summary>The main verb found by <see cref="Analysis.ResolveMain"/>.</summary>
    private readonly record struct MainStatement(string Kind, string? ObjectKind, int ObjectKindEnd, int Head, bool RunsNested);

    /// <summary>One classification: token arrays plus the results being collected.</summary>
    private ref struct Analysis
    {
        private readonly string _sql;
        private readonly ReadOnlySpan<SqlToken> _tokens;
        private readonly Span<int> _match;
        private readonly Span<int> _parent;
        private readonly List<string> _tables;
        private HashSet<string>? _seen;
        private HashSet<string>? _cteNames;
        private string _mainVerb;
        private MainStatement _main;

        public Analysis(string sql, ReadOnlySpan<SqlToken> tokens, Span<int> match, Span<int> parent)
        {
            _sql = sql;
            _tokens = tokens;
            _match = match;
            _parent = parent;
            _tables = [];
            _seen = null;
            _cteNames = null;
            _mainVerb = string.Empty;
            _main = default;
        }

        private readonly int Count => _tokens.Length;

        public SqlStatementInfo Run(bool multi)
        {
            MatchParentheses();
            _main = ResolveMain(0, Count, 0);
            _mainVerb = Is(0, "WITH") || _tokens[0].Kind == SqlTokenKind.OpenParen ? _main.Kind
                : VerbLookup.TryGetValue(Word(0), out string? verb) ? verb : string.Empty;

            string kind = _main.Kind;
            bool? hasWhere = null;
            if (_main.RunsNested)
            {
                if (kind is SqlKinds.Update or SqlKinds.Delete)
                {
                    hasWhere = HasOwnWhere(_main.Head);
                }

                // Every data-modifying group anywhere in the statement runs with it.
                for (int i = 0; i + 1 < Count; i++)
                {
                    if (_tokens[i].Kind != SqlTokenKind.OpenParen || DmlHead(i + 1) is not { } nested)
                    {
                        continue;
                    }

                    if (Rank(nested) > Rank(kind))
                    {
                        kind = nested;
                    }

                    if (nested is SqlKinds.Update or SqlKinds.Delete)
                    {
                        bool where = HasOwnWhere(i + 1);
                        hasWhere = hasWhere is null ? where : hasWhere.Value && where;
                    }
                }
            }

            CollectTables();
            return new SqlStatementInfo
            {
                Kind = kind,
                ObjectKind = _main.ObjectKind,
                Tables = _tables.Count == 0 ? [] : _tables.ToArray(),
                HasWhere = hasWhere,
                IsMultiStatement = multi,
                SessionReason = FindSessionReason(),
                LexicalSettingProblem = FindLexicalSettingProblem(),
            };
        }

        // ------------------------------------------------------------ structure

        private readonly void MatchParentheses()
        {
            // Iterative stack kept in _parent itself: parent[i] is the open paren enclosing token i (-1 at top level).
            int open = -1;
            for (int i = 0; i < Count; i++)
            {
                _match[i] = -1;
                switch (_tokens[i].Kind)
                {
                    case SqlTokenKind.OpenParen:
                        _parent[i] = open;
                        _match[i] = Count; // until closed: runs to the end, as the server would complain anyway
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

        /// <summary>Index of the next token at the same depth (skips a whole parenthesized group).</summary>
        private readonly int Next(int i) => _tokens[i].Kind == SqlTokenKind.OpenParen ? _match[i] + 1 : i + 1;

        /// <summary>End (exclusive) of the group that contains token <paramref name="i"/>.</summary>
        private readonly int GroupEnd(int i) => _parent[i] < 0 ? Count : Math.Min(_match[_parent[i]], Count);

        private readonly ReadOnlySpan<char> Word(int i) => _sql.AsSpan(_tokens[i].Start, _tokens[i].Length);

        private readonly bool Is(int i, string keyword) =>
            (uint)i < (uint)Count
            && _tokens[i].Kind == SqlTokenKind.Identifier
            && _tokens[i].Length == keyword.Length
            && Word(i).Equals(keyword, StringComparison.OrdinalIgnoreCase);

        private readonly bool IsKind(int i, SqlTokenKind kind) => (uint)i < (uint)Count && _tokens[i].Kind == kind;

        private readonly bool IsName(int i) =>
            (uint)i < (uint)Count
            && (_tokens[i].Kind == SqlTokenKind.QuotedIdentifier
                || (_tokens[i].Kind == SqlTokenKind.Identifier && !NotTableNameLookup.Contains(Word(i))));

        /// <summary>
        /// The DML kind when token <paramref name="i"/> starts a data-modifying statement: DELETE FROM,
        /// INSERT INTO, MERGE INTO, or UPDATE [ONLY] name [*] [[AS] alias] SET. The second word rules out
        /// ON DELETE CASCADE, GRANT INSERT, FOR UPDATE, DO UPDATE SET, THEN DELETE and columns named "update".
        /// </summary>
        private readonly string? DmlHead(int i)
        {
            if (Is(i, "DELETE"))
            {
                return Is(i + 1, "FROM") ? SqlKinds.Delete : null;
            }

            if (Is(i, "INSERT"))
            {
                return Is(i + 1, "INTO") ? SqlKinds.Insert : null;
            }

            if (Is(i, "MERGE"))
            {
                return Is(i + 1, "INTO") ? SqlKinds.Merge : null;
            }

            if (!Is(i, "UPDATE"))
            {
                return null;
            }

            int j = i + 1;
            if (Is(j, "ONLY"))
            {
                j++;
            }

            if (!IsName(j))
            {
                return null;
            }

            j = SkipQualifiedName(j);
            if (IsKind(j, SqlTokenKind.Operator) && _sql[_tokens[j].Start] == '*')
            {
                j++;
            }

            if (Is(j, "SET"))
            {
                return SqlKinds.Update;
            }

            if (Is(j, "AS"))
            {
                j++;
            }

            return IsName(j) && Is(j + 1, "SET") ? SqlKinds.Update : null;
        }

        /// <summary>True when the statement starting at <paramref name="head"/> has WHERE at its own depth.</summary>
        private readonly bool HasOwnWhere(int head)
        {
            int end = GroupEnd(head);
            for (int i = head; i < end; i = Next(i))
            {
                if (Is(i, "WHERE"))
                {
                    return true;
                }
            }

            return false;
        }

        /// <summary>Finds the main verb of the statement in [<paramref name="start"/>, <paramref name="end"/>).</summary>
        public MainStatement ResolveMain(int start, int end, int nesting)
        {
            int i = start;
            while (i < end && _tokens[i].Kind == SqlTokenKind.OpenParen)
            {
                // "(SELECT …) UNION …": the verb is inside.
                i++;
            }

            if (i >= end || _tokens[i].Kind != SqlTokenKind.Identifier || nesting > MaxNesting)
            {
                return new MainStatement(SqlKinds.Unknown, null, -1, -1, false);
            }

            if (Is(i, "WITH"))
            {
                int main = SkipCteList(i, record: false);
                MainStatement inner = ResolveMain(main, end, nesting + 1);
                return inner with { RunsNested = inner.RunsNested || inner.Kind == SqlKinds.Unknown };
            }

            if (Is(i, "EXPLAIN"))
            {
                int stmt = SkipExplainOptions(i + 1, out bool analyze);
                if (!analyze)
                {
                    return new MainStatement(SqlKinds.Explain, null, -1, -1, false);
                }

                // EXPLAIN ANALYZE executes the statement: it is what it runs.
                return ResolveMain(stmt, end, nesting + 1);
            }

            if (Is(i, "START"))
            {
                return Is(i + 1, "TRANSACTION")
                    ? new MainStatement("BEGIN", null, -1, i, false)
                    : new MainStatement(SqlKinds.Unknown, null, -1, -1, false);
            }

            if (!VerbLookup.TryGetValue(Word(i), out string? verb))
            {
                return new MainStatement(SqlKinds.Unknown, null, -1, -1, false);
            }

            switch (verb)
            {
                case SqlKinds.Insert or SqlKinds.Update or SqlKinds.Delete or SqlKinds.Merge:
                    return DmlHead(i) is { } dml
                        ? new MainStatement(dml, null, -1, i, true)
                        : new MainStatement(SqlKinds.Unknown, null, -1, -1, false);
                case SqlKinds.Select or SqlKinds.Values or SqlKinds.Copy:
                    return new MainStatement(verb, null, -1, i, true);
                case SqlKinds.Create or SqlKinds.Alter or SqlKinds.Drop:
                    {
                        string? objectKind = ReadObjectKind(i + 1, out int after);
                        return new MainStatement(verb, objectKind, after, i, false);
                    }

                case "COMMENT":
                    {
                        string? objectKind = Is(i + 1, "ON") ? ReadObjectKind(i + 2, out int after) : null;
                        return new MainStatement(verb, objectKind, -1, i, false);
                    }

                case "BEGIN" when Is(i + 1, "ATOMIC"):
                    return new MainStatement(SqlKinds.Unknown, null, -1, -1, false);
                case "SECURITY" when !Is(i + 1, "LABEL"):
                    return new MainStatement(SqlKinds.Unknown, null, -1, -1, false);
                case "REFRESH":
                    return new MainStatement(verb, Is(i + 1, "MATERIALIZED") ? "MATERIALIZED VIEW" : null, i + 3, i, false);
                default:
                    return new MainStatement(verb, null, -1, i, false);
            }
        }

        /// <summary>Skips EXPLAIN's options (legacy <c>ANALYZE VERBOSE</c> words or a parenthesized list) and reports whether ANALYZE is on.</summary>
        private readonly int SkipExplainOptions(int i, out bool analyze)
        {
            analyze = false;
            if (IsKind(i, SqlTokenKind.OpenParen))
            {
                int close = Math.Min(_match[i], Count);
                for (int j = i + 1; j < close; j = Next(j))
                {
                    if ((Is(j, "ANALYZE") || Is(j, "ANALYSE")) && !(Is(j + 1, "false") || Is(j + 1, "off") || IsNumberZero(j + 1)))
                    {
                        analyze = true;
                    }
                }

                return close + 1;
            }

            while (Is(i, "ANALYZE") || Is(i, "ANALYSE") || Is(i, "VERBOSE"))
            {
                analyze |= !Is(i, "VERBOSE");
                i++;
            }

            return i;
        }

        private readonly bool IsNumberZero(int i) => IsKind(i, SqlTokenKind.Number) && Word(i) is "0";

        /// <summary>
        /// Reads the object kind after CREATE/ALTER/DROP, skipping modifiers (OR REPLACE, TEMP, UNLOGGED,
        /// UNIQUE, ...) and joining multi-word kinds (MATERIALIZED VIEW, FOREIGN TABLE, EVENT TRIGGER, ...).
        /// </summary>
        private readonly string? ReadObjectKind(int i, out int after)
        {
            while (Is(i, "OR") || Is(i, "REPLACE") || Is(i, "TEMP") || Is(i, "TEMPORARY") || Is(i, "GLOBAL") || Is(i, "LOCAL")
                || Is(i, "UNLOGGED") || Is(i, "UNIQUE") || Is(i, "RECURSIVE") || Is(i, "TRUSTED") || Is(i, "PROCEDURAL")
                || Is(i, "CONSTRAINT") || (Is(i, "DEFAULT") && !Is(i + 1, "PRIVILEGES")))
            {
                i++;
            }

            after = i + 1;
            if (!IsKind(i, SqlTokenKind.Identifier))
            {
                after = -1;
                return null;
            }

            string? twoWord =
                Is(i, "MATERIALIZED") && Is(i + 1, "VIEW") ? "MATERIALIZED VIEW"
                : Is(i, "FOREIGN") && Is(i + 1, "TABLE") ? "FOREIGN TABLE"
                : Is(i, "EVENT") && Is(i + 1, "TRIGGER") ? "EVENT TRIGGER"
                : Is(i, "ACCESS") && Is(i + 1, "METHOD") ? "ACCESS METHOD"
                : Is(i, "USER") && Is(i + 1, "MAPPING") ? "USER MAPPING"
                : Is(i, "OPERATOR") && Is(i + 1, "CLASS") ? "OPERATOR CLASS"
                : Is(i, "OPERATOR") && Is(i + 1, "FAMILY") ? "OPERATOR FAMILY"
                : Is(i, "LARGE") && Is(i + 1, "OBJECT") ? "LARGE OBJECT"
                : Is(i, "DEFAULT") && Is(i + 1, "PRIVILEGES") ? "DEFAULT PRIVILEGES"
                : null;
            if (twoWord is not null)
            {
                after = i + 2;
                return twoWord;
            }

            if (Is(i, "FOREIGN") && Is(i + 1, "DATA") && Is(i + 2, "WRAPPER"))
            {
                after = i + 3;
                return "FOREIGN DATA WRAPPER";
            }

            if (Is(i, "TEXT") && Is(i + 1, "SEARCH") && IsKind(i + 2, SqlTokenKind.Identifier))
            {
                after = i + 3;
                return "TEXT SEARCH " + Word(i + 2).ToString().ToUpperInvariant();
            }

            return Word(i).ToString().ToUpperInvariant();
        }

        /// <summary>
        /// Skips <c>WITH [RECURSIVE] name [(cols)] AS [[NOT] MATERIALIZED] (…) [SEARCH …] [CYCLE …], …</c> and
        /// returns the index of the main statement; optionally records the CTE names.
        /// </summary>
        private int SkipCteList(int with, bool record)
        {
            int j = with + 1;
            if (Is(j, "RECURSIVE"))
            {
                j++;
            }

            while (j < Count && (_tokens[j].Kind == SqlTokenKind.QuotedIdentifier || _tokens[j].Kind == SqlTokenKind.Identifier))
            {
                int name = j;
                int k = j + 1;
                if (IsKind(k, SqlTokenKind.OpenParen))
                {
                    k = _match[k] + 1;
                }

                if (!Is(k, "AS"))
                {
                    return j;
                }

                k++;
                if (Is(k, "NOT"))
                {
                    k++;
                }

                if (Is(k, "MATERIALIZED"))
                {
                    k++;
                }

                if (!IsKind(k, SqlTokenKind.OpenParen))
                {
                    return j;
                }

                if (record)
                {
                    (_cteNames ??= new HashSet<string>(StringComparer.Ordinal)).Add(SqlText.IdentifierValue(_sql, _tokens[name]));
                }

                k = _match[k] + 1;
                k = SkipSearchCycle(k);
                if (!IsKind(k, SqlTokenKind.Comma))
                {
                    return k;
                }

                j = k + 1;
            }

            return j;
        }

        /// <summary>Skips PostgreSQL 14's SEARCH … SET col and CYCLE … SET col [TO v DEFAULT v] USING col clauses.</summary>
        private readonly int SkipSearchCycle(int k)
        {
            while (Is(k, "SEARCH") || Is(k, "CYCLE"))
            {
                bool cycle = Is(k, "CYCLE");
                while (k < Count && !Is(k, "SET"))
                {
                    k = Next(k);
                }

                k += 2;
                if (cycle)
                {
                    if (Is(k, "TO"))
                    {
                        k += 4;
                    }

                    if (Is(k, "USING"))
                    {
                        k += 2;
                    }
                }
            }

            return k;
        }

        // ------------------------------------------------------------ tables

        private void CollectTables()
        {
            // groupHead[open + 1] remembers, per parenthesized group (index 0 = top level), whether its
            // statement is a DELETE or MERGE, so USING is decided in O(1).
            int[] groupHead = ArrayPool<int>.Shared.Rent(Count + 1);
            try
            {
                groupHead.AsSpan(0, Count + 1).Clear();
                CollectTables(groupHead);
            }
            finally
            {
                ArrayPool<int>.Shared.Return(groupHead);
            }

            if (_cteNames is not null)
            {
                _tables.RemoveAll(_cteNames.Contains);
            }
        }

        private void CollectTables(int[] groupHead)
        {
            bool sawOn = false;
            bool sawTo = false;
            bool revoke = _mainVerb is "REVOKE" || Is(0, "REVOKE");
            string? objectKind = _main.ObjectKind;
            // Relations named by the DDL itself (views; tables are covered by the TABLE keyword), first because they come first.
            if (_main.ObjectKindEnd > 0 && objectKind is "VIEW" or "MATERIALIZED VIEW" && _mainVerb is "CREATE" or "ALTER" or "DROP" or "REFRESH")
            {
                int j = _main.ObjectKindEnd;
                if (Is(j, "CONCURRENTLY"))
                {
                    j++;
                }

                ReadNames(j, list: _mainVerb == "DROP");
            }

            for (int i = 0; i < Count; i++)
            {
                if (_tokens[i].Kind == SqlTokenKind.OpenParen)
                {
                    groupHead[i + 1] = 0;
                    continue;
                }

                if (_tokens[i].Kind != SqlTokenKind.Identifier)
                {
                    continue;
                }

                bool top = _parent[i] < 0;
                if (Is(i, "DELETE") || Is(i, "MERGE") || Is(i, "SELECT") || Is(i, "UPDATE") || Is(i, "INSERT") || Is(i, "CREATE"))
                {
                    groupHead[_parent[i] + 1] = DmlHead(i) is SqlKinds.Delete or SqlKinds.Merge ? 1 : Is(i, "SELECT") || DmlHead(i) is not null || Is(i, "CREATE") ? 2 : groupHead[_parent[i] + 1];
                }

                ReadOnlySpan<char> word = Word(i);
                switch (word.Length)
                {
                    case 4 when word.Equals("FROM", StringComparison.OrdinalIgnoreCase):
                        if (Is(i - 1, "DISTINCT") || InsideSpecialFunction(i)
                            || (top && (revoke || _mainVerb is "COPY" or "FETCH" or "MOVE" or "IMPORT" or "REVOKE")))
                        {
                            break;
                        }

                        ReadFromList(i + 1);
                        break;
                    case 4 when word.Equals("JOIN", StringComparison.OrdinalIgnoreCase):
                        ReadFromList(i + 1);
                        break;
                    case 5 when word.Equals("USING", StringComparison.OrdinalIgnoreCase):
                        if (!IsKind(i + 1, SqlTokenKind.OpenParen) && groupHead[_parent[i] + 1] == 1)
                        {
                            ReadFromList(i + 1);
                        }

                        break;
                    case 4 when word.Equals("INTO", StringComparison.OrdinalIgnoreCase):
                        if (!(top && _mainVerb is "IMPORT"))
                        {
                            int j = i + 1;
                            while (Is(j, "TEMP") || Is(j, "TEMPORARY") || Is(j, "UNLOGGED") || Is(j, "TABLE"))
                            {
                                j++;
                            }

                            ReadName(j, rejectFunction: false);
                        }

                        break;
                    case 6 when word.Equals("UPDATE", StringComparison.OrdinalIgnoreCase):
                        if (DmlHead(i) is not null)
                        {
                            ReadName(Is(i + 1, "ONLY") ? i + 2 : i + 1, rejectFunction: false);
                        }

                        break;
                    case 5 when word.Equals("TABLE", StringComparison.OrdinalIgnoreCase):
                        if (!IsKind(i + 1, SqlTokenKind.OpenParen))
                        {
                            bool list = top && (_mainVerb is "DROP" or "TRUNCATE" or "LOCK" or "GRANT" or "REVOKE" || objectKind == "PUBLICATION");
                            ReadNames(i + 1, list);
                        }

                        break;
                    case 8 when word.Equals("TRUNCATE", StringComparison.OrdinalIgnoreCase):
                    case 4 when word.Equals("LOCK", StringComparison.OrdinalIgnoreCase):
                        if (i == 0 && !Is(1, "TABLE"))
                        {
                            ReadNames(1, list: true);
                        }

                        break;
                    case 4 when word.Equals("COPY", StringComparison.OrdinalIgnoreCase):
                        if (i == 0 && !IsKind(1, SqlTokenKind.OpenParen))
                        {
                            ReadName(1, rejectFunction: false);
                        }

                        break;
                    case 10 when word.Equals("REFERENCES", StringComparison.OrdinalIgnoreCase):
                        ReadName(i + 1, rejectFunction: false);
                        break;
                    case 2 when word.Equals("ON", StringComparison.OrdinalIgnoreCase):
                        if (top && !sawOn)
                        {
                            sawOn = true;
                            if (_mainVerb is "CREATE" && objectKind is "INDEX" or "TRIGGER" or "POLICY" or "STATISTICS")
                            {
                                ReadNames(i + 1, list: false);
                            }
                            else if ((_mainVerb is "GRANT" or "REVOKE") && !IsGrantObjectKeyword(i + 1))
                            {
                                ReadNames(i + 1, list: true);
                            }
                        }

                        break;
                    case 2 when word.Equals("TO", StringComparison.OrdinalIgnoreCase):
                        if (top && !sawTo && _mainVerb is "CREATE" && objectKind is "RULE")
                        {
                            sawTo = true;
                            ReadName(i + 1, rejectFunction: false);
                        }

                        break;
                    case 4 when word.Equals("WITH", StringComparison.OrdinalIgnoreCase):
                        SkipCteList(i, record: true);
                        break;
                    case 6 when word.Equals("VACUUM", StringComparison.OrdinalIgnoreCase):
                    case 7 when word.Equals("ANALYZE", StringComparison.OrdinalIgnoreCase) || word.Equals("ANALYSE", StringComparison.OrdinalIgnoreCase):
                        if (i == 0)
                        {
                            int j = IsKind(1, SqlTokenKind.OpenParen) ? Next(1) : 1;
                            while (Is(j, "FULL") || Is(j, "FREEZE") || Is(j, "VERBOSE") || Is(j, "ANALYZE") || Is(j, "ANALYSE"))
                            {
                                j++;
                            }

                            ReadNames(j, list: true);
                        }

                        break;
                    default:
                        break;
                }
            }
        }

        private readonly bool IsGrantObjectKeyword(int i) =>
            Is(i, "ALL") || Is(i, "SEQUENCE") || Is(i, "DATABASE") || Is(i, "DOMAIN") || Is(i, "FOREIGN") || Is(i, "FUNCTION")
            || Is(i, "PROCEDURE") || Is(i, "ROUTINE") || Is(i, "LANGUAGE") || Is(i, "LARGE") || Is(i, "SCHEMA")
            || Is(i, "TABLESPACE") || Is(i, "TYPE") || Is(i, "PARAMETER") || Is(i, "TABLE");

        /// <summary>FROM inside EXTRACT(x FROM y), SUBSTRING(s FROM n), TRIM(c FROM s), OVERLAY(… FROM n) is not a table list.</summary>
        private readonly bool InsideSpecialFunction(int i)
        {
            int open = _parent[i];
            return open > 0 && (Is(open - 1, "EXTRACT") || Is(open - 1, "SUBSTRING") || Is(open - 1, "TRIM") || Is(open - 1, "OVERLAY"));
        }

        /// <summary>Reads from-items separated by commas until the clause ends; JOINs start their own list.</summary>
        private void ReadFromList(int i)
        {
            ReadFromItem(i);
            int k = i;
            while (k < Count)
            {
                SqlToken token = _tokens[k];
                if (token.Kind == SqlTokenKind.OpenParen)
                {
                    k = _match[k] + 1;
                    continue;
                }

                if (token.Kind is SqlTokenKind.CloseParen or SqlTokenKind.Semicolon)
                {
                    return;
                }

                if (token.Kind == SqlTokenKind.Comma)
                {
                    ReadFromItem(k + 1);
                }
                else if (k > i && token.Kind == SqlTokenKind.Identifier
                    && (FromListStopLookup.Contains(Word(k)) || (Is(k, "USING") && !IsKind(k + 1, SqlTokenKind.OpenParen))))
                {
                    // Each list stops where the next introducer starts its own, which keeps the whole pass linear.
                    return;
                }

                k++;
            }
        }

        private void ReadFromItem(int i)
        {
            while (Is(i, "LATERAL") || Is(i, "ONLY"))
            {
                i++;
            }

            ReadName(i, rejectFunction: true);
        }

        /// <summary>Reads one name or, with <paramref name="list"/>, a comma-separated list (each may be followed by * or a column list).</summary>
        private void ReadNames(int i, bool list)
        {
            while (true)
            {
                if (Is(i, "IF") && Is(i + 1, "NOT") && Is(i + 2, "EXISTS"))
                {
                    i += 3;
                }
                else if (Is(i, "IF") && Is(i + 1, "EXISTS"))
                {
                    i += 2;
                }

                if (Is(i, "ONLY"))
                {
                    i++;
                }

                int next = ReadName(i, rejectFunction: false);
                if (!list || next < 0)
                {
                    return;
                }

                if (IsKind(next, SqlTokenKind.Operator) && _sql[_tokens[next].Start] == '*')
                {
                    next++;
                }

                if (IsKind(next, SqlTokenKind.OpenParen))
                {
                    next = _match[next] + 1;
                }

                if (!IsKind(next, SqlTokenKind.Comma))
                {
                    return;
                }

                i = next + 1;
            }
        }

        /// <summary>Reads <c>part[.part[.part]]</c> at <paramref name="i"/>, adds it, returns the index after it or -1.</summary>
        private int ReadName(int i, bool rejectFunction)
        {
            if (!IsName(i))
            {
                return -1;
            }

            int end = SkipQualifiedName(i);
            if (rejectFunction && IsKind(end, SqlTokenKind.OpenParen))
            {
                return -1;
            }

            string name;
            if (end == i + 1)
            {
                name = SqlText.IdentifierValue(_sql, _tokens[i]);
            }
            else
            {
                var parts = new List<string>(3);
                for (int p = i; p < end; p += 2)
                {
                    parts.Add(SqlText.IdentifierValue(_sql, _tokens[p]));
                }

                name = string.Join('.', parts);
            }

            if (name.Length > 0 && IsNewTable(name))
            {
                _tables.Add(name);
            }

            return end;
        }

        /// <summary>Duplicate check: a linear scan for the usual handful of tables, a set once there are many.</summary>
        private bool IsNewTable(string name)
        {
            if (_seen is null)
            {
                if (_tables.Count < 8)
                {
                    return !_tables.Contains(name);
                }

                _seen = new HashSet<string>(_tables, StringComparer.Ordinal);
            }

            return _seen.Add(name);
        }

        /// <summary>Index after <c>word(.word)*</c>.</summary>
        private readonly int SkipQualifiedName(int i)
        {
            int end = i + 1;
            while (IsKind(end, SqlTokenKind.Dot) && (IsKind(end + 1, SqlTokenKind.Identifier) || IsKind(end + 1, SqlTokenKind.QuotedIdentifier)))
            {
                end += 2;
            }

            return end;
        }

        // ------------------------------------------------------------ session reason

        private readonly string? FindSessionReason()
        {
            if (Is(0, "SET"))
            {
                int j = 1;
                if (Is(j, "SESSION") || Is(j, "LOCAL"))
                {
                    j++;
                }

                if (!IsReasonName(j, out int after))
                {
                    return null;
                }

                if (!(Is(after, "TO") || (IsKind(after, SqlTokenKind.Operator) && _sql[_tokens[after].Start] == '=')))
                {
                    return null;
                }

                return ValueAt(after + 1);
            }

            if (Is(0, "RESET"))
            {
                return Is(1, "ALL") || IsReasonName(1, out _) ? string.Empty : null;
            }

            if (Is(0, "DISCARD"))
            {
                return Is(1, "ALL") ? string.Empty : null;
            }

            // SELECT set_config('nhiaudit.reason', '…', is_local)
            for (int i = 0; i + 3 < Count; i++)
            {
                if (Is(i, "set_config") && IsKind(i + 1, SqlTokenKind.OpenParen) && IsKind(i + 3, SqlTokenKind.Comma)
                    && SqlText.StringValue(_sql, _tokens[i + 2]) is { } name
                    && name.Equals("nhiaudit.reason", StringComparison.OrdinalIgnoreCase))
                {
                    return ValueAt(i + 4) ?? string.Empty;
                }
            }

            return null;
        }

        /// <summary>
        /// Why the statement would leave the session in a state where the server reads SQL text differently from the
        /// gateway (standard_conforming_strings off, or a client_encoding whose multibyte characters can hide a quote or
        /// a backslash); null when it cannot. Decided by what the statement leaves behind, not by its name:
        /// <c>RESET</c>, <c>RESET ALL</c> and <c>DISCARD ALL</c> return to the login values (which the gateway pins and
        /// checks), <c>SET … TO DEFAULT</c> likewise, <c>SET</c> to a safe value is safe, a function's own
        /// <c>SET</c> clause lasts only while it runs. Only a setting to an unsafe or unknown value is a problem.
        /// </summary>
        private readonly string? FindLexicalSettingProblem()
        {
            if (Is(0, "SET"))
            {
                int j = Is(1, "SESSION") || Is(1, "LOCAL") ? 2 : 1;
                if (Is(j, "NAMES"))
                {
                    return EncodingValueProblem(j + 1);
                }

                if (IsLexicalSettingName(j, out bool isEncoding))
                {
                    int value = Is(j + 1, "TO") || (IsKind(j + 1, SqlTokenKind.Operator) && _sql[_tokens[j + 1].Start] == '=') ? j + 2 : -1;
                    return value < 0 ? "the SET could not be read" : isEncoding ? EncodingValueProblem(value) : ConformingValueProblem(value);
                }

                return null;
            }

            if (Is(0, "ALTER") && (Is(1, "ROLE") || Is(1, "USER") || Is(1, "DATABASE")))
            {
                // A role's or database's default becomes the session's value after RESET or DEFAULT when the login did not set it.
                for (int i = 2; i + 2 < Count; i++)
                {
                    if (Is(i, "SET") && IsLexicalSettingName(i + 1, out bool isEncoding))
                    {
                        int value = Is(i + 2, "TO") || (IsKind(i + 2, SqlTokenKind.Operator) && _sql[_tokens[i + 2].Start] == '=') ? i + 3 : -1;
                        return value < 0 ? "the SET could not be read" : isEncoding ? EncodingValueProblem(value) : ConformingValueProblem(value);
                    }
                }

                return null;
            }

            if (Is(0, "UPDATE") && (Is(1, "pg_settings") || (Is(1, "pg_catalog") && IsKind(2, SqlTokenKind.Dot) && Is(3, "pg_settings"))))
            {
                return "UPDATE of pg_settings changes settings the gateway cannot follow; use SET";
            }

            for (int i = 0; i + 1 < Count; i++)
            {
                if (!(Is(i, "set_config") && IsKind(i + 1, SqlTokenKind.OpenParen)) || (i > 0 && IsKind(i - 1, SqlTokenKind.Dot) && !Is(i - 2, "pg_catalog")))
                {
                    continue;
                }

                // set_config(name, value, is_local): the name and the value must be constants the gateway can read.
                if (!IsKind(i + 2, SqlTokenKind.String) && !IsKind(i + 2, SqlTokenKind.DollarString) || !IsKind(i + 3, SqlTokenKind.Comma))
                {
                    return "set_config with a computed setting name: the gateway cannot tell which setting it changes";
                }

                string name = SqlText.StringValue(_sql, _tokens[i + 2]) ?? string.Empty;
                bool encoding = name.Trim().Equals("client_encoding", StringComparison.OrdinalIgnoreCase);
                if (!encoding && !name.Trim().Equals("standard_conforming_strings", StringComparison.OrdinalIgnoreCase))
                {
                    continue;
                }

                bool constantValue = (IsKind(i + 4, SqlTokenKind.String) || IsKind(i + 4, SqlTokenKind.DollarString)) && IsKind(i + 5, SqlTokenKind.Comma);
                if (!constantValue)
                {
                    return $"set_config of {name} with a computed value";
                }

                if ((encoding ? EncodingValueProblem(i + 4) : ConformingValueProblem(i + 4)) is { } problem)
                {
                    return problem;
                }
            }

            return null;
        }

        private readonly string? ConformingValueProblem(int i)
        {
            if (Is(i, "DEFAULT") || Is(i, "LOCAL"))
            {
                return null;
            }

            string value = (ValueAt(i) ?? string.Empty).Trim().ToLowerInvariant();
            return value is "on" or "true" or "yes" or "1" or "t" or "tr" or "tru" or "y" or "ye"
                ? null
                : $"standard_conforming_strings = {value}: with it off the gateway could not read statements as the server does";
        }

        private readonly string? EncodingValueProblem(int i)
        {
            if (Is(i, "DEFAULT") || Is(i, "LOCAL"))
            {
                return null;
            }

            string? value = ValueAt(i);
            return value is not null && PgClientEncoding.IsAsciiSafe(value.Trim())
                ? null
                : $"client_encoding {value}: its multibyte characters can hide quotes from the audit; use UTF8";
        }

        private readonly bool IsLexicalSettingName(int i, out bool isEncoding)
        {
            isEncoding = false;
            if (!(IsKind(i, SqlTokenKind.Identifier) || IsKind(i, SqlTokenKind.QuotedIdentifier)) || IsKind(i + 1, SqlTokenKind.Dot))
            {
                return false;
            }

            string name = SqlText.IdentifierValue(_sql, _tokens[i]);
            isEncoding = name.Equals("client_encoding", StringComparison.OrdinalIgnoreCase);
            return isEncoding || name.Equals("standard_conforming_strings", StringComparison.OrdinalIgnoreCase);
        }

        /// <summary>True when tokens at <paramref name="i"/> spell nhiaudit.reason (GUC names are case-insensitive).</summary>
        private readonly bool IsReasonName(int i, out int after)
        {
            after = i + 3;
            return (IsKind(i, SqlTokenKind.Identifier) || IsKind(i, SqlTokenKind.QuotedIdentifier))
                && IsKind(i + 1, SqlTokenKind.Dot)
                && (IsKind(i + 2, SqlTokenKind.Identifier) || IsKind(i + 2, SqlTokenKind.QuotedIdentifier))
                && SqlText.IdentifierValue(_sql, _tokens[i]).Equals("nhiaudit", StringComparison.OrdinalIgnoreCase)
                && SqlText.IdentifierValue(_sql, _tokens[i + 2]).Equals("reason", StringComparison.OrdinalIgnoreCase);
        }

        private readonly string? ValueAt(int i)
        {
            if ((uint)i >= (uint)Count)
            {
                return null;
            }

            SqlToken token = _tokens[i];
            return token.Kind switch
            {
                SqlTokenKind.String or SqlTokenKind.DollarString => SqlText.StringValue(_sql, token),
                SqlTokenKind.Identifier when Is(i, "DEFAULT") => string.Empty,
                SqlTokenKind.Identifier or SqlTokenKind.QuotedIdentifier => SqlText.IdentifierValue(_sql, token),
                SqlTokenKind.Number => Word(i).ToString(),
                _ => null,
            };
        }
    }
}
