using System.Data;
using NhiAudit.IntegrationTests.Infrastructure;
using Npgsql;
using NpgsqlTypes;

namespace NhiAudit.IntegrationTests.Gateway;

/// <summary>Npgsql, the way .NET workloads talk to PostgreSQL, through the gateway against a real PostgreSQL 15.</summary>
[Collection(PostgresCollectionDefinition.Name)]
public sealed class NpgsqlThroughGatewayTests(PostgresServerFixture fixture) : IAsyncLifetime
{
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync() => _gateway = await GatewayHost.StartAsync(fixture.Server);

    public async Task DisposeAsync() => await _gateway.DisposeAsync();

    private async Task<NpgsqlConnection> OpenAsync(string subject = "ci-job", Action<NpgsqlConnectionStringBuilder>? configure = null)
    {
        var connection = new NpgsqlConnection(_gateway.ConnectionString(_gateway.MintToken(subject), configure));
        await connection.OpenAsync();
        return connection;
    }

    [Fact]
    public async Task Simple_and_extended_queries_return_the_servers_results_and_are_audited_with_parameters()
    {
        await using var connection = await OpenAsync("npgsql-basic");
        var table = "t_" + Guid.NewGuid().ToString("N")[..8];
        await using (var create = new NpgsqlCommand($"CREATE TABLE {table} (id int primary key, name text, amount numeric, at timestamptz, flag bool, u uuid)", connection))
        {
            await create.ExecuteNonQueryAsync();
        }

        var when = new DateTime(2026, 11, 28, 8, 0, 0, DateTimeKind.Utc);
        var id = Guid.Parse("6f9619ff-8b86-d011-b42d-00c04fc964ff");
        await using (var insert = new NpgsqlCommand($"INSERT INTO {table} VALUES ($1, $2, $3, $4, $5, $6)", connection))
        {
            insert.Parameters.Add(new NpgsqlParameter { Value = 7 });
            insert.Parameters.Add(new NpgsqlParameter { Value = "seven" });
            insert.Parameters.Add(new NpgsqlParameter { Value = 12.5m });
            insert.Parameters.Add(new NpgsqlParameter { Value = when });
            insert.Parameters.Add(new NpgsqlParameter { Value = true });
            insert.Parameters.Add(new NpgsqlParameter { Value = id });
            Assert.Equal(1, await insert.ExecuteNonQueryAsync());
        }

        await using (var select = new NpgsqlCommand($"SELECT name, amount, at, u FROM {table} WHERE id = $1", connection))
        {
            select.Parameters.Add(new NpgsqlParameter { Value = 7 });
            await using var reader = await select.ExecuteReaderAsync();
            Assert.True(await reader.ReadAsync());
            Assert.Equal("seven", reader.GetString(0));
            Assert.Equal(12.5m, reader.GetDecimal(1));
            Assert.Equal(when, reader.GetDateTime(2));
            Assert.Equal(id, reader.GetGuid(3));
        }

        var records = await _gateway.ReadRecordsAsync();
        var insertRecord = records.OfType("pg.request").Single(r => r.Str("kind") == "INSERT" && r.Str("text")!.Contains(table, StringComparison.Ordinal));
        Assert.Equal("npgsql-basic", insertRecord.Subject());
        Assert.Equal("extended", insertRecord.Str("queryMode"));
        var parameters = insertRecord.GetProperty("params").EnumerateArray().Select(p => p.GetString()).ToArray();
        Assert.Equal<IEnumerable<string?>>(["7", "seven", "12.5", "2026-11-28T08:00:00Z", "true", "6f9619ff-8b86-d011-b42d-00c04fc964ff"], parameters);
        var response = records.OfType("pg.response").Single(r => r.GetProperty("request").GetInt64() == insertRecord.GetProperty("seq").GetInt64());
        Assert.Equal("INSERT 0 1", response.Str("tag"));
    }

