using System.Text.Json;
using NhiAudit.IntegrationTests.Infrastructure;
using Npgsql;

namespace NhiAudit.IntegrationTests.Gateway;

/// <summary>
/// Policy over effects against a real PostgreSQL 15: with deny rules shaped like the embedded defaults (no DROP, no
/// TRUNCATE, no DELETE without WHERE), every indirect way to run them (DO blocks, dynamic SQL, functions, procedures,
/// triggers, rules, MERGE arms, CTEs, EXPLAIN ANALYZE, query_to_xml) is refused with 42501 and recorded, and the
/// server, asked over a direct connection, still has the table and its rows.
/// </summary>
[Collection(PostgresCollectionDefinition.Name)]
public sealed class EffectsThroughGatewayTests(PostgresServerFixture fixture) : IAsyncLifetime
{
    private const string NoDrop = "dropping objects is not allowed";
    private const string NoTruncate = "truncating tables is not allowed";
    private const string NoBulkDelete = "DELETE without WHERE";
    private const string Unclassified = "the request could not be classified; unclassified requests are denied";

    private GatewayHost _gateway = null!;
    private string _policyFile = "";
    private string _s = "";

    /// <summary>The guarded table, with 10 rows.</summary>
    private string T => "guarded_" + _s;

    public async Task InitializeAsync()
    {
        _s = Guid.NewGuid().ToString("N")[..8];
        _policyFile = Path.Combine(PostgresServer.TempRoot, "effects-policy-" + _s + ".json");
        await File.WriteAllTextAsync(_policyFile, JsonSerializer.Serialize(new
        {
            Policy = new
            {
                Rules = new object[]
                {
                    new { Name = "no-drop", When = "request.action == 'DROP'", Effect = "Deny", Reason = NoDrop },
                    new { Name = "no-truncate", When = "request.action == 'TRUNCATE'", Effect = "Deny", Reason = NoTruncate },
                    new { Name = "no-bulk-delete", When = "request.action == 'DELETE' && !request.hasWhere", Effect = "Deny", Reason = NoBulkDelete },
                },
            },
        }));
        _gateway = await GatewayHost.StartAsync(fixture.Server, o => o.Extra["NhiAudit:Policy:File"] = _policyFile);

        // Set up directly, as a DBA or a migration outside the gateway would: the gateway learns it from the catalog.
        await DirectAsync($"""
            CREATE TABLE {T} (id int);
            INSERT INTO {T} SELECT generate_series(1, 10);
            CREATE TABLE side_{_s} (id int);
            INSERT INTO side_{_s} VALUES (1);
            CREATE FUNCTION purge_{_s}() RETURNS void LANGUAGE sql AS 'DELETE FROM {T}';
            CREATE FUNCTION wipe_{_s}() RETURNS int LANGUAGE plpgsql AS $$ BEGIN TRUNCATE {T}; RETURN 1; END $$;
            CREATE PROCEDURE proc_{_s}() LANGUAGE plpgsql AS $$ BEGIN DELETE FROM {T}; END $$;
            CREATE FUNCTION inner_{_s}() RETURNS void LANGUAGE sql AS 'DROP TABLE {T}';
            CREATE FUNCTION outer_{_s}() RETURNS void LANGUAGE plpgsql AS $$ BEGIN PERFORM inner_{_s}(); END $$;
            CREATE FUNCTION dyn_{_s}(t text) RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'DROP TABLE ' || quote_ident(t); END $$;
            CREATE FUNCTION atomic_{_s}() RETURNS void LANGUAGE sql BEGIN ATOMIC DELETE FROM {T}; END;
            CREATE FUNCTION trg_fn_{_s}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN DELETE FROM {T}; RETURN NEW; END $$;
            CREATE TRIGGER trg_{_s} AFTER INSERT ON side_{_s} FOR EACH ROW EXECUTE FUNCTION trg_fn_{_s}();
            CREATE RULE rule_{_s} AS ON UPDATE TO side_{_s} DO INSTEAD DELETE FROM {T};
            CREATE FUNCTION harmless_{_s}() RETURNS int LANGUAGE sql AS 'SELECT count(*)::int FROM {T}';
            """);

        // A function in a language the gateway cannot read (no PL other than plpgsql is installed here: C-level "internal").
        await using (var admin = new NpgsqlConnection(fixture.Server.AdminConnectionString))
        {
            await admin.OpenAsync();
            await using var internalFunction = new NpgsqlCommand($"CREATE OR REPLACE FUNCTION opaque_{_s}() RETURNS text LANGUAGE internal AS 'timeofday'", admin);
            await internalFunction.ExecuteNonQueryAsync();
        }
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        File.Delete(_policyFile);
    }

