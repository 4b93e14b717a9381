using System.Globalization;
using NhiAudit.IntegrationTests.Infrastructure;

namespace NhiAudit.IntegrationTests.Gateway.ClientMatrix;

/// <summary>pgjdbc (Debian's libpostgresql-jdbc-java, 42.5) through JdbcMatrix.java, launched as a single-file source program.</summary>
public static class JdbcMatrixCases
{
    public const string Java = "/usr/bin/java";
    public const string DriverJar = "/usr/share/java/postgresql.jar";

    public static IReadOnlyList<MatrixCase> All { get; } =
        new[] { "prepared", "batch", "generated-keys", "cancel" }
            .Select(name => new MatrixCase($"jdbc.{name}", (side, t, ct) => RunProgramAsync(name, side, t, ct)))
            .ToList();

    private static string Program => Path.Combine(AppContext.BaseDirectory, "Gateway", "ClientMatrix", "JdbcMatrix.java");

    private static async Task RunProgramAsync(string name, MatrixSide side, MatrixTranscript t, CancellationToken ct)
    {
        if (!File.Exists(Java) || !File.Exists(DriverJar))
        {
            t.Add(MatrixTranscript.UnhandledPrefix + $"{Java} or {DriverJar} is missing: run eng/prereqs.sh (libpostgresql-jdbc-java)");
            return;
        }

        var result = await ProcessRunner.RunAsync(
            Java,
            ["-cp", DriverJar, Program, name, side.Host, side.Port.ToString(CultureInfo.InvariantCulture), side.Database, side.User, side.Suffix],
            null,
            TimeSpan.FromSeconds(50),
            side.LibpqEnvironment(),
            cancellationToken: ct);
        if (!result.Succeeded)
        {
            t.Add(MatrixTranscript.UnhandledPrefix + result.Describe("JdbcMatrix.java " + name));
            return;
        }

        foreach (var line in result.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            t.Add(line.TrimEnd('\r'));
        }
    }
}
