using System.Collections.Frozen;
using NhiAudit.Postgres.Sql;

namespace NhiAudit.Postgres.Masking;

/// <summary>
/// The ways a statement can carry protected data out of masking's reach without selecting it: into another table or
/// column, a server file, a large object, a setting, a notification; through the planner's statistics; by renaming a
/// protected relation or column away from its rule; by attaching code (a trigger, a rule) to a protected table. Each is
/// a <c>PROTECTED_COPY</c> effect, which the policy refuses (42501) unless a rule naming <c>PROTECTED_COPY</c> allows it.
/// </summary>
internal static class PgMaskingEscapes
{
    /// <summary>The action of the effect: refused unless a rule names it.</summary>
    public const string ProtectedCopyAction = "PROTECTED_COPY";

    private static readonly FrozenSet<string> StatisticsViews = FrozenSet.ToFrozenSet(
        ["pg_stats", "pg_stats_ext", "pg_stats_ext_exprs", "pg_statistic", "pg_statistic_ext", "pg_statistic_ext_data"], StringComparer.Ordinal);

    // Functions that put a value where it can be read back later, outside any result the gateway masks.
    private static readonly FrozenSet<string> Carriers = FrozenSet.ToFrozenSet(
        [
            "set_config", "pg_notify", "lo_from_bytea", "lo_put", "lowrite", "lo_import", "lo_export", "pg_file_write",
            "pg_logical_emit_message", "dblink_exec", "dblink", "dblink_send_query", "pg_advisory_lock",
        ],
        StringComparer.Ordinal);

    private readonly record struct Token(SqlTokenKind Kind, string? Name, int Start, int End);

    /// <summary>Why the statement would carry protected data out of masking's reach, or null.</summary>
    /// <param name="text">One statement.</param>
    /// <param name="objectKind">For CREATE, the kind of object (TABLE, FUNCTION, VIEW …) as the classifier read it.</param>
    /// <param name="snapshot">The masking catalog.</param>
    /// <param name="touches">Whether a piece of SQL text reads protected data (the relay's test, applied to parts of the statement).</param>
    public static string? Find(string text, string? objectKind, PgMaskingSnapshot snapshot, Func<string, bool> touches)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(snapshot);
        ArgumentNullException.ThrowIfNull(touches);
        if (snapshot.ProtectedColumns.Count == 0)
        {
            return null;
        }

        var tokens = Lex(text);
        if (tokens.Count == 0)
        {
            return null;
        }

        foreach (var token in tokens)
        {
            if (token.Name is { } name && StatisticsViews.Contains(name))
            {
                return $"the planner's statistics ({name}) hold samples of protected columns";
            }
        }

        var first = tokens[0].Name;
        if (first == "alter" && Is(tokens, 1, "table") && ProtectedTarget(tokens, 2, snapshot) is { } altered)
        {
            for (var i = altered; i < tokens.Count; i++)
            {
                if (Is(tokens, i, "rename") || (Is(tokens, i, "set") && Is(tokens, i + 1, "schema")))
                {
                    return "renaming a protected relation or column would take it out of its masking rule";
                }

                if (Is(tokens, i, "generated") || Is(tokens, i, "default") || Is(tokens, i, "using"))
                {
                    return "a column computed from a protected table's data is not protected";
                }
            }
        }

        if (first == "create")
        {
            for (var i = 1; i + 1 < tokens.Count; i++)
            {
                if ((Is(tokens, i, "trigger") || Is(tokens, i, "rule")) && FindOn(tokens, i, snapshot))
                {
                    return "code attached to a protected table can copy its rows elsewhere";
                }
            }
        }

        var whole = touches(text);
        if (!whole)
        {
            return null;
        }

        for (var i = 0; i + 1 < tokens.Count; i++)
        {
            if (tokens[i].Name is { } name && Carriers.Contains(name) && tokens[i + 1].Kind == SqlTokenKind.OpenParen
                && !(i > 0 && tokens[i - 1].Kind == SqlTokenKind.Dot && tokens[i - 2].Name != "pg_catalog"))
            {
                return $"{name}() in a statement that reads protected data would carry it where masking cannot follow";
            }
        }

