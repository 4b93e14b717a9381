using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.IO.Compression;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;

namespace NhiAudit.IntegrationTests.Kubernetes.Infrastructure;

/// <summary>
/// pods/portforward as kubectl ≥ 1.31 speaks it: a WebSocket with subprotocol <c>SPDY/3.1+portforward.k8s.io</c> whose
/// binary messages tunnel a SPDY/3.1 session. For each local connection kubectl opens an error stream and a data stream
/// (SYN_STREAM headers streamtype, port, requestid); the server answers each with SYN_REPLY, then relays the data stream
/// to a TCP connection. Header blocks are zlib-compressed with the SPDY/3 dictionary.
/// </summary>
internal sealed class KubeSpdyPortForward
{
    public const string Protocol = "SPDY/3.1+portforward.k8s.io";

    private const ushort SynStream = 1;
    private const ushort SynReply = 2;
    private const ushort RstStream = 3;
    private const ushort Ping = 6;
    private const ushort GoAway = 7;
    private const byte FlagFin = 1;

    private static readonly byte[] Dictionary = BuildDictionary();

    private readonly WebSocket socket;
    private readonly Func<int, int> target;
    private readonly SemaphoreSlim sendLock = new(1, 1);
    private readonly HeaderInflater inflater = new();
    private readonly ConcurrentDictionary<uint, SpdyStream> streams = new();
    private readonly ConcurrentDictionary<string, (SpdyStream? Error, SpdyStream? Data)> pairs = new(StringComparer.Ordinal);
    private bool replyHeaderSent;

    private KubeSpdyPortForward(WebSocket socket, Func<int, int> target)
    {
        this.socket = socket;
        this.target = target;
    }

    public static Task RunAsync(WebSocket socket, Func<int, int> target, CancellationToken cancellationToken) =>
        new KubeSpdyPortForward(socket, target).RunAsync(cancellationToken);

    private sealed class SpdyStream(uint id, string type, int port)
    {
        public uint Id { get; } = id;

        public string Type { get; } = type;

        public int Port { get; } = port;

        public TcpClient? Tcp { get; set; }

        public MemoryStream Pending { get; } = new();
    }

    private async Task RunAsync(CancellationToken cancellationToken)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var input = new WebSocketByteStream(socket);
        var header = new byte[8];
        try
        {
            while (!cts.IsCancellationRequested)
            {
                if (!await input.ReadExactlyOrEndAsync(header, cts.Token))
                {
                    break;
                }

                var length = (header[5] << 16) | (header[6] << 8) | header[7];
                var payload = new byte[length];
                if (length > 0 && !await input.ReadExactlyOrEndAsync(payload, cts.Token))
                {
                    break;
                }

                if ((header[0] & 0x80) != 0)
                {
                    var type = BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(2));
                    if (!await ControlFrameAsync(type, header, payload, cts.Token))
                    {
                        break;
                    }
                }
                else
                {
                    var streamId = BinaryPrimitives.ReadUInt32BigEndian(header) & 0x7fffffff;
                    await DataFrameAsync(streamId, header[4], payload, cts.Token);
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or WebSocketException or IOException or ObjectDisposedException or SocketException)
        {
            // The tunnel or a TCP connection went away.
        }
        finally
        {
            await cts.CancelAsync();
            foreach (var s in streams.Values)
            {
                s.Tcp?.Dispose();
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
        }
    }

    private async Task<bool> ControlFrameAsync(ushort type, byte[] header, byte[] payload, CancellationToken cancellationToken)
    {
        switch (type)
        {
            case SynStream:
                var id = BinaryPrimitives.ReadUInt32BigEndian(payload) & 0x7fffffff;
                var headers = inflater.Inflate(payload.AsSpan(10).ToArray());
                var streamType = headers.GetValueOrDefault("streamtype") ?? "";
                _ = int.TryParse(headers.GetValueOrDefault("port"), out var port);
                var requestId = headers.GetValueOrDefault("requestid") ?? id.ToString(System.Globalization.CultureInfo.InvariantCulture);
                var stream = new SpdyStream(id, streamType, port);
                streams[id] = stream;
                await SendControlAsync(SynReply, 0, [.. BigEndian(id), .. DeflateEmptyHeaders()], cancellationToken);
                var pair = pairs.AddOrUpdate(
                    requestId,
                    _ => streamType == "error" ? (stream, null) : (null, stream),
                    (_, p) => streamType == "error" ? (stream, p.Data) : (p.Error, stream));
                if (pair.Error is not null && pair.Data is not null)
                {
                    await ConnectAsync(pair.Error, pair.Data, cancellationToken);
                }

                return true;
            case Ping:
                await SendControlAsync(Ping, 0, payload, cancellationToken);
                return true;
            case RstStream:
                var reset = BinaryPrimitives.ReadUInt32BigEndian(payload) & 0x7fffffff;
                if (streams.TryRemove(reset, out var gone))
                {
                    gone.Tcp?.Dispose();
                }

                return true;
            case GoAway:
                return false;
            default:
                // SETTINGS, WINDOW_UPDATE, HEADERS: nothing to do.
                _ = header;
                return true;
        }
    }

    private async Task ConnectAsync(SpdyStream error, SpdyStream data, CancellationToken cancellationToken)
    {
        var tcp = new TcpClient();
        try
        {
            await tcp.ConnectAsync(IPAddress.Loopback, target(data.Port), cancellationToken);
        }
        catch (SocketException e)
        {
            tcp.Dispose();
            await SendDataAsync(error.Id, FlagFin, Encoding.UTF8.GetBytes($"error forwarding port {data.Port} to pod: {e.Message}"), cancellationToken);
            await SendDataAsync(data.Id, FlagFin, [], cancellationToken);
            return;
        }

        data.Tcp = tcp;
        if (data.Pending.Length > 0)
        {
            await tcp.GetStream().WriteAsync(data.Pending.ToArray(), cancellationToken);
        }

        _ = Task.Run(
            async () =>
            {
                var buffer = new byte[32 * 1024];
                try
                {
                    var s = tcp.GetStream();
                    int n;
                    while ((n = await s.ReadAsync(buffer, cancellationToken)) > 0)
                    {
                        await SendDataAsync(data.Id, 0, buffer[..n], cancellationToken);
                    }

                    await SendDataAsync(data.Id, FlagFin, [], cancellationToken);
                    await SendDataAsync(error.Id, FlagFin, [], cancellationToken);
                }
                catch (Exception e) when (e is IOException or OperationCanceledException or SocketException or ObjectDisposedException or WebSocketException)
                {
                }
            },
            CancellationToken.None);
    }

    private async Task DataFrameAsync(uint streamId, byte flags, byte[] payload, CancellationToken cancellationToken)
    {
        if (!streams.TryGetValue(streamId, out var stream) || stream.Type != "data")
        {
            return;
        }

        try
        {
            if (stream.Tcp is null)
            {
                stream.Pending.Write(payload);
                return;
            }

            if (payload.Length > 0)
            {
                await stream.Tcp.GetStream().WriteAsync(payload, cancellationToken);
            }

            if ((flags & FlagFin) != 0)
            {
                stream.Tcp.Client.Shutdown(SocketShutdown.Send);
            }
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
        }
    }

    private Task SendControlAsync(ushort type, byte flags, byte[] payload, CancellationToken cancellationToken)
    {
        var frame = new byte[8 + payload.Length];
        frame[0] = 0x80;
        frame[1] = 3;
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(2), type);
        frame[4] = flags;
        WriteLength(frame, payload.Length);
        payload.CopyTo(frame, 8);
        return SendAsync(frame, cancellationToken);
    }

