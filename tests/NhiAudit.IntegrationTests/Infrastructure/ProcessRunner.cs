using System.Diagnostics;
using System.Text;

namespace NhiAudit.IntegrationTests.Infrastructure;

/// <summary>The outcome of one <see cref="ProcessRunner.RunAsync"/> call.</summary>
public sealed record ProcessResult(int ExitCode, string StandardOutput, string StandardError, bool TimedOut, TimeSpan Elapsed)
{
    /// <summary>The command line, for messages.</summary>
    public string CommandLine { get; init; } = "";

    /// <summary>True when the process ran to the end and exited 0.</summary>
    public bool Succeeded => ExitCode == 0 && !TimedOut;

    /// <summary>Throws with the command, exit code, stdout and stderr unless the process exited 0.</summary>
    public ProcessResult EnsureSuccess(string? what = null)
    {
        if (!Succeeded)
        {
            throw new InvalidOperationException(Describe(what ?? "process failed"));
        }

        return this;
    }

    /// <summary>A multi-line description for assertion messages.</summary>
    public string Describe(string what) =>
        $"{what}: `{CommandLine}` {(TimedOut ? "timed out" : $"exited {ExitCode}")} after {Elapsed.TotalSeconds:F1} s\n" +
        $"--- stdout ---\n{Tail(StandardOutput)}\n--- stderr ---\n{Tail(StandardError)}";

    private static string Tail(string s) => s.Length <= 8000 ? s : "…" + s[^8000..];
}

/// <summary>Runs an external program (psql, pgbench, pg_ctl, openssl, ssh…) and captures its output.</summary>
public static class ProcessRunner
{
    /// <summary>Default timeout when none is given.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(120);

    /// <summary>
    /// Runs <paramref name="file"/> with <paramref name="args"/> (no shell), writes <paramref name="stdin"/> (then closes
    /// it; with null, stdin is closed at once), and returns the exit code and both outputs. On timeout or cancellation the
    /// whole process tree is killed and the result has <see cref="ProcessResult.TimedOut"/> set and exit code -1.
    /// Environment entries with a null or empty value are removed from the child's environment.
    /// </summary>
    public static async Task<ProcessResult> RunAsync(
        string file,
        IEnumerable<string> args,
        string? stdin = null,
        TimeSpan? timeout = null,
        IDictionary<string, string>? env = null,
        string? workingDirectory = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(args);
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        if (workingDirectory is not null)
        {
            psi.WorkingDirectory = workingDirectory;
        }

        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        if (env is not null)
        {
            foreach (var (k, v) in env)
            {
                if (string.IsNullOrEmpty(v))
                {
                    psi.Environment.Remove(k);
                }
                else
                {
                    psi.Environment[k] = v;
                }
            }
        }

        var commandLine = string.Join(' ', new[] { file }.Concat(psi.ArgumentList.Select(Quote)));
        var stopwatch = Stopwatch.StartNew();
        using var process = new Process { StartInfo = psi };
        try
        {
            process.Start();
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or FileNotFoundException)
        {
            throw new InvalidOperationException($"cannot start `{commandLine}`: {e.Message}", e);
        }

        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        var outTask = PumpAsync(process.StandardOutput, stdout);
        var errTask = PumpAsync(process.StandardError, stderr);

        try
        {
            if (stdin is not null)
            {
                await process.StandardInput.WriteAsync(stdin).ConfigureAwait(false);
            }

            process.StandardInput.Close();
        }
        catch (IOException)
        {
            // The process exited without reading all of its input.
        }

        var timedOut = false;
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout ?? DefaultTimeout);
        try
        {
            await process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            timedOut = true;
            try
            {
                process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
                // Already gone.
            }

            await process.WaitForExitAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10), CancellationToken.None).ConfigureAwait(false);
        }

        // A daemon the process started may keep the pipes open (it should not: pg_ctl and pgbouncer -d
        // redirect theirs), so don't wait for end-of-stream forever.
        await Task.WhenAny(Task.WhenAll(outTask, errTask), Task.Delay(TimeSpan.FromSeconds(5), CancellationToken.None)).ConfigureAwait(false);
        stopwatch.Stop();

        string so, se;
        lock (stdout)
        {
            so = stdout.ToString();
        }

        lock (stderr)
        {
            se = stderr.ToString();
        }

        if (timedOut)
        {
            se += $"\n[killed: no exit within {(timeout ?? DefaultTimeout).TotalSeconds:F1} s or cancelled]";
        }

        return new ProcessResult(timedOut ? -1 : process.ExitCode, so, se, timedOut, stopwatch.Elapsed) { CommandLine = commandLine };
    }

    /// <summary>Same as <see cref="RunAsync"/>, then throws unless the exit code is 0.</summary>
    public static async Task<ProcessResult> RunCheckedAsync(
        string file,
        IEnumerable<string> args,
        string? stdin = null,
        TimeSpan? timeout = null,
        IDictionary<string, string>? env = null,
        string? workingDirectory = null,
        CancellationToken cancellationToken = default)
    {
        var result = await RunAsync(file, args, stdin, timeout, env, workingDirectory, cancellationToken).ConfigureAwait(false);
        return result.EnsureSuccess();
    }

    /// <summary>The full path of <paramref name="name"/> on PATH (plus /usr/sbin and /sbin), or null.</summary>
    public static string? FindOnPath(string name)
    {
        if (name.Contains('/', StringComparison.Ordinal))
        {
            return File.Exists(name) ? name : null;
        }

        var dirs = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Concat(["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]);
        foreach (var dir in dirs)
        {
            var candidate = Path.Combine(dir, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    private static async Task PumpAsync(StreamReader reader, StringBuilder sink)
    {
        var buffer = new char[4096];
        int n;
        while ((n = await reader.ReadAsync(buffer).ConfigureAwait(false)) > 0)
        {
            lock (sink)
            {
                sink.Append(buffer, 0, n);
            }
        }
    }

    private static string Quote(string a) =>
        a.Length > 0 && a.All(c => char.IsAsciiLetterOrDigit(c) || "-_./=:,@%+".Contains(c, StringComparison.Ordinal)) ? a : "'" + a.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
