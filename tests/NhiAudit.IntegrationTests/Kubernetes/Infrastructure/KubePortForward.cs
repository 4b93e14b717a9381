using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;

namespace NhiAudit.IntegrationTests.Kubernetes.Infrastructure;

/// <summary>
/// pods/portforward over the channel WebSocket protocol (v4.channel.k8s.io / portforward.k8s.io, as KubernetesClient
/// speaks it): for the i-th requested port, channel 2i carries data and 2i+1 errors; the first message the server sends
/// on each channel is the port number (2 bytes, little-endian). One TCP connection per port per WebSocket.
/// </summary>
internal static class KubePortForward
{
    public static async Task RunAsync(WebSocket socket, IReadOnlyList<int> ports, Func<int, int> target, CancellationToken cancellationToken)
    {
        using var sendLock = new SemaphoreSlim(1, 1);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);

        async Task SendAsync(byte[] frame)
        {
            await sendLock.WaitAsync(cts.Token);
            try
            {
                if (socket.State == WebSocketState.Open)
                {
                    await socket.SendAsync(frame, WebSocketMessageType.Binary, true, cts.Token);
                }
            }
            finally
            {
                sendLock.Release();
            }
        }

        var clients = new TcpClient?[ports.Count];
        var pumps = new List<Task>();
        try
        {
            for (var i = 0; i < ports.Count; i++)
            {
                var port = ports[i];
                await SendAsync([(byte)(2 * i), (byte)(port & 0xff), (byte)(port >> 8)]);
                await SendAsync([(byte)((2 * i) + 1), (byte)(port & 0xff), (byte)(port >> 8)]);
                var client = new TcpClient();
                try
                {
                    await client.ConnectAsync(IPAddress.Loopback, target(port), cts.Token);
                    clients[i] = client;
                }
                catch (SocketException e)
                {
                    client.Dispose();
                    await SendAsync([(byte)((2 * i) + 1), .. Encoding.UTF8.GetBytes($"error forwarding port {port}: {e.Message}")]);
                    continue;
                }

                var channel = (byte)(2 * i);
                pumps.Add(Task.Run(async () =>
                {
                    var buffer = new byte[32 * 1024];
                    try
                    {
                        var stream = client.GetStream();
                        int n;
                        while ((n = await stream.ReadAsync(buffer.AsMemory(1, buffer.Length - 1), cts.Token)) > 0)
                        {
                            buffer[0] = channel;
                            await SendAsync(buffer[..(n + 1)]);
                        }
                    }
                    catch (Exception e) when (e is IOException or OperationCanceledException or SocketException or ObjectDisposedException or WebSocketException)
                    {
                    }

                    await cts.CancelAsync();
                }, CancellationToken.None));
            }

            var receive = new byte[64 * 1024];
            var message = new MemoryStream();
            while (socket.State == WebSocketState.Open && !cts.IsCancellationRequested)
            {
                var result = await socket.ReceiveAsync(receive, cts.Token);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    break;
                }

                message.Write(receive, 0, result.Count);
                if (!result.EndOfMessage)
                {
                    continue;
                }

                var data = message.ToArray();
                message.SetLength(0);
                if (data.Length < 2 || data[0] % 2 != 0 || data[0] / 2 >= clients.Length || clients[data[0] / 2] is not { } tcp)
                {
                    continue;
                }

                await tcp.GetStream().WriteAsync(data.AsMemory(1), cts.Token);
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or SocketException or ObjectDisposedException or WebSocketException)
        {
        }
        finally
        {
            await cts.CancelAsync();
            foreach (var c in clients)
            {
                c?.Dispose();
            }

            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                if (socket.State is WebSocketState.Open or WebSocketState.CloseReceived)
                {
                    await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "", timeout.Token);
                }
            }
            catch (Exception e) when (e is WebSocketException or OperationCanceledException or IOException)
            {
            }

            await Task.WhenAll(pumps).WaitAsync(TimeSpan.FromSeconds(2), CancellationToken.None).ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }
}
