using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using NhiAudit.Ssh.Sftp;

namespace NhiAudit.Ssh.Tests.Sftp;

/// <summary>
/// Runs the real OpenSSH <c>sftp</c> client against the real <c>/usr/lib/openssh/sftp-server</c> through a tiny relay in
/// this process: sftp's <c>-D</c> command is bash connecting its stdin/stdout to a loopback socket we accept, and we
/// start sftp-server with redirected pipes. Both directions pass through an <see cref="SftpObserver"/> and are recorded.
/// </summary>
internal sealed class SftpRelayCapture
{
    public const string SftpServer = "/usr/lib/openssh/sftp-server";

    public sealed record Result(
        int ExitCode,
        string StandardOutput,
        string StandardError,
        IReadOnlyList<SftpEvent> Events,
        IReadOnlyList<(bool FromClient, byte[] Data)> Segments);

    /// <summary>Runs <paramref name="batch"/> with sftp in <paramref name="localDirectory"/> against a server rooted at <paramref name="remoteDirectory"/>.</summary>
    /// <param name="deny">Policy: returns a reason to refuse an operation, or null to forward it. When set, the relay forwards whole packets only.</param>
    public static async Task<Result> RunAsync(string localDirectory, string remoteDirectory, string batch, Func<SftpOperation, string?>? deny = null)
    {
        var batchFile = Path.Combine(localDirectory, "batch.txt");
        await File.WriteAllTextAsync(batchFile, batch);

        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port.ToString(CultureInfo.InvariantCulture);

        var clientStart = new ProcessStartInfo("/usr/bin/sftp")
        {
            WorkingDirectory = localDirectory,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        clientStart.ArgumentList.Add("-b");
        clientStart.ArgumentList.Add(batchFile);
        clientStart.ArgumentList.Add("-D");
        clientStart.ArgumentList.Add($"/bin/bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}; cat <&3 & exec cat >&3'");
        using var client = Process.Start(clientStart)!;
        client.StandardInput.Close();
        var stdout = client.StandardOutput.ReadToEndAsync();
        var stderr = client.StandardError.ReadToEndAsync();

        Process? server = null;
        try
        {
            // A guard against a hung peer, not a timing assertion.
            using var guard = new CancellationTokenSource(TimeSpan.FromMinutes(2));
            using var socket = await listener.AcceptSocketAsync(guard.Token);
            using var network = new NetworkStream(socket, ownsSocket: false);

            var serverStart = new ProcessStartInfo(SftpServer)
            {
                WorkingDirectory = remoteDirectory,
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            serverStart.ArgumentList.Add("-d");
            serverStart.ArgumentList.Add(remoteDirectory);
            server = Process.Start(serverStart)!;
            var serverErrors = server.StandardError.ReadToEndAsync();

            var gate = new Lock();
            var events = new List<SftpEvent>();
            var segments = new List<(bool, byte[])>();
            var observer = new SftpObserver(events.Add);
            var toClient = new SemaphoreSlim(1, 1);

            async Task WriteToClientAsync(ReadOnlyMemory<byte> bytes)
            {
                await toClient.WaitAsync();
                try
                {
                    await network.WriteAsync(bytes);
                }
                finally
                {
                    toClient.Release();
                }
            }

            async Task ClientToServerAsync()
            {
                var buffer = new byte[64 * 1024];
                var pending = new List<byte>();
                var input = server.StandardInput.BaseStream;
                try
                {
                    while (true)
                    {
                        var read = await network.ReadAsync(buffer);
                        if (read == 0)
                        {
                            break;
                        }

                        if (deny is null)
                        {
                            lock (gate)
                            {
                                segments.Add((true, buffer[..read]));
                                observer.ObserveClientData(buffer.AsSpan(0, read));
                            }

                            await input.WriteAsync(buffer.AsMemory(0, read));
                            await input.FlushAsync();
                            continue;
                        }

                        // Enforcing: forward whole packets only, so a refused one can be answered instead.
                        pending.AddRange(buffer.AsSpan(0, read));
                        while (pending.Count >= 4)
                        {
                            var length = (pending[0] << 24) | (pending[1] << 16) | (pending[2] << 8) | pending[3];
                            if (pending.Count < 4 + length)
                            {
                                break;
                            }

                            var packet = pending.GetRange(0, 4 + length).ToArray();
                            pending.RemoveRange(0, 4 + length);
                            byte[]? refusal = null;
                            lock (gate)
                            {
                                foreach (var operation in observer.ObserveClientData(packet))
                                {
                                    if (deny(operation) is { } reason)
                                    {
                                        refusal = observer.Deny(operation.RequestId, reason);
                                    }
                                }

                                if (refusal is null)
                                {
                                    segments.Add((true, packet));
                                }
                            }

                            if (refusal is not null)
                            {
                                await WriteToClientAsync(refusal);
                            }
                            else
                            {
                                await input.WriteAsync(packet);
                                await input.FlushAsync();
                            }
                        }
                    }
                }
                catch (IOException)
                {
                }
                catch (ObjectDisposedException)
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

                        await WriteToClientAsync(buffer.AsMemory(0, read));
                    }
                }
                catch (IOException)
                {
                }
                catch (ObjectDisposedException)
                {
                }
            }

            var up = Task.Run(ClientToServerAsync);
            var down = Task.Run(ServerToClientAsync);
            try
            {
                await client.WaitForExitAsync(guard.Token);
            }
            catch (OperationCanceledException)
            {
                client.Kill(entireProcessTree: true);
                server.Kill();
                throw new InvalidOperationException("sftp did not finish; stderr: " + (stderr.IsCompleted ? stderr.Result : "(pending)"));
            }

            // sftp has exited: end the relay from our side (bash's reading cat holds the socket until then).
            socket.Shutdown(SocketShutdown.Both);
            socket.Close();
            await up;
            server.StandardInput.Close();
            await server.WaitForExitAsync(guard.Token);
            await down;
            _ = await serverErrors;
            lock (gate)
            {
                observer.Complete();
            }

            return new Result(client.ExitCode, await stdout, await stderr, events, segments);
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
                server.Kill();
            }

            server?.Dispose();
        }
    }
}
