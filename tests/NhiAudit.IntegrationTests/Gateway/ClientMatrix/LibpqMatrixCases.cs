using System.Globalization;
using System.Text.RegularExpressions;
using NhiAudit.IntegrationTests.Infrastructure;

namespace NhiAudit.IntegrationTests.Gateway.ClientMatrix;

/// <summary>psql meta-commands and pgbench query modes (libpq), each run direct and through the gateway; outputs are compared after normalising timings.</summary>
public static partial class LibpqMatrixCases
{
    public static IReadOnlyList<MatrixCase> All { get; } =
    [
        new("psql.copy-in-and-out", PsqlCopyAsync),
        new("psql.gset", PsqlGsetAsync),
        new("psql.watch", PsqlWatchAsync),
        new("psql.on-error-rollback", PsqlOnErrorRollbackAsync),
        new("psql.pgoptions-startup-settings", PsqlPgoptionsAsync),
        new("pgbench.simple", (s, t, ct) => PgbenchAsync(s, t, "simple", ct), OwnDatabase: true) { Timeout = TimeSpan.FromSeconds(120) },
        new("pgbench.extended", (s, t, ct) => PgbenchAsync(s, t, "extended", ct), OwnDatabase: true) { Timeout = TimeSpan.FromSeconds(120) },
        new("pgbench.prepared", (s, t, ct) => PgbenchAsync(s, t, "prepared", ct), OwnDatabase: true) { Timeout = TimeSpan.FromSeconds(120) },
    ];

    /// <summary>psql 16's \bind; run by its own fact, skipped when psql is older.</summary>
    public static MatrixCase Bind { get; } = new("psql.bind", PsqlBindAsync);

    /// <summary>The major version of the psql the tests run (PostgreSQL 15 here: no \bind, no \watch count).</summary>
    public static int PsqlMajorVersion { get; } = ReadPsqlMajorVersion();

    private static int ReadPsqlMajorVersion()
    {
        var result = ProcessRunner.RunAsync(PostgresBinaries.Psql, ["--version"], timeout: TimeSpan.FromSeconds(10)).GetAwaiter().GetResult();
        var match = PsqlVersion().Match(result.StandardOutput);
        return match.Success ? int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
    }

    private static Task<ProcessResult> PsqlAsync(MatrixSide side, string script, CancellationToken ct, bool onErrorStop = true, params string[] extraArgs) =>
        PsqlAsync(side, script, side.LibpqEnvironment(), ct, onErrorStop, extraArgs);

    private static async Task<ProcessResult> PsqlAsync(MatrixSide side, string script, IDictionary<string, string> env, CancellationToken ct, bool onErrorStop = true, params string[] extraArgs)
    {
        string[] args = ["-X", "-q", .. onErrorStop ? new[] { "-v", "ON_ERROR_STOP=1" } : [], .. extraArgs, side.LibpqConnectionString];
        return await ProcessRunner.RunAsync(PostgresBinaries.Psql, args, script, TimeSpan.FromSeconds(45), env, cancellationToken: ct);
    }

    /// <summary>Exit code, stdout and stderr, line by line, with the run's suffix, ports and timings normalised.</summary>
    private static void AddOutput(MatrixSide side, MatrixTranscript t, string label, ProcessResult result, Func<string, string?>? normaliseLine = null)
    {
        t.Add($"{label} exit", result.TimedOut ? "timed out" : result.ExitCode.ToString(CultureInfo.InvariantCulture));
        foreach (var (stream, text) in new[] { ("stdout", result.StandardOutput), ("stderr", result.StandardError) })
        {
            foreach (var raw in text.Replace("\r", "", StringComparison.Ordinal).Split('\n'))
            {
                var line = raw.Replace(side.Port.ToString(CultureInfo.InvariantCulture), "{port}", StringComparison.Ordinal);
                line = normaliseLine is null ? line : normaliseLine(line);
                if (line is { Length: > 0 })
                {
                    t.Add($"{label} {stream}| {line}");
                }
            }
        }
    }

