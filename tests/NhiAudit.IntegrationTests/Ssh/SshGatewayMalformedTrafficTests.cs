using System.Net;
using System.Net.Sockets;
using System.Text;
using NhiAudit.Audit;
using NhiAudit.Ssh;
using NhiAudit.Ssh.HostKeys;
using NhiAudit.Ssh.Relay;
using NhiAudit.Ssh.Transport;

namespace NhiAudit.IntegrationTests.Ssh;

/// <summary>
/// Bad input to the gateway, before and after authentication, while a real ssh session runs through it: each bad
/// connection ends alone (a DISCONNECT with a reason, or the bad message ignored), the good session finishes, new
/// connections are served and the audit chain stays intact.
/// </summary>
public sealed class SshGatewayMalformedTrafficTests(SshGatewayFixture fixture) : IClassFixture<SshGatewayFixture>
{
    private SshGatewayHost Gateway => fixture.Host;

    [Fact]
    public async Task Malformed_connection_protocol_messages_from_an_authenticated_client_end_only_that_connection()
    {
        var longRunning = Gateway.SshAsync("sleep 3; echo still-here");
        var random = new Random(20261128);
        var disconnected = 0;
        var tolerated = 0;
        for (var attempt = 0; attempt < 60; attempt++)
        {
            await using var client = await ConnectAuthenticatedAsync();
            var message = MalformedMessage(random, withChannel: attempt % 2 == 1);
            if (message.OpenFirst)
            {
                await client.SendMessageAsync(SessionOpen(7), CancellationToken.None);
                var confirmation = await client.ReceiveMessageAsync(CancellationToken.None);
                Assert.Equal((byte)SshMessageNumber.ChannelOpenConfirmation, confirmation.Span[0]);
                var upstreamChannel = System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(confirmation.Span[5..]);
                System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(message.Bytes.AsSpan(1), upstreamChannel);
            }

            await client.SendMessageAsync(message.Bytes, CancellationToken.None);

            // Then a question the gateway always answers on a healthy connection: a global request wanting a reply.
            await client.SendMessageAsync(new SshWriter(SshMessageNumber.GlobalRequest).WriteString("keepalive@openssh.com").WriteBoolean(true).WrittenMemory, CancellationToken.None);
            using var guard = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            try
            {
                while (true)
                {
                    var answer = await client.ReceiveMessageAsync(guard.Token);
                    if (answer.Span[0] == (byte)SshMessageNumber.RequestFailure)
                    {
                        tolerated++;
                        break;
                    }
                }
            }
            catch (SshConnectionClosedException ex)
            {
                Assert.True(ex.Reason == SshDisconnectReason.ProtocolError, $"message {Convert.ToHexString(message.Bytes)} ended the connection with {ex.Reason}: {ex.Message}");
                disconnected++;
            }
        }

        Assert.True(disconnected > 0 && tolerated > 0, $"disconnected {disconnected}, tolerated {tolerated}");
        var result = await longRunning;
        Assert.True(result.ExitCode == 0, result.Describe("ssh during the malformed traffic"));
        Assert.Contains("still-here", result.StandardOutput, StringComparison.Ordinal);
        Assert.Equal(0, (await Gateway.SshAsync("true")).ExitCode);
        await AssertChainIntactAsync();
    }

    [Fact]
    public async Task Garbage_before_authentication_gets_a_disconnect_while_a_session_goes_on()
    {
        var longRunning = Gateway.SshAsync("sleep 2; echo survived");
        var random = new Random(7);
        for (var attempt = 0; attempt < 20; attempt++)
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(IPAddress.Loopback, Gateway.Port);
            var garbage = new byte[random.Next(16, 2048)];
            random.NextBytes(garbage);
            await socket.SendAsync(Encoding.ASCII.GetBytes("SSH-2.0-fuzzer\r\n"));
            await socket.SendAsync(garbage);
            var received = await ReadToEndAsync(socket);
            var text = Encoding.ASCII.GetString(received);
            Assert.StartsWith("SSH-2.0-NhiAudit", text, StringComparison.Ordinal);

            // After our KEXINIT, the last packet is a plaintext DISCONNECT (message 1) naming a protocol error.
            Assert.True(LastPlaintextPayload(received) is [1, 0, 0, 0, (byte)SshDisconnectReason.ProtocolError, ..], $"attempt {attempt}: no DISCONNECT with a protocol error");
        }

