using System.Net;
using System.Net.WebSockets;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using NhiAudit.Kubernetes.Classification;
using NhiAudit.Recording;

namespace NhiAudit.Kubernetes.Gateway;

/// <summary>
/// exec, attach and port-forward over WebSocket: the gateway opens the upstream WebSocket itself (with the
/// workload's impersonation and its own credential), accepts the client's with the subprotocol the API server chose,
/// and relays every message unchanged while it taps the channel streams (v4/v5.channel.k8s.io: the first byte of
/// each message names the stream) into an asciicast recording. <c>kubectl cp</c> runs tar over exec; the tar
/// headers in the stream name the files copied.
/// </summary>
internal sealed class KubernetesStreamRelay(KubernetesServices services, KubernetesCall call, KubernetesRequestInfo info)
{
    private const int BufferSize = 64 * 1024;

    /// <summary>
    /// True when the gateway relays the stream message by message and taps it: exec and attach over a channel protocol.
    /// Anything else that upgrades (port-forward, whose kubectl 1.31+ form tunnels SPDY inside the WebSocket as
    /// <c>SPDY/3.1+portforward.k8s.io</c>, a subprotocol .NET's WebSocket types refuse to name) is forwarded as an opaque
    /// upgraded connection by YARP: recorded as a request, its bytes not inspected.
    /// </summary>
    public static bool Taps(HttpContext context, KubernetesRequestInfo info) =>
        info.Subresource is "exec" or "attach"
        && context.WebSockets.WebSocketRequestedProtocols.Any(p => p.EndsWith("channel.k8s.io", StringComparison.Ordinal));

    public async Task RunAsync(HttpContext context)
    {
        var summary = new KubernetesStreamSummary { Kind = info.Subresource.Length > 0 ? info.Subresource : info.Action };
        call.Stream = summary;
        using var upstream = new ClientWebSocket();
        foreach (var protocol in context.WebSockets.WebSocketRequestedProtocols)
        {
            upstream.Options.AddSubProtocol(protocol);
        }

        upstream.Options.CollectHttpResponseDetails = true;
        upstream.Options.KeepAliveInterval = TimeSpan.FromSeconds(30);
        if (await services.Upstream.BearerTokenAsync(context.RequestAborted).ConfigureAwait(false) is { } token)
        {
            upstream.Options.SetRequestHeader("Authorization", "Bearer " + token);
        }

        foreach (var (name, value) in KubernetesTransformer.ImpersonationHeaders(services.Target.Impersonation, call))
        {
            upstream.Options.SetRequestHeader(name, value);
        }

        var target = new UriBuilder(services.Upstream.Server)
        {
            Scheme = "wss",
            Path = context.Request.Path.Value,
            Query = context.Request.QueryString.Value?.TrimStart('?'),
        }.Uri;
        try
        {
            await upstream.ConnectAsync(target, services.Upstream.Invoker, context.RequestAborted).ConfigureAwait(false);
        }
        catch (WebSocketException ex)
        {
            // The API server refused the upgrade (RBAC, no such pod …): pass its answer on as a Status.
            var code = upstream.HttpStatusCode is 0 ? HttpStatusCode.BadGateway : upstream.HttpStatusCode;
            call.Status = (int)code;
            call.Error = ex.Message;
            var message = code == HttpStatusCode.BadGateway ? "the NhiAudit gateway could not open the stream to the API server: " + ex.Message : $"the API server refused the {summary.Kind} stream ({(int)code})";
            if (!await KubernetesStatus.TryRefuseStreamAsync(context, (int)code, message).ConfigureAwait(false))
            {
                await KubernetesStatus.WriteAsync(context, (int)code, message).ConfigureAwait(false);
            }

            return;
        }

        summary.Protocol = upstream.SubProtocol ?? "";
        using var client = await context.WebSockets.AcceptWebSocketAsync(upstream.SubProtocol).ConfigureAwait(false);
        call.Status = 101;
        var channels = summary.Protocol.EndsWith("channel.k8s.io", StringComparison.Ordinal) && !summary.Protocol.StartsWith("base64", StringComparison.Ordinal);
        AsciicastWriter? recording = null;
        if (channels && info.Subresource is "exec" or "attach")
        {
            Directory.CreateDirectory(services.Target.RecordingsDirectory);
            var path = Path.Combine(services.Target.RecordingsDirectory, $"{call.RequestId}.cast");
            recording = AsciicastWriter.Create(path, 80, 24, call.Command, services.Time);
            summary.Recording = Path.GetFullPath(path);
        }

        var tar = IsTar(context) ? new TarNameReader() : null;
        try
        {
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
            var toUpstream = PumpAsync(client, upstream, fromClient: true, channels, recording, tar, summary, stop.Token);
            var toClient = PumpAsync(upstream, client, fromClient: false, channels, recording, tar, summary, stop.Token);
            var first = await Task.WhenAny(toUpstream, toClient).ConfigureAwait(false);
            if (first == toUpstream)
            {
                // The client closed its side: give the API server a moment to send the exit status, then stop.
                stop.CancelAfter(TimeSpan.FromSeconds(5));
            }
            else
            {
                stop.CancelAfter(TimeSpan.FromSeconds(2));
            }

            try
            {
                await Task.WhenAll(toUpstream, toClient).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or WebSocketException or IOException)
            {
                // One side went away; the other is closed below.
            }
        }
        finally
        {
            if (recording is not null)
            {
                await recording.DisposeAsync().ConfigureAwait(false);
                summary.RecordingSha256 = recording.Sha256;
            }

            summary.Files = tar?.Files;
            await CloseQuietlyAsync(client).ConfigureAwait(false);
            await CloseQuietlyAsync(upstream).ConfigureAwait(false);
        }
    }

