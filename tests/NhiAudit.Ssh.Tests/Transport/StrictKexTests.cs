using NhiAudit.Ssh.Server;
using NhiAudit.Ssh.Tests.Support;
using NhiAudit.Ssh.Transport;
using NhiAudit.Ssh.Transport.Ciphers;

namespace NhiAudit.Ssh.Tests.Transport;

/// <summary>A scripted peer that writes raw packets (no cipher) to a server session.</summary>
internal sealed class RawClient
{
    private readonly DuplexPipePair _pipes = new();
    private readonly SshTransport _framer;

    public RawClient(SshServerOptions? options = null)
    {
        _framer = new SshTransport(_pipes.ClientEnd, SshRole.Client, new SshTransportOptions());
        _framer.UseCiphersForTesting(NoneCipher.Instance, NoneCipher.Instance);
        var session = new SshServerSession(_pipes.ServerEnd, options ?? new SshServerOptions { Transport = new SshTransportOptions { HostKeys = [TestHostKeys.Load("ed25519")] } });
        Result = Task.Run(() => session.RunAsync(CancellationToken.None));
        Drain = DrainAsync();
    }

    public Task<SshSessionResult> Result { get; }

    private Task Drain { get; }

    public static byte[] KexInit(bool strict, IReadOnlyList<string>? kex = null)
    {
        string[] kexList = [.. kex ?? SshAlgorithms.KeyExchange, .. strict ? new[] { SshAlgorithms.StrictKexClient } : []];
        return new KexInitMessage(kexList, [.. SshAlgorithms.HostKey], [.. SshAlgorithms.Encryption], [.. SshAlgorithms.Encryption],
            [.. SshAlgorithms.Mac], [.. SshAlgorithms.Mac], ["none"], ["none"], false).Serialize();
    }

    public async Task SendVersionAsync(string line = "SSH-2.0-RawClient\r\n")
    {
        await _pipes.ClientEnd.Output.WriteAsync(System.Text.Encoding.ASCII.GetBytes(line));
    }

    public async Task SendPacketAsync(byte[] payload)
    {
        _framer.WritePacketForTesting(payload);
        await _pipes.ClientEnd.Output.FlushAsync();
    }

    public async Task SendRawAsync(byte[] bytes) => await _pipes.ClientEnd.Output.WriteAsync(bytes);

    public async Task<SshSessionResult> CloseAndWaitAsync()
    {
        await _pipes.ClientEnd.Output.CompleteAsync();
        var result = await Result;
        await Drain;
        return result;
    }

    /// <summary>Reads and drops what the server sends, so it never blocks on a full pipe.</summary>
    private async Task DrainAsync()
    {
        var input = _pipes.ClientEnd.Input;
        while (true)
        {
            var read = await input.ReadAsync();
            input.AdvanceTo(read.Buffer.End);
            if (read.IsCompleted)
            {
                await input.CompleteAsync();
                return;
            }
        }
    }
}

public sealed class StrictKexTests
{
    [Fact]
    public async Task Strict_kex_refuses_a_packet_before_KEXINIT()
    {
        var client = new RawClient();
        await client.SendVersionAsync();
        await client.SendPacketAsync([(byte)SshMessageNumber.Ignore, 0, 0, 0, 0]);
        await client.SendPacketAsync(RawClient.KexInit(strict: true));

        var result = await client.CloseAndWaitAsync();

        Assert.Equal(SshDisconnectReason.ProtocolError, result.SentDisconnectReason);
        Assert.Contains("KEXINIT was not the first packet", result.Description, StringComparison.Ordinal);
        Assert.Null(result.Fault);
    }

    [Fact]
    public async Task Strict_kex_refuses_IGNORE_during_the_initial_key_exchange()
    {
        var client = new RawClient();
        await client.SendVersionAsync();
        await client.SendPacketAsync(RawClient.KexInit(strict: true));
        await client.SendPacketAsync([(byte)SshMessageNumber.Ignore, 0, 0, 0, 0]);

        var result = await client.CloseAndWaitAsync();

        Assert.Equal(SshDisconnectReason.ProtocolError, result.SentDisconnectReason);
        Assert.Contains("strict key exchange violation", result.Description, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_strict_kex_IGNORE_during_the_initial_key_exchange_is_allowed()
    {
        var client = new RawClient();
        await client.SendVersionAsync();
        await client.SendPacketAsync([(byte)SshMessageNumber.Ignore, 0, 0, 0, 0]);
        await client.SendPacketAsync(RawClient.KexInit(strict: false));
        await client.SendPacketAsync([(byte)SshMessageNumber.Ignore, 0, 0, 0, 0]);

        var result = await client.CloseAndWaitAsync();

        Assert.Null(result.SentDisconnectReason);
        Assert.Null(result.Fault);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_service_message_during_the_initial_key_exchange_is_refused(bool strict)
    {
        var client = new RawClient();
        await client.SendVersionAsync();
        await client.SendPacketAsync(RawClient.KexInit(strict));
        await client.SendPacketAsync(new SshWriter(SshMessageNumber.ServiceRequest).WriteString("ssh-userauth").ToArray());

        var result = await client.CloseAndWaitAsync();

        Assert.Equal(SshDisconnectReason.ProtocolError, result.SentDisconnectReason);
    }

    [Fact]
    public async Task Lines_before_the_version_line_are_accepted_and_an_overlong_line_is_not()
    {
        var client = new RawClient();
        await client.SendVersionAsync("banner line one\r\nanother\nSSH-2.0-RawClient test\r\n");
        await client.SendPacketAsync(RawClient.KexInit(strict: true));
        Assert.Null((await client.CloseAndWaitAsync()).SentDisconnectReason);

        var overlong = new RawClient();
        await overlong.SendVersionAsync("SSH-2.0-" + new string('x', 300) + "\r\n");
        Assert.Equal(SshDisconnectReason.ProtocolError, (await overlong.CloseAndWaitAsync()).SentDisconnectReason);

        var old = new RawClient();
        await old.SendVersionAsync("SSH-1.5-Old\r\n");
        Assert.Equal(SshDisconnectReason.ProtocolVersionNotSupported, (await old.CloseAndWaitAsync()).SentDisconnectReason);
    }

    [Fact]
    public async Task Nothing_in_common_is_a_key_exchange_failure()
    {
        var client = new RawClient();
        await client.SendVersionAsync();
        await client.SendPacketAsync(RawClient.KexInit(strict: true, kex: ["diffie-hellman-group1-sha1"]));

        var result = await client.CloseAndWaitAsync();

        Assert.Equal(SshDisconnectReason.KeyExchangeFailed, result.SentDisconnectReason);
    }
}
