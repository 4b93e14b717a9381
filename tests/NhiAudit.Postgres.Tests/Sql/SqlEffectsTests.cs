using NhiAudit.Postgres.Catalog;
using NhiAudit.Postgres.Sql;

namespace NhiAudit.Postgres.Tests.Sql;

/// <summary>Each shape of code a statement may run, and the effects the gateway reads out of it.</summary>
public sealed class SqlEffectsTests
{
    private static readonly string[] Builtins =
    [
        "count", "now", "lower", "upper", "generate_series", "format", "query_to_xml", "coalesce", "sum", "row_number",
        "random", "pg_sleep", "set_config", "jsonb_build_object", "int4", "numeric", "varchar", "timestamp",
    ];

    internal static PgCodeSnapshot Catalog(params PgRoutine[] routines)
    {
        var catalog = new PgCodeSnapshot();
        foreach (var name in Builtins)
        {
            catalog.AddBuiltin(name);
        }

        foreach (var routine in routines)
        {
            catalog.AddRoutine(routine);
        }

        return catalog;
    }

    private static uint s_oid = 90000;

    internal static PgRoutine Routine(string name, string language, string body, char kind = 'f', string schema = "public", bool extension = false) =>
        new() { Schema = schema, Name = name, Language = language, Body = body, Kind = kind, Oid = ++s_oid, IsExtensionMember = extension };

    private static IReadOnlyList<AccessEffect> Effects(string sql, PgCodeSnapshot? catalog = null, PgSessionCode? session = null) =>
        SqlEffects.Extract(sql, SqlClassifier.Classify(sql), catalog ?? Catalog(), session);

    private static AccessEffect Single(IReadOnlyList<AccessEffect> effects, string action) => Assert.Single(effects, e => e.Action == action);

    [Theory]
    [InlineData("SELECT abalance FROM pgbench_accounts WHERE aid = 42")]
    [InlineData("UPDATE pgbench_accounts SET abalance = abalance + -1 WHERE aid = 42")]
    [InlineData("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 2, 3, 4, CURRENT_TIMESTAMP)")]
    [InlineData("SELECT count(*), now(), lower(name) FROM t WHERE a IN (SELECT b FROM u)")]
    [InlineData("DELETE FROM t WHERE id = 1")]
    [InlineData("BEGIN")]
    [InlineData("SET search_path = public")]
    public void Statements_without_code_have_no_effects(string sql) => Assert.Empty(Effects(sql));

    [Fact]
    public void A_plain_statement_allocates_no_effects()
    {
        var catalog = Catalog();
        const string sql = "SELECT abalance FROM pgbench_accounts WHERE aid = 42";
        var info = SqlClassifier.Classify(sql);
        for (var i = 0; i < 100; i++)
        {
            SqlEffects.Extract(sql, info, catalog, null);
        }

        var effects = 0;
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1000; i++)
        {
            effects += SqlEffects.Extract(sql, info, catalog, null).Count;
        }

