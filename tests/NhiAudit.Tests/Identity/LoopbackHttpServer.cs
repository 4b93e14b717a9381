using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace NhiAudit.Tests.Identity;

/// <summary>
/// A tiny HTTP/1.1 server on 127.0.0.1 (a real socket, no mock handler) that serves fixed documents, enough for OIDC
/// discovery and JWKS. Each response closes its connection.
/// </summary>
internal sealed class LoopbackHttpServer : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<string, string> _documents = new(StringComparer.Ordinal);
    private readonly Task _loop;

    public LoopbackHttpServer()
    {
        _listener.Start();
        BaseUrl = $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";
        _loop = AcceptLoopAsync();
    }

    public string BaseUrl { get; }

    public ConcurrentQueue<string> Requests { get; } = new();

    public void Serve(string path, string json) => _documents[path] = json;

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }

            _ = HandleAsync(client);
        }
    }

    private async Task HandleAsync(TcpClient client)
    {
        using (client)
        {
            try
            {
                var stream = client.GetStream();
                var buffer = new byte[8192];
                var received = 0;
                while (received < buffer.Length)
                {
                    var n = await stream.ReadAsync(buffer.AsMemory(received), _stop.Token);
                    if (n == 0)
                    {
                        return;
                    }

                    received += n;
                    if (Encoding.ASCII.GetString(buffer, 0, received).Contains("\r\n\r\n", StringComparison.Ordinal))
                    {
                        break;
                    }
                }

                var requestLine = Encoding.ASCII.GetString(buffer, 0, received).Split("\r\n")[0];
                var path = requestLine.Split(' ') is [_, var p, ..] ? p : "/";
                Requests.Enqueue(path);
                var found = _documents.TryGetValue(path, out var body);
                var payload = Encoding.UTF8.GetBytes(found ? body! : "{}");
                var head = $"HTTP/1.1 {(found ? "200 OK" : "404 Not Found")}\r\nContent-Type: application/json\r\nContent-Length: {payload.Length}\r\nConnection: close\r\n\r\n";
                await stream.WriteAsync(Encoding.ASCII.GetBytes(head), _stop.Token);
                await stream.WriteAsync(payload, _stop.Token);
            }
            catch (Exception)
            {
                // A client that goes away mid-request is not the test's concern.
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _loop;
        _stop.Dispose();
    }
}
