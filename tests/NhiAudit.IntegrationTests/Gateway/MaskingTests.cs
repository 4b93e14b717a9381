using System.Globalization;
using System.Text;
using NhiAudit.IntegrationTests.Infrastructure;
using Npgsql;
using NpgsqlTypes;

namespace NhiAudit.IntegrationTests.Gateway;

/// <summary>
/// Masking through the gateway against a real PostgreSQL 15: a protected column never reaches the client in clear,
/// however the query is written, in the extended protocol with binary results (Npgsql) and the simple protocol with
/// text results (psql).
/// </summary>
[Collection(PostgresCollectionDefinition.Name)]
public sealed class MaskingTests(PostgresServerFixture fixture) : IAsyncLifetime
{
    private static readonly string[] Ssns = ["123-45-6789", "987-65-4320"];
    private static readonly string[] SsnDigits = ["123456789", "987654320"];

    private GatewayHost _gateway = null!;
    private string _table = "";
    private string _view = "";

    public async Task InitializeAsync()
    {
        var suffix = Guid.NewGuid().ToString("N")[..8];
        _table = "cust_" + suffix;
        _view = "cust_view_" + suffix;
        await using (var admin = new NpgsqlConnection(fixture.Server.ConnectionString()))
        {
            await admin.OpenAsync();
            await using var create = new NpgsqlCommand(
                $"""
                CREATE TABLE {_table} (id int PRIMARY KEY, name text NOT NULL, ssn text UNIQUE, note text, card text, email text, born date);
                INSERT INTO {_table} VALUES
                  (1, 'Alice', '{Ssns[0]}', 'call alice@example.com', '4111 1111 1111 1111', 'alice@example.com', '1980-01-02'),
                  (2, 'Bob', '{Ssns[1]}', 'nothing to see', '5555555555554444', 'bob@example.org', '1990-03-04');
                CREATE VIEW {_view} AS SELECT id, name AS who, ssn AS tax_id, upper(note) AS shout FROM {_table};
                """,
                admin);
            await create.ExecuteNonQueryAsync();
        }

        _gateway = await GatewayHost.StartAsync(fixture.Server, o =>
        {
            o.Extra["NhiAudit:Policy:Masking:0:Name"] = "pii";
            o.Extra["NhiAudit:Policy:Masking:0:Columns:0"] = $"public.{_table}.ssn";
            o.Extra["NhiAudit:Policy:Masking:0:Strategy"] = "Redact";
            o.Extra["NhiAudit:Policy:Masking:1:Name"] = "cards";
            o.Extra["NhiAudit:Policy:Masking:1:Columns:0"] = $"*.{_table}.card";
            o.Extra["NhiAudit:Policy:Masking:1:Strategy"] = "Partial";
            o.Extra["NhiAudit:Policy:Masking:2:Name"] = "pseudonyms";
            o.Extra["NhiAudit:Policy:Masking:2:Columns:0"] = $"public.{_table}.email";
            o.Extra["NhiAudit:Policy:Masking:2:Strategy"] = "Hash";
            o.Extra["NhiAudit:Policy:Masking:3:Name"] = "birthdays";
            o.Extra["NhiAudit:Policy:Masking:3:Columns:0"] = $"public.{_table}.born";
            o.Extra["NhiAudit:Policy:Masking:3:Strategy"] = "Redact";
            o.Extra["NhiAudit:Policy:Masking:4:Name"] = "contact";
            o.Extra["NhiAudit:Policy:Masking:4:Detectors:0"] = "email";
            o.Extra["NhiAudit:Policy:Masking:4:Detectors:1"] = "credit-card";
            o.Extra["NhiAudit:Policy:Masking:4:Strategy"] = "Redact";
            o.Extra["NhiAudit:Postgres:Targets:0:CaptureRows"] = "2";
            o.Extra["NhiAudit:Policy:Rules:0:Name"] = "no-copies";
            o.Extra["NhiAudit:Policy:Rules:0:When"] = "request.readsProtected && request.action == 'CREATE' && request.objectKind == 'TABLE'";
            o.Extra["NhiAudit:Policy:Rules:0:Effect"] = "Deny";
            o.Extra["NhiAudit:Policy:Rules:0:Reason"] = "copying protected columns into a new object would escape masking";
        });
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
    }

