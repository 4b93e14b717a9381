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
            text.AppendLine(CultureInfo.InvariantCulture, $"  {r.Type()} {r.Str("kind")} sqlstate={r.Str("sqlstate")} {r.Str("error") ?? r.Str("reason")} text={Shorten(r.Str("text"))}");
        }

        return text.ToString();
    }

    private static string? Shorten(string? s) => s is { Length: > 120 } ? s[..120] + "…" : s;

    private static string Diff(IReadOnlyList<string> direct, IReadOnlyList<string> gateway)
    {
        var text = new StringBuilder();
        var first = 0;
        while (first < direct.Count && first < gateway.Count && direct[first] == gateway[first])
        {
            first++;
        }

        text.AppendLine(CultureInfo.InvariantCulture, $"first difference at line {first + 1} (direct {direct.Count} lines, gateway {gateway.Count} lines):");
        for (var i = Math.Max(0, first - 2); i < first; i++)
        {
            text.AppendLine("    " + direct[i]);
        }

        for (var i = first; i < Math.Min(direct.Count, first + 12); i++)
        {
            text.AppendLine("  - direct : " + direct[i]);
        }

        for (var i = first; i < Math.Min(gateway.Count, first + 12); i++)
        {
            text.AppendLine("  + gateway: " + gateway[i]);
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
