using System.Globalization;
using System.Text;
using NhiAudit.IntegrationTests.Infrastructure;
using Npgsql;

namespace NhiAudit.IntegrationTests.Gateway;

/// <summary>
/// Masking's side channels: every way we know to get a protected value out other than selecting its column. The value
/// is a marker no detector recognises, so only the column rule protects it. Each shape either comes back masked or is
/// refused with 42501; the marker never reaches the client, in rows, notices, errors, notification payloads or settings.
/// </summary>
[Collection(PostgresCollectionDefinition.Name)]
public sealed class MaskingSideChannelTests(PostgresServerFixture fixture) : IAsyncLifetime
{
    private const string Marker = "QZX7731";

    private const int Cases = 40;

    private GatewayHost _gateway = null!;
    private string _suffix = "";

    private string Table(int index) => $"vault_{_suffix}_{index}";

    public async Task InitializeAsync()
    {
        _suffix = Guid.NewGuid().ToString("N")[..8];
        var setup = new StringBuilder();
        for (var i = 0; i < Cases; i++)
        {
            setup.Append(CultureInfo.InvariantCulture, $"CREATE TABLE {Table(i)} (id int PRIMARY KEY, label text, secret text);");
            setup.Append(CultureInfo.InvariantCulture, $"INSERT INTO {Table(i)} SELECT g, 'row ' || g, '{Marker}-' || g FROM generate_series(1, 50) g;");
            setup.Append(CultureInfo.InvariantCulture, $"CREATE TABLE sink_{_suffix}_{i} (v text); ANALYZE {Table(i)};");
            setup.Append(CultureInfo.InvariantCulture, $"CREATE FUNCTION raise_{_suffix}_{i}() RETURNS int LANGUAGE plpgsql AS $f$ DECLARE v text; BEGIN SELECT secret INTO v FROM {Table(i)} WHERE id = 1; RAISE NOTICE 'got %', v; RAISE EXCEPTION 'and %', v USING DETAIL = v, HINT = v; END $f$;");
        }

        await using (var admin = new NpgsqlConnection(fixture.Server.ConnectionString()))
        {
            await admin.OpenAsync();
            await using var create = new NpgsqlCommand(setup.ToString(), admin);
            await create.ExecuteNonQueryAsync();
        }

        _gateway = await GatewayHost.StartAsync(fixture.Server, o =>
        {
            o.Extra["NhiAudit:Policy:Masking:0:Name"] = "vault";
            for (var i = 0; i < Cases; i++)
            {
                o.Extra[$"NhiAudit:Policy:Masking:0:Columns:{i}"] = $"public.{Table(i)}.secret";
            }

            o.Extra["NhiAudit:Policy:Masking:0:Strategy"] = "Redact";
        });
    }

    public async Task DisposeAsync() => await _gateway.DisposeAsync();

    public static TheoryData<int, string, string[]> Shapes()
    {
        var data = new TheoryData<int, string, string[]>();
        var index = 0;
        foreach (var (shape, statements) in ShapeList)
        {
            data.Add(index++, shape, statements);
        }

        return data;
    }