    private static bool IsTar(HttpContext context) =>
        context.Request.Query["command"] is { Count: > 0 } command && command[0] == "tar";

    private static async Task PumpAsync(WebSocket from, WebSocket to, bool fromClient, bool channels, AsciicastWriter? recording, TarNameReader? tar, KubernetesStreamSummary summary, CancellationToken ct)
    {
        var buffer = new byte[BufferSize];
        var messageStart = true;
        var channel = -1;
        while (true)
        {
            var result = await from.ReceiveAsync(buffer, ct).ConfigureAwait(false);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                if (to.State is WebSocketState.Open or WebSocketState.CloseReceived)
                {
                    await to.CloseOutputAsync(result.CloseStatus ?? WebSocketCloseStatus.NormalClosure, result.CloseStatusDescription, ct).ConfigureAwait(false);
                }

                return;
            }

            var data = buffer.AsMemory(0, result.Count);
            if (fromClient)
            {
                summary.BytesIn += result.Count;
            }
            else
            {
                summary.BytesOut += result.Count;
            }

            if (channels && result.MessageType == WebSocketMessageType.Binary)
            {
                var payload = data.Span;
                if (messageStart && payload.Length > 0)
                {
                    channel = payload[0];
                    payload = payload[1..];
                }

                Tap(channel, payload, fromClient, recording, tar, summary);
            }

            messageStart = result.EndOfMessage;
            await to.SendAsync(data, result.MessageType, result.EndOfMessage, ct).ConfigureAwait(false);
        }
    }

    private static void Tap(int channel, ReadOnlySpan<byte> payload, bool fromClient, AsciicastWriter? recording, TarNameReader? tar, KubernetesStreamSummary summary)
    {
        switch (channel)
        {
            case 0 when fromClient:
                recording?.Input(payload);
                tar?.Feed(payload);
                break;
            case 1 or 2 when !fromClient:
                if (tar is not null && channel == 1)
                {
                    tar.Feed(payload);
                }
                else
                {
                    recording?.Output(payload);
                }

                break;
            case 3 when !fromClient:
                summary.ExitCode = ExitCode(payload, out var message);
                summary.StatusMessage = message;
                break;
            case 4 when fromClient:
                try
                {
                    using var size = JsonDocument.Parse(payload.ToArray());
                    if (size.RootElement.TryGetProperty("Width", out var width) && size.RootElement.TryGetProperty("Height", out var height))
                    {
                        recording?.Resize(width.GetInt32(), height.GetInt32());
                    }
                }
                catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException)
                {
                    // A malformed resize message is relayed unchanged; the API server rejects it.
                }

                break;
        }
    }

    /// <summary>The exit code in a v4+ status message: 0 for Success, the ExitCode cause for a NonZeroExitCode failure.</summary>
    internal static int? ExitCode(ReadOnlySpan<byte> status, out string? message)
    {
        message = null;
        try
        {
            using var document = JsonDocument.Parse(status.ToArray());
            var root = document.RootElement;
            message = root.TryGetProperty("message", out var m) ? m.GetString() : null;
            if (root.TryGetProperty("status", out var s) && s.GetString() == "Success")
            {
                return 0;
            }

            if (root.TryGetProperty("details", out var details) && details.TryGetProperty("causes", out var causes))
            {
                foreach (var cause in causes.EnumerateArray())
                {
                    if (cause.TryGetProperty("reason", out var reason) && reason.GetString() == "ExitCode"
                        && cause.TryGetProperty("message", out var code) && int.TryParse(code.GetString(), out var exit))
                    {
                        return exit;
                    }
                }
            }
        }
        catch (JsonException)
        {
            message = "(unreadable status)";
        }

        return null;
    }

    private static async Task CloseQuietlyAsync(WebSocket socket)
    {
        try
        {
            if (socket.State is WebSocketState.Open or WebSocketState.CloseReceived)
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, timeout.Token).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or ObjectDisposedException or IOException)
        {
            // Already gone.
        }
    }
}