    private Task SendDataAsync(uint streamId, byte flags, byte[] payload, CancellationToken cancellationToken)
    {
        var frame = new byte[8 + payload.Length];
        BinaryPrimitives.WriteUInt32BigEndian(frame, streamId & 0x7fffffff);
        frame[4] = flags;
        WriteLength(frame, payload.Length);
        payload.CopyTo(frame, 8);
        return SendAsync(frame, cancellationToken);
    }

    private static void WriteLength(byte[] frame, int length)
    {
        frame[5] = (byte)(length >> 16);
        frame[6] = (byte)(length >> 8);
        frame[7] = (byte)length;
    }

    private async Task SendAsync(byte[] frame, CancellationToken cancellationToken)
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

    private static byte[] BigEndian(uint value)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(b, value);
        return b;
    }

    /// <summary>
    /// An empty header block (0 pairs) as the next piece of the session's zlib stream: stored (uncompressed) deflate
    /// blocks, preceded once by the zlib header announcing the SPDY/3 dictionary.
    /// </summary>
    private byte[] DeflateEmptyHeaders()
    {
        var output = new List<byte>();
        if (!replyHeaderSent)
        {
            replyHeaderSent = true;

            // CMF 0x78 (deflate, 32K window), FLG 0x20 (FDICT; 0x7820 % 31 == 0), then the dictionary's Adler-32.
            output.AddRange([0x78, 0x20]);
            output.AddRange(BigEndian(Adler32(Dictionary)));
        }

        byte[] block = [0, 0, 0, 0];
        output.Add(0x00); // BFINAL 0, BTYPE 00 (stored), padding to the byte boundary.
        output.AddRange([(byte)block.Length, (byte)(block.Length >> 8), (byte)~block.Length, (byte)(~block.Length >> 8)]);
        output.AddRange(block);

        // A sync flush (empty stored block): Go's inflater only hands out a stored block's bytes when the next block
        // header is read; without this it reads past the frame, gets EOF, and its error sticks for the next frame.
        output.AddRange([0x00, 0x00, 0x00, 0xff, 0xff]);
        return [.. output];
    }

    private static uint Adler32(byte[] data)
    {
        uint a = 1, b = 0;
        foreach (var d in data)
        {
            a = (a + d) % 65521;
            b = (b + a) % 65521;
        }

        return (b << 16) | a;
    }

    private static byte[] BuildDictionary()
    {
        string[] words =
        [
            "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset", "accept-encoding", "accept-language",
            "accept-ranges", "age", "allow", "authorization", "cache-control", "connection", "content-base", "content-encoding",
            "content-language", "content-length", "content-location", "content-md5", "content-range", "content-type", "date",
            "etag", "expect", "expires", "from", "host", "if-match", "if-modified-since", "if-none-match", "if-range",
            "if-unmodified-since", "last-modified", "location", "max-forwards", "pragma", "proxy-authenticate",
            "proxy-authorization", "range", "referer", "retry-after", "server", "te", "trailer", "transfer-encoding", "upgrade",
            "user-agent", "vary", "via", "warning", "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1",
            "url", "public", "set-cookie", "keep-alive", "origin",
        ];
        const string Tail =
            "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505" +
            "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized" +
            "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable" +
            "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT" +
            "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain," +
            "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";
        var bytes = new List<byte>();
        foreach (var w in words)
        {
            bytes.AddRange(BigEndian((uint)w.Length));
            bytes.AddRange(Encoding.ASCII.GetBytes(w));
        }

        bytes.AddRange(Encoding.ASCII.GetBytes(Tail));
        return [.. bytes];
    }

    /// <summary>
    /// Inflates the client's header blocks: one zlib stream (SPDY/3 dictionary) across all frames. .NET's inflater takes
    /// no preset dictionary, so the raw deflate data is prefixed with a stored block holding the dictionary, whose
    /// output is skipped; back-references into the dictionary then resolve as with a preset one.
    /// </summary>
    private sealed class HeaderInflater
    {
        private readonly FeedStream feed = new();
        private DeflateStream? deflate;

        public Dictionary<string, string> Inflate(byte[] block)
        {
            if (deflate is null)
            {
                if (block.Length < 6 || (block[1] & 0x20) == 0)
                {
                    throw new InvalidDataException("the first SPDY header block must be a zlib stream with a preset dictionary");
                }

                var prefix = new List<byte> { 0x00, (byte)Dictionary.Length, (byte)(Dictionary.Length >> 8), (byte)~Dictionary.Length, (byte)(~Dictionary.Length >> 8) };
                prefix.AddRange(Dictionary);
                feed.Add([.. prefix]);
                feed.Add(block[6..]);
                deflate = new DeflateStream(feed, CompressionMode.Decompress);
                var skip = new byte[Dictionary.Length];
                deflate.ReadExactly(skip);
            }
            else
            {
                feed.Add(block);
            }

            var result = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            var count = ReadInt();
            for (var i = 0; i < count; i++)
            {
                var name = Encoding.UTF8.GetString(ReadBytes(ReadInt()));
                var value = Encoding.UTF8.GetString(ReadBytes(ReadInt()));
                result[name] = value.Split('\0')[0];
            }

            return result;
        }

        private int ReadInt() => (int)BinaryPrimitives.ReadUInt32BigEndian(ReadBytes(4));

        private byte[] ReadBytes(int n)
        {
            if (n is < 0 or > 1 << 20)
            {
                throw new InvalidDataException("bad SPDY header block");
            }

            var b = new byte[n];
            deflate!.ReadExactly(b);
            return b;
        }
    }

    /// <summary>A read-only stream over the byte arrays added to it; reading past the end fails instead of blocking.</summary>
    private sealed class FeedStream : Stream
    {
        private readonly Queue<byte[]> chunks = new();
        private int offset;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public void Add(byte[] chunk)
        {
            if (chunk.Length > 0)
            {
                chunks.Enqueue(chunk);
            }
        }

        public override int Read(byte[] buffer, int offset, int count)
        {
            if (chunks.Count == 0)
            {
                throw new InvalidDataException("SPDY header block ended early");
            }

            var chunk = chunks.Peek();
            var n = Math.Min(count, chunk.Length - this.offset);
            Array.Copy(chunk, this.offset, buffer, offset, n);
            this.offset += n;
            if (this.offset == chunk.Length)
            {
                chunks.Dequeue();
                this.offset = 0;
            }

            return n;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    /// <summary>The payloads of a WebSocket's binary messages as one byte stream.</summary>
    private sealed class WebSocketByteStream(WebSocket socket)
    {
        private readonly byte[] buffer = new byte[64 * 1024];
        private int start;
        private int end;

        public async Task<bool> ReadExactlyOrEndAsync(byte[] destination, CancellationToken cancellationToken)
        {
            var filled = 0;
            while (filled < destination.Length)
            {
                if (start == end)
                {
                    var result = await socket.ReceiveAsync(buffer, cancellationToken);
                    if (result.MessageType == WebSocketMessageType.Close)
                    {
                        return false;
                    }

                    start = 0;
                    end = result.Count;
                    continue;
                }

                var n = Math.Min(destination.Length - filled, end - start);
                Array.Copy(buffer, start, destination, filled, n);
                start += n;
                filled += n;
            }

            return true;
        }
    }
}