        switch (first)
        {
            case "insert":
                // Into a protected table the data stays under the rules (a row copied within it, say); elsewhere it would not.
                var intoProtected = Is(tokens, 1, "into") && ProtectedTarget(tokens, 2, snapshot) is not null;
                var source = SourceOfInsert(tokens);
                return !intoProtected && (source < 0 || touches(text[tokens[source].Start..]))
                    ? "inserting protected data into another table would copy it out of masking's reach"
                    : null;
            case "update":
                return UpdateCopies(text, tokens, snapshot)
                    ? "assigning protected data to a column no rule protects would copy it out of masking's reach"
                    : null;
            case "merge":
                return "a MERGE over protected data could copy it out of masking's reach";
            case "copy":
                return CopiesToServer(tokens) ? "copying protected data to a server file or program would take it out of masking's reach" : null;
            case "create":
                // Views are traced through their definition and indexes hold no readable copy; tables created AS a query
                // and code (functions, procedures) that reads protected data can put it anywhere.
                return objectKind is "VIEW" or "MATERIALIZED VIEW" or "INDEX" or "POLICY" or "STATISTICS"
                    ? null
                    : "an object created from protected data is not protected by the rules on its source";
            case "do":
                return "a DO block that reads protected data can copy or raise it where masking cannot follow";
        }

        for (var i = 0; i < tokens.Count; i++)
        {
            if (Is(tokens, i, "into") && i > 0 && (first is "select" or "with" or "table" or "values"))
            {
                // SELECT … INTO new_table, or a data-modifying CTE's INSERT INTO.
                return "writing protected data into a table would copy it out of masking's reach";
            }

            if (first == "with" && (Is(tokens, i, "update") || Is(tokens, i, "merge")) && i > 0 && tokens[i - 1].Kind == SqlTokenKind.OpenParen)
            {
                return "a data-modifying WITH over protected data could copy it out of masking's reach";
            }
        }

