using System.Data;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Npgsql;
using NpgsqlTypes;

namespace NhiAudit.IntegrationTests.Gateway.ClientMatrix;

/// <summary>Npgsql 10 behaviours a .NET workload relies on, each run direct and through the gateway.</summary>
public static class NpgsqlMatrixCases
{
    public static IReadOnlyList<MatrixCase> All { get; } =
    [
        new("npgsql.pool.open-close-1000", PoolOpenClose1000Async),
        new("npgsql.auto-prepare.invalidated-by-ddl", AutoPrepareInvalidatedByDdlAsync),
        new("npgsql.explicit-prepare.invalidated-by-ddl", ExplicitPrepareInvalidatedByDdlAsync),
        new("npgsql.batch.error-barriers", BatchWithErrorBarriersAsync),
        new("npgsql.command-behavior.schema-only-key-info-sequential", CommandBehaviorsAsync),
        new("npgsql.call.procedure-out-inout", CallProcedureWithOutParametersAsync),
        new("npgsql.copy.binary", BinaryCopyAsync),
        new("npgsql.copy.raw-binary", RawBinaryCopyAsync),
        new("npgsql.copy.text", TextCopyAsync),
        new("npgsql.cancel.command-cancel", CancelWithCommandCancelAsync),
        new("npgsql.cancel.cancellation-token", CancelWithTokenAsync),
        new("npgsql.cancel.command-timeout", CancelWithCommandTimeoutAsync),
        new("npgsql.listen-notify.wait", ListenNotifyAsync),
        new("npgsql.notices", NoticesAsync),
        new("npgsql.types.reload-enum-composite-domain-range", ReloadTypesAsync),
        new("npgsql.search-path.set", SearchPathSetAsync),
        new("npgsql.search-path.startup-parameter", SearchPathStartupParameterAsync),
        new("npgsql.options.statement-timeout", OptionsStatementTimeoutAsync),
        new("npgsql.savepoints", SavepointsAsync),
        new("npgsql.two-phase-commit", TwoPhaseCommitAsync),
        new("npgsql.keepalive", KeepaliveAsync),
        new("npgsql.process-id-is-the-backend-pid", ProcessIdAsync),
        new("npgsql.terminated-by-server.pid-from-process-id", TerminatedByProcessIdAsync),
        new("npgsql.terminated-by-server.pid-from-pg-backend-pid", TerminatedByBackendPidAsync),
        new("npgsql.parameter-status.application-name", ParameterStatusAsync),
    ];

    private static async Task ExecAsync(NpgsqlConnection connection, string sql, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(ct);
    }

    private static async Task<T?> ScalarAsync<T>(NpgsqlConnection connection, string sql, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        var value = await command.ExecuteScalarAsync(ct);
        return value is DBNull or null ? default : (T)value;
    }

    /// <summary>
    /// A pooled data source opened and closed 1000 times; each time the session changes a setting, and the pool's reset
    /// (DISCARD ALL when the connection is reused) must undo it, so the next user of the pooled connection sees the default.
    /// </summary>
    private static async Task PoolOpenClose1000Async(MatrixSide side, MatrixTranscript t, CancellationToken ct)
    {
        await using var dataSource = NpgsqlDataSource.Create(side.NpgsqlConnectionString(b =>
        {
            b.Pooling = true;
            b.MinPoolSize = 0;
            b.MaxPoolSize = 3;
        }));
        var leaked = 0;
        var completed = 0;
        string? firstError = null;
        for (var i = 0; i < 1000 && firstError is null; i++)
        {
            try
            {
                await using var connection = await dataSource.OpenConnectionAsync(ct);
                var timeout = await ScalarAsync<string>(connection, "SHOW statement_timeout", ct);
                if (timeout != "0")
                {
                    leaked++;
                }

                await ExecAsync(connection, "SET statement_timeout = '1234ms'", ct);
                completed++;
            }
            catch (Exception ex) when (ex is NpgsqlException or InvalidOperationException)
            {
                firstError = $"open/close #{i + 1}: {MatrixTranscript.DescribeException(ex)}";
            }
        }

        t.Add("completed open/use/close cycles", completed);
        t.Add("cycles that saw the previous user's statement_timeout", leaked);
        t.Add("first error", firstError);
        t.Check(completed == 1000 && leaked == 0, "1000 pooled open/close cycles, each starting from a reset session");
    }

    private static async Task AutoPrepareInvalidatedByDdlAsync(MatrixSide side, MatrixTranscript t, CancellationToken ct)
    {
        await using var connection = await side.OpenAsync(b =>
        {
            b.MaxAutoPrepare = 10;
            b.AutoPrepareMinUsages = 2;
        }, ct);
        var table = $"ap_{side.Suffix}";
        await ExecAsync(connection, $"CREATE TABLE {table} (id int PRIMARY KEY, v int); INSERT INTO {table} VALUES (1, 10), (2, 20), (3, 30)", ct);
        for (var i = 0; i < 5; i++)
        {
            await t.Attempt($"select #{i + 1}", async () =>
            {
                await using var select = new NpgsqlCommand($"SELECT id, v FROM {table} WHERE id = $1", connection);
                select.Parameters.Add(new NpgsqlParameter<int> { TypedValue = (i % 3) + 1 });
                await using var reader = await select.ExecuteReaderAsync(ct);
                await t.RowsAsync($"select #{i + 1}", reader, ct);
            });
        }

        await t.QueryAsync(connection, "SELECT statement FROM pg_prepared_statements WHERE statement LIKE '%FROM ap_%' ORDER BY statement", ct);
        await ExecAsync(connection, $"ALTER TABLE {table} ALTER COLUMN v TYPE text USING 'v' || v", ct);
        for (var i = 0; i < 3; i++)
        {
            await t.Attempt($"after ALTER select #{i + 1}", async () =>
            {
                await using var select = new NpgsqlCommand($"SELECT id, v FROM {table} WHERE id = $1", connection);
                select.Parameters.Add(new NpgsqlParameter<int> { TypedValue = 2 });
                await using var reader = await select.ExecuteReaderAsync(ct);
                await t.RowsAsync($"after ALTER select #{i + 1}", reader, ct);
            });
        }

        await t.QueryAsync(connection, "SELECT 'still usable'", ct);
    }

