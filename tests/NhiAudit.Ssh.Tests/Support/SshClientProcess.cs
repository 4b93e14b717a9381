using System.Diagnostics;

namespace NhiAudit.Ssh.Tests.Support;

/// <summary>Runs the real OpenSSH client (/usr/bin/ssh) against a local port and captures its output.</summary>
internal static class SshClientProcess
{
    public sealed record Result(int ExitCode, string StandardOutput, string StandardError);

    public static async Task<Result> RunAsync(int port, IEnumerable<string> options, string command, string? standardInput = null, string verbosity = "-v")
    {
        var start = new ProcessStartInfo("/usr/bin/ssh")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var argument in new[]
        {
            verbosity, "-F", "/dev/null", "-p", port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes", "-o", "IdentityFile=/dev/null",
        })
        {
            start.ArgumentList.Add(argument);
        }

        foreach (var option in options)
        {
            start.ArgumentList.Add("-o");
            start.ArgumentList.Add(option);
        }

        start.ArgumentList.Add("workload@127.0.0.1");
        start.ArgumentList.Add(command);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (standardInput is not null)
        {
            await process.StandardInput.WriteAsync(standardInput);
        }

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
            throw new InvalidOperationException("ssh did not finish; stderr so far: " + (stderr.IsCompleted ? stderr.Result : "(pending)"));
        }

        return new Result(process.ExitCode, await stdout, await stderr);
    }
}
