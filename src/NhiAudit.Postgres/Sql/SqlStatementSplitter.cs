namespace NhiAudit.Postgres.Sql;

/// <summary>
/// Splits a simple-Query string into statements at top-level semicolons, as the server's
/// grammar will: not inside strings, comments, dollar quotes or quoted identifiers, not inside
/// parentheses (<c>CREATE RULE … DO (a; b)</c>), and not inside the <c>BEGIN ATOMIC … END</c>
/// body of a SQL-standard <c>CREATE FUNCTION/PROCEDURE</c>.
/// </summary>
/// <remarks>
/// The server parses the whole string before running any of it, so input it would reject
/// (unbalanced parentheses, an unterminated quote) runs nothing; the splitter only has to agree
/// with the server on input the server accepts. Linear time.
/// </remarks>
internal static class SqlStatementSplitter
{
    /// <summary>
    /// Splits <paramref name="sql"/>. Pieces that hold only whitespace or comments (<c>;;</c>, a trailing
    /// <c>-- done</c>) are dropped, so an empty list means the server will answer EmptyQueryResponse.
    /// </summary>
    /// <param name="sql">The query text.</param>
    /// <param name="standardConformingStrings">The session's standard_conforming_strings setting.</param>
    public static IReadOnlyList<SqlStatement> Split(string sql, bool standardConformingStrings = true)
    {
        ArgumentNullException.ThrowIfNull(sql);
        var result = new List<SqlStatement>(1);
        var lexer = new SqlLexer(sql, standardConformingStrings);
        var tracker = new StatementBoundaryTracker();
        int first = -1;
        int lastEnd = -1;
        bool significant = false;
        while (lexer.TryRead(out SqlToken token))
        {
            if (tracker.IsTerminator(sql, token))
            {
                Add(sql, result, first, lastEnd, significant);
                first = -1;
                significant = false;
                continue;
            }

            if (first < 0)
            {
                first = token.Start;
            }

            lastEnd = token.End;
            significant |= !token.IsComment;
        }

        Add(sql, result, first, lastEnd, significant);
        return result;
    }

    /// <summary>True when <paramref name="sql"/> holds more than one non-empty statement.</summary>
    public static bool IsMultiStatement(string sql, bool standardConformingStrings = true) =>
        Split(sql, standardConformingStrings).Count > 1;

    /// <summary>
    /// True when <paramref name="sql"/> lexes differently with standard_conforming_strings on and
    /// off (a backslash next to a quote inside a plain '' string). The setting is per session and
    /// can change between pipelined messages (<c>SET</c>, <c>set_config</c> inside a function), so a
    /// gateway that cannot be sure of the server's current value should refuse such text: with the
    /// wrong value, <c>SELECT '' ; SELECT '; DELETE FROM t; --'</c> is two SELECTs to the gateway and
    /// a SELECT plus a DELETE to the server. Text without a backslash is never ambiguous (fast path).
    /// </summary>
    public static bool DependsOnStandardConformingStrings(string sql)
    {
        ArgumentNullException.ThrowIfNull(sql);
        if (!sql.Contains('\\', StringComparison.Ordinal))
        {
            return false;
        }

        var on = new SqlLexer(sql, standardConformingStrings: true);
        var off = new SqlLexer(sql, standardConformingStrings: false);
        while (true)
        {
            bool hasOn = on.TryRead(out SqlToken a);
            bool hasOff = off.TryRead(out SqlToken b);
            if (hasOn != hasOff || (hasOn && (a.Kind != b.Kind || a.Start != b.Start || a.Length != b.Length || a.Unterminated != b.Unterminated)))
            {
                return true;
            }

            if (!hasOn)
            {
                return false;
            }
        }
    }

    private static void Add(string sql, List<SqlStatement> result, int first, int lastEnd, bool significant)
    {
        if (!significant || first < 0)
        {
            return;
        }

        // A trailing line comment (or an unterminated token) can end in whitespace.
        while (lastEnd > first && SqlLexer.IsSpace(sql[lastEnd - 1]))
        {
            lastEnd--;
        }

        result.Add(new SqlStatement(first, lastEnd - first, sql.Substring(first, lastEnd - first)));
    }
}