    private static async Task ExplicitPrepareInvalidatedByDdlAsync(MatrixSide side, MatrixTranscript t, CancellationToken ct)
    {
        await using var connection = await side.OpenAsync(cancellationToken: ct);
        var table = $"ep_{side.Suffix}";
        await ExecAsync(connection, $"CREATE TABLE {table} (id int PRIMARY KEY, v int); INSERT INTO {table} VALUES (1, 10), (2, 20)", ct);
        await using var select = new NpgsqlCommand($"SELECT * FROM {table} WHERE id = $1", connection);
        select.Parameters.Add(new NpgsqlParameter<int> { TypedValue = 1 });
        await select.PrepareAsync(ct);
        t.Add("prepared", select.IsPrepared);
        for (var i = 0; i < 2; i++)
        {
            await t.Attempt($"prepared select #{i + 1}", async () =>
            {
                await using var reader = await select.ExecuteReaderAsync(ct);
                await t.RowsAsync($"prepared select #{i + 1}", reader, ct);
            });
        }

        await ExecAsync(connection, $"ALTER TABLE {table} ALTER COLUMN v TYPE text USING 'v' || v, ADD COLUMN w int DEFAULT 7", ct);
        for (var i = 0; i < 3; i++)
        {
            await t.Attempt($"after ALTER prepared select #{i + 1}", async () =>
            {
                await using var reader = await select.ExecuteReaderAsync(ct);
                await t.RowsAsync($"after ALTER prepared select #{i + 1}", reader, ct);
            });
        }

        await t.Attempt("re-prepare", async () =>
        {
            await select.PrepareAsync(ct);
            await using var reader = await select.ExecuteReaderAsync(ct);
            await t.RowsAsync("re-prepared select", reader, ct);
        });
        await select.UnprepareAsync(ct);
        await t.QueryAsync(connection, "SELECT count(*) FROM pg_prepared_statements", ct);
    }

    private static async Task BatchWithErrorBarriersAsync(MatrixSide side, MatrixTranscript t, CancellationToken ct)
    {
        await using var connection = await side.OpenAsync(cancellationToken: ct);
        foreach (var barriers in new[] { false, true })
        {
            var table = $"b{(barriers ? 1 : 0)}_{side.Suffix}";
            await ExecAsync(connection, $"CREATE TABLE {table} (id int PRIMARY KEY)", ct);
            await using var batch = new NpgsqlBatch(connection)
            {
                EnableErrorBarriers = barriers,
                BatchCommands =
                {
                    new NpgsqlBatchCommand($"INSERT INTO {table} VALUES (1)"),
                    new NpgsqlBatchCommand($"INSERT INTO {table} VALUES (1)"),
                    new NpgsqlBatchCommand($"INSERT INTO {table} VALUES (3)"),
                    new NpgsqlBatchCommand("SELECT 'last'"),
                },
            };
            try
            {
                await using var reader = await batch.ExecuteReaderAsync(ct);
                do
                {
                    await t.RowsAsync($"barriers={barriers}", reader, ct);
                }
                while (await reader.NextResultAsync(ct));

                t.Add($"barriers={barriers}: no error");
            }
            catch (PostgresException ex)
            {
                t.Add($"barriers={barriers}: {MatrixTranscript.DescribeException(ex)} at batch command {(ex.BatchCommand is null ? "(none)" : batch.BatchCommands.Cast<NpgsqlBatchCommand>().ToList().FindIndex(c => ReferenceEquals(c, ex.BatchCommand)).ToString(System.Globalization.CultureInfo.InvariantCulture))}");
            }

            t.Add($"barriers={barriers}: records affected", string.Join(",", batch.BatchCommands.Cast<NpgsqlBatchCommand>().Select(c => c.RecordsAffected)));
            await t.QueryAsync(connection, $"SELECT id FROM {table} ORDER BY id", ct);
        }
    }

    private static async Task CommandBehaviorsAsync(MatrixSide side, MatrixTranscript t, CancellationToken ct)
    {
        await using var connection = await side.OpenAsync(cancellationToken: ct);
        var table = $"cb_{side.Suffix}";
        await ExecAsync(connection, $"CREATE TABLE {table} (id serial PRIMARY KEY, name text NOT NULL, amount numeric(10,2), payload bytea, tags text[], at timestamptz, code varchar(12) UNIQUE)", ct);
        var payload = new byte[200_000];
        new Random(42).NextBytes(payload);
        await using (var insert = new NpgsqlCommand($"INSERT INTO {table} (name, amount, payload, tags, at, code) VALUES ('first', 12.34, $1, ARRAY['a','b'], '2026-12-08T10:00:00Z', 'c1')", connection))
        {
            insert.Parameters.Add(new NpgsqlParameter<byte[]> { TypedValue = payload });
            await insert.ExecuteNonQueryAsync(ct);
        }

        var sql = $"SELECT id, name, amount, payload, tags, at, code, amount * 2 AS doubled FROM {table} WHERE id = $1";
        foreach (var behavior in new[] { CommandBehavior.SchemaOnly, CommandBehavior.KeyInfo, CommandBehavior.SchemaOnly | CommandBehavior.KeyInfo })
        {
            await using var command = new NpgsqlCommand(sql, connection);
            command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = 1 });
            await using var reader = await command.ExecuteReaderAsync(behavior, ct);
            foreach (var column in await reader.GetColumnSchemaAsync(ct))
            {
                t.Add($"{behavior} column: {column.ColumnOrdinal} {column.ColumnName} type={column.DataTypeName} size={column.ColumnSize} precision={column.NumericPrecision} scale={column.NumericScale} " +
                      $"key={column.IsKey} unique={column.IsUnique} nullable={column.AllowDBNull} autoincrement={column.IsAutoIncrement} base={column.BaseSchemaName}.{column.BaseTableName}.{column.BaseColumnName} readonly={column.IsReadOnly}");
            }

