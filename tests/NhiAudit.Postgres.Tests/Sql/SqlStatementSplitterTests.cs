using NhiAudit.Postgres.Sql;

namespace NhiAudit.Postgres.Tests.Sql;

public class SqlStatementSplitterTests
{
    public static TheoryData<string, string[]> Cases => new()
    {
        { "SELECT 1; SELECT 2", ["SELECT 1", "SELECT 2"] },
        { "SELECT 1;; ;SELECT 2;", ["SELECT 1", "SELECT 2"] },
        { "SELECT ';' AS x; SELECT 2", ["SELECT ';' AS x", "SELECT 2"] },
        { "SELECT 1 -- comment; not a split\n; SELECT 2", ["SELECT 1 -- comment; not a split", "SELECT 2"] },
        { "SELECT 1 --x\r; SELECT 2", ["SELECT 1 --x", "SELECT 2"] },
        { "SELECT /* a; /* nested; */ still; */ 1; SELECT 2", ["SELECT /* a; /* nested; */ still; */ 1", "SELECT 2"] },
        { "SELECT /* /* */ ; */ 1; SELECT 2", ["SELECT /* /* */ ; */ 1", "SELECT 2"] },
        { "SELECT $$ ; ' \" $$; SELECT $tag$ $$ ; $tag$", ["SELECT $$ ; ' \" $$", "SELECT $tag$ $$ ; $tag$"] },
        { "SELECT $a$ x $A$ ; $a$; SELECT 2", ["SELECT $a$ x $A$ ; $a$", "SELECT 2"] },
        { "SELECT E'\\'; DELETE FROM t; --'; SELECT 3", ["SELECT E'\\'; DELETE FROM t; --'", "SELECT 3"] },
        { "SELECT '\\'; DELETE FROM t; --'", ["SELECT '\\'", "DELETE FROM t"] },
        { "SELECT 'it''s; fine'; SELECT 2", ["SELECT 'it''s; fine'", "SELECT 2"] },
        { "SELECT \"a;b\"\"c\" FROM t; SELECT 2", ["SELECT \"a;b\"\"c\" FROM t", "SELECT 2"] },
        { "CREATE FUNCTION f() RETURNS int AS $$ DELETE FROM t; SELECT 1; $$ LANGUAGE sql; SELECT f()", ["CREATE FUNCTION f() RETURNS int AS $$ DELETE FROM t; SELECT 1; $$ LANGUAGE sql", "SELECT f()"] },
        {
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 2 END; END; DELETE FROM t",
            ["CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 2 END; END", "DELETE FROM t"]
        },
        {
            "create or replace procedure p() language sql begin atomic insert into a values (1); end; delete from t",
            ["create or replace procedure p() language sql begin atomic insert into a values (1); end", "delete from t"]
        },
        { "CREATE FUNCTION begin() RETURNS int AS 'select 1' LANGUAGE sql; DELETE FROM t", ["CREATE FUNCTION begin() RETURNS int AS 'select 1' LANGUAGE sql", "DELETE FROM t"] },
        { "BEGIN; DELETE FROM t; COMMIT", ["BEGIN", "DELETE FROM t", "COMMIT"] },
        { "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); DELETE FROM b); SELECT 1", ["CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); DELETE FROM b)", "SELECT 1"] },
        { "SELECT $1; SELECT $2", ["SELECT $1", "SELECT $2"] },
        { "SELECT a$$b FROM t; SELECT 2", ["SELECT a$$b FROM t", "SELECT 2"] },
        { "SELECT U&'\\0041;'; SELECT 2", ["SELECT U&'\\0041;'", "SELECT 2"] },
        { "SELECT E'a'\n'\\'; DELETE FROM t; --'", ["SELECT E'a'\n'\\'; DELETE FROM t; --'"] },
        { "SELECT E'a' -- c\n '\\'; DELETE FROM t; --'", ["SELECT E'a' -- c\n '\\'; DELETE FROM t; --'"] },
        { "SELECT 'abc; DELETE FROM t", ["SELECT 'abc; DELETE FROM t"] },
        { "SELECT 1 /* unterminated ; SELECT 2", ["SELECT 1 /* unterminated ; SELECT 2"] },
        { "SELECT B'01''; SELECT 2", ["SELECT B'01''; SELECT 2"] },
        { "SELECT (1; DELETE FROM t", ["SELECT (1; DELETE FROM t"] },
        { "SELECT 1); DELETE FROM t", ["SELECT 1)", "DELETE FROM t"] },
        { "/* lead */ SELECT 1; -- trailing", ["/* lead */ SELECT 1"] },
        { "   ", [] },
        { "-- only comment", [] },
        { "/* x */ ; /* y */", [] },
        { ";", [] },
        { "", [] },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Splits_on_top_level_semicolons_only(string sql, string[] expected)
    {
        var statements = SqlStatementSplitter.Split(sql);
        Assert.Equal(expected, statements.Select(s => s.Text));
        foreach (var statement in statements)
        {
            Assert.Equal(statement.Text, sql.Substring(statement.Offset, statement.Length));
        }
    }

    [Fact]
    public void Offsets_point_into_the_original_text()
    {
        const string sql = "  SELECT 1 ;\n  SELECT 2  ";
        var statements = SqlStatementSplitter.Split(sql);
        Assert.Equal(2, statements[0].Offset);
        Assert.Equal(8, statements[0].Length);
        Assert.Equal(15, statements[1].Offset);
        Assert.Equal("SELECT 2", statements[1].Text);
    }

    [Fact]
    public void Standard_conforming_strings_off_changes_the_split()
    {
        const string sql = "SELECT '\\'; DELETE FROM t; --'";
        Assert.Equal(2, SqlStatementSplitter.Split(sql).Count);
        Assert.Single(SqlStatementSplitter.Split(sql, standardConformingStrings: false));
        Assert.True(SqlStatementSplitter.IsMultiStatement(sql));
    }

    [Theory]
    [InlineData("SELECT '\\' ; SELECT '; DELETE FROM t; --'", true)]
    [InlineData("SELECT 'C:\\'", true)]
    [InlineData("SELECT 'C:\\path'", false)]
    [InlineData("SELECT E'\\'' ; x'", false)]
    [InlineData("SELECT $$\\'$$", false)]
    [InlineData("SELECT 1; DELETE FROM t", false)]
    [InlineData("-- \\'\nSELECT 1", false)]
    public void Detects_text_whose_split_depends_on_standard_conforming_strings(string sql, bool expected)
    {
        Assert.Equal(expected, SqlStatementSplitter.DependsOnStandardConformingStrings(sql));
    }

    [Fact]
    public void Large_input_is_linear()
    {
        string sql = string.Concat(Enumerable.Repeat("SELECT 'a;b', $$c;d$$, (1); ", 20_000));
        var watch = System.Diagnostics.Stopwatch.StartNew();
        Assert.Equal(20_000, SqlStatementSplitter.Split(sql).Count);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), watch.Elapsed.ToString());
    }
}
