using System.Diagnostics;
using System.Globalization;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json.Nodes;

namespace NhiAudit.IntegrationTests.Kubernetes.Infrastructure;

/// <summary>
/// Runs <c>pods/exec</c> over a channel.k8s.io WebSocket (v4 or v5): the command is a real local process whose working
/// directory is the pod's directory. Channels: 0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize, 255 close (v5).
/// </summary>
internal sealed class KubeExec
{
    public const string V5 = "v5.channel.k8s.io";
    public const string V4 = "v4.channel.k8s.io";

    private readonly WebSocket socket;
    private readonly SemaphoreSlim sendLock = new(1, 1);

    private KubeExec(WebSocket socket) => this.socket = socket;

    /// <summary>Runs one exec session and closes the socket.</summary>
    public static async Task RunAsync(WebSocket socket, string protocol, IReadOnlyList<string> command, bool stdin, bool stdout, bool stderr, bool tty, string podDirectory, CancellationToken cancellationToken)
    {
        var exec = new KubeExec(socket);
        await exec.RunAsync(protocol, command, stdin, stdout, stderr, tty, podDirectory, cancellationToken);
    }

    /// <summary>Maps absolute paths in a <c>tar</c> command line (as sent by <c>kubectl cp</c>) into the pod's directory.</summary>
    public static List<string> MapCommand(IReadOnlyList<string> command, string podDirectory)
    {
        var result = command.ToList();
        if (result.Count == 0 || Path.GetFileName(result[0]) != "tar")
        {
            return result;
        }

        for (var i = 1; i < result.Count; i++)
        {
            if (result[i].StartsWith('/'))
            {
                result[i] = result[i - 1] == "-C"
                    ? Path.Combine(podDirectory, result[i].TrimStart('/'))
                    : (result[i].TrimStart('/') is { Length: > 0 } relative ? relative : ".");
            }
        }

        return result;
    }

    private async Task RunAsync(string protocol, IReadOnlyList<string> command, bool stdin, bool stdout, bool stderr, bool tty, string podDirectory, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(podDirectory);
        var argv = MapCommand(command, podDirectory);
        var psi = new ProcessStartInfo(argv[0])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = podDirectory,
        };
        foreach (var a in argv.Skip(1))
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["HOME"] = podDirectory;
        psi.Environment["HOSTNAME"] = Path.GetFileName(podDirectory);
        using var process = new Process { StartInfo = psi };
        try
        {
            process.Start();
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or FileNotFoundException or InvalidOperationException)
        {
            var message = $"failed to exec in container: exec: \"{argv[0]}\": executable file not found in $PATH";
            await SendAsync(3, Encoding.UTF8.GetBytes(Failure(message, "InternalError", null).ToJsonString()), cancellationToken);
            await CloseAsync();
            return;
        }

        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var outPump = PumpAsync(process.StandardOutput.BaseStream, stdout ? (byte)1 : (byte)0, cts.Token);
        var errPump = PumpAsync(process.StandardError.BaseStream, stderr && !tty ? (byte)2 : tty && stdout ? (byte)1 : (byte)0, cts.Token);
        if (!stdin)
        {
            process.StandardInput.Close();
        }

        var reader = ReadLoopAsync(process, stdin, protocol, cts.Token);
        var exited = process.WaitForExitAsync(CancellationToken.None);
        await Task.WhenAny(exited, reader);
        if (!exited.IsCompleted)
        {
            // The client went away before the command finished.
            try
            {
                process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
            }

            await exited;
            await cts.CancelAsync();
            return;
        }

        await Task.WhenAll(outPump, errPump);
        var exitCode = process.ExitCode;
        var status = exitCode == 0
            ? new JsonObject { ["metadata"] = new JsonObject(), ["status"] = "Success" }
            : Failure(
                $"command terminated with non-zero exit code: error executing command [{string.Join(' ', command)}], exit code {exitCode}",
                "NonZeroExitCode",
                exitCode);
        await SendAsync(3, Encoding.UTF8.GetBytes(status.ToJsonString()), CancellationToken.None);
        await CloseAsync();