    private async Task<NpgsqlConnection> OpenAsync(string subject = "masking")
    {
        var connection = new NpgsqlConnection(_gateway.ConnectionString(_gateway.MintToken(subject), b => b.IncludeErrorDetail = true));
        await connection.OpenAsync();
        return connection;
    }

    /// <summary>Runs SQL straight on the server as the application role, bypassing the gateway.</summary>
    private async Task ExecuteDirectAsync(string sql)
    {
        await using var direct = new NpgsqlConnection(fixture.Server.ConnectionString());
        await direct.OpenAsync();
        await using var command = new NpgsqlCommand(sql, direct);
        await command.ExecuteNonQueryAsync();
    }

    private string Sql(string template) => template.Replace("{t}", _table, StringComparison.Ordinal).Replace("{v}", _view, StringComparison.Ordinal);

    /// <summary>Every value of every row, as Npgsql hands it to the application (binary format, extended protocol).</summary>
    private static async Task<List<string>> ReadAllAsync(NpgsqlCommand command)
    {
        var values = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        do
        {
            while (await reader.ReadAsync())
            {
                for (var i = 0; i < reader.FieldCount; i++)
                {
                    values.Add(reader.IsDBNull(i) ? "NULL" : Render(reader.GetValue(i)));
                }
            }
        }
        while (await reader.NextResultAsync());

        return values;
    }

    private static string Render(object value) => value switch
    {
        Array array => "{" + string.Join(",", array.Cast<object?>().Select(v => v is null ? "NULL" : Render(v))) + "}",
        DateTime date => date.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
        _ => Convert.ToString(value, CultureInfo.InvariantCulture) ?? "",
    };

    private async Task<string> PsqlAsync(string sql, string subject = "masking-psql")
    {
        var result = await ProcessRunner.RunAsync(
            PostgresBinaries.Psql,
            ["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", _gateway.LibpqConnectionString(), "-c", sql],
            timeout: TimeSpan.FromSeconds(30),
            env: GatewayHost.LibpqEnvironment(_gateway.MintToken(subject)));
        Assert.True(result.ExitCode == 0, result.Describe("psql"));
        return result.StandardOutput;
    }