/// <summary>What an exec, attach, port-forward or cp stream carried, for the response record.</summary>
internal sealed class KubernetesStreamSummary
{
    public string Kind { get; init; } = "";

    public string Protocol { get; set; } = "";

    public long BytesIn;

    public long BytesOut;

    public int? ExitCode { get; set; }

    public string? StatusMessage { get; set; }

    public string? Recording { get; set; }

    public string? RecordingSha256 { get; set; }

    public IReadOnlyList<(string Name, long Size)>? Files { get; set; }

    public void Write(Utf8JsonWriter w)
    {
        w.WriteStartObject("stream"u8);
        w.WriteString("kind"u8, Kind);
        w.WriteString("protocol"u8, Protocol);
        w.WriteNumber("bytesIn"u8, Interlocked.Read(ref BytesIn));
        w.WriteNumber("bytesOut"u8, Interlocked.Read(ref BytesOut));
        if (ExitCode is { } exit)
        {
            w.WriteNumber("exitCode"u8, exit);
        }

        if (StatusMessage is { } message)
        {
            w.WriteString("status"u8, message);
        }

        if (Recording is { } recording)
        {
            w.WriteString("recording"u8, recording);
            if (RecordingSha256 is { } sha)
            {
                w.WriteString("recordingSha256"u8, sha);
            }
        }

        if (Files is { Count: > 0 } files)
        {
            w.WriteStartArray("files"u8);
            foreach (var (name, size) in files)
            {
                w.WriteStartObject();
                w.WriteString("name"u8, name);
                w.WriteNumber("size"u8, size);
                w.WriteEndObject();
            }

            w.WriteEndArray();
        }

        w.WriteEndObject();
    }
}

/// <summary>Reads the member names and sizes out of a tar stream as it passes (ustar, GNU long names), without keeping the data.</summary>
internal sealed class TarNameReader
{
    private readonly byte[] _header = new byte[512];
    private readonly List<(string, long)> _files = [];
    private int _headerFill;
    private long _skip;
    private string? _longName;
    private List<byte>? _longNameBytes;
    private long _longNameRemaining;

    public IReadOnlyList<(string Name, long Size)> Files => _files;

    public void Feed(ReadOnlySpan<byte> data)
    {
        while (!data.IsEmpty && _files.Count < 10_000)
        {
            if (_skip > 0)
            {
                var take = (int)Math.Min(_skip, data.Length);
                if (_longNameBytes is not null && _longNameRemaining > 0)
                {
                    var keep = (int)Math.Min(_longNameRemaining, take);
                    _longNameBytes.AddRange(data[..keep].ToArray());
                    _longNameRemaining -= keep;
                    if (_longNameRemaining == 0)
                    {
                        _longName = System.Text.Encoding.UTF8.GetString(_longNameBytes.ToArray()).TrimEnd('\0');
                        _longNameBytes = null;
                    }
                }

                _skip -= take;
                data = data[take..];
                continue;
            }

            var fill = Math.Min(512 - _headerFill, data.Length);
            data[..fill].CopyTo(_header.AsSpan(_headerFill));
            _headerFill += fill;
            data = data[fill..];
            if (_headerFill < 512)
            {
                return;
            }

            _headerFill = 0;
            OnHeader();
        }
    }

    private void OnHeader()
    {
        var header = _header.AsSpan();
        if (header.IndexOfAnyExcept((byte)0) < 0)
        {
            return;
        }

        var size = Octal(header.Slice(124, 12));
        var type = (char)header[156];
        var name = Text(header[..100]);
        var prefix = Text(header.Slice(345, 155));
        if (prefix.Length > 0 && header.Slice(257, 5).SequenceEqual("ustar"u8))
        {
            name = prefix + "/" + name;
        }

        _skip = (size + 511) / 512 * 512;
        if (type == 'L')
        {
            _longNameBytes = [];
            _longNameRemaining = size;
            return;
        }

        if (_longName is not null)
        {
            name = _longName;
            _longName = null;
        }

        if (type is '0' or '\0' or '7')
        {
            _files.Add((name, size));
        }
    }

    private static string Text(ReadOnlySpan<byte> field)
    {
        var end = field.IndexOf((byte)0);
        return System.Text.Encoding.UTF8.GetString(end < 0 ? field : field[..end]);
    }

    private static long Octal(ReadOnlySpan<byte> field)
    {
        long value = 0;
        foreach (var b in field)
        {
            if (b is >= (byte)'0' and <= (byte)'7')
            {
                value = (value * 8) + (b - '0');
            }
            else if (value > 0 || (b != (byte)' ' && b != 0))
            {
                break;
            }
        }

        return value;
    }
}
