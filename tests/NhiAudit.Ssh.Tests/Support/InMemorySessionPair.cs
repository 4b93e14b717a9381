using System.IO.Pipelines;
using NhiAudit.Ssh.HostKeys;
using NhiAudit.Ssh.Server;
using NhiAudit.Ssh.Transport;

namespace NhiAudit.Ssh.Tests.Support;

/// <summary>Two ends of an in-memory connection (the shape of dev-tunnels-ssh's SessionPair).</summary>
internal sealed class DuplexPipePair
{
    // Unbounded in memory: a test client that blocks on a full pipe while the server blocks on the other would
    // deadlock the harness, not exercise the transport (a real peer such as OpenSSH never stops reading).
    private readonly Pipe _clientToServer = new(new PipeOptions(pauseWriterThreshold: 0));
    private readonly Pipe _serverToClient = new(new PipeOptions(pauseWriterThreshold: 0));

    public IDuplexPipe ClientEnd => new Duplex(_serverToClient.Reader, _clientToServer.Writer);

    public IDuplexPipe ServerEnd => new Duplex(_clientToServer.Reader, _serverToClient.Writer);

    private sealed record Duplex(PipeReader Input, PipeWriter Output) : IDuplexPipe;
}

/// <summary>Our server session and our client transport connected in memory.</summary>
internal sealed class InMemorySessionPair : IAsyncDisposable
{
    private InMemorySessionPair(SshServerSession server, Task<SshSessionResult> serverRun, SshTransport client)
    {
        Server = server;
        ServerRun = serverRun;
        Client = client;
    }

    public SshServerSession Server { get; }

    public Task<SshSessionResult> ServerRun { get; }

    public SshTransport Client { get; }

    public static async Task<InMemorySessionPair> ConnectAsync(
        SshTransportOptions serverTransport, SshTransportOptions? clientTransport = null, bool testExec = true)
    {
        var pipes = new DuplexPipePair();
        var server = new SshServerSession(
            pipes.ServerEnd,
            new SshServerOptions { Transport = serverTransport, InsecureAcceptNoneAuthenticationForTesting = true, EnableTestExecForTesting = testExec });
        var serverRun = Task.Run(() => server.RunAsync(CancellationToken.None));
        var hostKeys = serverTransport.HostKeys.Select(k => k.PublicKeyBlob.ToArray()).ToList();
        clientTransport ??= new SshTransportOptions();
        clientTransport = clientTransport with
        {
            AcceptHostKey = blob => hostKeys.Exists(k => k.AsSpan().SequenceEqual(blob.Span)),
        };
        var client = new SshTransport(pipes.ClientEnd, SshRole.Client, clientTransport);
        await client.StartAsync(CancellationToken.None);
        return new InMemorySessionPair(server, serverRun, client);
    }

    /// <summary>Requests ssh-userauth and waits for SERVICE_ACCEPT, which completes the initial key exchange.</summary>
    public async Task RequestUserAuthServiceAsync()
    {
        await Client.SendMessageAsync(new SshWriter(SshMessageNumber.ServiceRequest).WriteString("ssh-userauth").WrittenMemory, CancellationToken.None);
        var reply = await Client.ReceiveMessageAsync(CancellationToken.None);
        Assert.Equal((byte)SshMessageNumber.ServiceAccept, reply.Span[0]);
    }

    /// <summary>Authenticates with "none" (test server) and runs the test exec, returning its stdout.</summary>
    public async Task<byte[]> ExecAsync(string command, byte[] stdin)
    {
        await Send(new SshWriter(SshMessageNumber.UserAuthRequest).WriteString("u").WriteString("ssh-connection").WriteString("none"));
        Assert.Equal((byte)SshMessageNumber.UserAuthSuccess, (await Client.ReceiveMessageAsync(CancellationToken.None)).Span[0]);
        await Send(new SshWriter(SshMessageNumber.ChannelOpen).WriteString("session").WriteUInt32(7).WriteUInt32(uint.MaxValue).WriteUInt32(32768));
        var confirmation = await Client.ReceiveMessageAsync(CancellationToken.None);
        Assert.Equal((byte)SshMessageNumber.ChannelOpenConfirmation, confirmation.Span[0]);
        var serverChannel = new SshReader(confirmation.Span[5..]).ReadUInt32();
        await Send(new SshWriter(SshMessageNumber.ChannelRequest).WriteUInt32(serverChannel).WriteString("exec").WriteBoolean(true).WriteString(command));
        // Send stdin while reading the echo: sending everything first would fill both pipes and stall both ends.
        var sending = Task.Run(async () =>
        {
            for (var offset = 0; offset < stdin.Length; offset += 16384)
            {
                var chunk = stdin.AsMemory(offset, Math.Min(16384, stdin.Length - offset));
                await Send(new SshWriter(SshMessageNumber.ChannelData).WriteUInt32(serverChannel).WriteString(chunk.Span));
            }

            await Send(new SshWriter(SshMessageNumber.ChannelEof).WriteUInt32(serverChannel));
        });
        var output = new List<byte>();
        while (true)
        {
            var message = await Client.ReceiveMessageAsync(CancellationToken.None);
            switch ((SshMessageNumber)message.Span[0])
            {
                case SshMessageNumber.ChannelData:
                    var reader = new SshReader(message.Span[1..]);
                    reader.ReadUInt32();
                    output.AddRange(reader.ReadStringBytes());
                    break;
                case SshMessageNumber.ChannelClose:
                    await sending;
                    await Send(new SshWriter(SshMessageNumber.ChannelClose).WriteUInt32(serverChannel));
                    return [.. output];
            }
        }
    }

    private ValueTask Send(SshWriter writer) => Client.SendMessageAsync(writer.WrittenMemory, CancellationToken.None);

    public async ValueTask DisposeAsync()
    {
        await Client.DisposeAsync();
        await ServerRun;
    }
}