    private static void AssertNoSsn(string text)
    {
        foreach (var secret in Ssns.Concat(SsnDigits))
        {
            Assert.DoesNotContain(secret, text, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("plain column", "SELECT ssn FROM {t} ORDER BY id")]
    [InlineData("alias", "SELECT ssn AS harmless FROM {t} ORDER BY id")]
    [InlineData("table alias and star", "SELECT c.* FROM {t} AS c ORDER BY id")]
    [InlineData("cast", "SELECT ssn::varchar(20), CAST(ssn AS char(11)) FROM {t} ORDER BY id")]
    [InlineData("function call", "SELECT upper(ssn), replace(ssn, '-', ''), ssn || '' FROM {t} ORDER BY id")]
    [InlineData("subquery in FROM", "SELECT s FROM (SELECT ssn AS s FROM {t}) AS q ORDER BY s")]
    [InlineData("scalar subquery", "SELECT (SELECT ssn FROM {t} WHERE id = 1), (SELECT max(ssn) FROM {t})")]
    [InlineData("CTE", "WITH c AS (SELECT ssn FROM {t}) SELECT * FROM c")]
    [InlineData("view", "SELECT * FROM {v} ORDER BY id")]
    [InlineData("UNION", "SELECT name FROM {t} UNION ALL SELECT ssn FROM {t}")]
    [InlineData("row_to_json", "SELECT row_to_json(c) FROM {t} AS c")]
    [InlineData("to_jsonb", "SELECT to_jsonb(c), json_agg(c) OVER () FROM {t} AS c")]
    [InlineData("string_agg", "SELECT string_agg(ssn, ',') FROM {t}")]
    [InlineData("array_agg", "SELECT array_agg(ssn), array_agg(c) FROM {t} AS c")]
    [InlineData("RETURNING", "UPDATE {t} SET name = name WHERE id = 1 RETURNING ssn, name")]
    [InlineData("VALUES over a column", "SELECT x FROM {t}, LATERAL (VALUES (ssn)) AS v(x)")]
    public async Task A_protected_column_never_reaches_the_client_in_clear(string shape, string template)
    {
        var sql = Sql(template);

        // Extended protocol, binary results.
        await using var connection = await OpenAsync("masking-" + shape.Replace(' ', '-'));
        await using (var command = new NpgsqlCommand(sql, connection))
        {
            var values = await ReadAllAsync(command);
            Assert.NotEmpty(values);
            AssertNoSsn(string.Join("\n", values));
        }

        // Simple protocol, text results.
        var text = await PsqlAsync(sql);
        Assert.NotEqual("", text.Trim());
        AssertNoSsn(text);
    }

    [Fact]
    public async Task Unprotected_columns_pass_in_clear_and_masked_ones_follow_their_strategy()
    {
        await using var connection = await OpenAsync();
        await using var command = new NpgsqlCommand(Sql("SELECT id, name, ssn, card, email, born, note FROM {t} ORDER BY id"), connection);
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        Assert.Equal(1, reader.GetInt32(0));
        Assert.Equal("Alice", reader.GetString(1));
        Assert.Equal("****", reader.GetString(2));
        Assert.Equal("**** **** **** 1111", reader.GetString(3));
        var pseudonym = reader.GetString(4);
        Assert.Matches("^hmac:[0-9a-f]{16}$", pseudonym);
        Assert.True(reader.IsDBNull(5), "a date cannot carry a mask, so it is NULL");
        Assert.Equal("call ****", reader.GetString(6));
        Assert.True(await reader.ReadAsync());
        Assert.Equal("************4444", reader.GetString(3));
        Assert.NotEqual(pseudonym, reader.GetString(4));
        Assert.Equal("nothing to see", reader.GetString(6));
        await reader.CloseAsync();

        // The pseudonym is stable: the same value gives the same pseudonym in another query.
        await using var again = new NpgsqlCommand(Sql("SELECT email AS e FROM {t} WHERE id = 1"), connection);
        Assert.Equal(pseudonym, await again.ExecuteScalarAsync());

        // psql (text format) sees the same.
        var text = await PsqlAsync(Sql("SELECT name, ssn, card, born FROM {t} WHERE id = 1"));
        Assert.Equal("Alice|****|**** **** **** 1111|", text.Trim());

        // Expressions that read no protected column stay in clear, even over a protected table.
        await using var count = new NpgsqlCommand(Sql("SELECT count(*), max(id), upper(c.name) FROM {t} AS c GROUP BY c.name ORDER BY 3"), connection);
        Assert.Equal(["1", "1", "ALICE", "1", "2", "BOB"], await ReadAllAsync(count));
    }

    [Fact]
    public async Task A_view_created_through_the_gateway_is_masked_at_once()
    {
        await using var connection = await OpenAsync();
        var view = "late_view_" + Guid.NewGuid().ToString("N")[..6];
        await using (var create = new NpgsqlCommand(Sql($"CREATE VIEW {view} AS SELECT id, ssn AS x, lower(ssn) AS y FROM {{t}}"), connection))
        {
            await create.ExecuteNonQueryAsync();
        }

        await using var select = new NpgsqlCommand($"SELECT x, y FROM {view} ORDER BY id", connection);
        var values = await ReadAllAsync(select);
        Assert.Equal(["****", "****", "****", "****"], values);
    }

    [Fact]
    public async Task Functions_and_materialized_views_over_a_protected_table_are_masked()
    {
        var suffix = Guid.NewGuid().ToString("N")[..6];
        await ExecuteDirectAsync(Sql(
            $"CREATE FUNCTION ssn_of_{suffix}(i int) RETURNS text LANGUAGE sql AS 'SELECT ssn FROM {{t}} WHERE id = i';"
            + $"CREATE FUNCTION all_{suffix}() RETURNS SETOF {{t}} LANGUAGE sql AS 'SELECT * FROM {{t}}';"
            + $"CREATE MATERIALIZED VIEW mat_{suffix} AS SELECT id, ssn FROM {{t}};"));
        await using var connection = await OpenAsync();

        // Created outside the gateway: the functions and the materialized view are unknown until the catalog is read
        // again; new relations are masked whole meanwhile, and the refresh finds what they show.
        foreach (var sql in new[] { $"SELECT ssn_of_{suffix}(1)", $"SELECT * FROM all_{suffix}()", $"SELECT ssn FROM mat_{suffix}", $"SELECT id, ssn FROM mat_{suffix}" })
        {
            await using var command = new NpgsqlCommand(sql, connection);
            var values = await ReadAllAsync(command);
            Assert.NotEmpty(values);
            AssertNoSsn(string.Join("\n", values));
            AssertNoSsn(await PsqlAsync(sql));
        }

        // Unprotected columns of the materialized view come back in clear once the catalog knows it.
        await using var ids = new NpgsqlCommand($"SELECT id FROM mat_{suffix} ORDER BY id", connection);
        Assert.Equal(["1", "2"], await ReadAllAsync(ids));
    }

    [Fact]
    public async Task A_policy_rule_can_refuse_copying_protected_columns_elsewhere()
    {
        await using var connection = await OpenAsync();
        await using var copy = new NpgsqlCommand(Sql("CREATE TABLE leak_copy AS SELECT id, ssn FROM {t}"), connection);
        var error = await Assert.ThrowsAsync<PostgresException>(() => copy.ExecuteNonQueryAsync());
        Assert.Equal("42501", error.SqlState);
        Assert.Equal("copying protected columns into a new object would escape masking", error.MessageText);

        // Reading only unprotected columns is not a copy of protected data.
        await using var names = new NpgsqlCommand(Sql("CREATE TEMP TABLE names_only AS SELECT id, name FROM {t}"), connection);
        await names.ExecuteNonQueryAsync();
    }

    [Fact]
    public async Task Copy_to_stdout_is_masked_in_text_csv_and_binary_formats()
    {
        await using var connection = await OpenAsync();
        foreach (var copy in new[]
        {
            Sql("COPY {t} TO STDOUT"),
            Sql("COPY {t} (id, ssn) TO STDOUT WITH (FORMAT csv, HEADER true)"),
            Sql("COPY (SELECT id, ssn, name FROM {t}) TO STDOUT"),
            Sql("COPY (SELECT * FROM {v}) TO STDOUT (FORMAT csv)"),
        })
        {
            using var reader = await connection.BeginTextExportAsync(copy);
            var text = await reader.ReadToEndAsync();
            Assert.Contains("****", text, StringComparison.Ordinal);
            AssertNoSsn(text);
        }

        var table = new StringBuilder();
        await using (var binary = await connection.BeginBinaryExportAsync(Sql("COPY {t} (id, ssn, name) TO STDOUT (FORMAT binary)")))
        {
            while (await binary.StartRowAsync() != -1)
            {
                table.Append(await binary.ReadAsync<int>(NpgsqlDbType.Integer)).Append('|');
                table.Append(binary.IsNull ? "NULL" : await binary.ReadAsync<string>(NpgsqlDbType.Text)).Append('|');
                table.Append(await binary.ReadAsync<string>(NpgsqlDbType.Text)).Append('\n');
            }
        }

        Assert.Equal("1|****|Alice\n2|****|Bob\n", table.ToString());

        // psql's \copy is COPY … TO STDOUT as well.
        var psql = await PsqlAsync(Sql("\\copy {t} (id, ssn) to stdout"));
        Assert.Equal("1\t****\n2\t****", psql.Trim());
    }

    [Fact]
    public async Task A_cursor_fetch_is_masked()
    {
        await using var connection = await OpenAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        await using (var declare = new NpgsqlCommand(Sql("DECLARE c CURSOR FOR SELECT ssn, upper(ssn) FROM {t} ORDER BY id"), connection, transaction))
        {
            await declare.ExecuteNonQueryAsync();
        }

        await using var fetch = new NpgsqlCommand("FETCH ALL FROM c", connection, transaction);
        Assert.Equal(["****", "****", "****", "****"], await ReadAllAsync(fetch));

        var text = await PsqlAsync(Sql("BEGIN; DECLARE k CURSOR FOR SELECT ssn, ssn::text || '!' FROM {t}; FETCH 1 FROM k; FETCH 1 FROM k; COMMIT;"));
        AssertNoSsn(text);
        Assert.Contains("****|****", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_prepared_statement_re_executed_after_ALTER_TABLE_is_masked_by_its_current_shape()
    {
        var table = "prep_" + Guid.NewGuid().ToString("N")[..8];
        await ExecuteDirectAsync($"CREATE TABLE {table} (id int, ssn text, other text); INSERT INTO {table} VALUES (1, '{Ssns[0]}', 'x')");
        await using var gateway = await GatewayHost.StartAsync(fixture.Server, o =>
        {
            o.Extra["NhiAudit:Policy:Masking:0:Name"] = "pii";
            o.Extra["NhiAudit:Policy:Masking:0:Columns:0"] = $"public.{table}.ssn";
        });
        await using var connection = new NpgsqlConnection(gateway.ConnectionString(gateway.MintToken("prepared")));
        await connection.OpenAsync();
        await using var select = new NpgsqlCommand($"SELECT id, ssn FROM {table}", connection);
        await select.PrepareAsync();
        Assert.Equal(["1", "****"], await ReadAllAsync(select));

        // Outside the gateway, the protected column is dropped and added again: it gets a new attribute number, and the
        // server re-plans the prepared statement, which Npgsql re-executes without asking for its description.
        await ExecuteDirectAsync($"ALTER TABLE {table} DROP COLUMN ssn; ALTER TABLE {table} ADD COLUMN ssn text; UPDATE {table} SET ssn = '{Ssns[1]}'");
        Assert.Equal(["1", "****"], await ReadAllAsync(select));

        // Through the gateway too (without renaming the protected column: that is refused, it would leave its rule).
        await using (var alter = new NpgsqlCommand($"ALTER TABLE {table} DROP COLUMN other; ALTER TABLE {table} ADD COLUMN spare int; ALTER TABLE {table} DROP COLUMN spare", connection))
        {
            await alter.ExecuteNonQueryAsync();
        }

        Assert.Equal(["1", "****"], await ReadAllAsync(select));
    }

    [Fact]
    public async Task Masking_rules_reload_from_the_policy_file_while_the_session_stays_open()
    {
        var policyFile = Path.Combine(PostgresServer.TempRoot, "masking-policy-" + Guid.NewGuid().ToString("N")[..8] + ".json");
        await WriteMaskingPolicyAsync(policyFile, "ssn");
        await using var gateway = await GatewayHost.StartAsync(fixture.Server, o => o.Extra["NhiAudit:Policy:File"] = policyFile);
        try
        {
            await using var connection = new NpgsqlConnection(gateway.ConnectionString(gateway.MintToken("reload")));
            await connection.OpenAsync();
            await using var select = new NpgsqlCommand(Sql("SELECT name, ssn FROM {t} WHERE id = 1"), connection);
            Assert.Equal(["Alice", "****"], await ReadAllAsync(select));

            // The rule moves from ssn to name; the open session follows at its next statement.
            await WriteMaskingPolicyAsync(policyFile, "name");
            var deadline = DateTime.UtcNow.AddSeconds(20);
            List<string> values;
            do
            {
                await Task.Delay(200);
                values = await ReadAllAsync(select);
            }
            while (values[0] != "****" && DateTime.UtcNow < deadline);

            Assert.Equal(["****", Ssns[0]], values);
        }
        finally
        {
            File.Delete(policyFile);
        }
    }

    private Task WriteMaskingPolicyAsync(string path, string column) =>
        File.WriteAllTextAsync(path, System.Text.Json.JsonSerializer.Serialize(new
        {
            Policy = new { Rules = Array.Empty<object>(), Masking = new[] { new { Name = "reloadable", Columns = new[] { $"public.{_table}.{column}" }, Strategy = "Redact" } } },
        }));

    [Fact]
    public async Task An_error_detail_that_quotes_a_protected_value_is_masked()
    {
        await using var connection = await OpenAsync();
        await using (var insert = new NpgsqlCommand(Sql("INSERT INTO {t} (id, name, ssn) SELECT 3, 'Eve', ssn FROM {t} WHERE id = 1"), connection))
        {
            var error = await Assert.ThrowsAsync<PostgresException>(() => insert.ExecuteNonQueryAsync());
            Assert.Equal("23505", error.SqlState);
            Assert.Equal("Key (ssn)=(****) already exists.", error.Detail);
        }

        await using (var notNull = new NpgsqlCommand(Sql("INSERT INTO {t} (id, name, ssn) SELECT 4, NULL, ssn FROM {t} WHERE id = 2"), connection))
        {
            var error = await Assert.ThrowsAsync<PostgresException>(() => notNull.ExecuteNonQueryAsync());
            Assert.Equal("23502", error.SqlState);
            AssertNoSsn(error.Detail ?? "");
        }

        await using (var cast = new NpgsqlCommand(Sql("SELECT ssn::int FROM {t}"), connection))
        {
            var error = await Assert.ThrowsAsync<PostgresException>(() => cast.ExecuteNonQueryAsync());
            Assert.Equal("22P02", error.SqlState);
            AssertNoSsn(error.MessageText);
        }

        // The session goes on.
        await using var ok = new NpgsqlCommand("SELECT 1", connection);
        Assert.Equal(1, await ok.ExecuteScalarAsync());
    }

    [Fact]
    public async Task The_log_names_the_masked_columns_and_never_their_values()
    {
        await using (var connection = await OpenAsync("masking-log"))
        {
            await using var select = new NpgsqlCommand(Sql("SELECT id, ssn AS tax, upper(ssn) FROM {t} ORDER BY id"), connection);
            await ReadAllAsync(select);
            await using var insert = new NpgsqlCommand(Sql("INSERT INTO {t} (id, name, ssn) SELECT 5, 'Eve', ssn FROM {t} WHERE id = 1"), connection);
            await Assert.ThrowsAsync<PostgresException>(() => insert.ExecuteNonQueryAsync());
        }

        var records = await _gateway.ReadRecordsAsync();
        var response = records.Last(r => r.Str("type") == "pg.response" && r.TryGetProperty("masked", out _) && r.GetProperty("masked").TryGetProperty("columns", out _) && r.GetProperty("masked").GetProperty("columns").GetArrayLength() == 2);
        var columns = response.GetProperty("masked").GetProperty("columns").EnumerateArray().Select(c => c.GetString()!).ToList();
        Assert.Contains($"tax ← public.{_table}.ssn (pii)", columns);
        Assert.Contains(columns, c => c.StartsWith("upper ← ", StringComparison.Ordinal));
        Assert.Equal(4, response.GetProperty("masked").GetProperty("values").GetInt32());

        // The captured rows are the masked ones.
        var sample = response.GetProperty("sample").EnumerateArray().Select(r => string.Join("|", r.EnumerateArray().Select(v => v.GetString()))).ToList();
        Assert.Equal(["1|****|****", "2|****|****"], sample);

        var logText = string.Join("\n", records.Where(r => r.Str("type") != "pg.request").Select(r => r.GetRawText()));
        AssertNoSsn(logText);
        Assert.Contains("(****)", logText, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unreadable_COPY_format_is_refused_rather_than_passed_unmasked()
    {
        await using var connection = await OpenAsync();
        await using var command = new NpgsqlCommand(Sql("COPY {t} TO STDOUT WITH (FORMAT csv, DELIMITER 'ab')"), connection);
        var error = await Assert.ThrowsAsync<PostgresException>(() => command.ExecuteNonQueryAsync());
        Assert.Equal("42501", error.SqlState);
        Assert.Contains("masking", error.MessageText, StringComparison.Ordinal);

        await using var ok = new NpgsqlCommand("SELECT 1", connection);
        Assert.Equal(1, await ok.ExecuteScalarAsync());
    }

    [Fact]
    public async Task Detectors_mask_values_in_free_text_columns_and_messages()
    {
        await using var connection = await OpenAsync();
        await using var command = new NpgsqlCommand("SELECT 'mail bob@example.org or pay 4111-1111-1111-1111 now', 'order 4111-1111-1111-1112'", connection);
        var values = await ReadAllAsync(command);
        Assert.Equal(["mail **** or pay **** now", "order 4111-1111-1111-1112"], values);

        var notices = new List<string>();
        connection.Notice += (_, e) => notices.Add(e.Notice.MessageText);
        await using var raise = new NpgsqlCommand("DO $$ BEGIN RAISE NOTICE 'contact %', 'carol@example.com'; END $$", connection);
        await raise.ExecuteNonQueryAsync();
        Assert.Equal(["contact ****"], notices);
    }

}
