using System.Diagnostics;
using System.Globalization;

namespace NhiAudit.Ssh.Tests.Authentication;

/// <summary>The real OpenSSH client with the options and environment an authentication test needs.</summary>
internal static class OpenSshAuthClient
{
    public sealed record Result(int ExitCode, string StandardOutput, string StandardError);

    public static async Task<Result> RunAsync(int port, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null, string user = "workload")
    {
        var start = new ProcessStartInfo("/usr/bin/ssh")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var argument in new[]
        {
            "-v", "-F", "/dev/null", "-p", port.ToString(CultureInfo.InvariantCulture),
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes",
        })
        {
            start.ArgumentList.Add(argument);
        }

        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        start.ArgumentList.Add(user + "@127.0.0.1");
        start.ArgumentList.Add("hello");
        start.Environment.Remove("SSH_AUTH_SOCK");
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        process.StandardInput.Close();

        // A guard against a hung peer, not a timing assertion.
        using var guard = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        try
        {
            await process.WaitForExitAsync(guard.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill();
            throw new InvalidOperationException("ssh did not finish");
        }

        return new Result(process.ExitCode, await stdout, await stderr);
    }

    /// <summary>Arguments for publickey authentication with <paramref name="keyPath"/> (and its certificate).</summary>
    public static string[] PublicKey(string keyPath, string? certificatePath = null) =>
    [
        "-i", keyPath, "-o", "BatchMode=yes", "-o", "PreferredAuthentications=publickey",
        .. certificatePath is null ? Array.Empty<string>() : ["-o", "CertificateFile=" + certificatePath],
    ];
}