    [Fact]
    public async Task Prepared_statements_reexecuted_are_audited_every_time_with_their_text()
    {
        await using var connection = await OpenAsync("npgsql-prepared");
        await using var command = new NpgsqlCommand("SELECT $1::int + 1", connection);
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = 0 });
        await command.PrepareAsync();
        for (var i = 0; i < 5; i++)
        {
            command.Parameters[0].Value = i;
            Assert.Equal(i + 1, (int)(await command.ExecuteScalarAsync())!);
        }

        var records = await _gateway.ReadRecordsAsync();
        var executions = records.OfType("pg.request").Where(r => r.Subject() == "npgsql-prepared" && r.Str("text") == "SELECT $1::int + 1").ToList();
        Assert.Equal(5, executions.Count);
        Assert.All(executions, e => Assert.False(string.IsNullOrEmpty(e.Str("statement"))));
        Assert.Equal<IEnumerable<string?>>(["0", "1", "2", "3", "4"], executions.Select(e => e.GetProperty("params")[0].GetString()).ToArray());
    }

    [Fact]
    public async Task A_batch_is_pipelined_and_each_statement_gets_its_own_records()
    {
        await using var connection = await OpenAsync("npgsql-batch");
        await using var batch = new NpgsqlBatch(connection)
        {
            BatchCommands =
            {
                new NpgsqlBatchCommand("SELECT 1"),
                new NpgsqlBatchCommand("SELECT 'two'"),
                new NpgsqlBatchCommand("SELECT generate_series(1, 3)"),
            },
        };
        await using (var reader = await batch.ExecuteReaderAsync())
        {
            Assert.True(await reader.ReadAsync());
            Assert.Equal(1, reader.GetInt32(0));
            Assert.True(await reader.NextResultAsync());
            Assert.True(await reader.ReadAsync());
            Assert.Equal("two", reader.GetString(0));
            Assert.True(await reader.NextResultAsync());
            var rows = 0;
            while (await reader.ReadAsync())
            {
                rows++;
            }

            Assert.Equal(3, rows);
        }

        var records = await _gateway.ReadRecordsAsync();
        string[] texts = ["SELECT 1", "SELECT 'two'", "SELECT generate_series(1, 3)"];
        var requests = records.OfType("pg.request").Where(r => r.Subject() == "npgsql-batch" && texts.Contains(r.Str("text"))).ToList();
        Assert.Equal<IEnumerable<string?>>(["SELECT 1", "SELECT 'two'", "SELECT generate_series(1, 3)"], requests.Select(r => r.Str("text")).ToArray());
        var lastResponse = records.OfType("pg.response").Single(r => r.GetProperty("request").GetInt64() == requests[2].GetProperty("seq").GetInt64());
        Assert.Equal(3, lastResponse.GetProperty("rows").GetInt64());
    }

    [Fact]
    public async Task Binary_copy_imports_and_exports_through_the_gateway()
    {
        await using var connection = await OpenAsync("npgsql-copy");
        var table = "copy_" + Guid.NewGuid().ToString("N")[..8];
        await using (var create = new NpgsqlCommand($"CREATE TABLE {table} (id int, payload bytea)", connection))
        {
            await create.ExecuteNonQueryAsync();
        }

        const int rows = 20_000;
        var payload = new byte[100];
        await using (var importer = await connection.BeginBinaryImportAsync($"COPY {table} (id, payload) FROM STDIN (FORMAT BINARY)"))
        {
            for (var i = 0; i < rows; i++)
            {
                payload[0] = (byte)i;
                await importer.StartRowAsync();
                await importer.WriteAsync(i, NpgsqlDbType.Integer);
                await importer.WriteAsync(payload, NpgsqlDbType.Bytea);
            }

            Assert.Equal((ulong)rows, await importer.CompleteAsync());
        }

        var exported = 0;
        long sum = 0;
        await using (var exporter = await connection.BeginBinaryExportAsync($"COPY {table} (id, payload) TO STDOUT (FORMAT BINARY)"))
        {
            while (await exporter.StartRowAsync() != -1)
            {
                sum += await exporter.ReadAsync<int>(NpgsqlDbType.Integer);
                var bytes = await exporter.ReadAsync<byte[]>(NpgsqlDbType.Bytea);
                Assert.Equal(100, bytes.Length);
                exported++;
            }
        }

        Assert.Equal(rows, exported);
        Assert.Equal((long)rows * (rows - 1) / 2, sum);

        var records = await _gateway.ReadRecordsAsync();
        var copyIn = records.OfType("pg.request").Single(r => r.Subject() == "npgsql-copy" && r.Str("text")!.Contains("FROM STDIN", StringComparison.Ordinal));
        Assert.Equal("COPY", copyIn.Str("kind"));
        var copyInResponse = records.OfType("pg.response").Single(r => r.GetProperty("request").GetInt64() == copyIn.GetProperty("seq").GetInt64());
        Assert.Equal($"COPY {rows}", copyInResponse.Str("tag"));
        Assert.True(copyInResponse.GetProperty("bytesIn").GetInt64() > rows * 100);
    }

    [Fact]
    public async Task A_running_query_is_cancelled_through_the_gateway()
    {
        await using var connection = await OpenAsync("npgsql-cancel");
        await using var command = new NpgsqlCommand("SELECT pg_sleep(30)", connection);
        var running = command.ExecuteNonQueryAsync();

        // Cancel only once the server is running it, or the cancel would race the query's arrival.
        await using (var admin = new NpgsqlConnection(fixture.Server.AdminConnectionString))
        {
            await admin.OpenAsync();
            var deadline = DateTime.UtcNow.AddSeconds(15);
            while (DateTime.UtcNow < deadline)
            {
                await using var probe = new NpgsqlCommand("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = 'SELECT pg_sleep(30)'", admin);
                if ((long)(await probe.ExecuteScalarAsync())! > 0)
                {
                    break;
                }

                await Task.Delay(50);
            }
        }

        var started = DateTime.UtcNow;
        command.Cancel();
        var cancelled = await Assert.ThrowsAsync<OperationCanceledException>(() => running);
        Assert.Equal("57014", Assert.IsType<PostgresException>(cancelled.InnerException).SqlState);
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(10));

        // The session goes on after the cancel.
        await using var next = new NpgsqlCommand("SELECT 41 + 1", connection);
        Assert.Equal(42, (int)(await next.ExecuteScalarAsync())!);

        var records = await _gateway.ReadRecordsAsync();
        Assert.Contains(records.OfType("pg.cancel"), r => r.GetProperty("matched").GetBoolean());
        var sleep = records.OfType("pg.request").Single(r => r.Subject() == "npgsql-cancel" && r.Str("text") == "SELECT pg_sleep(30)");
        var outcome = records.OfType("pg.response").Single(r => r.GetProperty("request").GetInt64() == sleep.GetProperty("seq").GetInt64());
        Assert.Equal("57014", outcome.Str("sqlstate"));
    }

    [Fact]
    public async Task Notices_and_notifications_reach_the_client()
    {
        await using var listener = await OpenAsync("npgsql-listen");
        await using var notifier = await OpenAsync("npgsql-notify");
        var notices = new List<string>();
        listener.Notice += (_, e) => notices.Add(e.Notice.MessageText);
        var received = new TaskCompletionSource<string>();
        listener.Notification += (_, e) => received.TrySetResult(e.Payload);

        await using (var listen = new NpgsqlCommand("LISTEN deploys; DO $$ BEGIN RAISE NOTICE 'hello from plpgsql'; END $$;", listener))
        {
            await listen.ExecuteNonQueryAsync();
        }

        Assert.Contains("hello from plpgsql", notices);
        await using (var notify = new NpgsqlCommand("NOTIFY deploys, 'release 42'", notifier))
        {
            await notify.ExecuteNonQueryAsync();
        }

        var wait = listener.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("release 42", await received.Task.WaitAsync(TimeSpan.FromSeconds(10)));
        await wait;
    }

    [Fact]
    public async Task Errors_are_relayed_and_recorded_with_their_sqlstate_and_the_session_continues()
    {
        await using var connection = await OpenAsync("npgsql-errors");
        await using (var bad = new NpgsqlCommand("SELECT * FROM no_such_table", connection))
        {
            var error = await Assert.ThrowsAsync<PostgresException>(() => bad.ExecuteNonQueryAsync());
            Assert.Equal("42P01", error.SqlState);
        }

        await using (var good = new NpgsqlCommand("SELECT 'still here'", connection))
        {
            Assert.Equal("still here", await good.ExecuteScalarAsync());
        }

        var records = await _gateway.ReadRecordsAsync();
        var request = records.OfType("pg.request").Single(r => r.Subject() == "npgsql-errors" && r.Str("text") == "SELECT * FROM no_such_table");
        var response = records.OfType("pg.response").Single(r => r.GetProperty("request").GetInt64() == request.GetProperty("seq").GetInt64());
        Assert.Equal("42P01", response.Str("sqlstate"));
        Assert.Contains("no_such_table", response.Str("error"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_server_sees_the_identity_in_application_name()
    {
        await using var connection = await OpenAsync("mi-orders-reader", b => b.ApplicationName = "spoofed");
        await using var command = new NpgsqlCommand("SELECT application_name, current_user FROM pg_stat_activity WHERE pid = pg_backend_pid()", connection);
        await using var reader = await command.ExecuteReaderAsync(CommandBehavior.SingleRow);
        Assert.True(await reader.ReadAsync());
        var applicationName = reader.GetString(0);
        Assert.StartsWith("nhi:", applicationName, StringComparison.Ordinal);
        Assert.Contains("contoso/orders", applicationName, StringComparison.Ordinal);
        Assert.Equal(PostgresServer.AppUser, reader.GetString(1));
        await reader.DisposeAsync();

        // The client still gets its own name back, at login and after a reset, as it would direct.
        Assert.Equal("spoofed", connection.PostgresParameters["application_name"]);
        foreach (var sql in new[] { "SET application_name = 'renamed'", "DISCARD ALL" })
        {
            await using var reset = new NpgsqlCommand(sql, connection);
            await reset.ExecuteNonQueryAsync();
        }

        Assert.Equal("spoofed", connection.PostgresParameters["application_name"]);
        await using (var rename = new NpgsqlCommand("SET application_name = 'renamed'", connection))
        {
            await rename.ExecuteNonQueryAsync();
        }

        Assert.Equal("renamed", connection.PostgresParameters["application_name"]);
    }

    [Fact]
    public async Task The_client_gets_the_backends_real_process_id_and_can_act_on_it()
    {
        await using var connection = await OpenAsync("npgsql-pid");
        await using (var pid = new NpgsqlCommand("SELECT pg_backend_pid()", connection))
        {
            Assert.Equal(connection.ProcessID, (int)(await pid.ExecuteScalarAsync())!);
        }

        // Another session ends it by that id, as tests and operators do direct.
        await using var other = await OpenAsync("npgsql-pid-killer");
        await using (var terminate = new NpgsqlCommand($"SELECT pg_terminate_backend({connection.ProcessID})", other))
        {
            Assert.True((bool)(await terminate.ExecuteScalarAsync())!);
        }

        await using var after = new NpgsqlCommand("SELECT 1", connection);
        var error = await Assert.ThrowsAnyAsync<NpgsqlException>(() => after.ExecuteScalarAsync());
        Assert.Equal("57P01", (error as PostgresException ?? error.InnerException as PostgresException)?.SqlState);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(5)]
    public async Task A_pooled_data_source_resets_each_connection_on_close_and_keeps_working(int maxAutoPrepare)
    {
        // Without auto-prepare Npgsql resets with DISCARD ALL; with it, with RESET ALL, UNLISTEN *,
        // pg_advisory_unlock_all() and DISCARD SEQUENCES/TEMP, keeping its prepared statements.
        var builder = new NpgsqlDataSourceBuilder(_gateway.ConnectionString(_gateway.MintToken($"npgsql-pool-{maxAutoPrepare}"), b =>
        {
            b.Pooling = true;
            b.MaxPoolSize = 2;
            b.NoResetOnClose = false;
            b.MaxAutoPrepare = maxAutoPrepare;
            b.AutoPrepareMinUsages = 2;
        }));
        await using var dataSource = builder.Build();
        for (var i = 0; i < 200; i++)
        {
            await using var connection = await dataSource.OpenConnectionAsync();
            await using var command = new NpgsqlCommand("SELECT current_setting('search_path') || '|' || $1::text", connection);
            command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = i });
            Assert.Equal("\"$user\", public|" + i, await command.ExecuteScalarAsync());
            await using var set = new NpgsqlCommand("SET search_path = pg_catalog", connection);
            await set.ExecuteNonQueryAsync();
        }

        var resets = (await _gateway.ReadRecordsAsync()).OfType("pg.request")
            .Count(r => r.Subject() == $"npgsql-pool-{maxAutoPrepare}" && r.Str("text") is "DISCARD ALL" or "RESET ALL");
        Assert.True(resets >= 199, $"{resets} resets recorded");
    }
}
