using NhiAudit.Postgres.Sql;

namespace NhiAudit.Postgres.Tests.Sql;

public class SqlLexerTests
{
    private static List<(SqlTokenKind Kind, string Text)> Lex(string sql, bool standardConformingStrings = true)
    {
        var tokens = new List<(SqlTokenKind, string)>();
        var lexer = new SqlLexer(sql, standardConformingStrings);
        while (lexer.TryRead(out SqlToken token))
        {
            tokens.Add((token.Kind, sql.Substring(token.Start, token.Length)));
        }

        return tokens;
    }

    [Fact]
    public void Basic_tokens()
    {
        Assert.Equal(
            [
                (SqlTokenKind.Identifier, "SELECT"), (SqlTokenKind.Identifier, "a"), (SqlTokenKind.Comma, ","),
                (SqlTokenKind.QuotedIdentifier, "\"B\"\"c\""), (SqlTokenKind.Identifier, "FROM"), (SqlTokenKind.Identifier, "s"),
                (SqlTokenKind.Dot, "."), (SqlTokenKind.Identifier, "t"), (SqlTokenKind.Identifier, "WHERE"), (SqlTokenKind.Identifier, "x"),
                (SqlTokenKind.Operator, "="), (SqlTokenKind.Parameter, "$1"), (SqlTokenKind.Identifier, "AND"), (SqlTokenKind.Identifier, "y"),
                (SqlTokenKind.Operator, ">"), (SqlTokenKind.Number, "1.5e-3"), (SqlTokenKind.Semicolon, ";"),
            ],
            Lex("SELECT a, \"B\"\"c\" FROM s.t WHERE x = $1 AND y > 1.5e-3;"));
    }

    [Theory]
    [InlineData("'it''s'", "String")]
    [InlineData("E'\\''", "String")]
    [InlineData("e'a\\\\'", "String")]
    [InlineData("B'0101'", "String")]
    [InlineData("X'1F'", "String")]
    [InlineData("U&'\\0041'", "String")]
    [InlineData("U&\"d\\0061t\"", "QuotedIdentifier")]
    [InlineData("$$a'b;c$$", "DollarString")]
    [InlineData("$fn$ $$ $x$ $fn$", "DollarString")]
    [InlineData("$_1$x$_1$", "DollarString")]
    [InlineData("-- comment ' \" $$", "LineComment")]
    [InlineData("/* a /* b */ c */", "BlockComment")]
    [InlineData("'a'\n'b'", "String")]
    [InlineData("'a' -- x\n  -- y\n'b'", "String")]
    [InlineData("a$$b", "Identifier")]
    [InlineData("$12", "Parameter")]
    public void Single_tokens(string sql, string kindName)
    {
        var kind = Enum.Parse<SqlTokenKind>(kindName);
        var tokens = Lex(sql);
        Assert.Single(tokens);
        Assert.Equal(kind, tokens[0].Kind);
        Assert.Equal(sql, tokens[0].Text);
    }

    [Fact]
    public void Standard_conforming_strings_off_makes_backslash_escape_in_plain_strings()
    {
        Assert.Equal(2, Lex("'\\' x'").Count);
        Assert.Single(Lex("'\\' x'", standardConformingStrings: false));
    }

    [Fact]
    public void Continuation_keeps_the_e_string_mode()
    {
        // E'a' newline '\'...' : the continued segment still treats \' as an escaped quote.
        Assert.Single(Lex("E'a'\n'\\'; DELETE FROM t; --'"));

        // On the same line there is no continuation: the second string is a plain one.
        Assert.Equal(SqlTokenKind.String, Lex("E'a' '\\'; x")[1].Kind);
        Assert.Equal("'\\'", Lex("E'a' '\\'; x")[1].Text);
    }

    [Fact]
    public void Bit_strings_do_not_double_quotes()
    {
        var tokens = Lex("B'01''10'");
        Assert.Equal(2, tokens.Count);
        Assert.Equal("B'01'", tokens[0].Text);
    }

    [Fact]
    public void Dollar_edge_cases()
    {
        Assert.Equal([(SqlTokenKind.Operator, "$"), (SqlTokenKind.Identifier, "abc")], Lex("$abc"));
        Assert.Equal([(SqlTokenKind.Operator, "$"), (SqlTokenKind.Number, "1"), (SqlTokenKind.Identifier, "abc$")], Lex("$ 1abc$"));
        Assert.Equal([(SqlTokenKind.Parameter, "$1"), (SqlTokenKind.DollarString, "$$x$$")], Lex("$1$$x$$"));
        Assert.Equal([(SqlTokenKind.Number, "1"), (SqlTokenKind.Identifier, "a$$")], Lex("1a$$"));
    }

    [Fact]
    public void Operators_split_before_comment_starts()
    {
        Assert.Equal([(SqlTokenKind.Number, "2"), (SqlTokenKind.Operator, "*"), (SqlTokenKind.BlockComment, "/* c */"), (SqlTokenKind.Number, "3")], Lex("2*/* c */3"));
        Assert.Equal([(SqlTokenKind.Number, "1"), (SqlTokenKind.Operator, "+"), (SqlTokenKind.LineComment, "-- x")], Lex("1+-- x"));
    }

    [Fact]
    public void Unterminated_tokens_run_to_the_end()
    {
        var lexer = new SqlLexer("SELECT 'abc");
        Assert.True(lexer.TryRead(out _));
        Assert.True(lexer.TryRead(out SqlToken token));
        Assert.True(token.Unterminated);
        Assert.Equal(11, token.End);
        Assert.False(lexer.TryRead(out _));
    }

    [Fact]
    public void Non_ascii_spaces_are_identifier_characters_as_in_postgres()
    {
        Assert.Single(Lex("a\u00A0b"));
    }
}
