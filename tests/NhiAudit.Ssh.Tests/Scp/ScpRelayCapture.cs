using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using NhiAudit.Ssh.Scp;

namespace NhiAudit.Ssh.Tests.Scp;

/// <summary>
/// Runs the real OpenSSH <c>scp -O</c> client against the real remote <c>scp -t</c>/<c>scp -f</c> through a tiny relay
/// in this process. scp's <c>-S</c> program is a script standing in for ssh: it connects to a loopback listener we run,
/// writes the remote command (scp's last argument to ssh) as the first line, and copies its stdin to that connection and
/// a second connection to its stdout (two, so that each direction can end on its own). We run that command
/// as sshd does (<c>/bin/sh -c</c>) with redirected pipes; both directions pass through an <see cref="ScpObserver"/>
/// and are recorded.
/// </summary>
internal static class ScpRelayCapture
{
    public const string Scp = "/usr/bin/scp";

    public sealed record Result(
        int ExitCode,
        string StandardError,
        string CommandLine,
        ScpCommand Command,
        IReadOnlyList<ScpFileEvent> Events,
        IReadOnlyList<(bool FromClient, byte[] Data)> Segments);

    /// <summary>Runs <c>scp -O -S fake-ssh <paramref name="arguments"/></c> in <paramref name="localDirectory"/>; the remote command runs in <paramref name="remoteDirectory"/>.</summary>
    public static async Task<Result> RunAsync(string localDirectory, string remoteDirectory, params string[] arguments)
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port.ToString(CultureInfo.InvariantCulture);
        var fakeSsh = Path.Combine(Path.GetTempPath(), "nhiaudit-scp-ssh-" + Guid.NewGuid().ToString("N") + ".sh");
        await File.WriteAllTextAsync(fakeSsh, $$"""
            #!/bin/bash
            # Stands in for ssh: scp passes the remote command as the last argument. One connection per direction, so
            # that each end of stream passes on as ssh's channel EOF would.
            exec 3<>/dev/tcp/127.0.0.1/{{port}}
            printf '%s\n' "${@: -1}" >&3
            exec 4<>/dev/tcp/127.0.0.1/{{port}}
            cat <&0 >&3 4>&- &
            exec 3>&- 0</dev/null
            cat <&4
            # The remote end closed: like ssh, stop copying stdin and exit, so that scp sees the end of its input.
            kill $! 2>/dev/null
            exit 0

            """);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(fakeSsh, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        var clientStart = new ProcessStartInfo(Scp)
        {
            WorkingDirectory = localDirectory,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        clientStart.ArgumentList.Add("-O");
        clientStart.ArgumentList.Add("-S");
        clientStart.ArgumentList.Add(fakeSsh);
        foreach (var argument in arguments)
        {
            clientStart.ArgumentList.Add(argument);
        }

        using var client = Process.Start(clientStart)!;
        client.StandardInput.Close();
        var stdout = client.StandardOutput.ReadToEndAsync();
        var stderr = client.StandardError.ReadToEndAsync();

        Process? server = null;
        try
        {
            // A guard against a hung peer, not a timing assertion.
            using var guard = new CancellationTokenSource(TimeSpan.FromMinutes(2));
            var accept = listener.AcceptSocketAsync(guard.Token).AsTask();
            if (await Task.WhenAny(accept, client.WaitForExitAsync(guard.Token)) != accept)
            {
                throw new InvalidOperationException("scp never connected; stderr: " + await stderr);
            }

            using var fromClient = new NetworkStream(await accept, ownsSocket: true);
            var commandLine = await ReadCommandLineAsync(fromClient, guard.Token);
            using var toClientSocket = await listener.AcceptSocketAsync(guard.Token);
            using var toClient = new NetworkStream(toClientSocket, ownsSocket: false);
            Assert.True(ScpCommand.TryParse(commandLine, out var command), "not recognised: " + commandLine);

            var serverStart = new ProcessStartInfo("/bin/sh")
            {
                WorkingDirectory = remoteDirectory,
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            serverStart.ArgumentList.Add("-c");
            serverStart.ArgumentList.Add(commandLine);
            server = Process.Start(serverStart)!;
            var serverErrors = server.StandardError.ReadToEndAsync();

            var gate = new Lock();
            var events = new List<ScpFileEvent>();
            var segments = new List<(bool, byte[])>();
            var observer = new ScpObserver(command, events.Add);

            async Task ClientToServerAsync()
            {
                var buffer = new byte[64 * 1024];
                var input = server.StandardInput.BaseStream;
                try
                {
                    while (true)
                    {
                        var read = await fromClient.ReadAsync(buffer);
                        if (read == 0)
                        {
                            break;
                        }

                        lock (gate)
                        {
                            segments.Add((true, buffer[..read]));
                            observer.ObserveClientData(buffer.AsSpan(0, read));
                        }

                        await input.WriteAsync(buffer.AsMemory(0, read));
                        await input.FlushAsync();
                    }
                }
                catch (IOException)
                {
                }
                catch (ObjectDisposedException)
                {
                }

                // scp closed its output: pass the end of stream on, as ssh's channel EOF would.
                try
                {
                    input.Close();
                }
                catch (IOException)
                {
                }
            }

            async Task ServerToClientAsync()
            {
                var buffer = new byte[64 * 1024];
                var output = server.StandardOutput.BaseStream;
                try
                {
                    while (true)
                    {
                        var read = await output.ReadAsync(buffer);
                        if (read == 0)
                        {
                            break;
                        }

                        lock (gate)
                        {
                            segments.Add((false, buffer[..read]));
                            observer.ObserveServerData(buffer.AsSpan(0, read));
                        }

                        await toClient.WriteAsync(buffer.AsMemory(0, read));
                    }
                }
                catch (IOException)
                {
                }
                catch (ObjectDisposedException)
                {
                }

                // The remote end closed its output: as sshd's channel close would, this ends the script and so scp's input.
                try
                {
                    toClientSocket.Shutdown(SocketShutdown.Send);
                }
                catch (SocketException)
                {
                }
            }

            var up = Task.Run(ClientToServerAsync);
            var down = Task.Run(ServerToClientAsync);
            try
            {
                await client.WaitForExitAsync(guard.Token);
                await up.WaitAsync(guard.Token);
                await server.WaitForExitAsync(guard.Token);
                await down.WaitAsync(guard.Token);
            }
            catch (OperationCanceledException)
            {
                throw new InvalidOperationException("scp did not finish; stderr: " + (stderr.IsCompleted ? stderr.Result : "(pending)"));
            }

            _ = await serverErrors;
            lock (gate)
            {
                observer.Complete();
            }

            _ = await stdout;
            return new Result(client.ExitCode, await stderr, commandLine, command, events, segments);
        }
        finally
        {
            // Only on failure are the processes still running.
            if (!client.HasExited)
            {
                client.Kill(entireProcessTree: true);
            }

            if (server is { HasExited: false })
            {
                server.Kill(entireProcessTree: true);
            }

            server?.Dispose();
            File.Delete(fakeSsh);
        }
    }

    /// <summary>Reads the script's first line byte by byte, so that no byte of the scp stream is taken with it.</summary>
    private static async Task<string> ReadCommandLineAsync(NetworkStream network, CancellationToken cancellation)
    {
        var line = new List<byte>();
        var one = new byte[1];
        while (await network.ReadAsync(one, cancellation) == 1 && one[0] != (byte)'\n')
        {
            line.Add(one[0]);
        }

        return Encoding.UTF8.GetString([.. line]);
    }
}