    private static readonly (string Shape, string[] Statements)[] ShapeList =
    [
        ("whole row by alias", ["SELECT c FROM {t} c"]),
        ("whole row by table name", ["SELECT {t} FROM {t}"]),
        ("whole row cast to text", ["SELECT c::text FROM {t} c"]),
        ("whole row star cast", ["SELECT ({t}.*)::text FROM {t}"]),
        ("row_to_json", ["SELECT row_to_json(c) FROM {t} c"]),
        ("to_jsonb of star", ["SELECT to_jsonb({t}.*) FROM {t}"]),
        ("ROW constructor", ["SELECT ROW(c.*) FROM {t} c"]),
        ("format of a row", ["SELECT format('%s', c) FROM {t} c"]),
        ("jsonb_agg of rows", ["SELECT jsonb_agg(c) FROM {t} c"]),
        ("planner statistics", ["SELECT most_common_vals::text, histogram_bounds::text FROM pg_stats WHERE tablename = '{t}'"]),
        ("extended statistics view", ["SELECT attname, most_common_vals::text FROM pg_catalog.pg_stats WHERE attname = 'secret'"]),
        ("setting written then shown", ["SELECT set_config('leak.v', secret, false) FROM {t} WHERE id = 1", "SHOW leak.v", "SELECT current_setting('leak.v')"]),
        ("notification payload", ["LISTEN leak_{s}", "SELECT pg_notify('leak_{s}', secret) FROM {t} WHERE id = 1", "SELECT 1"]),
        ("create table as", ["CREATE TABLE copy1_{s} AS SELECT secret FROM {t}", "SELECT * FROM copy1_{s}"]),
        ("select into", ["SELECT secret INTO copy2_{s} FROM {t}", "SELECT * FROM copy2_{s}"]),
        ("insert select", ["INSERT INTO sink_{s} SELECT secret FROM {t}", "SELECT * FROM sink_{s}"]),
        ("data-modifying cte", ["WITH w AS (INSERT INTO sink_{s} SELECT secret FROM {t} RETURNING 1) SELECT count(*) FROM w", "SELECT * FROM sink_{s}"]),
        ("update from", ["INSERT INTO sink_{s} VALUES ('x')", "UPDATE sink_{s} SET v = c.secret FROM {t} c WHERE c.id = 1", "SELECT * FROM sink_{s}"]),
        ("same-table copy into another column", ["ALTER TABLE {t} ADD COLUMN IF NOT EXISTS spare text", "UPDATE {t} SET spare = secret", "SELECT spare FROM {t}"]),
        ("generated column", ["ALTER TABLE {t} ADD COLUMN gen text GENERATED ALWAYS AS (secret) STORED", "SELECT gen FROM {t}"]),
        ("column renamed", ["ALTER TABLE {t} RENAME COLUMN secret TO s2", "SELECT s2 FROM {t}"]),
        ("table renamed", ["ALTER TABLE {t} RENAME TO renamed_{s}", "SELECT secret FROM renamed_{s}"]),
        ("large object", ["SELECT lo_from_bytea(0, convert_to(secret, 'UTF8')) FROM {t} WHERE id = 1", "SELECT convert_from(lo_get(oid), 'UTF8') FROM pg_largeobject_metadata"]),
        ("copy to a server file", ["COPY (SELECT secret FROM {t}) TO '/tmp/leak_{s}.txt'"]),
        ("raise notice in a DO block", ["DO $$ DECLARE v text; BEGIN SELECT secret INTO v FROM {t} WHERE id = 1; RAISE NOTICE 'got %', v; END $$"]),
        ("raise exception in a DO block", ["DO $$ DECLARE v text; BEGIN SELECT secret INTO v FROM {t} WHERE id = 1; RAISE EXCEPTION 'got %', v; END $$"]),
        ("function created in the same string", ["CREATE FUNCTION leak_{s}() RETURNS text LANGUAGE sql AS $$ SELECT secret FROM {t} WHERE id = 1 $$; SELECT leak_{s}()"]),
        ("function returning the table type", ["CREATE FUNCTION rows_{s}() RETURNS SETOF {t} LANGUAGE sql AS $$ SELECT * FROM {t} $$", "SELECT * FROM rows_{s}()"]),
        ("view created then read", ["CREATE VIEW v_{s} AS SELECT id, secret AS open FROM {t}", "SELECT open FROM v_{s}"]),
        ("query_to_xml", ["SELECT query_to_xml('SELECT secret FROM {t}', true, false, '')"]),
        ("string_agg", ["SELECT string_agg(secret, ',') FROM {t}"]),
        ("invalid input error", ["SELECT secret::int FROM {t}"]),
        ("division error detail", ["SELECT 1 / (CASE WHEN secret LIKE '{m}%' THEN 0 ELSE 1 END) FROM {t}"]),
        ("scalar subquery", ["SELECT (SELECT secret FROM {t} WHERE id = 1)"]),
        ("cursor", ["BEGIN", "DECLARE cur CURSOR FOR SELECT secret FROM {t}", "FETCH 2 FROM cur", "COMMIT"]),
        ("trigger copying rows", ["CREATE FUNCTION trg_{s}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO sink_{s} VALUES (NEW.secret); RETURN NEW; END $$", "CREATE TRIGGER t_{s} AFTER UPDATE ON {t} FOR EACH ROW EXECUTE FUNCTION trg_{s}()", "UPDATE {t} SET label = 'x' WHERE id = 1", "SELECT * FROM sink_{s}"]),
        ("rule copying rows", ["CREATE RULE r_{s} AS ON UPDATE TO {t} DO ALSO INSERT INTO sink_{s} VALUES (NEW.secret)", "UPDATE {t} SET label = 'x' WHERE id = 1", "SELECT * FROM sink_{s}"]),
        ("protected function raising its data", ["SELECT raise_{s}()"]),
        ("exists oracle in a notice-free form", ["SELECT label FROM {t} WHERE secret = '{m}-1'"]),
        ("merge copying", ["MERGE INTO sink_{s} s USING {t} v ON false WHEN NOT MATCHED THEN INSERT VALUES (v.secret)", "SELECT * FROM sink_{s}"]),
    ];

    [Theory]
    [MemberData(nameof(Shapes))]
    public async Task A_protected_value_never_reaches_the_client(int index, string shape, string[] statements)
    {
        Assert.True(index < Cases);
        var arguments = new List<string> { "-X", _gateway.LibpqConnectionString() };
        foreach (var template in statements)
        {
            arguments.Add("-c");
            arguments.Add(template.Replace("{t}", Table(index), StringComparison.Ordinal).Replace("{s}", $"{_suffix}_{index}", StringComparison.Ordinal).Replace("{m}", Marker, StringComparison.Ordinal));
        }

        // psql reads every type as text and prints rows, notices, errors and notifications: all a client could see.
        var result = await ProcessRunner.RunAsync(PostgresBinaries.Psql, arguments, timeout: TimeSpan.FromSeconds(60), env: GatewayHost.LibpqEnvironment(_gateway.MintToken("side-channel")));
        var transcript = result.StandardOutput + result.StandardError;
        Assert.False(transcript.Contains(Marker, StringComparison.Ordinal), $"{shape}: the protected value reached the client:\n{transcript}");
    }
}