    /// <summary>Runs SQL over a direct psql connection (psql reads BEGIN ATOMIC bodies as the server does).</summary>
    private async Task DirectAsync(string sql)
    {
        var result = await fixture.Server.RunPsqlAsync(["-f", "-"], stdin: sql);
        Assert.True(result.ExitCode == 0, result.StandardError);
    }

    /// <summary>Asked over a direct connection: the table still exists and still has its 10 rows.</summary>
    private async Task AssertTableIntactAsync()
    {
        Assert.Equal(1, await fixture.Server.ExecuteScalarIntAsync($"SELECT count(*)::int FROM pg_catalog.pg_class WHERE relname = '{T}'"));
        Assert.Equal(10, await fixture.Server.ExecuteScalarIntAsync($"SELECT count(*)::int FROM {T}"));
    }

    private async Task<ProcessResult> PsqlAsync(string sql, string subject) =>
        await ProcessRunner.RunAsync(
            PostgresBinaries.Psql,
            ["-X", "-v", "VERBOSITY=verbose", "-v", "ON_ERROR_STOP=1", _gateway.LibpqConnectionString(), "-c", sql],
            timeout: TimeSpan.FromSeconds(30),
            env: GatewayHost.LibpqEnvironment(_gateway.MintToken(subject)));

    private string Format(string template) => template.Replace("{T}", T, StringComparison.Ordinal).Replace("{s}", _s, StringComparison.Ordinal);

