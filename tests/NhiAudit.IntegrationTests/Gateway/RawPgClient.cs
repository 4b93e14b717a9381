using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;

namespace NhiAudit.IntegrationTests.Gateway;

/// <summary>A deliberately primitive PostgreSQL client over plain TCP, for sending what no real client would.</summary>
public sealed class RawPgClient : IAsyncDisposable
{
    private readonly TcpClient _tcp;
    private readonly NetworkStream _stream;

    private RawPgClient(TcpClient tcp)
    {
        _tcp = tcp;
        _stream = tcp.GetStream();
    }

    public static async Task<RawPgClient> ConnectAsync(int port)
    {
        var tcp = new TcpClient { NoDelay = true };
        await tcp.ConnectAsync("127.0.0.1", port);
        return new RawPgClient(tcp);
    }

    /// <summary>Connects and logs in with <paramref name="token"/> as the password; returns once ReadyForQuery arrives.</summary>
    public static async Task<RawPgClient> LoginAsync(int port, string token)
    {
        var client = await ConnectAsync(port);
        await client.SendAsync(StartupPacket(3 << 16, ("user", "raw"), ("database", "app")));
        var auth = await client.ReadMessageAsync();
        Assert.Equal((byte)'R', auth.Type);
        Assert.Equal(3, BinaryPrimitives.ReadInt32BigEndian(auth.Body));
        await client.SendAsync(Message((byte)'p', Encoding.UTF8.GetBytes(token + "\0")));
        var messages = await client.ReadUntilAsync((byte)'Z');
        Assert.Contains(messages, m => m.Type == (byte)'R' && BinaryPrimitives.ReadInt32BigEndian(m.Body) == 0);
        return client;
    }

    public static byte[] StartupPacket(int code, params (string Name, string Value)[] parameters)
    {
        var body = new List<byte>();
        foreach (var (name, value) in parameters)
        {
            body.AddRange(Encoding.UTF8.GetBytes(name + "\0" + value + "\0"));
        }

        body.Add(0);
        var packet = new byte[8 + body.Count];
        BinaryPrimitives.WriteInt32BigEndian(packet, packet.Length);
        BinaryPrimitives.WriteInt32BigEndian(packet.AsSpan(4), code);
        body.CopyTo(packet, 8);
        return packet;
    }

    public static byte[] Message(byte type, byte[] body)
    {
        var message = new byte[5 + body.Length];
        message[0] = type;
        BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(1), body.Length + 4);
        body.CopyTo(message, 5);
        return message;
    }

    public static byte[] Query(string sql) => Message((byte)'Q', Encoding.UTF8.GetBytes(sql + "\0"));

    public async Task SendAsync(byte[] bytes)
    {
        await _stream.WriteAsync(bytes);
        await _stream.FlushAsync();
    }

    public async Task<(byte Type, byte[] Body)> ReadMessageAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(15));
        var header = new byte[5];
        await _stream.ReadExactlyAsync(header, cts.Token);
        var body = new byte[BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(1)) - 4];
        await _stream.ReadExactlyAsync(body, cts.Token);
        return (header[0], body);
    }

    public async Task<List<(byte Type, byte[] Body)>> ReadUntilAsync(byte type)
    {
        var messages = new List<(byte Type, byte[] Body)>();
        while (true)
        {
            var message = await ReadMessageAsync();
            messages.Add(message);
            if (message.Type == type)
            {
                return messages;
            }
        }
    }

    /// <summary>Reads messages until the gateway closes the connection; returns what arrived.</summary>
    public async Task<List<(byte Type, byte[] Body)>> ReadUntilClosedAsync()
    {
        var messages = new List<(byte Type, byte[] Body)>();
        while (true)
        {
            try
            {
                messages.Add(await ReadMessageAsync());
            }
            catch (EndOfStreamException)
            {
                return messages;
            }
            catch (IOException)
            {
                return messages;
            }
        }
    }

    /// <summary>The SQLSTATE (field C) of an ErrorResponse body.</summary>
    public static string ErrorField(byte[] body, char code)
    {
        var i = 0;
        while (i < body.Length && body[i] != 0)
        {
            var field = (char)body[i++];
            var end = Array.IndexOf(body, (byte)0, i);
            var value = Encoding.UTF8.GetString(body, i, end - i);
            if (field == code)
            {
                return value;
            }

            i = end + 1;
        }

        return "";
    }

    public async ValueTask DisposeAsync()
    {
        await _stream.DisposeAsync();
        _tcp.Dispose();
    }
}