        return null;
    }

    private static List<Token> Lex(string text)
    {
        var tokens = new List<Token>();
        var lexer = new SqlLexer(text);
        while (lexer.TryRead(out var token))
        {
            if (token.IsComment)
            {
                continue;
            }

            var name = token.Kind is SqlTokenKind.Identifier or SqlTokenKind.QuotedIdentifier ? SqlText.IdentifierValue(text, token) : null;
            tokens.Add(new Token(token.Kind, name, token.Start, token.Start + token.Length));
        }

        return tokens;
    }

    private static bool Is(List<Token> tokens, int i, string keyword) =>
        i >= 0 && i < tokens.Count && tokens[i].Kind == SqlTokenKind.Identifier && tokens[i].Name == keyword;

    /// <summary>The index after a (possibly qualified, possibly IF EXISTS / ONLY) relation name at <paramref name="i"/> when it is protected.</summary>
    private static int? ProtectedTarget(List<Token> tokens, int i, PgMaskingSnapshot snapshot)
    {
        while (Is(tokens, i, "if") || Is(tokens, i, "exists") || Is(tokens, i, "only"))
        {
            i++;
        }

        if (i >= tokens.Count || tokens[i].Name is not { } name)
        {
            return null;
        }

        if (i + 2 < tokens.Count && tokens[i + 1].Kind == SqlTokenKind.Dot && tokens[i + 2].Name is { } table)
        {
            return snapshot.ProtectedRelations.Contains((name, table)) || snapshot.ProtectedNames.Contains(table) ? i + 3 : null;
        }

        return snapshot.ProtectedNames.Contains(name) ? i + 1 : null;
    }

    private static bool FindOn(List<Token> tokens, int from, PgMaskingSnapshot snapshot)
    {
        for (var i = from; i < tokens.Count; i++)
        {
            // CREATE TRIGGER … ON table; CREATE RULE … AS ON event TO table.
            if ((Is(tokens, i, "on") || Is(tokens, i, "to")) && ProtectedTarget(tokens, i + 1, snapshot) is not null)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The first token of an INSERT's source (its SELECT, VALUES, TABLE or WITH), or -1.</summary>
    private static int SourceOfInsert(List<Token> tokens)
    {
        var depth = 0;
        for (var i = 1; i < tokens.Count; i++)
        {
            switch (tokens[i].Kind)
            {
                case SqlTokenKind.OpenParen:
                    depth++;
                    continue;
                case SqlTokenKind.CloseParen:
                    depth--;
                    continue;
            }

            if (depth == 0 && (Is(tokens, i, "select") || Is(tokens, i, "values") || Is(tokens, i, "table") || Is(tokens, i, "with") || Is(tokens, i, "default")))
            {
                return i;
            }

            if (depth == 1 && Is(tokens, i, "select") && tokens[i - 1].Kind == SqlTokenKind.OpenParen && i >= 2 && !(tokens[i - 2].Name is { } before && before != "values"))
            {
                return i - 1;
            }
        }

        return -1;
    }

    /// <summary>
    /// True when an UPDATE assigns a value computed from protected data to a column no rule protects (the same table's
    /// other column, another table's column through FROM).
    /// </summary>
    private static bool UpdateCopies(string text, List<Token> tokens, PgMaskingSnapshot snapshot)
    {
        var target = ProtectedTarget(tokens, 1, snapshot);
        var set = -1;
        for (var i = 1; i < tokens.Count; i++)
        {
            if (Is(tokens, i, "set"))
            {
                set = i;
                break;
            }
        }

        if (set < 0)
        {
            return true;
        }

        // Aliases of protected relations named in FROM/JOIN: a bare alias on the right-hand side is a whole row.
        var aliases = new HashSet<string>(StringComparer.Ordinal);
        for (var i = set; i + 1 < tokens.Count; i++)
        {
            if ((Is(tokens, i, "from") || Is(tokens, i, "join") || tokens[i].Kind == SqlTokenKind.Comma) && ProtectedTarget(tokens, i + 1, snapshot) is { } after)
            {
                var alias = Is(tokens, after, "as") ? after + 1 : after;
                if (alias < tokens.Count && tokens[alias].Name is { } name)
                {
                    aliases.Add(name);
                }
            }
        }

        var depth = 0;
        var assignmentStart = set + 1;
        for (var i = set + 1; i <= tokens.Count; i++)
        {
            var end = i == tokens.Count;
            if (!end)
            {
                if (tokens[i].Kind == SqlTokenKind.OpenParen)
                {
                    depth++;
                    continue;
                }

                if (tokens[i].Kind == SqlTokenKind.CloseParen)
                {
                    depth--;
                    continue;
                }
            }

            if (!end && !(depth == 0 && (tokens[i].Kind == SqlTokenKind.Comma || Is(tokens, i, "from") || Is(tokens, i, "where") || Is(tokens, i, "returning"))))
            {
                continue;
            }

            if (AssignmentCopies(text, tokens, assignmentStart, i, target is not null, snapshot, aliases))
            {
                return true;
            }

            if (end || tokens[i].Kind != SqlTokenKind.Comma)
            {
                break;
            }

            assignmentStart = i + 1;
        }

        return false;
    }

    private static bool AssignmentCopies(string text, List<Token> tokens, int start, int end, bool targetIsProtected, PgMaskingSnapshot snapshot, HashSet<string> aliases)
    {
        var equals = -1;
        for (var i = start; i < end; i++)
        {
            if (tokens[i].Kind == SqlTokenKind.Operator && text[tokens[i].Start] == '=' && tokens[i].End - tokens[i].Start == 1)
            {
                equals = i;
                break;
            }
        }

        if (equals < 0)
        {
            return false;
        }

        var targetsProtected = targetIsProtected;
        for (var i = start; i < equals && targetsProtected; i++)
        {
            if (tokens[i].Name is { } column)
            {
                targetsProtected &= snapshot.ProtectedColumnNames.Contains(column);
            }
        }

        if (targetsProtected)
        {
            // The value stays under a rule (say, normalising an e-mail in place).
            return false;
        }

        for (var i = equals + 1; i < end; i++)
        {
            var token = tokens[i];
            if (token.Name is { } name
                && (snapshot.ProtectedColumnNames.Contains(name) || snapshot.ProtectedNames.Contains(name) || (aliases.Contains(name) && !(i + 1 < end && tokens[i + 1].Kind == SqlTokenKind.Dot))))
            {
                return true;
            }

            if (token.Kind is SqlTokenKind.String or SqlTokenKind.DollarString && SqlText.StringValue(text, new SqlToken(token.Kind, token.Start, token.End - token.Start)) is { } inner && inner.Length > 0)
            {
                foreach (var innerToken in Lex(inner))
                {
                    if (innerToken.Name is { } innerName && (snapshot.ProtectedColumnNames.Contains(innerName) || snapshot.ProtectedNames.Contains(innerName)))
                    {
                        return true;
                    }
                }
            }
        }

        return false;
    }

    private static bool CopiesToServer(List<Token> tokens)
    {
        for (var i = 1; i + 1 < tokens.Count; i++)
        {
            if (Is(tokens, i, "to") && (tokens[i + 1].Kind == SqlTokenKind.String || Is(tokens, i + 1, "program")))
            {
                return true;
            }
        }

        return false;
    }
}