        // Complete the close handshake: returning before the client's close frame arrives makes Kestrel reset the
        // connection, and kubectl reports "connection reset by peer" instead of the exit code.
        try
        {
            await reader.WaitAsync(TimeSpan.FromSeconds(5), CancellationToken.None);
        }
        catch (TimeoutException)
        {
        }

        await cts.CancelAsync();
    }

    private static JsonObject Failure(string message, string reason, int? exitCode)
    {
        var status = new JsonObject
        {
            ["metadata"] = new JsonObject(),
            ["status"] = "Failure",
            ["message"] = message,
            ["reason"] = reason,
        };
        if (exitCode is { } code)
        {
            status["details"] = new JsonObject
            {
                ["causes"] = new JsonArray(new JsonObject { ["reason"] = "ExitCode", ["message"] = code.ToString(CultureInfo.InvariantCulture) }),
            };
        }

        return status;
    }

    private async Task PumpAsync(Stream source, byte channel, CancellationToken cancellationToken)
    {
        var buffer = new byte[32 * 1024];
        try
        {
            int n;
            while ((n = await source.ReadAsync(buffer.AsMemory(1, buffer.Length - 1), cancellationToken)) > 0)
            {
                if (channel != 0)
                {
                    buffer[0] = channel;
                    await SendRawAsync(buffer.AsMemory(0, n + 1), cancellationToken);
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or WebSocketException or IOException or ObjectDisposedException)
        {
        }
    }

    private async Task ReadLoopAsync(Process process, bool stdin, string protocol, CancellationToken cancellationToken)
    {
        var buffer = new byte[64 * 1024];
        var message = new MemoryStream();
        try
        {
            while (socket.State == WebSocketState.Open)
            {
                var result = await socket.ReceiveAsync(buffer, cancellationToken);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    return;
                }

                message.Write(buffer, 0, result.Count);
                if (!result.EndOfMessage)
                {
                    continue;
                }

                var data = message.ToArray();
                message.SetLength(0);
                if (data.Length == 0)
                {
                    continue;
                }

                switch (data[0])
                {
                    case 0 when stdin && data.Length > 1:
                        try
                        {
                            await process.StandardInput.BaseStream.WriteAsync(data.AsMemory(1), cancellationToken);
                            await process.StandardInput.BaseStream.FlushAsync(cancellationToken);
                        }
                        catch (IOException)
                        {
                            // The command stopped reading (or exited): input is dropped, as a container runtime does;
                            // the stream stays open for the exit status.
                            stdin = false;
                        }

                        break;
                    case 255 when protocol == V5 && data.Length > 1 && data[1] == 0 && stdin:
                        process.StandardInput.Close();
                        break;
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or WebSocketException or IOException or ObjectDisposedException or InvalidOperationException)
        {
            // Socket closed or process gone.
        }
    }

    private Task SendAsync(byte channel, byte[] payload, CancellationToken cancellationToken)
    {
        var frame = new byte[payload.Length + 1];
        frame[0] = channel;
        payload.CopyTo(frame, 1);
        return SendRawAsync(frame, cancellationToken);
    }

    private async Task SendRawAsync(ReadOnlyMemory<byte> frame, CancellationToken cancellationToken)
    {
        await sendLock.WaitAsync(cancellationToken);
        try
        {
            if (socket.State == WebSocketState.Open)
            {
                await socket.SendAsync(frame, WebSocketMessageType.Binary, true, cancellationToken);
            }
        }
        finally
        {
            sendLock.Release();
        }
    }

    private async Task CloseAsync()
    {
        await sendLock.WaitAsync();
        try
        {
            if (socket.State is WebSocketState.Open or WebSocketState.CloseReceived)
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "", timeout.Token);
            }
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException or IOException)
        {
        }
        finally
        {
            sendLock.Release();
        }
    }
}