    public static TheoryData<string, string, string, string, string> Shapes => new()
    {
        // name, SQL (simple protocol, psql), rule, message start, the deciding effect's action
        { "DO with static DROP", "DO $$ BEGIN DROP TABLE {T}; END $$", "no-drop", NoDrop + " (DROP TABLE {T} inside a DO block)", "DROP" },
        { "DO with EXECUTE of a constant", "DO $$ BEGIN EXECUTE 'DROP TABLE {T}'; END $$", "no-drop", NoDrop + " (DROP TABLE {T} inside a DO block)", "DROP" },
        { "DO with EXECUTE of constants joined", "DO $$ BEGIN EXECUTE 'TRUNC' || 'ATE {T}'; END $$", "no-truncate", NoTruncate + " (TRUNCATE {T} inside a DO block)", "TRUNCATE" },
        { "DO with EXECUTE of a computed string", "DO $$ DECLARE n text := '{T}'; BEGIN EXECUTE 'DROP TABLE ' || n; END $$", "(unclassified)", Unclassified + " (dynamic SQL in DO block: EXECUTE 'DROP TABLE ' || n)", "UNKNOWN" },
        { "DO with EXECUTE format()", "DO $$ BEGIN EXECUTE format('DROP TABLE %I', '{T}'); END $$", "(unclassified)", Unclassified + " (dynamic SQL in DO block", "UNKNOWN" },
        { "DO nested in dynamic SQL", "DO $o$ BEGIN EXECUTE $x$DO $y$ BEGIN DELETE FROM {T}; END $y$$x$; END $o$", "no-bulk-delete", NoBulkDelete + " (DELETE FROM {T} inside a DO block", "DELETE" },
        { "CREATE FUNCTION with DROP, then call in the same string", "CREATE FUNCTION f_{s}() RETURNS void LANGUAGE sql AS 'DROP TABLE {T}'; SELECT f_{s}()", "no-drop", NoDrop + " (DROP TABLE {T} in function f_{s}())", "DROP" },
        { "CREATE FUNCTION plpgsql with TRUNCATE", "CREATE FUNCTION g_{s}() RETURNS void LANGUAGE plpgsql AS $$ BEGIN IF true THEN TRUNCATE {T}; END IF; END $$", "no-truncate", NoTruncate + " (TRUNCATE {T} in function g_{s}())", "TRUNCATE" },
        { "CREATE PROCEDURE with DELETE, then CALL", "CREATE PROCEDURE p_{s}() LANGUAGE sql AS $$ DELETE FROM {T} $$; CALL p_{s}()", "no-bulk-delete", NoBulkDelete + " (DELETE FROM {T} in procedure p_{s}())", "DELETE" },
        { "CREATE TRIGGER running a deleting function", "CREATE TRIGGER t2_{s} BEFORE UPDATE ON side_{s} FOR EACH ROW EXECUTE FUNCTION trg_fn_{s}()", "no-bulk-delete", NoBulkDelete + " (DELETE FROM {T} in trigger t2_{s} on side_{s} → function public.trg_fn_{s}())", "DELETE" },
        { "CREATE RULE DO INSTEAD DELETE", "CREATE RULE r2_{s} AS ON DELETE TO side_{s} DO INSTEAD DELETE FROM {T}", "no-bulk-delete", NoBulkDelete + " (DELETE FROM {T} in rule r2_{s} on side_{s})", "DELETE" },
        { "call of a sql function from the catalog", "SELECT purge_{s}()", "no-bulk-delete", NoBulkDelete + " (DELETE FROM {T} in function public.purge_{s}())", "DELETE" },
        { "call inside an expression", "SELECT id FROM side_{s} WHERE id = 1 AND purge_{s}() IS NULL", "no-bulk-delete", NoBulkDelete + " (DELETE FROM {T} in function public.purge_{s}())", "DELETE" },
        { "call of a BEGIN ATOMIC function", "SELECT atomic_{s}()", "no-bulk-delete", NoBulkDelete + " (DELETE FROM {T} in function public.atomic_{s}())", "DELETE" },
        { "call of a plpgsql function", "SELECT wipe_{s}()", "no-truncate", NoTruncate + " (TRUNCATE {T} in function public.wipe_{s}())", "TRUNCATE" },
        { "CALL of a procedure", "CALL proc_{s}()", "no-bulk-delete", NoBulkDelete + " (DELETE FROM {T} in procedure public.proc_{s}())", "DELETE" },
        { "nested: outer() calls inner() which drops", "SELECT outer_{s}()", "no-drop", NoDrop + " (DROP TABLE {T} in function public.outer_{s}() → function public.inner_{s}())", "DROP" },
        { "function with dynamic SQL", "SELECT dyn_{s}('{T}')", "(unclassified)", Unclassified + " (dynamic SQL in function public.dyn_{s}()", "UNKNOWN" },
        { "INSERT fires a trigger", "INSERT INTO side_{s} VALUES (2)", "no-bulk-delete", NoBulkDelete + " (DELETE FROM {T} in trigger trg_{s} on public.side_{s} → function public.trg_fn_{s}())", "DELETE" },
        { "COPY FROM fires a trigger", "COPY side_{s} FROM STDIN", "no-bulk-delete", NoBulkDelete + " (DELETE FROM {T} in trigger trg_{s}", "DELETE" },
        { "UPDATE fires a rule", "UPDATE side_{s} SET id = 2 WHERE id = 1", "no-bulk-delete", NoBulkDelete + " (DELETE FROM {T} in rule rule_{s} on public.side_{s})", "DELETE" },
        { "MERGE WHEN MATCHED THEN DELETE, ON true", "MERGE INTO {T} t USING (SELECT 1 AS id) s ON true WHEN MATCHED THEN DELETE", "no-bulk-delete", NoBulkDelete + " (WHEN MATCHED THEN DELETE in MERGE arm)", "DELETE" },
        { "data-modifying CTE", "WITH d AS (DELETE FROM {T} RETURNING *) SELECT 1", "no-bulk-delete", NoBulkDelete, "DELETE" },
        { "EXPLAIN ANALYZE DELETE", "EXPLAIN ANALYZE DELETE FROM {T}", "no-bulk-delete", NoBulkDelete, "DELETE" },
        { "query_to_xml of a constant", "SELECT query_to_xml('WITH d AS (DELETE FROM {T} RETURNING 1) SELECT * FROM d', true, true, '')", "no-bulk-delete", NoBulkDelete, "DELETE" },
        { "query_to_xml of a computed string", "SELECT query_to_xml('DELETE FROM ' || '{T}', true, true, '')", "(unclassified)", Unclassified + " (dynamic SQL in query_to_xml()", "UNKNOWN" },
        { "function in another language", "SELECT opaque_{s}()", "(unclassified)", Unclassified + " (function public.opaque_{s}() (language internal: the gateway cannot read it))", "UNKNOWN" },
        { "function the catalog does not know", "SELECT nosuch_{s}()", "(unclassified)", Unclassified + " (call of nosuch_{s}(), a function the gateway's catalog does not know)", "UNKNOWN" },
        { "SQL PREPARE of a bulk delete", "PREPARE wipe AS DELETE FROM {T}", "no-bulk-delete", NoBulkDelete + " (DELETE FROM {T} in PREPARE wipe)", "DELETE" },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public async Task Every_indirect_shape_is_refused_recorded_and_the_table_survives(string name, string template, string rule, string message, string action)
    {
        var sql = Format(template);
        message = Format(message);
        var psql = await PsqlAsync(sql, "effects-" + name.Replace(' ', '-'));
        Assert.True(psql.ExitCode != 0, $"{name}: psql succeeded: {psql.StandardOutput}");
        Assert.Contains("ERROR:  42501: " + message, psql.StandardError, StringComparison.Ordinal);
        await AssertTableIntactAsync();

        var records = await _gateway.ReadRecordsAsync();
        var refused = Assert.Single(records.OfType("pg.request"), r => r.Str("refused")?.StartsWith(message, StringComparison.Ordinal) == true);
        var policy = refused.GetProperty("policy");
        Assert.Equal(rule, policy.GetProperty("rule").GetString());
        var effects = refused.GetProperty("effects").EnumerateArray().ToList();
        Assert.NotEmpty(effects);
        if (policy.TryGetProperty("effectIndex", out var index))
        {
            var deciding = effects[index.GetInt32()];
            Assert.Equal(action, deciding.GetProperty("action").GetString());
            Assert.Equal(policy.GetProperty("via").GetString(), deciding.GetProperty("via").GetString());
        }
        else
        {
            // The statement itself decided (a CTE or EXPLAIN ANALYZE DELETE is a DELETE); its effects still say how.
            Assert.Equal(action, refused.Str("kind"));
            Assert.Contains(effects, e => e.GetProperty("action").GetString() == action);
        }
    }

    [Fact]
    public async Task A_function_created_with_a_denied_body_does_not_exist_afterwards()
    {
        var psql = await PsqlAsync(Format("CREATE FUNCTION f_{s}() RETURNS void LANGUAGE sql AS 'DROP TABLE {T}'; SELECT f_{s}()"), "effects-create");
        Assert.NotEqual(0, psql.ExitCode);
        Assert.Equal(0, await fixture.Server.ExecuteScalarIntAsync(Format("SELECT count(*)::int FROM pg_catalog.pg_proc WHERE proname = 'f_{s}'")));
    }

    [Fact]
    public async Task Code_created_earlier_in_the_same_string_is_known_to_the_statements_after_it()
    {
        // The catalog cannot know ok_…() yet: the session's own CREATE tells the gateway what the call runs.
        var psql = await PsqlAsync(Format("CREATE FUNCTION ok_{s}() RETURNS int LANGUAGE sql AS 'SELECT 41 + 1'; SELECT ok_{s}()"), "effects-same-string");
        Assert.True(psql.ExitCode == 0, psql.StandardError);
        Assert.Contains("42", psql.StandardOutput, StringComparison.Ordinal);

        var call = (await _gateway.ReadRecordsAsync()).OfType("pg.request").Single(r => r.Str("text") == Format("SELECT ok_{s}()"));
        var effect = Assert.Single(call.GetProperty("effects").EnumerateArray());
        Assert.Equal("SELECT", effect.GetProperty("action").GetString());
        Assert.Equal(Format("function ok_{s}()"), effect.GetProperty("via").GetString());
        Assert.Equal("Allow", call.GetProperty("policy").GetProperty("effect").GetString());
    }

    [Fact]
    public async Task Allowed_code_runs_and_its_effects_are_recorded()
    {
        await using var connection = new NpgsqlConnection(_gateway.ConnectionString(_gateway.MintToken("effects-allowed")));
        await connection.OpenAsync();
        await using (var call = new NpgsqlCommand(Format("SELECT harmless_{s}()"), connection))
        {
            Assert.Equal(10, await call.ExecuteScalarAsync());
        }

        await using (var merge = new NpgsqlCommand(Format("MERGE INTO {T} t USING (SELECT 100 AS id) s ON t.id = s.id WHEN MATCHED THEN DELETE"), connection))
        {
            Assert.Equal(0, await merge.ExecuteNonQueryAsync());
        }

        await using (var plain = new NpgsqlCommand(Format("SELECT count(*) FROM {T} WHERE id > 0"), connection))
        {
            Assert.Equal(10L, await plain.ExecuteScalarAsync());
        }

        await AssertTableIntactAsync();
        var requests = (await _gateway.ReadRecordsAsync()).OfType("pg.request").Where(r => r.Subject() == "effects-allowed").ToList();
        var harmless = requests.Single(r => r.Str("text")!.Contains("harmless", StringComparison.Ordinal));
        Assert.Equal(Format("function public.harmless_{s}()"), Assert.Single(harmless.GetProperty("effects").EnumerateArray()).GetProperty("via").GetString());
        var mergeArm = Assert.Single(requests.Single(r => r.Str("kind") == "MERGE").GetProperty("effects").EnumerateArray());
        Assert.True(mergeArm.GetProperty("hasWhere").GetBoolean());
        Assert.False(requests.Single(r => r.Str("text")!.StartsWith("SELECT count", StringComparison.Ordinal)).TryGetProperty("effects", out _));
    }

    [Fact]
    public async Task A_prepared_statement_that_calls_the_function_is_refused_in_the_extended_protocol()
    {
        await using var connection = new NpgsqlConnection(_gateway.ConnectionString(_gateway.MintToken("effects-extended")));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(Format("SELECT purge_{s}() WHERE $1 > 0"), connection);
        command.Parameters.AddWithValue(1);
        await command.PrepareAsync();
        for (var i = 0; i < 2; i++)
        {
            var error = await Assert.ThrowsAsync<PostgresException>(() => command.ExecuteNonQueryAsync());
            Assert.Equal("42501", error.SqlState);
            Assert.Equal(Format(NoBulkDelete + " (DELETE FROM {T} in function public.purge_{s}())"), error.MessageText);
        }

        // The session goes on.
        await using var after = new NpgsqlCommand(Format("SELECT count(*) FROM {T}"), connection);
        Assert.Equal(10L, await after.ExecuteScalarAsync());
        await AssertTableIntactAsync();
        var refused = (await _gateway.ReadRecordsAsync()).OfType("pg.request").Where(r => r.Subject() == "effects-extended" && r.Str("refused") is not null).ToList();
        Assert.Equal(2, refused.Count);
        Assert.All(refused, r => Assert.Equal("extended", r.Str("queryMode")));
    }

    [Fact]
    public async Task A_function_changed_through_the_gateway_is_judged_by_its_new_body_in_another_session()
    {
        // Session A creates a harmless function; after its DDL the catalog is read again, so session B sees the body.
        var create = await PsqlAsync(Format("CREATE FUNCTION later_{s}() RETURNS int LANGUAGE sql AS 'SELECT 1'"), "effects-session-a");
        Assert.True(create.ExitCode == 0, create.StandardError);
        await DirectAsync(Format("CREATE OR REPLACE FUNCTION later_{s}() RETURNS int LANGUAGE plpgsql AS $$ BEGIN DELETE FROM {T}; RETURN 1; END $$"));

        // The replacement went around the gateway: a DDL through the gateway (any session) makes it read the catalog again.
        var touch = await PsqlAsync(Format("CREATE TABLE touch_{s} (id int)"), "effects-session-a");
        Assert.True(touch.ExitCode == 0, touch.StandardError);
        var call = await PsqlAsync(Format("SELECT later_{s}()"), "effects-session-b");
        Assert.NotEqual(0, call.ExitCode);
        Assert.Contains(Format(NoBulkDelete + " (DELETE FROM {T} in function public.later_{s}())"), call.StandardError, StringComparison.Ordinal);
        await AssertTableIntactAsync();
    }
}
