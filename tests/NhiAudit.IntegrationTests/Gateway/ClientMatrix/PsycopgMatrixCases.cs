using System.Text.Json;
using NhiAudit.IntegrationTests.Infrastructure;

namespace NhiAudit.IntegrationTests.Gateway.ClientMatrix;

/// <summary>psycopg 3 (Debian's python3-psycopg, python3-psycopg-pool): psycopg_matrix.py prints a JSON transcript per case.</summary>
public static class PsycopgMatrixCases
{
    /// <summary>Debian's python, where apt installs psycopg (a pyenv python on PATH would not see it).</summary>
    public const string Python = "/usr/bin/python3";

    public static IReadOnlyList<MatrixCase> All { get; } =
        new[] { "pool", "prepare", "pipeline", "copy", "cancel", "notify" }
            .Select(name => new MatrixCase($"psycopg.{name}", (side, t, ct) => RunScriptAsync(name, side, t, ct)))
            .ToList();

    private static string Script => Path.Combine(AppContext.BaseDirectory, "Gateway", "ClientMatrix", "psycopg_matrix.py");

    private static async Task RunScriptAsync(string name, MatrixSide side, MatrixTranscript t, CancellationToken ct)
    {
        var result = await ProcessRunner.RunAsync(Python, [Script, name, side.LibpqConnectionString, side.Suffix], null, TimeSpan.FromSeconds(50), side.LibpqEnvironment(), cancellationToken: ct);
        if (!result.Succeeded)
        {
            t.Add(MatrixTranscript.UnhandledPrefix + result.Describe("psycopg_matrix.py " + name));
            return;
        }

        using var document = JsonDocument.Parse(result.StandardOutput);
        foreach (var line in document.RootElement.GetProperty("lines").EnumerateArray())
        {
            t.Add(line.GetString()!);
        }
    }
}
