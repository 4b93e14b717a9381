using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using NhiAudit.Postgres.Catalog;
using NhiAudit.Postgres.Sql;

namespace NhiAudit.Postgres.Tests.Sql;

/// <summary>
/// The body reader and the effects extraction never fail on generated input: no exception reaches the internal
/// fallback (which would turn into an UNKNOWN "could not read" effect), and the result stays bounded.
/// </summary>
public sealed class SqlEffectsPropertyTests
{
    /// <summary>Text made of the pieces code is built from, so that DO blocks, bodies, arms and quotes collide often.</summary>
    public sealed record CodeishText(string Value)
    {
        public override string ToString() => Value;
    }

    public static class Arbitraries
    {
        private static readonly string[] Pieces =
        [
            "'", "''", "\"", "$", "$$", "$a$", "$1", "--", "/*", "*/", ";", "(", ")", ",", ".", ":", "=", ":=", "||", "<<", ">>",
            "\n", " ", "x", "1", "t", "orders", "purge", "purge(", "f(", "g()", "SELECT", "DELETE FROM t", "DELETE FROM orders",
            "UPDATE orders SET a = 1", "INSERT INTO orders", "TRUNCATE orders", "DROP TABLE t", "WHERE", "WITH d AS (", "DO",
            "DO $$", "BEGIN", "ATOMIC", "END", "END IF", "END LOOP", "DECLARE", "EXCEPTION", "WHEN", "THEN", "ELSE", "ELSIF", "IF",
            "CASE", "LOOP", "FOR", "IN", "WHILE", "FOREACH", "ARRAY", "EXECUTE", "EXECUTE '", "PERFORM", "RETURN", "QUERY", "RAISE",
            "OPEN", "CURSOR", "USING", "INTO", "CREATE", "OR REPLACE", "FUNCTION", "PROCEDURE", "TRIGGER", "RULE", "AS", "ON",
            "TO", "LANGUAGE", "sql", "plpgsql", "plperl", "RETURNS", "CALL", "MERGE INTO t USING s ON", "MATCHED", "NOT", "AND",
            "OR", "true", "BY", "SOURCE", "INSTEAD", "ALSO", "NOTHING", "PREPARE", "EXPLAIN", "ANALYZE", "COPY orders FROM",
            "query_to_xml(", "dblink_exec(", "format(", "::", "numeric(10,2)", "é", "😀",
        ];

        public static Arbitrary<CodeishText> Codeish() =>
            Gen.Select(Gen.ArrayOf(Gen.Elements(Pieces)), parts => new CodeishText(string.Join(' ', parts))).ToArbitrary();
    }

    /// <summary>A catalog whose routines, trigger and rule hold the generated text too, so following them is exercised.</summary>
    private static PgCodeSnapshot CatalogAround(string text)
    {
        var catalog = SqlEffectsTests.Catalog(
            SqlEffectsTests.Routine("purge", "sql", text),
            SqlEffectsTests.Routine("f", "plpgsql", text),
            SqlEffectsTests.Routine("g", "plpgsql", "BEGIN " + text + "; END"));
        catalog.AddTrigger(new PgTrigger("trg", "public", "orders", PgWriteEvents.Insert | PgWriteEvents.Update | PgWriteEvents.Delete | PgWriteEvents.Truncate, "public", "f", 0));
        catalog.AddRule(new PgRule("r", "public", "orders", PgWriteEvents.Update | PgWriteEvents.Insert, "CREATE RULE r AS ON UPDATE TO orders DO INSTEAD (" + text + ")"));
        return catalog;
    }

    private static void Check(string text)
    {
        foreach (var item in PlpgsqlBody.Parse(text))
        {
            Assert.NotNull(item.Text);
        }

        var catalog = CatalogAround(text);
        var session = new PgSessionCode();
        foreach (var statement in SqlStatementSplitter.Split(text).Take(50))
        {
            var info = SqlClassifier.Classify(statement.Text);
            var effects = SqlEffects.Extract(statement.Text, info, catalog, session);
            Assert.True(effects.Count <= SqlEffects.MaxEffects + 1);
            Assert.DoesNotContain(effects, e => e.Via.Contains("could not read the statement's effects", StringComparison.Ordinal));
            Assert.All(effects, e => Assert.False(string.IsNullOrEmpty(e.Action)));
            SqlEffects.Learn(session, statement.Text, info);
        }

        _ = SqlEffects.Definitions.Routine(text);
        _ = SqlEffects.Definitions.Trigger(text);
        _ = SqlEffects.Definitions.Rule(text);
        _ = SqlEffects.Definitions.Prepare(text);
        _ = SqlEffects.Definitions.SqlBody(text);
    }

    [Property(MaxTest = 1000)]
    public void Random_strings_never_break_the_extraction(string text) => Check(text ?? string.Empty);

    [Property(MaxTest = 3000, Arbitrary = new[] { typeof(Arbitraries) })]
    public void Codeish_strings_never_break_the_extraction(CodeishText text) => Check(text.Value);

    [Property(MaxTest = 1000, Arbitrary = new[] { typeof(Arbitraries) })]
    public void Codeish_bodies_in_do_blocks_and_functions_never_break_the_extraction(CodeishText text)
    {
        var body = text.Value.Replace("$b$", "", StringComparison.Ordinal);
        Check("DO $b$ " + body + " $b$");
        Check("CREATE FUNCTION h() RETURNS int LANGUAGE plpgsql AS $b$ " + body + " $b$");
        Check("CREATE FUNCTION h() RETURNS int LANGUAGE sql BEGIN ATOMIC " + body + "; END");
        Check("SELECT purge(), f(), g()");
        Check("INSERT INTO orders VALUES (1)");
    }

    [Fact]
    public void Deep_nesting_is_bounded()
    {
        var deep = new string('(', 20000) + "SELECT purge()" + new string(')', 20000);
        Check(deep);
        Check("MERGE INTO t USING s ON " + new string('(', 5000) + "true" + new string(')', 5000) + " WHEN MATCHED THEN DELETE");
        Check("DO $$ BEGIN " + string.Concat(Enumerable.Repeat("IF x THEN ", 5000)) + "DELETE FROM t; $$");
    }
}