        var perCall = (GC.GetAllocatedBytesForCurrentThread() - before) / 1000.0;
        Assert.Equal(0, effects);
        Assert.True(perCall <= 128, $"{perCall} bytes per plain statement");
    }

    [Fact]
    public void A_static_drop_in_a_do_block_is_a_drop()
    {
        var effect = Single(Effects("DO $$ BEGIN DROP TABLE t; END $$"), "DROP");
        Assert.Equal("DO block", effect.Via);
        Assert.Equal("TABLE", effect.ObjectKind);
        Assert.Equal(["t"], effect.Resources);
        Assert.Equal("DROP TABLE t", effect.Text);
    }

    [Theory]
    [InlineData("DO $$ BEGIN EXECUTE 'DROP TABLE t'; END $$")]
    [InlineData("DO $$ BEGIN EXECUTE 'DROP ' || 'TABLE t'; END $$")]
    [InlineData("DO LANGUAGE plpgsql $x$ DECLARE n int := 1; BEGIN IF n > 0 THEN EXECUTE $q$DROP TABLE t$q$; END IF; END $x$")]
    [InlineData("DO $$ BEGIN EXECUTE 'DO $i$ BEGIN DROP TABLE t; END $i$'; END $$")]
    public void Execute_of_a_constant_string_is_classified(string sql)
    {
        var effect = Single(Effects(sql), "DROP");
        Assert.StartsWith("DO block", effect.Via, StringComparison.Ordinal);
        Assert.Equal(["t"], effect.Resources);
    }

    [Theory]
    [InlineData("DO $$ DECLARE x text := 't'; BEGIN EXECUTE 'DROP TABLE ' || x; END $$")]
    [InlineData("DO $$ BEGIN EXECUTE format('DROP TABLE %I', 't'); END $$")]
    [InlineData("DO $$ DECLARE r record; BEGIN FOR r IN EXECUTE 'SELECT ' || 1 LOOP END LOOP; END $$")]
    [InlineData("DO $$ BEGIN RETURN QUERY EXECUTE x; END $$")]
    public void Execute_of_a_computed_string_is_unknown(string sql)
    {
        var effect = Single(Effects(sql), AccessRequest.UnclassifiedAction);
        Assert.Equal("dynamic SQL in DO block", effect.Via);
    }

    [Fact]
    public void A_do_block_in_another_language_is_unknown() =>
        Assert.Contains("language plperl", Single(Effects("DO LANGUAGE plperl $$ system('rm -rf /') $$"), "UNKNOWN").Via, StringComparison.Ordinal);

    [Fact]
    public void Plpgsql_structure_is_skipped_and_every_statement_inside_is_read()
    {
        const string sql = """
            DO $body$
            <<outer>>
            DECLARE
              n int := (SELECT count(*) FROM orders);
              c CURSOR FOR SELECT id FROM archive;
            BEGIN
              IF n > 10 THEN
                DELETE FROM orders WHERE id < 5;
              ELSIF n > 5 THEN
                UPDATE orders SET flag = true;
              ELSE
                PERFORM pg_sleep(0);
              END IF;
              FOR r IN SELECT * FROM staging LOOP
                INSERT INTO orders VALUES (r.id);
              END LOOP;
              WHILE n > 0 LOOP n := n - 1; END LOOP;
              CASE n WHEN 0 THEN TRUNCATE scratch; ELSE NULL; END CASE;
              RAISE NOTICE 'done %', n;
            EXCEPTION WHEN others THEN
              DELETE FROM errors;
            END outer $body$
            """;
        var effects = Effects(sql);
        Assert.All(effects, e => Assert.Equal("DO block", e.Via));
        Assert.Equal(
            ["SELECT archive", "DELETE orders where", "UPDATE orders no-where", "SELECT ", "SELECT staging", "INSERT orders", "TRUNCATE scratch", "DELETE errors no-where"],
            effects.Select(e => $"{e.Action} {string.Join(",", e.Resources)}{(e.HasWhere is null ? "" : e.HasWhere.Value ? " where" : " no-where")}"));
    }

    [Theory]
    [InlineData("CREATE FUNCTION purge() RETURNS void LANGUAGE sql AS 'DELETE FROM t'", "function purge()")]
    [InlineData("CREATE OR REPLACE FUNCTION public.purge() RETURNS void AS $$ DELETE FROM t $$ LANGUAGE sql", "function public.purge()")]
    [InlineData("CREATE FUNCTION purge() RETURNS void LANGUAGE sql BEGIN ATOMIC SELECT 1; DELETE FROM t; END", "function purge()")]
    [InlineData("CREATE PROCEDURE purge() LANGUAGE plpgsql AS $$ BEGIN DELETE FROM t; COMMIT; END $$", "procedure purge()")]
    public void Creating_a_routine_reads_its_body(string sql, string via)
    {
        var effect = Single(Effects(sql), "DELETE");
        Assert.Equal(via, effect.Via);
        Assert.False(effect.HasWhere);
    }

    [Fact]
    public void A_created_body_that_calls_a_function_not_created_yet_is_judged_when_called()
    {
        Assert.DoesNotContain(Effects("CREATE FUNCTION g() RETURNS int LANGUAGE sql AS 'SELECT not_yet_there()'"), e => e.Action == "UNKNOWN");
    }

    [Theory]
    [InlineData("SELECT purge()")]
    [InlineData("SELECT * FROM orders WHERE id = public.purge()")]
    [InlineData("VALUES (1, purge())")]
    [InlineData("SELECT coalesce(\"purge\"(), 0)")]
    [InlineData("INSERT INTO log SELECT PURGE()")]
    public void Calling_a_catalog_function_runs_its_body(string sql)
    {
        var catalog = Catalog(Routine("purge", "sql", "TRUNCATE t; SELECT 1"));
        var effects = Effects(sql, catalog);
        var truncate = Single(effects, "TRUNCATE");
        Assert.Equal("function public.purge()", truncate.Via);
        Assert.Equal("TRUNCATE t", truncate.Text);
    }

    [Fact]
    public void Plpgsql_functions_procedures_and_nesting_are_followed()
    {
        var catalog = Catalog(
            Routine("f", "plpgsql", "BEGIN PERFORM g(); RETURN 1; END"),
            Routine("g", "sql", "DROP TABLE t"),
            Routine("p", "plpgsql", "BEGIN IF true THEN DELETE FROM t; END IF; END", kind: 'p'));
        Assert.Equal("function public.f() → function public.g()", Single(Effects("SELECT f()", catalog), "DROP").Via);
        Assert.Equal("procedure public.p()", Single(Effects("CALL p()", catalog), "DELETE").Via);
    }

    [Fact]
    public void Recursion_ends_and_depth_is_bounded()
    {
        var catalog = Catalog(Routine("self", "sql", "SELECT self()"));
        Assert.DoesNotContain(Effects("SELECT self()", catalog), e => e.Action == "UNKNOWN");

        var chain = Enumerable.Range(0, 12).Select(i => Routine("c" + i, "sql", i == 11 ? "DROP TABLE t" : $"SELECT c{i + 1}()")).ToArray();
        var effects = Effects("SELECT c0()", Catalog(chain));
        Assert.Contains(effects, e => e.Action == "UNKNOWN" && e.Via.Contains("deeper than 8", StringComparison.Ordinal));
        Assert.DoesNotContain(effects, e => e.Action == "DROP");
    }

    [Fact]
    public void Functions_in_other_languages_are_unknown_unless_an_extension_installed_them()
    {
        var catalog = Catalog(Routine("perl_fn", "plperl", "return 1"), Routine("digest", "c", "pg_digest", extension: true), Routine("raw_c", "c", "sym"));
        Assert.Contains("language plperl", Single(Effects("SELECT perl_fn()", catalog), "UNKNOWN").Via, StringComparison.Ordinal);
        Assert.Empty(Effects("SELECT digest('x', 'sha256')", catalog));
        Assert.Equal("function public.raw_c() (language c: the gateway cannot read it)", Single(Effects("SELECT raw_c()", catalog), "UNKNOWN").Via);
    }

    [Fact]
    public void An_unknown_name_where_only_a_call_can_be_is_unknown_elsewhere_ignored()
    {
        var effects = SqlEffects.Extract("SELECT mystery(1)", SqlClassifier.Classify("SELECT mystery(1)"), Catalog(), null, out var unresolved);
        Assert.True(unresolved);
        Assert.Contains("mystery()", Single(effects, "UNKNOWN").Via, StringComparison.Ordinal);

        Assert.Empty(Effects("SELECT mystery(1)", PgCodeSnapshot.NotLoaded));
        Assert.Empty(Effects("CREATE INDEX ON new_table (a)"));
        Assert.Empty(Effects("CREATE TABLE t2 (a numeric(10, 2), b decimal(3), c varchar(3) DEFAULT lower('x'))"));
        Assert.Empty(Effects("WITH x(a) AS (SELECT 1), y(b) AS (SELECT 2) SELECT a, b FROM x, y"));
        Assert.Empty(Effects("SELECT * FROM generate_series(1, 3) g(i) JOIN (VALUES (1)) v(a) ON true, t AS z(c)"));
        Assert.Empty(Effects("SELECT x::decimal(10, 2), CAST(x AS character varying(10)) FROM t TABLESAMPLE bernoulli (10) REPEATABLE (1)"));
        Assert.Empty(Effects("INSERT INTO t (a) VALUES (1) ON CONFLICT (a) DO NOTHING"));
        Assert.Empty(Effects("COPY t (id, payload) FROM STDIN (FORMAT BINARY)"));
        Assert.Empty(Effects("COPY t TO STDOUT WITH (FORMAT csv, FORCE_QUOTE (a))"));
        Assert.Empty(Effects("COPY t FROM '/tmp/x' (FORMAT text)"));
        Assert.Single(Effects("COPY (SELECT mystery()) TO STDOUT"), e => e.Action == "UNKNOWN");
        Assert.Empty(Effects("SELECT count(*) FILTER (WHERE a > 1) OVER (PARTITION BY b ORDER BY c), EXISTS (SELECT 1), a IN (1, 2) FROM t GROUP BY GROUPING SETS ((a), ()) "));
    }

    [Fact]
    public void Triggers_fire_on_the_tables_a_statement_writes()
    {
        var catalog = Catalog(Routine("trg_fn", "plpgsql", "BEGIN DELETE FROM audit; RETURN NEW; END"));
        catalog.AddTrigger(new PgTrigger("trg", "public", "orders", PgWriteEvents.Insert | PgWriteEvents.Update, "public", "trg_fn", 0));
        var effect = Single(Effects("INSERT INTO orders VALUES (1)", catalog), "DELETE");
        Assert.Equal("trigger trg on public.orders → function public.trg_fn()", effect.Via);
        Assert.Equal(["audit"], effect.Resources);

        Assert.Single(Effects("UPDATE public.orders SET a = 1 WHERE id = 2", catalog), e => e.Action == "DELETE");
        Assert.Empty(Effects("INSERT INTO other VALUES (1) ON CONFLICT (id) DO NOTHING", catalog));
        Assert.Empty(Effects("DELETE FROM orders WHERE id = 1", catalog));
        Assert.Empty(Effects("INSERT INTO other.orders VALUES (1)", catalog));
        Assert.Single(Effects("COPY orders FROM STDIN", catalog), e => e.Action == "DELETE");
        Assert.Single(Effects("WITH d AS (UPDATE orders SET a = 1 WHERE id = 1 RETURNING *) SELECT 1", catalog), e => e.Action == "DELETE");
    }

    [Fact]
    public void Rules_fire_on_the_tables_a_statement_writes()
    {
        var catalog = Catalog();
        catalog.AddRule(new PgRule("r", "public", "orders", PgWriteEvents.Update, "CREATE RULE r AS\n    ON UPDATE TO public.orders DO INSTEAD  DELETE FROM orders;"));
        var effect = Single(Effects("UPDATE orders SET a = 1 WHERE id = 1", catalog), "DELETE");
        Assert.Equal("rule r on public.orders", effect.Via);
        Assert.False(effect.HasWhere);
        Assert.Empty(Effects("INSERT INTO orders VALUES (1)", catalog));
    }

    [Theory]
    [InlineData("CREATE RULE r AS ON UPDATE TO orders DO INSTEAD DELETE FROM orders", 1)]
    [InlineData("CREATE OR REPLACE RULE r AS ON INSERT TO orders WHERE NEW.id > 0 DO ALSO (DELETE FROM orders; DELETE FROM archive)", 2)]
    public void Creating_a_rule_reads_its_actions(string sql, int deletes)
    {
        var effects = Effects(sql);
        Assert.Equal(deletes, effects.Count(e => e.Action == "DELETE" && e.Via == "rule r on orders"));
        Assert.Empty(Effects("CREATE RULE r AS ON DELETE TO orders DO INSTEAD NOTHING"));
    }

    [Fact]
    public void Creating_a_trigger_reads_the_function_it_runs()
    {
        var catalog = Catalog(Routine("trg_fn", "plpgsql", "BEGIN TRUNCATE audit; RETURN NULL; END"));
        var effect = Single(Effects("CREATE TRIGGER trg AFTER INSERT OR UPDATE OF a ON public.orders FOR EACH ROW WHEN (NEW.a > 0) EXECUTE FUNCTION trg_fn()", catalog), "TRUNCATE");
        Assert.Equal("trigger trg on public.orders → function public.trg_fn()", effect.Via);
    }

    [Fact]
    public void Code_the_session_created_is_seen_by_the_next_statement()
    {
        var session = new PgSessionCode();
        var catalog = Catalog();
        foreach (var sql in new[]
        {
            "CREATE FUNCTION trg_fn() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN DELETE FROM audit WHERE id = OLD.id; RETURN NEW; END $$",
            "CREATE TRIGGER trg BEFORE DELETE ON orders FOR EACH ROW EXECUTE PROCEDURE trg_fn()",
            "CREATE RULE r AS ON UPDATE TO orders DO INSTEAD DELETE FROM orders",
            "CREATE FUNCTION purge() RETURNS void LANGUAGE sql AS 'DROP TABLE t'",
            "PREPARE wipe AS DELETE FROM orders",
        })
        {
            SqlEffects.Learn(session, sql, SqlClassifier.Classify(sql));
        }

        Assert.Equal("function purge()", Single(Effects("SELECT purge()", catalog, session), "DROP").Via);
        Assert.Equal("trigger trg on orders → function trg_fn()", Single(Effects("DELETE FROM orders WHERE id = 1", catalog, session), "DELETE").Via);
        // The rule's DELETE fires the trigger in turn.
        Assert.Equal(
            ["rule r on orders", "rule r on orders → trigger trg on orders → function trg_fn()"],
            Effects("UPDATE orders SET a = 1 WHERE id = 1", catalog, session).Where(e => e.Action == "DELETE").Select(e => e.Via));
        Assert.Equal(
            ["prepared statement wipe", "prepared statement wipe → trigger trg on orders → function trg_fn()"],
            Effects("EXECUTE wipe", catalog, session).Where(e => e.Action == "DELETE").Select(e => e.Via));
        Assert.Contains("did not see prepared", Single(Effects("EXECUTE other", catalog, session), "UNKNOWN").Via, StringComparison.Ordinal);
        Assert.Equal("PREPARE x", Effects("PREPARE x (int) AS DELETE FROM orders", catalog, session).First(e => e.Action == "DELETE").Via);
    }

    [Theory]
    [InlineData("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", true)]
    [InlineData("MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE", false)]
    [InlineData("MERGE INTO t USING s ON (1 = 1) WHEN MATCHED THEN DELETE", false)]
    [InlineData("MERGE INTO t USING s ON t.id = t.id WHEN MATCHED THEN DELETE", false)]
    [InlineData("MERGE INTO t USING s ON t.id = s.id OR true WHEN MATCHED THEN DELETE", false)]
    [InlineData("MERGE INTO t USING s ON true WHEN MATCHED AND t.id > 5 THEN DELETE", true)]
    [InlineData("MERGE INTO t USING (SELECT 1 AS id) s ON t.id = s.id AND true WHEN MATCHED AND true THEN DELETE", true)]
    public void A_merge_delete_arm_is_a_delete_restricted_only_by_a_real_condition(string sql, bool hasWhere)
    {
        var effect = Single(Effects(sql), "DELETE");
        Assert.Equal("MERGE arm", effect.Via);
        Assert.Equal(["t"], effect.Resources);
        Assert.Equal(hasWhere, effect.HasWhere);
    }

    [Fact]
    public void Every_merge_arm_is_an_effect()
    {
        var effects = Effects("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED AND s.x = CASE WHEN s.y THEN 1 ELSE 2 END THEN UPDATE SET a = s.a WHEN NOT MATCHED THEN INSERT VALUES (s.id) WHEN MATCHED THEN DO NOTHING");
        Assert.Equal(["UPDATE", "INSERT"], effects.Select(e => e.Action));
    }

    [Fact]
    public void Data_modifying_ctes_and_explain_analyze_are_effects()
    {
        var cte = Single(Effects("WITH d AS (DELETE FROM t RETURNING *) SELECT 1"), "DELETE");
        Assert.Equal("data-modifying CTE", cte.Via);
        Assert.False(cte.HasWhere);

        var explained = Single(Effects("EXPLAIN (ANALYZE, BUFFERS) DELETE FROM t"), "DELETE");
        Assert.Equal("EXPLAIN ANALYZE", explained.Via);
        Assert.Empty(Effects("EXPLAIN DELETE FROM t"));
    }

    [Fact]
    public void Builtins_that_run_text_as_sql_are_dynamic()
    {
        var effect = Single(Effects("SELECT query_to_xml('DELETE FROM t', true, true, '')"), "DELETE");
        Assert.Equal("dynamic SQL in query_to_xml()", effect.Via);
        Assert.Equal("dynamic SQL in query_to_xml()", Single(Effects("SELECT query_to_xml('DELETE FROM ' || 't', true, true, '')"), "UNKNOWN").Via);
        Assert.Equal("dynamic SQL in dblink_exec()", Single(Effects("SELECT dblink_exec('dbname=app', 'DROP TABLE t')"), "UNKNOWN").Via);
    }

    [Fact]
    public void An_unreadable_body_is_unknown()
    {
        var catalog = Catalog(Routine("broken", "plpgsql", "BEGIN EXECUTE 'unterminated; END"));
        Assert.Contains("unterminated", Single(Effects("SELECT broken()", catalog), "UNKNOWN").Via, StringComparison.Ordinal);
    }

    [Fact]
    public void Definitions_and_references_do_not_call()
    {
        var catalog = Catalog(Routine("purge", "sql", "DROP TABLE t"));
        Assert.Empty(Effects("DROP FUNCTION purge()", catalog));
        Assert.Empty(Effects("ALTER FUNCTION purge() OWNER TO app", catalog));
        Assert.Empty(Effects("GRANT EXECUTE ON FUNCTION purge() TO app", catalog));
        Assert.Empty(Effects("COMMENT ON FUNCTION purge() IS 'x'", catalog));
    }

    [Fact]
    public void Too_many_effects_end_in_one_unknown()
    {
        var body = string.Join(' ', Enumerable.Range(0, 300).Select(i => $"DELETE FROM t{i} WHERE id = 1;"));
        var effects = Effects($"DO $$ BEGIN {body} END $$");
        Assert.Equal(SqlEffects.MaxEffects + 1, effects.Count);
        Assert.Equal("UNKNOWN", effects[^1].Action);
    }
}
