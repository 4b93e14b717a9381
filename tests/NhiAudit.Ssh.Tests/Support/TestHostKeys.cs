using System.Diagnostics;
using NhiAudit.Ssh.HostKeys;

namespace NhiAudit.Ssh.Tests.Support;

/// <summary>Host keys made once per test run with the real ssh-keygen, in OpenSSH and PEM formats.</summary>
internal static class TestHostKeys
{
    private static readonly Lazy<string> LazyDirectory = new(Generate);

    public static string Directory => LazyDirectory.Value;

    public static string PathOf(string name) => System.IO.Path.Combine(Directory, name);

    public static SshHostKey Load(string name) => SshHostKey.Load(PathOf(name));

    /// <summary>One key of each type, OpenSSH format.</summary>
    public static IReadOnlyList<SshHostKey> All() => [Load("ed25519"), Load("rsa"), Load("ecdsa")];

    private static string Generate()
    {
        var directory = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "nhiaudit-ssh-tests-" + Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(directory);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try
            {
                System.IO.Directory.Delete(directory, recursive: true);
            }
            catch (IOException)
            {
            }
        };
        Keygen(directory, "ed25519", "-t", "ed25519");
        Keygen(directory, "rsa", "-t", "rsa", "-b", "3072");
        Keygen(directory, "ecdsa", "-t", "ecdsa", "-b", "256");
        Keygen(directory, "rsa-pem", "-t", "rsa", "-b", "2048", "-m", "PEM");
        Keygen(directory, "ecdsa-pem", "-t", "ecdsa", "-b", "256", "-m", "PEM");
        return directory;
    }

    private static void Keygen(string directory, string name, params string[] arguments)
    {
        var start = new ProcessStartInfo("ssh-keygen") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        foreach (var argument in new[] { "-N", "", "-q", "-C", "test-" + name, "-f", System.IO.Path.Combine(directory, name) })
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException("ssh-keygen failed: " + process.StandardError.ReadToEnd());
        }
    }
}
