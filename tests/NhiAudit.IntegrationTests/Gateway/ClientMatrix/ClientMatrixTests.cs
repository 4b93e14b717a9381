using System.Globalization;
using System.Text;
using NhiAudit.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace NhiAudit.IntegrationTests.Gateway.ClientMatrix;

/// <summary>
/// The client-behaviour matrix: every case runs against the real PostgreSQL 15 once direct and once through the
/// gateway, and what the client saw (rows, errors with SQLSTATE, notices, checks) must be the same. A correct client
/// must not be able to tell the gateway is there, except for the differences by design listed in README.md here.
/// </summary>
[Collection(PostgresCollectionDefinition.Name)]
public sealed class ClientMatrixTests(PostgresServerFixture fixture, ITestOutputHelper output) : IAsyncLifetime
{
    private GatewayHost _gateway = null!;

    public static TheoryData<string> NpgsqlCases => Names(NpgsqlMatrixCases.All);

    public static TheoryData<string> LibpqCases => Names(LibpqMatrixCases.All);

    public static TheoryData<string> PsycopgCases => Names(PsycopgMatrixCases.All);

    public static TheoryData<string> JdbcCases => Names(JdbcMatrixCases.All);

    public async Task InitializeAsync() => _gateway = await GatewayHost.StartAsync(fixture.Server);

    public async Task DisposeAsync() => await _gateway.DisposeAsync();

    [Theory]
    [MemberData(nameof(NpgsqlCases))]
    public Task Npgsql_behaves_the_same_direct_and_through_the_gateway(string name) =>
        RunBothWaysAsync(NpgsqlMatrixCases.All.Single(c => c.Name == name));

    [Theory]
    [MemberData(nameof(LibpqCases))]
    public Task Psql_and_pgbench_behave_the_same_direct_and_through_the_gateway(string name) =>
        RunBothWaysAsync(LibpqMatrixCases.All.Single(c => c.Name == name));

    [PsqlAtLeastFact(16, "\\bind")]
    public Task Psql_bind_behaves_the_same_direct_and_through_the_gateway() => RunBothWaysAsync(LibpqMatrixCases.Bind);

    [Theory]
    [MemberData(nameof(PsycopgCases))]
    public Task Psycopg_behaves_the_same_direct_and_through_the_gateway(string name) =>
        RunBothWaysAsync(PsycopgMatrixCases.All.Single(c => c.Name == name));

    [Theory]
    [MemberData(nameof(JdbcCases))]
    public Task Jdbc_behaves_the_same_direct_and_through_the_gateway(string name) =>
        RunBothWaysAsync(JdbcMatrixCases.All.Single(c => c.Name == name));

    /// <summary>
    /// The differences by design (README.md here), checked so the table stays true: the login is swapped (the password is
    /// the workload token, the server's session user is the gateway's upstream user) and the server-side application_name
    /// names the gateway session and the workload. The client-side view (ParameterStatus) is compared by the matrix instead.
    /// </summary>
    [Fact]
    public async Task The_login_swap_is_the_documented_difference_by_design()
    {
        const string sql = "SELECT session_user::text, current_user::text, current_setting('application_name'), " +
                           "(SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()), (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())";
        var direct = MatrixSide.Direct(fixture.Server);
        var gateway = MatrixSide.ThroughGateway(fixture.Server, _gateway);
        foreach (var side in new[] { direct, gateway })
        {
            await using var connection = await side.OpenAsync(b => b.ApplicationName = "matrix-app");
            await using var command = new Npgsql.NpgsqlCommand(sql, connection);
            await using var reader = await command.ExecuteReaderAsync();
            Assert.True(await reader.ReadAsync());
            output.WriteLine($"{side.Name}: client user={connection.UserName} session_user={reader.GetString(0)} current_user={reader.GetString(1)} application_name={reader.GetString(2)} pg_stat_activity.application_name={reader.GetString(3)} ssl={reader.GetBoolean(4)}");
            Assert.Equal(PostgresServer.AppUser, reader.GetString(0));
            Assert.Equal(PostgresServer.AppUser, reader.GetString(1));
            Assert.True(reader.GetBoolean(4));
            if (side.IsGateway)
            {
                Assert.Equal("ci-job", connection.UserName);
                Assert.StartsWith("nhi:", reader.GetString(2), StringComparison.Ordinal);
                Assert.Contains("contoso/orders", reader.GetString(3), StringComparison.Ordinal);
            }
            else
            {
                Assert.Equal("matrix-app", reader.GetString(2));
                Assert.Equal("matrix-app", reader.GetString(3));
            }
        }

        // A wrong password is refused by each with its own words: the gateway validates a workload token, not a password.
        foreach (var side in new[] { direct, gateway })
        {
            var refused = await Assert.ThrowsAsync<Npgsql.PostgresException>(() => side.OpenAsync(b => b.Password = "app-secret-wrong"));
            Assert.Equal("28P01", refused.SqlState);
            output.WriteLine($"{side.Name}: wrong password: {refused.MessageText}");
        }
    }

