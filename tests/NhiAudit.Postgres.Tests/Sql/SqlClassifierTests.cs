using NhiAudit.Postgres.Sql;

namespace NhiAudit.Postgres.Tests.Sql;

public class SqlClassifierTests
{
    /// <summary>sql, kind, object kind, tables ("|"-separated), hasWhere ("" = null).</summary>
    public static TheoryData<string, string, string?, string, string> Cases => new()
    {
        { "SELECT * FROM orders WHERE id = 1", "SELECT", null, "orders", "" },
        { "select * from Public.Orders o join \"Line Items\" li on li.o = o.id", "SELECT", null, "public.orders|Line Items", "" },
        { "SELECT * FROM \"My Table\"", "SELECT", null, "My Table", "" },
        { "SELECT * FROM \"Sch\".\"T\"\"x\"", "SELECT", null, "Sch.T\"x", "" },
        { "SELECT * FROM a, b x, c AS y WHERE a.id = b.id", "SELECT", null, "a|b|c", "" },
        { "SELECT * FROM a JOIN b ON a.id = b.id, c LEFT JOIN d USING (id)", "SELECT", null, "a|b|c|d", "" },
        { "SELECT * FROM generate_series(1, 3) g, u", "SELECT", null, "u", "" },
        { "SELECT * FROM a, LATERAL (SELECT * FROM b) c", "SELECT", null, "a|b", "" },
        { "SELECT * FROM ONLY a", "SELECT", null, "a", "" },
        { "SELECT EXTRACT(YEAR FROM created), substring(s FROM 2) FROM t", "SELECT", null, "t", "" },
        { "SELECT a IS DISTINCT FROM b FROM t", "SELECT", null, "t", "" },
        { "SELECT * FROM t FOR UPDATE OF t", "SELECT", null, "t", "" },
        { "SELECT * INTO newt FROM t", "SELECT", null, "newt|t", "" },
        { "SELECT (delete) FROM t", "SELECT", null, "t", "" },
        { "(SELECT 1 FROM a) UNION (SELECT 2 FROM b)", "SELECT", null, "a|b", "" },
        { "TABLE orders", "SELECT", null, "orders", "" },
        { "VALUES (1), (2)", "VALUES", null, "", "" },
        { "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "DELETE", null, "t", "false" },
        { "WITH u AS (UPDATE accounts SET x = 1 WHERE id = 2 RETURNING *) INSERT INTO log SELECT * FROM u", "UPDATE", null, "accounts|log", "true" },
        { "WITH a AS MATERIALIZED (SELECT * FROM t) DELETE FROM s WHERE id IN (SELECT id FROM a)", "DELETE", null, "t|s", "true" },
        { "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r", "SELECT", null, "", "" },
        { "WITH a AS (SELECT 1), b AS NOT MATERIALIZED (SELECT 2) SELECT * FROM a, b, c", "SELECT", null, "c", "" },
        { "WITH x AS (INSERT INTO a VALUES (1) RETURNING *), y AS (DELETE FROM b WHERE id = 1 RETURNING *) SELECT 1", "DELETE", null, "a|b", "true" },
        { "DELETE FROM t", "DELETE", null, "t", "false" },
        { "delete from t where id = 1", "DELETE", null, "t", "true" },
        { "DELETE FROM t USING (SELECT id FROM s WHERE s.x) s2", "DELETE", null, "t|s", "false" },
        { "DELETE FROM t USING a, b WHERE t.id = a.id", "DELETE", null, "t|a|b", "true" },
        { "DELETE FROM t WHERE CURRENT OF c", "DELETE", null, "t", "true" },
        { "DELETE FROM t -- WHERE id = 1", "DELETE", null, "t", "false" },
        { "DELETE FROM t RETURNING (SELECT 1 WHERE true)", "DELETE", null, "t", "false" },
        { "DELETE FROM U&\"secr\\0065ts\"", "DELETE", null, "secrets", "false" },
        { "UPDATE t SET x = (SELECT 1 WHERE true)", "UPDATE", null, "t", "false" },
        { "UPDATE t SET x = 'WHERE'", "UPDATE", null, "t", "false" },
        { "UPDATE t SET x = 1 WHERE y = 2", "UPDATE", null, "t", "true" },
        { "UPDATE ONLY public.t AS a SET x = 1 FROM b WHERE a.id = b.id", "UPDATE", null, "public.t|b", "true" },
        { "INSERT INTO t (a) VALUES (1) ON CONFLICT (a) DO UPDATE SET b = 2, c = 3", "INSERT", null, "t", "" },
        { "INSERT INTO t SELECT * FROM s", "INSERT", null, "t|s", "" },
        { "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE WHEN NOT MATCHED THEN INSERT VALUES (1)", "MERGE", null, "t|s", "" },
        { "COPY t FROM STDIN", "COPY", null, "t", "" },
        { "COPY t (a, b) FROM '/tmp/x' WITH (FORMAT csv)", "COPY", null, "t", "" },
        { "COPY (SELECT * FROM orders WHERE x) TO STDOUT", "COPY", null, "orders", "" },
        { "COPY (DELETE FROM t RETURNING *) TO STDOUT", "DELETE", null, "t", "false" },
        { "TRUNCATE ONLY a, b", "TRUNCATE", null, "a|b", "" },
        { "TRUNCATE TABLE a, ONLY b * CASCADE", "TRUNCATE", null, "a|b", "" },
        { "CREATE FUNCTION f() RETURNS void AS $$ DELETE FROM t; $$ LANGUAGE sql", "CREATE", "FUNCTION", "", "" },
        { "CREATE OR REPLACE FUNCTION f() RETURNS TABLE (a int) LANGUAGE sql BEGIN ATOMIC SELECT 1; END", "CREATE", "FUNCTION", "", "" },
        { "CREATE TABLE IF NOT EXISTS s.t (id int REFERENCES other (id))", "CREATE", "TABLE", "s.t|other", "" },
        { "CREATE TEMP TABLE x AS SELECT * FROM y", "CREATE", "TABLE", "x|y", "" },
        { "CREATE UNIQUE INDEX CONCURRENTLY i ON ONLY t USING btree (a)", "CREATE", "INDEX", "t", "" },
        { "CREATE OR REPLACE VIEW v AS SELECT * FROM t", "CREATE", "VIEW", "v|t", "" },
        { "CREATE MATERIALIZED VIEW mv AS SELECT 1", "CREATE", "MATERIALIZED VIEW", "mv", "" },
        { "CREATE RULE r AS ON DELETE TO t DO INSTEAD (DELETE FROM x)", "CREATE", "RULE", "t|x", "" },
        { "CREATE EXTENSION pgcrypto", "CREATE", "EXTENSION", "", "" },
        { "CREATE FOREIGN DATA WRAPPER w", "CREATE", "FOREIGN DATA WRAPPER", "", "" },
        { "CREATE TEXT SEARCH CONFIGURATION c (COPY = english)", "CREATE", "TEXT SEARCH CONFIGURATION", "", "" },
        { "DROP TABLE IF EXISTS a, b CASCADE", "DROP", "TABLE", "a|b", "" },
        { "DROP MATERIALIZED VIEW mv, mv2", "DROP", "MATERIALIZED VIEW", "mv|mv2", "" },
        { "DROP SCHEMA s CASCADE", "DROP", "SCHEMA", "", "" },
        { "ALTER TABLE ONLY t ADD COLUMN c int", "ALTER", "TABLE", "t", "" },
        { "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES u (id) ON DELETE CASCADE", "ALTER", "TABLE", "t|u", "" },
        { "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO r", "ALTER", "DEFAULT PRIVILEGES", "", "" },
        { "GRANT SELECT, UPDATE ON orders, customers TO bob", "GRANT", null, "orders|customers", "" },
        { "REVOKE ALL ON TABLE t FROM bob", "REVOKE", null, "t", "" },
        { "GRANT USAGE ON SCHEMA s TO bob", "GRANT", null, "", "" },
        { "LOCK TABLE a IN ACCESS EXCLUSIVE MODE", "LOCK", null, "a", "" },
        { "LOCK a, b", "LOCK", null, "a|b", "" },
        { "VACUUM (VERBOSE) a, b", "VACUUM", null, "a|b", "" },
        { "ANALYZE t", "ANALYZE", null, "t", "" },
        { "EXPLAIN SELECT * FROM t", "EXPLAIN", null, "t", "" },
        { "EXPLAIN ANALYZE DELETE FROM t", "DELETE", null, "t", "false" },
        { "EXPLAIN (ANALYZE, BUFFERS) UPDATE t SET x = 1 WHERE y", "UPDATE", null, "t", "true" },
        { "EXPLAIN (ANALYZE false) DELETE FROM t", "EXPLAIN", null, "t", "" },
        { "PREPARE p AS DELETE FROM t", "PREPARE", null, "t", "" },
        { "EXECUTE p(1)", "EXECUTE", null, "", "" },
        { "START TRANSACTION ISOLATION LEVEL SERIALIZABLE", "BEGIN", null, "", "" },
        { "BEGIN", "BEGIN", null, "", "" },
        { "END", "COMMIT", null, "", "" },
        { "ABORT", "ROLLBACK", null, "", "" },
        { "ROLLBACK TO SAVEPOINT s", "ROLLBACK", null, "", "" },
        { "SAVEPOINT s", "SAVEPOINT", null, "", "" },
        { "RELEASE SAVEPOINT s", "RELEASE", null, "", "" },
        { "SHOW search_path", "SHOW", null, "", "" },
        { "LISTEN ch", "LISTEN", null, "", "" },
        { "NOTIFY ch, 'x'", "NOTIFY", null, "", "" },
        { "DECLARE c CURSOR FOR SELECT * FROM t", "DECLARE", null, "t", "" },
        { "FETCH 10 FROM c", "FETCH", null, "", "" },
        { "DISCARD ALL", "DISCARD", null, "", "" },
        { "CALL proc(1)", "CALL", null, "", "" },
        { "DO $$ BEGIN DELETE FROM t; END $$", "DO", null, "", "" },
        { "REFRESH MATERIALIZED VIEW CONCURRENTLY mv", "REFRESH", "MATERIALIZED VIEW", "mv", "" },
        { "COMMENT ON TABLE t IS 'x'", "COMMENT", "TABLE", "t", "" },
        { "xyzzy plugh", "UNKNOWN", null, "", "" },
        { "42", "UNKNOWN", null, "", "" },
        { "START", "UNKNOWN", null, "", "" },
        { "DELETE t", "UNKNOWN", null, "", "" },
        { "", "EMPTY", null, "", "" },
        { "  -- only a comment", "EMPTY", null, "", "" },
        { "/* */", "EMPTY", null, "", "" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Classifies(string sql, string kind, string? objectKind, string tables, string hasWhere)
    {
        var info = SqlClassifier.Classify(sql);
        Assert.Equal(kind, info.Kind);
        Assert.Equal(objectKind, info.ObjectKind);
        Assert.Equal(tables.Length == 0 ? [] : tables.Split('|'), info.Tables);
        Assert.Equal(hasWhere.Length == 0 ? null : bool.Parse(hasWhere), info.HasWhere);
        Assert.False(info.IsMultiStatement);
    }

    public static TheoryData<string, string?> Reasons => new()
    {
        { "SET nhiaudit.reason = 'deploy 42'", "deploy 42" },
        { "SET SESSION nhiaudit.reason TO 'it''s deploy'", "it's deploy" },
        { "set local NhiAudit.Reason to E'line\\nbreak'", "line\nbreak" },
        { "SET \"nhiaudit\".\"reason\" = $$ticket 9$$", "ticket 9" },
        { "SET nhiaudit.reason TO hotfix", "hotfix" },
        { "SET nhiaudit.reason TO DEFAULT", "" },
        { "RESET nhiaudit.reason", "" },
        { "RESET ALL", "" },
        { "DISCARD ALL", "" },
        { "SELECT set_config('nhiaudit.reason', 'ticket 7', false)", "ticket 7" },
        { "SET search_path = x", null },
        { "SET nhiaudit.other = 'x'", null },
        { "SELECT 'SET nhiaudit.reason = ''x'''", null },
        { "RESET search_path", null },
    };

    [Theory]
    [MemberData(nameof(Reasons))]
    public void Detects_the_session_reason(string sql, string? reason)
    {
        Assert.Equal(reason, SqlClassifier.Classify(sql).SessionReason);
    }

    [Theory]
    [InlineData("SET standard_conforming_strings = off", true)]
    [InlineData("SET LOCAL standard_conforming_strings TO false", true)]
    [InlineData("SET SESSION client_encoding TO 'SJIS'", true)]
    [InlineData("SET client_encoding = gbk", true)]
    [InlineData("SET NAMES 'BIG5'", true)]
    [InlineData("SELECT set_config('standard_conforming_strings', 'off', false)", true)]
    [InlineData("SELECT set_config('client_encoding', 'WIN950', true)", true)]
    [InlineData("SELECT pg_catalog.set_config('client_encoding', $1, false)", true)]
    [InlineData("SELECT set_config(name, 'x', false) FROM pg_settings", true)]
    [InlineData("UPDATE pg_settings SET setting = 'SJIS' WHERE name = 'client_' || 'encoding'", true)]
    [InlineData("ALTER ROLE app SET client_encoding = 'SJIS'", true)]
    [InlineData("SET standard_conforming_strings = on", false)]
    [InlineData("SET standard_conforming_strings TO DEFAULT", false)]
    [InlineData("SET client_encoding = 'UTF8'", false)]
    [InlineData("SET NAMES 'LATIN1'", false)]
    [InlineData("RESET standard_conforming_strings", false)]
    [InlineData("RESET client_encoding", false)]
    [InlineData("RESET ALL", false)]
    [InlineData("DISCARD ALL", false)]
    [InlineData("SELECT set_config('search_path', 'x', false)", false)]
    [InlineData("SELECT set_config('client_encoding', 'UTF8', false)", false)]
    [InlineData("CREATE FUNCTION f() RETURNS int LANGUAGE sql SET client_encoding = 'SJIS' AS 'SELECT 1'", false)]
    [InlineData("ALTER ROLE app SET search_path = x", false)]
    [InlineData("SET search_path = public", false)]
    [InlineData("SET nhiaudit.reason = 'x'", false)]
    [InlineData("SELECT 'SET standard_conforming_strings = off'", false)]
    public void Flags_statements_that_would_leave_sql_read_differently(string sql, bool expected)
    {
        Assert.Equal(expected, SqlClassifier.Classify(sql).LexicalSettingProblem is not null);
    }

    [Fact]
    public void Multi_statement_text_is_flagged_and_the_first_statement_classified()
    {
        var info = SqlClassifier.Classify("SELECT 1; DELETE FROM t");
        Assert.True(info.IsMultiStatement);
        Assert.Equal("SELECT", info.Kind);
        Assert.False(SqlClassifier.Classify("SELECT 1;").IsMultiStatement);
        Assert.False(SqlClassifier.Classify("SELECT 1; -- done").IsMultiStatement);
        Assert.True(SqlClassifier.Classify("; ; SELECT 1; SELECT 2").IsMultiStatement);
    }

    [Fact]
    public void Standard_conforming_strings_off_is_honoured()
    {
        Assert.Equal("x\\", SqlClassifier.Classify("SET nhiaudit.reason = 'x\\\\'", standardConformingStrings: false).SessionReason);
        Assert.Equal("x\\\\", SqlClassifier.Classify("SET nhiaudit.reason = 'x\\\\'").SessionReason);
    }

    [Fact]
    public void Split_then_classify_a_script()
    {
        const string script = """
            SET nhiaudit.reason = 'deploy 42';
            -- remove stale rows; carefully
            DELETE FROM sessions WHERE expires < now();
            CREATE FUNCTION f() RETURNS void AS $body$ DELETE FROM audit; $body$ LANGUAGE sql;
            WITH gone AS (DELETE FROM carts RETURNING *) SELECT count(*) FROM gone;
            """;
        var kinds = SqlStatementSplitter.Split(script).Select(s => SqlClassifier.Classify(s.Text)).ToList();
        Assert.Equal(["SET", "DELETE", "CREATE", "DELETE"], kinds.Select(k => k.Kind));
        Assert.Equal("deploy 42", kinds[0].SessionReason);
        Assert.Equal(true, kinds[1].HasWhere);
        Assert.Equal(false, kinds[3].HasWhere);
        Assert.Equal(["carts"], kinds[3].Tables);
    }

    [Fact]
    public void Pathological_inputs_stay_fast()
    {
        string[] inputs =
        [
            string.Concat(Enumerable.Repeat("x FROM y ", 20_000)),
            string.Concat(Enumerable.Repeat("DELETE FROM t USING a ", 20_000)),
            new string('(', 50_000) + "DELETE FROM t" + new string(')', 50_000),
            string.Concat(Enumerable.Repeat("EXPLAIN ", 50_000)) + "SELECT 1",
            "WITH " + string.Join(", ", Enumerable.Range(0, 10_000).Select(i => $"c{i} AS (SELECT {i})")) + " SELECT 1",
            "SELECT " + string.Join(", ", Enumerable.Range(0, 20_000).Select(i => $"(UPDATE t{i} SET x = 1)")),
        ];
        foreach (string sql in inputs)
        {
            var watch = System.Diagnostics.Stopwatch.StartNew();
            _ = SqlClassifier.Classify(sql);
            _ = SqlStatementSplitter.Split(sql);
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"{sql[..20]}…: {watch.Elapsed}");
        }
    }
}
