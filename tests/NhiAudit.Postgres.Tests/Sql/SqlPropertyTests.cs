using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using NhiAudit.Postgres.Sql;

namespace NhiAudit.Postgres.Tests.Sql;

public class SqlPropertyTests
{
    /// <summary>Strings made of SQL's structural characters, so quotes, comments and dollar tags collide often.</summary>
    public sealed record SqlishText(string Value)
    {
        public override string ToString() => Value;
    }

    public static class Arbitraries
    {
        private static readonly string[] Pieces =
        [
            "'", "''", "\"", "$", "$$", "$a$", "$1", "--", "/*", "*/", ";", "(", ")", "E'", "e'", "U&'", "U&\"", "B'", "X'",
            "\\", "\\'", "\n", "\r", " ", "\t", "a", "x", "1", "SELECT", "DELETE FROM t", "WHERE", "WITH d AS (", "BEGIN",
            "ATOMIC", "END", "CASE", "CREATE FUNCTION f()", ",", ".", "é", "😀", "\u00A0",
        ];

        public static Arbitrary<SqlishText> Sqlish() =>
            Gen.Select(Gen.ArrayOf(Gen.Elements(Pieces)), parts => new SqlishText(string.Concat(parts))).ToArbitrary();
    }

    private static void CheckSplit(string sql, bool standardConformingStrings)
    {
        var statements = SqlStatementSplitter.Split(sql, standardConformingStrings);
        int previousEnd = 0;
        foreach (var statement in statements)
        {
            Assert.True(statement.Offset >= previousEnd, "statements must not overlap and must be in order");
            Assert.True(statement.Length > 0);
            Assert.Equal(statement.Text, sql.Substring(statement.Offset, statement.Length));
            Assert.False(SqlLexer.IsSpace(statement.Text[0]));
            Assert.False(SqlLexer.IsSpace(statement.Text[^1]));
            previousEnd = statement.Offset + statement.Length;
            _ = SqlClassifier.Classify(statement.Text, standardConformingStrings);
        }

        _ = SqlClassifier.Classify(sql, standardConformingStrings);
    }

    private static void CheckLexer(string sql)
    {
        var lexer = new SqlLexer(sql);
        int position = 0;
        while (lexer.TryRead(out SqlToken token))
        {
            Assert.True(token.Start >= position && token.Length > 0 && token.End <= sql.Length);
            for (int i = position; i < token.Start; i++)
            {
                Assert.True(SqlLexer.IsSpace(sql[i]), "only whitespace may lie between tokens");
            }

            position = token.End;
        }

        for (int i = position; i < sql.Length; i++)
        {
            Assert.True(SqlLexer.IsSpace(sql[i]));
        }
    }

    [Property(MaxTest = 1000)]
    public void Random_strings_split_into_substrings_at_their_offsets(string sql)
    {
        sql ??= string.Empty;
        CheckSplit(sql, true);
        CheckSplit(sql, false);
        CheckLexer(sql);
    }

    [Property(MaxTest = 3000, Arbitrary = new[] { typeof(Arbitraries) })]
    public void Sqlish_strings_split_into_substrings_at_their_offsets(SqlishText text)
    {
        CheckSplit(text.Value, true);
        CheckSplit(text.Value, false);
        CheckLexer(text.Value);
    }

    [Property(MaxTest = 1000, Arbitrary = new[] { typeof(Arbitraries) })]
    public void Splitting_is_stable_under_resplitting_each_piece(SqlishText text)
    {
        // A piece contains no top-level terminator, so splitting it again yields itself.
        foreach (var statement in SqlStatementSplitter.Split(text.Value))
        {
            var again = SqlStatementSplitter.Split(statement.Text);
            Assert.Single(again);
            Assert.Equal(statement.Text, again[0].Text);
        }
    }
}