    private static TheoryData<string> Names(IEnumerable<MatrixCase> cases)
    {
        var data = new TheoryData<string>();
        foreach (var c in cases)
        {
            data.Add(c.Name);
        }

        return data;
    }

    private async Task RunBothWaysAsync(MatrixCase matrixCase)
    {
        var directDatabase = matrixCase.OwnDatabase ? await fixture.Server.CreateDatabaseAsync() : PostgresServer.AppDatabase;
        var gatewayDatabase = matrixCase.OwnDatabase ? await fixture.Server.CreateDatabaseAsync() : PostgresServer.AppDatabase;
        var direct = await RunOneSideAsync(matrixCase, MatrixSide.Direct(fixture.Server, directDatabase));
        var gateway = await RunOneSideAsync(matrixCase, MatrixSide.ThroughGateway(fixture.Server, _gateway, gatewayDatabase));

        output.WriteLine($"== {matrixCase.Name}: direct ({direct.Elapsed.TotalSeconds:F1} s)");
        foreach (var line in direct.Transcript.Lines)
        {
            output.WriteLine("  " + line);
        }

        output.WriteLine($"== {matrixCase.Name}: through the gateway ({gateway.Elapsed.TotalSeconds:F1} s)");
        foreach (var line in gateway.Transcript.Lines)
        {
            output.WriteLine("  " + line);
        }

        var brokenDirect = direct.Transcript.Lines.Where(l => l.StartsWith(MatrixTranscript.CheckFailedPrefix, StringComparison.Ordinal) || l.StartsWith(MatrixTranscript.UnhandledPrefix, StringComparison.Ordinal)).ToList();
        Assert.True(brokenDirect.Count == 0, $"case {matrixCase.Name} does not hold direct against PostgreSQL itself (fix the case, not the gateway):\n{string.Join('\n', brokenDirect)}");

        if (!direct.Transcript.Lines.SequenceEqual(gateway.Transcript.Lines))
        {
            var diagnosis = await DescribeGatewaySideAsync();
            Assert.Fail($"case {matrixCase.Name}: the client saw something else through the gateway than direct\n{Diff(direct.Transcript.Lines, gateway.Transcript.Lines)}\n{diagnosis}");
        }
    }

