using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace NhiAudit.Ssh.Server;

/// <summary>
/// Accepts SSH connections on a TCP endpoint and runs each as its own session; one connection's failure never
/// touches another.
/// </summary>
public sealed class SshServer : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly SshServerOptions _options;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Task> _sessions = [];
    private Task? _acceptLoop;

    /// <summary>Creates a server for <paramref name="endpoint"/> (port 0 picks a free port).</summary>
    public SshServer(IPEndPoint endpoint, SshServerOptions options, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _listener = new TcpListener(endpoint);
        _options = options;
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>Raised when a connection ends, with how it ended.</summary>
    public event EventHandler<SshSessionResult>? SessionEnded;

    /// <summary>The bound endpoint (after <see cref="Start"/>).</summary>
    public IPEndPoint LocalEndPoint => (IPEndPoint)_listener.LocalEndpoint;

    /// <summary>Binds and starts accepting.</summary>
    public void Start()
    {
        _listener.Start();
        _acceptLoop = AcceptLoopAsync();
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptSocketAsync(_stopping.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }

            socket.NoDelay = true;
            lock (_sessions)
            {
                _sessions.RemoveAll(t => t.IsCompleted);
                _sessions.Add(RunSessionAsync(socket));
            }
        }
    }

    private async Task RunSessionAsync(Socket socket)
    {
        await using var stream = new NetworkStream(socket, ownsSocket: true);
        var pipe = new StreamDuplexPipe(PipeReader.Create(stream), PipeWriter.Create(stream));
        var session = new SshServerSession(pipe, _options, _logger, socket.RemoteEndPoint as IPEndPoint);
        var result = await session.RunAsync(_stopping.Token).ConfigureAwait(false);
        SessionEnded?.Invoke(this, result);
    }

    /// <summary>Stops accepting, ends open sessions with a disconnect and waits for them.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        _listener.Stop();
        if (_acceptLoop is not null)
        {
            await _acceptLoop.ConfigureAwait(false);
        }

        Task[] sessions;
        lock (_sessions)
        {
            sessions = [.. _sessions];
        }

        await Task.WhenAll(sessions).ConfigureAwait(false);
        _listener.Dispose();
        _stopping.Dispose();
    }

    private sealed class StreamDuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}