            var schemaTable = await reader.GetSchemaTableAsync(ct);
            foreach (DataRow row in schemaTable!.Rows)
            {
                t.Add($"{behavior} schema table: {row["ColumnName"]} {row["DataType"]} key={row["IsKey"]} nullable={row["AllowDBNull"]} basetable={row["BaseTableName"]}");
            }

            await t.RowsAsync($"{behavior} rows (payload as length)", new PayloadLengthReader(reader), ct);
        }

        await using (var sequential = new NpgsqlCommand(sql, connection))
        {
            sequential.Parameters.Add(new NpgsqlParameter<int> { TypedValue = 1 });
            await using var reader = await sequential.ExecuteReaderAsync(CommandBehavior.SequentialAccess, ct);
            t.Check(await reader.ReadAsync(ct), "SequentialAccess returns the row");
            t.Add("sequential id", reader.GetInt32(0));
            t.Add("sequential name", await reader.GetFieldValueAsync<string>(1, ct));
            t.Add("sequential amount", reader.GetDecimal(2));
            await using (var stream = await reader.GetStreamAsync(3, ct))
            {
                using var sha = SHA256.Create();
                var hash = await sha.ComputeHashAsync(stream, ct);
                t.Add("sequential payload sha256", Convert.ToHexString(hash));
                t.Check(hash.SequenceEqual(SHA256.HashData(payload)), "the streamed payload is what was inserted");
            }

            t.Add("sequential tags", await reader.GetFieldValueAsync<string[]>(4, ct));
            t.Add("sequential at", reader.GetFieldValue<DateTime>(5));
            t.Check(!await reader.ReadAsync(ct), "one row");
        }
    }

    /// <summary>Reads like the inner reader but gives byte arrays as their length (rows stay short in the transcript).</summary>
    private sealed class PayloadLengthReader(NpgsqlDataReader inner) : System.Data.Common.DbDataReader
    {
        public override object this[int ordinal] => GetValue(ordinal);

        public override object this[string name] => GetValue(GetOrdinal(name));

        public override int Depth => inner.Depth;

        public override int FieldCount => inner.FieldCount;

        public override bool HasRows => inner.HasRows;

        public override bool IsClosed => inner.IsClosed;

        public override int RecordsAffected => inner.RecordsAffected;

        public override bool GetBoolean(int ordinal) => inner.GetBoolean(ordinal);

        public override byte GetByte(int ordinal) => inner.GetByte(ordinal);

        public override long GetBytes(int ordinal, long dataOffset, byte[]? buffer, int bufferOffset, int length) => inner.GetBytes(ordinal, dataOffset, buffer, bufferOffset, length);

        public override char GetChar(int ordinal) => inner.GetChar(ordinal);

        public override long GetChars(int ordinal, long dataOffset, char[]? buffer, int bufferOffset, int length) => inner.GetChars(ordinal, dataOffset, buffer, bufferOffset, length);

        public override string GetDataTypeName(int ordinal) => inner.GetDataTypeName(ordinal);

        public override DateTime GetDateTime(int ordinal) => inner.GetDateTime(ordinal);

        public override decimal GetDecimal(int ordinal) => inner.GetDecimal(ordinal);

        public override double GetDouble(int ordinal) => inner.GetDouble(ordinal);

        public override System.Collections.IEnumerator GetEnumerator() => inner.GetEnumerator();

        public override Type GetFieldType(int ordinal) => inner.GetFieldType(ordinal);

        public override float GetFloat(int ordinal) => inner.GetFloat(ordinal);

        public override Guid GetGuid(int ordinal) => inner.GetGuid(ordinal);

        public override short GetInt16(int ordinal) => inner.GetInt16(ordinal);

        public override int GetInt32(int ordinal) => inner.GetInt32(ordinal);

        public override long GetInt64(int ordinal) => inner.GetInt64(ordinal);

        public override string GetName(int ordinal) => inner.GetName(ordinal);

        public override int GetOrdinal(string name) => inner.GetOrdinal(name);

        public override string GetString(int ordinal) => inner.GetString(ordinal);

        public override object GetValue(int ordinal) => inner.GetValue(ordinal) is byte[] bytes ? $"<{bytes.Length} bytes>" : inner.GetValue(ordinal);

        public override int GetValues(object[] values) => throw new NotSupportedException();

        public override bool IsDBNull(int ordinal) => inner.IsDBNull(ordinal);

        public override bool NextResult() => inner.NextResult();

        public override bool Read() => inner.Read();

        public override Task<bool> ReadAsync(CancellationToken cancellationToken) => inner.ReadAsync(cancellationToken);

        public override Task<bool> IsDBNullAsync(int ordinal, CancellationToken cancellationToken) => inner.IsDBNullAsync(ordinal, cancellationToken);
    }

    private static async Task CallProcedureWithOutParametersAsync(MatrixSide side, MatrixTranscript t, CancellationToken ct)
    {
        await using var connection = await side.OpenAsync(cancellationToken: ct);
        var procedure = $"addup_{side.Suffix}";
        await ExecAsync(connection, $"CREATE PROCEDURE {procedure}(IN a int, INOUT b int, OUT c text) LANGUAGE plpgsql AS $$ BEGIN b := a + b; c := 'sum=' || b; RAISE NOTICE 'addup % + % ', a, b - a; END $$", ct);
        var notices = new List<string>();
        connection.Notice += (_, e) => notices.Add($"{e.Notice.Severity} {e.Notice.SqlState} {e.Notice.MessageText}");

        await t.QueryAsync(connection, $"CALL {procedure}(2, 3, NULL)", ct);

        await t.Attempt("CALL with positional parameters", async () =>
        {
            await using var call = new NpgsqlCommand($"CALL {procedure}($1, $2, NULL)", connection);
            call.Parameters.Add(new NpgsqlParameter<int> { TypedValue = 40 });
            call.Parameters.Add(new NpgsqlParameter<int> { TypedValue = 2 });
            await using var reader = await call.ExecuteReaderAsync(ct);
            await t.RowsAsync("CALL with positional parameters", reader, ct);
        });

        await t.Attempt("CommandType.StoredProcedure with InputOutput and Output parameters", async () =>
        {
            await using var call = new NpgsqlCommand(procedure, connection) { CommandType = CommandType.StoredProcedure };
            call.Parameters.Add(new NpgsqlParameter("a", NpgsqlDbType.Integer) { Value = 5 });
            var b = call.Parameters.Add(new NpgsqlParameter("b", NpgsqlDbType.Integer) { Direction = ParameterDirection.InputOutput, Value = 6 });
            var c = call.Parameters.Add(new NpgsqlParameter("c", NpgsqlDbType.Text) { Direction = ParameterDirection.Output, Value = DBNull.Value });
            await call.ExecuteNonQueryAsync(ct);
            t.Add("INOUT b", b.Value);
            t.Add("OUT c", c.Value);
        });

        await t.Attempt("CALL with a wrong argument type", async () =>
        {
            await using var call = new NpgsqlCommand($"CALL {procedure}('x', 1, NULL)", connection);
            await call.ExecuteNonQueryAsync(ct);
        });

        t.Add("notices", notices);
    }

    private static async Task BinaryCopyAsync(MatrixSide side, MatrixTranscript t, CancellationToken ct)
    {
        await using var connection = await side.OpenAsync(cancellationToken: ct);
        var table = $"bc_{side.Suffix}";
        await ExecAsync(connection, $"CREATE TABLE {table} (id int, name text, payload bytea, at timestamptz)", ct);
        const int rows = 10_000;
        var at = new DateTime(2026, 12, 8, 0, 0, 0, DateTimeKind.Utc);
        await using (var importer = await connection.BeginBinaryImportAsync($"COPY {table} (id, name, payload, at) FROM STDIN (FORMAT BINARY)", ct))
        {
            for (var i = 0; i < rows; i++)
            {
                await importer.StartRowAsync(ct);
                await importer.WriteAsync(i, NpgsqlDbType.Integer, ct);
                await importer.WriteAsync($"name {i}", NpgsqlDbType.Text, ct);
                await importer.WriteAsync(new[] { (byte)i, (byte)(i >> 8) }, NpgsqlDbType.Bytea, ct);
                if (i % 7 == 0)
                {
                    await importer.WriteNullAsync(ct);
                }
                else
                {
                    await importer.WriteAsync(at.AddSeconds(i), NpgsqlDbType.TimestampTz, ct);
                }
            }

            t.Add("binary import rows", await importer.CompleteAsync(ct));
        }

        long sum = 0, nulls = 0, exported = 0;
        var hash = new StringBuilder();
        await using (var exporter = await connection.BeginBinaryExportAsync($"COPY (SELECT id, name, payload, at FROM {table} ORDER BY id) TO STDOUT (FORMAT BINARY)", ct))
        {
            while (await exporter.StartRowAsync(ct) != -1)
            {
                sum += await exporter.ReadAsync<int>(NpgsqlDbType.Integer, ct);
                var name = await exporter.ReadAsync<string>(NpgsqlDbType.Text, ct);
                var payload = await exporter.ReadAsync<byte[]>(NpgsqlDbType.Bytea, ct);
                if (exporter.IsNull)
                {
                    nulls++;
                    await exporter.SkipAsync(ct);
                }
                else
                {
                    await exporter.ReadAsync<DateTime>(NpgsqlDbType.TimestampTz, ct);
                }

                if (exported < 3)
                {
                    hash.Append(name).Append('/').Append(Convert.ToHexString(payload)).Append(' ');
                }

                exported++;
            }
        }

        t.Add("binary export rows", exported);
        t.Add("binary export sum of ids", sum);
        t.Add("binary export null timestamps", nulls);
        t.Add("binary export first rows", hash.ToString());

        await t.Attempt("binary import cancelled (disposed without Complete)", async () =>
        {
            await using var importer = await connection.BeginBinaryImportAsync($"COPY {table} (id) FROM STDIN (FORMAT BINARY)", ct);
            await importer.StartRowAsync(ct);
            await importer.WriteAsync(-1, NpgsqlDbType.Integer, ct);
        });
        await t.QueryAsync(connection, $"SELECT count(*) FROM {table}", ct);
    }

    private static async Task RawBinaryCopyAsync(MatrixSide side, MatrixTranscript t, CancellationToken ct)
    {
        await using var connection = await side.OpenAsync(cancellationToken: ct);
        var source = $"rs_{side.Suffix}";
        var target = $"rt_{side.Suffix}";
        await ExecAsync(connection, $"CREATE TABLE {source} AS SELECT g AS id, md5(g::text) AS h, g * 1.5 AS n FROM generate_series(1, 5000) g; CREATE TABLE {target} (LIKE {source})", ct);
        var raw = new MemoryStream();
        await using (var export = await connection.BeginRawBinaryCopyAsync($"COPY {source} TO STDOUT (FORMAT BINARY)", ct))
        {
            await export.CopyToAsync(raw, ct);
        }

        t.Add("raw export bytes", raw.Length);
        t.Add("raw export sha256", Convert.ToHexString(SHA256.HashData(raw.ToArray())));
        raw.Position = 0;
        await using (var import = await connection.BeginRawBinaryCopyAsync($"COPY {target} FROM STDIN (FORMAT BINARY)", ct))
        {
            await raw.CopyToAsync(import, ct);
        }

        await t.QueryAsync(connection, $"SELECT count(*), sum(id), count(DISTINCT h) FROM {target}", ct);
        await t.Attempt("raw import of garbage", async () =>
        {
            await using var import = await connection.BeginRawBinaryCopyAsync($"COPY {target} FROM STDIN (FORMAT BINARY)", ct);
            await import.WriteAsync("this is not a binary copy header"u8.ToArray(), ct);
        });
        await t.QueryAsync(connection, "SELECT 'usable after a failed copy'", ct);
    }

    private static async Task TextCopyAsync(MatrixSide side, MatrixTranscript t, CancellationToken ct)
    {
        await using var connection = await side.OpenAsync(cancellationToken: ct);
        var table = $"tc_{side.Suffix}";
        await ExecAsync(connection, $"CREATE TABLE {table} (id int PRIMARY KEY, name text, note text)", ct);
        await using (var writer = await connection.BeginTextImportAsync($"COPY {table} FROM STDIN", ct))
        {
            for (var i = 1; i <= 3000; i++)
            {
                await writer.WriteAsync($"{i}\tname {i}\t{(i % 10 == 0 ? "\\N" : "tab\\there")}\n");
            }
        }

        await t.QueryAsync(connection, $"SELECT count(*), count(note), sum(id) FROM {table}", ct);
        string exported;
        using (var reader = await connection.BeginTextExportAsync($"COPY (SELECT * FROM {table} ORDER BY id) TO STDOUT (FORMAT CSV, HEADER)", ct))
        {
            exported = await reader.ReadToEndAsync(ct);
        }

        t.Add("text export lines", exported.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        t.Add("text export first lines", string.Join(" / ", exported.Split('\n').Take(3)));
        t.Add("text export sha256", Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(exported))));
        await t.Attempt("text import with a malformed row", async () =>
        {
            await using var writer = await connection.BeginTextImportAsync($"COPY {table} FROM STDIN", ct);
            await writer.WriteAsync("5000\tok\tok\nnot-a-number\tbad\tbad\n");
        });
        await t.QueryAsync(connection, $"SELECT count(*) FROM {table}", ct);
    }

    private static async Task CancelScenarioAsync(MatrixSide side, MatrixTranscript t, Func<NpgsqlCommand, Task, CancellationTokenSource, Task> cancel, int? commandTimeout, CancellationToken ct)
    {
        await using var connection = await side.OpenAsync(cancellationToken: ct);
        var marker = $"sleep_{side.Suffix}";
        await using var command = new NpgsqlCommand($"SELECT pg_sleep(10) /* {marker} */", connection);
        if (commandTimeout is { } seconds)
        {
            command.CommandTimeout = seconds;
        }

        using var userToken = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var stopwatch = Stopwatch.StartNew();
        var running = command.ExecuteNonQueryAsync(userToken.Token);
        await cancel(command, running, userToken);
        try
        {
            await running;
            t.Add("pg_sleep(10) was not cancelled");
        }
        catch (Exception ex) when (ex is NpgsqlException or OperationCanceledException)
        {
            t.Add("pg_sleep(10)", MatrixTranscript.DescribeException(ex));
            if (commandTimeout is null)
            {
                t.Check(MatrixTranscript.FindPostgresException(ex)?.SqlState == "57014", "the statement failed with 57014 query_canceled");
            }
            else
            {
                // Npgsql's CommandTimeout: it sends a CancelRequest, swallows the server's 57014 and throws a timeout.
                t.Check(ex is NpgsqlException { InnerException: TimeoutException }, "the statement failed with Npgsql's timeout");
            }
        }

        await using (var admin = await side.OpenAdminAsync(ct))
        {
            await using var still = new NpgsqlCommand("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()", admin);
            still.Parameters.Add(new NpgsqlParameter { Value = marker });
            t.Check((long)(await still.ExecuteScalarAsync(ct))! == 0, "the server no longer runs the cancelled statement");
        }

        t.Check(stopwatch.Elapsed < TimeSpan.FromSeconds(5), $"cancelled within 5 s (took {stopwatch.Elapsed.TotalSeconds:F1} s)");
        t.Add("connection state after the cancel", connection.FullState);
        await t.QueryAsync(connection, "SELECT 'usable after the cancel'", ct);
    }

    private static Task CancelWithCommandCancelAsync(MatrixSide side, MatrixTranscript t, CancellationToken ct) =>
        CancelScenarioAsync(side, t, async (command, _, _) =>
        {
            await side.WaitUntilRunningAsync($"sleep_{side.Suffix}", ct);
            command.Cancel();
        }, null, ct);

    private static Task CancelWithTokenAsync(MatrixSide side, MatrixTranscript t, CancellationToken ct) =>
        CancelScenarioAsync(side, t, async (_, _, token) =>
        {
            await side.WaitUntilRunningAsync($"sleep_{side.Suffix}", ct);
            await token.CancelAsync();
        }, null, ct);

    private static Task CancelWithCommandTimeoutAsync(MatrixSide side, MatrixTranscript t, CancellationToken ct) =>
        CancelScenarioAsync(side, t, (_, _, _) => Task.CompletedTask, commandTimeout: 1, ct);

    private static async Task ListenNotifyAsync(MatrixSide side, MatrixTranscript t, CancellationToken ct)
    {
        await using var listener = await side.OpenAsync(cancellationToken: ct);
        await using var notifier = await side.OpenAsync(cancellationToken: ct);
        var channel = $"chan_{side.Suffix}";
        var received = new List<NpgsqlNotificationEventArgs>();
        listener.Notification += (_, e) => received.Add(e);
        await ExecAsync(listener, $"LISTEN {channel}", ct);

        // A notification while the listener waits (conn.WaitAsync).
        var wait = listener.WaitAsync(TimeSpan.FromSeconds(10), ct);
        await Task.Delay(200, ct);
        await ExecAsync(notifier, $"NOTIFY {channel}, 'first'", ct);
        t.Add("WaitAsync returned a notification", await wait);

        // Notifications sent in a transaction arrive at commit, in order, while the listener is busy with a query.
        await ExecAsync(notifier, $"BEGIN; NOTIFY {channel}, 'second'; SELECT pg_notify('{channel}', 'third'); COMMIT", ct);
        await Task.Delay(200, ct);
        await t.QueryAsync(listener, "SELECT 'listener query'", ct);
        if (received.Count < 3)
        {
            await listener.WaitAsync(TimeSpan.FromSeconds(5), ct);
        }

        foreach (var n in received)
        {
            t.Add($"notification on {n.Channel}: {n.Payload}");
            t.Check(n.PID == notifier.ProcessID, "the notification's sender pid is the notifier connection's ProcessID");
        }

        await ExecAsync(listener, $"UNLISTEN {channel}", ct);
        await ExecAsync(notifier, $"NOTIFY {channel}, 'after unlisten'", ct);
        t.Add("WaitAsync after UNLISTEN", await listener.WaitAsync(TimeSpan.FromMilliseconds(500), ct));
    }

    private static async Task NoticesAsync(MatrixSide side, MatrixTranscript t, CancellationToken ct)
    {
        await using var connection = await side.OpenAsync(cancellationToken: ct);
        connection.Notice += (_, e) => t.Add($"notice: {e.Notice.Severity} {e.Notice.SqlState} {e.Notice.MessageText} detail={e.Notice.Detail} hint={e.Notice.Hint}");
        await t.QueryAsync(connection, "DO $$ BEGIN RAISE NOTICE 'plain notice %', 1; RAISE WARNING 'a warning' USING DETAIL = 'some detail', HINT = 'a hint'; RAISE INFO 'info'; END $$", ct);
        await ExecAsync(connection, $"CREATE FUNCTION noisy_{side.Suffix}(x int) RETURNS int LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE 'row %', x; RETURN x * 2; END $$", ct);
        await t.Attempt("extended query with notices per row", async () =>
        {
            await using var command = new NpgsqlCommand($"SELECT noisy_{side.Suffix}(g) FROM generate_series(1, 3) g WHERE g > $1", connection);
            command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = 0 });
            await using var reader = await command.ExecuteReaderAsync(ct);
            await t.RowsAsync("noisy", reader, ct);
        });
        await t.QueryAsync(connection, $"DROP TABLE IF EXISTS does_not_exist_{side.Suffix}", ct);
        await t.QueryAsync(connection, "SET client_min_messages = warning", ct);
        await t.QueryAsync(connection, "DO $$ BEGIN RAISE NOTICE 'filtered out'; RAISE WARNING 'kept'; END $$", ct);
    }

    public enum Mood
    {
        Sad,
        Ok,
        Happy,
    }

    public sealed class Point3
    {
        public int X { get; set; }

        public int Y { get; set; }

        public string? Label { get; set; }

        public override string ToString() => $"({X},{Y},{Label})";
    }

    private static async Task ReloadTypesAsync(MatrixSide side, MatrixTranscript t, CancellationToken ct)
    {
        var sfx = side.Suffix;
        var builder = new NpgsqlDataSourceBuilder(side.NpgsqlConnectionString());
        builder.MapEnum<Mood>($"mood_{sfx}");
        builder.MapComposite<Point3>($"point3_{sfx}");
        builder.EnableUnmappedTypes();
        await using var dataSource = builder.Build();
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await ExecAsync(connection, $"""
            CREATE TYPE mood_{sfx} AS ENUM ('sad', 'ok', 'happy');
            CREATE TYPE point3_{sfx} AS (x int, y int, label text);
            CREATE DOMAIN posint_{sfx} AS int CHECK (VALUE > 0);
            CREATE TYPE frange_{sfx} AS RANGE (subtype = float8, multirange_type_name = fmultirange_{sfx});
            CREATE TABLE types_{sfx} (id int PRIMARY KEY, m mood_{sfx}, ms mood_{sfx}[], p point3_{sfx}, ps point3_{sfx}[], d posint_{sfx}, r frange_{sfx}, rs frange_{sfx}[], mr fmultirange_{sfx});
            """, ct);
        await connection.ReloadTypesAsync(ct);

        await t.Attempt("insert typed values", async () =>
        {
            await using var insert = new NpgsqlCommand($"INSERT INTO types_{sfx} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)", connection);
            insert.Parameters.Add(new NpgsqlParameter<int> { TypedValue = 1 });
            insert.Parameters.Add(new NpgsqlParameter<Mood> { TypedValue = Mood.Happy });
            insert.Parameters.Add(new NpgsqlParameter<Mood[]> { TypedValue = [Mood.Sad, Mood.Ok] });
            insert.Parameters.Add(new NpgsqlParameter<Point3> { TypedValue = new Point3 { X = 1, Y = 2, Label = "a" } });
            insert.Parameters.Add(new NpgsqlParameter<Point3[]> { TypedValue = [new Point3 { X = 3, Y = 4, Label = null }, new Point3 { X = 5, Y = 6, Label = "b c" }] });
            insert.Parameters.Add(new NpgsqlParameter<int> { TypedValue = 7, DataTypeName = $"posint_{sfx}" });
            insert.Parameters.Add(new NpgsqlParameter<NpgsqlRange<double>> { TypedValue = new NpgsqlRange<double>(1.5, true, 2.5, false), DataTypeName = $"frange_{sfx}" });
            insert.Parameters.Add(new NpgsqlParameter<NpgsqlRange<double>[]> { TypedValue = [new NpgsqlRange<double>(0, 1), NpgsqlRange<double>.Empty], DataTypeName = $"frange_{sfx}[]" });
            insert.Parameters.Add(new NpgsqlParameter<NpgsqlRange<double>[]> { TypedValue = [new NpgsqlRange<double>(0, true, 1, false), new NpgsqlRange<double>(5, true, 6, false)], DataTypeName = $"fmultirange_{sfx}" });
            await insert.ExecuteNonQueryAsync(ct);
        });

        await t.Attempt("read typed values", async () =>
        {
            await using var select = new NpgsqlCommand($"SELECT m, ms, p, ps, d, r, rs, mr, m::text, p::text, mr::text, pg_typeof(d)::text FROM types_{sfx} WHERE id = 1", connection);
            await using var reader = await select.ExecuteReaderAsync(ct);
            t.Check(await reader.ReadAsync(ct), "the typed row reads back");
            t.Add("enum", reader.GetFieldValue<Mood>(0));
            t.Add("enum[]", reader.GetFieldValue<Mood[]>(1));
            t.Add("composite", reader.GetFieldValue<Point3>(2));
            t.Add("composite[]", reader.GetFieldValue<Point3[]>(3));
            t.Add("domain", reader.GetInt32(4));
            t.Add("range", reader.GetFieldValue<NpgsqlRange<double>>(5));
            t.Add("range[]", reader.GetFieldValue<NpgsqlRange<double>[]>(6));
            t.Add("multirange", reader.GetFieldValue<NpgsqlRange<double>[]>(7));
            for (var i = 8; i < 12; i++)
            {
                t.Add($"as text {reader.GetName(i)}", reader.GetString(i));
            }
        });

        await t.Attempt("domain check violation", async () =>
        {
            await using var insert = new NpgsqlCommand($"INSERT INTO types_{sfx} (id, d) VALUES (2, $1)", connection);
            insert.Parameters.Add(new NpgsqlParameter<int> { TypedValue = -1, DataTypeName = $"posint_{sfx}" });
            await insert.ExecuteNonQueryAsync(ct);
        });
        await t.QueryAsync(connection, $"SELECT enum_range(NULL::mood_{sfx})::text", ct);
    }

    private static async Task SearchPathSetAsync(MatrixSide side, MatrixTranscript t, CancellationToken ct)
    {
        await using var connection = await side.OpenAsync(cancellationToken: ct);
        var schema = $"s_{side.Suffix}";
        await ExecAsync(connection, $"CREATE SCHEMA {schema}; CREATE TABLE {schema}.sp (x int); INSERT INTO {schema}.sp VALUES (42)", ct);
        await t.QueryAsync(connection, "SHOW search_path", ct);
        await t.QueryAsync(connection, "SELECT x FROM sp", ct);
        await t.QueryAsync(connection, $"SET search_path TO {schema}, public", ct);
        await t.QueryAsync(connection, "SHOW search_path", ct);
        await t.QueryAsync(connection, "SELECT x, current_schema() FROM sp", ct);
        await t.QueryAsync(connection, "BEGIN; SET LOCAL search_path TO public; SELECT current_schema(); COMMIT", ct);
        await t.QueryAsync(connection, "SELECT current_schema()", ct);
        await t.QueryAsync(connection, "SELECT set_config('search_path', 'pg_catalog', false)", ct);
        await t.QueryAsync(connection, "SELECT current_schemas(false)::text", ct);
        await t.QueryAsync(connection, "RESET search_path", ct);
        await t.QueryAsync(connection, "SHOW search_path", ct);
    }

    private static async Task SearchPathStartupParameterAsync(MatrixSide side, MatrixTranscript t, CancellationToken ct)
    {
        var schema = $"s_{side.Suffix}";
        await using (var setup = await side.OpenAsync(cancellationToken: ct))
        {
            await ExecAsync(setup, $"CREATE SCHEMA {schema}; CREATE TABLE {schema}.sp (x int); INSERT INTO {schema}.sp VALUES (7)", ct);
        }

        await t.Attempt("open with Search Path", async () =>
        {
            await using var connection = await side.OpenAsync(b => b.SearchPath = $"{schema}, public", ct);
            await t.QueryAsync(connection, "SHOW search_path", ct);
            await t.QueryAsync(connection, "SELECT x, current_schema() FROM sp", ct);
            await t.QueryAsync(connection, "RESET search_path", ct);
            await t.QueryAsync(connection, "SHOW search_path", ct);
        });
    }

    private static async Task OptionsStatementTimeoutAsync(MatrixSide side, MatrixTranscript t, CancellationToken ct)
    {
        await t.Attempt("open with Options=-c statement_timeout=1000", async () =>
        {
            await using var connection = await side.OpenAsync(b => b.Options = "-c statement_timeout=1000 -c lock_timeout=2s", ct);
            await t.QueryAsync(connection, "SHOW statement_timeout", ct);
            await t.QueryAsync(connection, "SHOW lock_timeout", ct);
            await t.QueryAsync(connection, "SELECT pg_sleep(3)", ct);
            await t.QueryAsync(connection, "SELECT 'usable after the statement timeout'", ct);
        });
    }

    private static async Task SavepointsAsync(MatrixSide side, MatrixTranscript t, CancellationToken ct)
    {
        await using var connection = await side.OpenAsync(cancellationToken: ct);
        var table = $"sv_{side.Suffix}";
        await ExecAsync(connection, $"CREATE TABLE {table} (id int PRIMARY KEY)", ct);
        await using (var tx = await connection.BeginTransactionAsync(ct))
        {
            await ExecAsync(connection, $"INSERT INTO {table} VALUES (1)", ct);
            await tx.SaveAsync("before_dup", ct);
            await ExecAsync(connection, $"INSERT INTO {table} VALUES (2)", ct);
            await t.QueryAsync(connection, $"INSERT INTO {table} VALUES (1)", ct);
            await t.QueryAsync(connection, "SELECT 'in a failed transaction'", ct);
            await tx.RollbackAsync("before_dup", ct);
            await ExecAsync(connection, $"INSERT INTO {table} VALUES (3)", ct);
            await tx.SaveAsync("nested", ct);
            await ExecAsync(connection, $"INSERT INTO {table} VALUES (4)", ct);
            await tx.ReleaseAsync("nested", ct);
            await t.Attempt("rollback to a released savepoint", () => tx.RollbackAsync("nested", ct));
            await t.Attempt("commit", () => tx.CommitAsync(ct));
        }

        await t.QueryAsync(connection, $"SELECT id FROM {table} ORDER BY id", ct);
        await t.QueryAsync(connection, $"BEGIN; INSERT INTO {table} VALUES (10); SAVEPOINT a; INSERT INTO {table} VALUES (11); ROLLBACK TO SAVEPOINT a; INSERT INTO {table} VALUES (12); RELEASE SAVEPOINT a; COMMIT", ct);
        await t.QueryAsync(connection, "ROLLBACK TO SAVEPOINT nowhere", ct);
        await t.QueryAsync(connection, $"SELECT id FROM {table} ORDER BY id", ct);
    }

    private static async Task TwoPhaseCommitAsync(MatrixSide side, MatrixTranscript t, CancellationToken ct)
    {
        await using var connection = await side.OpenAsync(cancellationToken: ct);
        await using var other = await side.OpenAsync(cancellationToken: ct);
        var table = $"tp_{side.Suffix}";
        await ExecAsync(connection, $"CREATE TABLE {table} (id int)", ct);
        await t.QueryAsync(connection, $"BEGIN; INSERT INTO {table} VALUES (1); PREPARE TRANSACTION 'commit_{side.Suffix}'", ct);
        await t.QueryAsync(connection, $"BEGIN; INSERT INTO {table} VALUES (2); PREPARE TRANSACTION 'abort_{side.Suffix}'", ct);
        await t.QueryAsync(connection, $"SELECT gid FROM pg_prepared_xacts WHERE gid LIKE '%{side.Suffix}' ORDER BY gid", ct);
        await t.QueryAsync(other, $"SELECT count(*) FROM {table}", ct);
        await t.QueryAsync(other, $"COMMIT PREPARED 'commit_{side.Suffix}'", ct);
        await t.QueryAsync(other, $"ROLLBACK PREPARED 'abort_{side.Suffix}'", ct);
        await t.QueryAsync(other, $"COMMIT PREPARED 'commit_{side.Suffix}'", ct);
        await t.QueryAsync(connection, $"SELECT id FROM {table} ORDER BY id", ct);
        await t.QueryAsync(connection, $"SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE '%{side.Suffix}'", ct);
    }

    private static async Task KeepaliveAsync(MatrixSide side, MatrixTranscript t, CancellationToken ct)
    {
        await using var connection = await side.OpenAsync(b => b.KeepAlive = 1, ct);
        await t.QueryAsync(connection, "SELECT 'before idle'", ct);
        await Task.Delay(TimeSpan.FromSeconds(3.5), ct);
        t.Add("state after 3.5 s idle with keepalives", connection.FullState);
        await t.QueryAsync(connection, "SELECT 'after idle'", ct);
        await using (var tx = await connection.BeginTransactionAsync(ct))
        {
            await t.QueryAsync(connection, "SELECT 'in a transaction'", ct);
            await Task.Delay(TimeSpan.FromSeconds(2.5), ct);
            await t.QueryAsync(connection, "SELECT 'still in the transaction'", ct);
            await tx.CommitAsync(ct);
        }

        t.Add("state at the end", connection.FullState);
    }

    private static async Task ProcessIdAsync(MatrixSide side, MatrixTranscript t, CancellationToken ct)
    {
        await using var connection = await side.OpenAsync(cancellationToken: ct);
        var backendPid = await ScalarAsync<int>(connection, "SELECT pg_backend_pid()", ct);
        t.Check(connection.ProcessID == backendPid, "NpgsqlConnection.ProcessID (BackendKeyData) is the server's pg_backend_pid()");
        await using var admin = await side.OpenAdminAsync(ct);
        await using var activity = new NpgsqlCommand("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", admin);
        activity.Parameters.Add(new NpgsqlParameter<int> { TypedValue = connection.ProcessID });
        t.Add("pg_stat_activity rows for ProcessID", await activity.ExecuteScalarAsync(ct));
    }

    private static async Task TerminateAndObserveAsync(MatrixSide side, MatrixTranscript t, NpgsqlConnection connection, int pid, CancellationToken ct)
    {
        await using (var admin = await side.OpenAdminAsync(ct))
        {
            await using var terminate = new NpgsqlCommand("SELECT pg_terminate_backend($1, 5000)", admin);
            terminate.Parameters.Add(new NpgsqlParameter<int> { TypedValue = pid });
            t.Add("pg_terminate_backend", await terminate.ExecuteScalarAsync(ct));
        }

        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(ct);
        bounded.CancelAfter(TimeSpan.FromSeconds(15));
        await t.Attempt("the next statement on the terminated connection", async () =>
        {
            await using var next = new NpgsqlCommand("SELECT 1", connection) { CommandTimeout = 10 };
            await next.ExecuteScalarAsync(bounded.Token);
        });
        t.Add("connection state", connection.State);
    }

    private static async Task TerminatedByProcessIdAsync(MatrixSide side, MatrixTranscript t, CancellationToken ct)
    {
        await using var connection = await side.OpenAsync(cancellationToken: ct);
        await TerminateAndObserveAsync(side, t, connection, connection.ProcessID, ct);
    }

    private static async Task TerminatedByBackendPidAsync(MatrixSide side, MatrixTranscript t, CancellationToken ct)
    {
        await using var connection = await side.OpenAsync(cancellationToken: ct);
        var pid = await ScalarAsync<int>(connection, "SELECT pg_backend_pid()", ct);
        await TerminateAndObserveAsync(side, t, connection, pid, ct);
    }

    private static async Task ParameterStatusAsync(MatrixSide side, MatrixTranscript t, CancellationToken ct)
    {
        await using var connection = await side.OpenAsync(b => b.ApplicationName = "matrix-app", ct);
        t.Add("PostgresParameters[application_name]", connection.PostgresParameters.GetValueOrDefault("application_name"));
        foreach (var (name, value) in connection.PostgresParameters.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            if (name != "application_name")
            {
                t.Add($"ParameterStatus {name}", value);
            }
        }

        await t.QueryAsync(connection, "SET application_name = 'renamed'", ct);
        t.Add("PostgresParameters[application_name] after SET", connection.PostgresParameters.GetValueOrDefault("application_name"));
        await t.QueryAsync(connection, "SET TimeZone = 'Europe/Paris'", ct);
        t.Add("PostgresParameters[TimeZone] after SET", connection.PostgresParameters.GetValueOrDefault("TimeZone"));
    }
}