    private async Task<(MatrixTranscript Transcript, TimeSpan Elapsed)> RunOneSideAsync(MatrixCase matrixCase, MatrixSide side)
    {
        var transcript = new MatrixTranscript(side.Suffix);
        using var timeout = new CancellationTokenSource(matrixCase.Timeout);
        var started = DateTime.UtcNow;
        var run = Task.Run(() => matrixCase.Run(side, transcript, timeout.Token), CancellationToken.None);
        try
        {
            // The case should stop by itself when its token fires; this is the backstop if it ignores it.
            await run.WaitAsync(matrixCase.Timeout + TimeSpan.FromSeconds(10));
        }
        catch (TimeoutException) when (!run.IsCompleted)
        {
            Assert.Fail($"case {matrixCase.Name} ({side.Name}) hung: no end within {matrixCase.Timeout.TotalSeconds:F0} s.\nTranscript so far:\n{string.Join('\n', transcript.Lines)}");
        }
        catch (Exception ex)
        {
            if (timeout.IsCancellationRequested)
            {
                Assert.Fail($"case {matrixCase.Name} ({side.Name}) did not finish within {matrixCase.Timeout.TotalSeconds:F0} s ({ex.GetType().Name}).\nTranscript so far:\n{string.Join('\n', transcript.Lines)}");
            }

            transcript.Add(MatrixTranscript.UnhandledPrefix + MatrixTranscript.DescribeException(ex));
            output.WriteLine($"{side.Name}: {ex}");
        }

        return (transcript, DateTime.UtcNow - started);
    }

    /// <summary>The gateway's refusals and errors in this test, to tell a gateway refusal from a relayed server error.</summary>
    private async Task<string> DescribeGatewaySideAsync()
    {
        var records = await _gateway.ReadRecordsAsync();
        var text = new StringBuilder("gateway audit records with an error or a refusal (last 15):\n");
        foreach (var r in records.Where(r => r.Str("sqlstate") is not null || r.Str("error") is not null || r.Type() is "pg.auth.failed" or "pg.session.refused")
                     .TakeLast(15))
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"  {r.Type()} {r.Str("kind")} sqlstate={r.Str("sqlstate")} {r.Str("error") ?? r.Str("reason")}{(r.Str("text") is { } statement ? " text=" + Shorten(statement) : "")}");
        }

        return text.ToString();
    }

    private static string? Shorten(string? s) => s is { Length: > 120 } ? s[..120] + "…" : s;

    /// <summary>A line diff (longest common subsequence): the lines only direct saw (-) and only the gateway's client saw (+), with a line of context.</summary>
    private static string Diff(IReadOnlyList<string> direct, IReadOnlyList<string> gateway)
    {
        var n = direct.Count;
        var m = gateway.Count;
        var lcs = new int[n + 1, m + 1];
        for (var i = n - 1; i >= 0; i--)
        {
            for (var j = m - 1; j >= 0; j--)
            {
                lcs[i, j] = direct[i] == gateway[j] ? lcs[i + 1, j + 1] + 1 : Math.Max(lcs[i + 1, j], lcs[i, j + 1]);
            }
        }

        var entries = new List<(char Mark, string Line)>();
        int a = 0, b = 0;
        while (a < n || b < m)
        {
            if (a < n && b < m && direct[a] == gateway[b])
            {
                entries.Add((' ', direct[a++]));
                b++;
            }
            else if (b < m && (a == n || lcs[a, b + 1] >= lcs[a + 1, b]))
            {
                entries.Add(('+', gateway[b++]));
            }
            else
            {
                entries.Add(('-', direct[a++]));
            }
        }

        var text = new StringBuilder().Append(CultureInfo.InvariantCulture, $"transcript diff (- direct only, + through the gateway only; {n} and {m} lines):\n");
        var shown = 0;
        for (var i = 0; i < entries.Count && shown < 60; i++)
        {
            var near = entries[i].Mark != ' '
                || (i > 0 && entries[i - 1].Mark != ' ')
                || (i + 1 < entries.Count && entries[i + 1].Mark != ' ');
            if (near)
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"  {entries[i].Mark} {entries[i].Line}");
                shown++;
            }
        }

        return text.ToString();
    }
}

/// <summary>A fact that is skipped (with the reason) when the installed psql is older than the version a feature needs.</summary>
public sealed class PsqlAtLeastFactAttribute : FactAttribute
{
    public PsqlAtLeastFactAttribute(int major, string feature)
    {
        if (LibpqMatrixCases.PsqlMajorVersion < major)
        {
            Skip = $"psql {LibpqMatrixCases.PsqlMajorVersion} has no {feature} (psql {major}+); install postgresql-client-{major} to run this case";
        }
    }
}