        var result = await longRunning;
        Assert.True(result.ExitCode == 0, result.Describe("ssh during the garbage"));
        Assert.Contains("survived", result.StandardOutput, StringComparison.Ordinal);
        await AssertChainIntactAsync();
    }

    [Fact]
    public async Task Answers_keep_the_order_of_the_requests_when_the_gateway_answers_some_itself()
    {
        // RFC 4254 §5.4: replies to a channel's requests come in request order. pty-req goes to the host (its answer
        // takes a round trip); a request type the gateway does not relay is refused at once; the client must still
        // see the answers in order.
        await using var client = await ConnectAuthenticatedAsync();
        using var guard = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await client.SendMessageAsync(SessionOpen(3), guard.Token);
        var confirmation = await client.ReceiveMessageAsync(guard.Token);
        Assert.Equal((byte)SshMessageNumber.ChannelOpenConfirmation, confirmation.Span[0]);
        var host = System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(confirmation.Span[5..]);

        var ptyReq = new SshWriter(SshMessageNumber.ChannelRequest).WriteUInt32(host).WriteString("pty-req").WriteBoolean(true)
            .WriteString("xterm").WriteUInt32(80).WriteUInt32(24).WriteUInt32(0).WriteUInt32(0).WriteString([]);
        await client.SendMessageAsync(ptyReq.WrittenMemory, guard.Token);
        var unknown = new SshWriter(SshMessageNumber.ChannelRequest).WriteUInt32(host).WriteString("probe@nhiaudit.test").WriteBoolean(true);
        await client.SendMessageAsync(unknown.WrittenMemory, guard.Token);

        var answers = new List<SshMessageNumber>();
        while (answers.Count < 2)
        {
            var message = await client.ReceiveMessageAsync(guard.Token);
            if (message.Span[0] is (byte)SshMessageNumber.ChannelSuccess or (byte)SshMessageNumber.ChannelFailure)
            {
                Assert.Equal(3u, System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(message.Span[1..]));
                answers.Add((SshMessageNumber)message.Span[0]);
            }
        }

        Assert.Equal([SshMessageNumber.ChannelSuccess, SshMessageNumber.ChannelFailure], answers);
    }

    [Fact]
    public async Task A_client_that_ignores_the_hosts_window_is_disconnected_instead_of_queued()
    {
        await using var client = await ConnectAuthenticatedAsync();
        using var guard = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await client.SendMessageAsync(SessionOpen(5), guard.Token);
        var confirmation = await client.ReceiveMessageAsync(guard.Token);
        Assert.Equal((byte)SshMessageNumber.ChannelOpenConfirmation, confirmation.Span[0]);
        var host = System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(confirmation.Span[5..]);
        var window = System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(confirmation.Span[9..]);

        // Nothing on the host reads this channel yet, so no window comes back: one packet past the window is a violation.
        var chunk = new byte[16 * 1024];
        var error = await Assert.ThrowsAsync<SshConnectionClosedException>(async () =>
        {
            for (long sent = 0; sent <= window + chunk.Length; sent += chunk.Length)
            {
                await client.SendMessageAsync(new SshWriter(SshMessageNumber.ChannelData, chunk.Length + 16).WriteUInt32(host).WriteString(chunk).WrittenMemory, guard.Token);
            }

            while (true)
            {
                await client.ReceiveMessageAsync(guard.Token);
            }
        });
        Assert.Equal(SshDisconnectReason.ProtocolError, error.Reason);
        Assert.Contains("more data than the window allows", error.Message, StringComparison.Ordinal);
    }

    private async Task AssertChainIntactAsync()
    {
        await Gateway.ReadRecordsAsync();
        var verification = AuditVerifier.Verify(Gateway.AuditDirectory);
        Assert.True(verification.IsIntact, verification.ToString());
    }

    private async Task<SshTransport> ConnectAuthenticatedAsync()
    {
        string fingerprint;
        using (var hostKey = SshHostKey.Load(Path.Combine(Gateway.Directory, "gateway_host_ed25519")))
        {
            fingerprint = hostKey.Fingerprint;
        }

        using var key = SshHostKey.Load(Gateway.WorkloadKey);
        var connector = new SshUpstreamConnector(
            new SshUpstreamOptions { Host = "127.0.0.1", Port = Gateway.Port, Username = "root", HostKeyFingerprint = fingerprint },
            key);
        return await connector.ConnectAsync(CancellationToken.None);
    }

    private static ReadOnlyMemory<byte> SessionOpen(uint channel) =>
        new SshWriter(SshMessageNumber.ChannelOpen).WriteString("session").WriteUInt32(channel).WriteUInt32(2 * 1024 * 1024).WriteUInt32(32 * 1024).WrittenMemory;

    /// <summary>A connection-protocol message (80-100) cut short, padded with junk or carrying wrong lengths.</summary>
    private static (byte[] Bytes, bool OpenFirst) MalformedMessage(Random random, bool withChannel)
    {
        byte[] numbers = withChannel ? [93, 94, 95, 96, 97, 98, 99, 100] : [80, 81, 82, 90, 91, 92, 93, 94, 98];
        var number = numbers[random.Next(numbers.Length)];
        var body = new byte[(withChannel ? 4 : 0) + random.Next(0, 40)];
        random.NextBytes(body);
        if (withChannel && number == 98 && random.Next(2) == 0)
        {
            // A channel request whose type is fine but whose fields are not: exec with a command length past the end.
            var request = new SshWriter(SshMessageNumber.ChannelRequest).WriteUInt32(0).WriteString("exec").WriteBoolean(true).WriteUInt32(0x7fffffff).ToArray();
            return (request, true);
        }

        return ([number, .. body], withChannel);
    }

    private static async Task<byte[]> ReadToEndAsync(Socket socket)
    {
        using var guard = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var buffer = new byte[64 * 1024];
        var all = new List<byte>();
        while (true)
        {
            int read;
            try
            {
                read = await socket.ReceiveAsync(buffer, SocketFlags.None, guard.Token);
            }
            catch (SocketException)
            {
                break;
            }

            if (read == 0)
            {
                break;
            }

            all.AddRange(buffer.AsSpan(0, read));
        }

        return [.. all];
    }

    /// <summary>The payload of the last unencrypted binary packet after the version line (RFC 4253 §6).</summary>
    private static byte[] LastPlaintextPayload(byte[] stream)
    {
        var start = Array.IndexOf(stream, (byte)'\n') + 1;
        byte[] last = [];
        while (start + 5 <= stream.Length)
        {
            var length = (int)System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(stream.AsSpan(start));
            if (length < 1 || start + 4 + length > stream.Length)
            {
                break;
            }

            var padding = stream[start + 4];
            last = stream.AsSpan(start + 5, length - padding - 1).ToArray();
            start += 4 + length;
        }

        return last;
    }
}