    private static async Task PsqlCopyAsync(MatrixSide side, MatrixTranscript t, CancellationToken ct)
    {
        var folder = Path.Combine(PostgresServer.TempRoot, "matrix-" + side.Suffix);
        Directory.CreateDirectory(folder);
        try
        {
            var table = $"pc_{side.Suffix}";
            var csv = Path.Combine(folder, "out.csv");
            var rows = string.Join('\n', Enumerable.Range(1, 2000).Select(i => $"{i}\tname {i}"));
            var script = $"""
                CREATE TABLE {table} (id int PRIMARY KEY, name text);
                \copy {table} from stdin
                {rows}
                \.
                SELECT count(*), sum(id) FROM {table};
                \copy (SELECT * FROM {table} WHERE id <= 3 ORDER BY id) to stdout with (format csv, header)
                \copy {table} to '{csv}' with (format csv)
                CREATE TABLE {table}_2 (LIKE {table});
                \copy {table}_2 from '{csv}' with (format csv)
                SELECT count(*), sum(id) FROM {table}_2;
                \copy {table}_2 (id, name) from stdin with (format csv)
                9001,fine
                not-a-number,bad
                \.
                SELECT count(*) FROM {table}_2;
                """;
            var result = await PsqlAsync(side, script, ct, onErrorStop: false);
            AddOutput(side, t, "psql", result);
            t.Add("exported file lines", File.Exists(csv) ? File.ReadAllLines(csv).Length : -1);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private static async Task PsqlGsetAsync(MatrixSide side, MatrixTranscript t, CancellationToken ct)
    {
        var script = """
            SELECT 42 AS answer, 'hello' AS greeting \gset
            \echo answer=:answer greeting=:greeting
            SELECT :answer + 1 AS next, :'greeting' || ' world' AS text;
            SELECT 'x' AS one, 'y' AS two \gset pre_
            \echo :pre_one :pre_two
            SELECT 1 AS a WHERE false \gset
            \echo after an empty gset: :answer
            SELECT generate_series(1, 2) AS many \gset
            SELECT 'done';
            """;
        AddOutput(side, t, "psql", await PsqlAsync(side, script, ct, onErrorStop: false));
    }

    private static async Task PsqlWatchAsync(MatrixSide side, MatrixTranscript t, CancellationToken ct)
    {
        // psql 15's \watch has no count (c=N is psql 16): the watched query fails on its third run, which ends \watch.
        var script = $"""
            CREATE SEQUENCE w_{side.Suffix};
            SELECT 10 / (3 - nextval('w_{side.Suffix}')) AS v \watch 0.1
            """;
        var result = await PsqlAsync(side, script, ct, onErrorStop: true, "-P", "pager=off");
        AddOutput(side, t, "psql", result, line => WatchHeader().IsMatch(line) ? "<\\watch header with the time>" : line);
    }

    private static async Task PsqlOnErrorRollbackAsync(MatrixSide side, MatrixTranscript t, CancellationToken ct)
    {
        var table = $"er_{side.Suffix}";
        var script = $"""
            CREATE TABLE {table} (id int PRIMARY KEY);
            BEGIN;
            INSERT INTO {table} VALUES (1);
            INSERT INTO {table} VALUES (1);
            SELECT 1 / 0;
            INSERT INTO {table} VALUES (2);
            COMMIT;
            SELECT id FROM {table} ORDER BY id;
            \set ON_ERROR_ROLLBACK off
            BEGIN;
            INSERT INTO {table} VALUES (3);
            INSERT INTO {table} VALUES (3);
            INSERT INTO {table} VALUES (4);
            COMMIT;
            SELECT id FROM {table} ORDER BY id;
            """;
        AddOutput(side, t, "psql", await PsqlAsync(side, script, ct, onErrorStop: false, "-v", "ON_ERROR_ROLLBACK=on", "-e"));
    }

    /// <summary>PGOPTIONS travels as the startup packet's <c>options</c> (-c settings), as Npgsql's Options does.</summary>
    private static async Task PsqlPgoptionsAsync(MatrixSide side, MatrixTranscript t, CancellationToken ct)
    {
        var schema = $"o_{side.Suffix}";
        AddOutput(side, t, "psql setup", await PsqlAsync(side, $"CREATE SCHEMA {schema}; CREATE TABLE {schema}.here (x int); INSERT INTO {schema}.here VALUES (1);", ct));
        var env = side.LibpqEnvironment();
        env["PGOPTIONS"] = $"-c search_path={schema},public -c work_mem=7MB";
        var script = """
            SHOW search_path;
            SHOW work_mem;
            SELECT x FROM here;
            """;
        AddOutput(side, t, "psql with PGOPTIONS", await PsqlAsync(side, script, env, ct, onErrorStop: true));
    }

    private static async Task PsqlBindAsync(MatrixSide side, MatrixTranscript t, CancellationToken ct)
    {
        var script = """
            SELECT $1::int + $2::int AS sum \bind 40 2 \g
            SELECT $1::text AS echoed \bind 'bound value' \g
            SELECT $1::int \bind not-a-number \g
            SELECT 'after';
            """;
        AddOutput(side, t, "psql", await PsqlAsync(side, script, ct, onErrorStop: false));
    }

    private static async Task PgbenchAsync(MatrixSide side, MatrixTranscript t, string mode, CancellationToken ct)
    {
        var env = side.LibpqEnvironment();
        env["PGSSLMODE"] = "require";
        string[] connection = ["-h", side.Host, "-p", side.Port.ToString(CultureInfo.InvariantCulture), "-U", side.User];

        // pgbench -i drops, creates, generates (client-side COPY), vacuums and adds primary keys.
        var init = await ProcessRunner.RunAsync(PostgresBinaries.Pgbench, ["-i", "-s", "1", .. connection, side.Database], null, TimeSpan.FromSeconds(90), env, cancellationToken: ct);
        AddOutput(side, t, "pgbench -i", init, NormalisePgbench);

        var run = await ProcessRunner.RunAsync(PostgresBinaries.Pgbench, ["-M", mode, "-t", "50", "-c", "2", "-j", "1", .. connection, side.Database], null, TimeSpan.FromSeconds(90), env, cancellationToken: ct);
        AddOutput(side, t, $"pgbench -M {mode}", run, NormalisePgbench);
        t.Check(run.Succeeded && run.StandardOutput.Contains("number of transactions actually processed: 100/100", StringComparison.Ordinal), "pgbench processed all 100 transactions");
        t.Check(run.StandardOutput.Contains("number of failed transactions: 0 ", StringComparison.Ordinal), "pgbench saw no failed transactions");
    }

    /// <summary>Keeps what pgbench says about success and failure; drops timings, rates and progress.</summary>
    private static string? NormalisePgbench(string line)
    {
        if (line.StartsWith("latency", StringComparison.Ordinal) || line.StartsWith("tps", StringComparison.Ordinal) || line.StartsWith("initial connection time", StringComparison.Ordinal)
            || line.Contains("elapsed", StringComparison.Ordinal) || line.StartsWith("pgbench (", StringComparison.Ordinal) || line.StartsWith("duration", StringComparison.Ordinal))
        {
            return null;
        }

        return Seconds().Replace(line, "N s");
    }

    [GeneratedRegex(@"psql \(PostgreSQL\) (\d+)")]
    private static partial Regex PsqlVersion();

    [GeneratedRegex(@"\(every [0-9.]+s\)")]
    private static partial Regex WatchHeader();

    [GeneratedRegex(@"\d+\.\d+ s")]
    private static partial Regex Seconds();
}
