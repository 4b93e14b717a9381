using System.Buffers.Binary;
using NhiAudit.IntegrationTests.Infrastructure;
using NhiAudit.Ssh;
using NhiAudit.Ssh.HostKeys;
using NhiAudit.Ssh.Relay;
using NhiAudit.Ssh.Transport;

namespace NhiAudit.IntegrationTests.Ssh;

/// <summary>
/// The gateway's upstream side against a real sshd after login: a long transfer crosses our rekey budget several
/// times (the gateway starts each key exchange) and every byte arrives. sshd refuses key exchange only during user
/// authentication, so this is where the client-initiated rekey of a long session is exercised for real.
/// </summary>
public sealed class SshUpstreamRekeyTests
{
    [Fact]
    public async Task A_transfer_through_several_gateway_initiated_rekeys_arrives_whole()
    {
        var directory = Path.Combine(PostgresServer.TempRoot, "sshrekey-" + Guid.NewGuid().ToString("N")[..10]);
        var (sshd, port, fingerprint) = await SshGatewayHost.StartUpstreamAsync(directory);
        try
        {
            using var key = SshHostKey.Load(Path.Combine(directory, "gateway_client_ed25519"));
            var connector = new SshUpstreamConnector(
                new SshUpstreamOptions { Host = "127.0.0.1", Port = port, Username = "root", HostKeyFingerprint = fingerprint },
                key,
                new SshTransportOptions { RekeyAfterBytes = 256 * 1024 });
            await using var upstream = await connector.ConnectAsync(CancellationToken.None);
            using var guard = new CancellationTokenSource(TimeSpan.FromMinutes(2));

            await upstream.SendMessageAsync(new SshWriter(SshMessageNumber.ChannelOpen).WriteString("session").WriteUInt32(0).WriteUInt32(128 * 1024).WriteUInt32(32 * 1024).WrittenMemory, guard.Token);
            var confirmation = await NextChannelMessageAsync(upstream, guard.Token);
            Assert.Equal((byte)SshMessageNumber.ChannelOpenConfirmation, confirmation.Span[0]);
            var remote = BinaryPrimitives.ReadUInt32BigEndian(confirmation.Span[5..]);
            const int Size = 3 * 1024 * 1024;
            await upstream.SendMessageAsync(new SshWriter(SshMessageNumber.ChannelRequest).WriteUInt32(remote).WriteString("exec").WriteBoolean(false).WriteString($"head -c {Size} /dev/zero | tr '\\0' x").WrittenMemory, guard.Token);

            long received = 0;
            long consumed = 0;
            var sawExit = false;
            while (true)
            {
                var message = await NextChannelMessageAsync(upstream, guard.Token);
                var number = (SshMessageNumber)message.Span[0];
                if (number == SshMessageNumber.ChannelData)
                {
                    var length = (int)BinaryPrimitives.ReadUInt32BigEndian(message.Span[5..]);
                    Assert.True(message.Span.Slice(9, length).IndexOfAnyExcept((byte)'x') < 0, "the data arrives unchanged");
                    received += length;
                    consumed += length;
                    // A small window paces the host, so the transfer spans many of our key exchanges.
                    if (consumed >= 64 * 1024)
                    {
                        await upstream.SendMessageAsync(new SshWriter(SshMessageNumber.ChannelWindowAdjust).WriteUInt32(remote).WriteUInt32((uint)consumed).WrittenMemory, guard.Token);
                        consumed = 0;
                    }
                }
                else if (number == SshMessageNumber.ChannelRequest)
                {
                    sawExit = true;
                }
                else if (number == SshMessageNumber.ChannelClose)
                {
                    break;
                }
            }

            Assert.Equal(Size, received);
            Assert.True(sawExit);
            Assert.True(upstream.CompletedKeyExchanges >= 5, $"{upstream.CompletedKeyExchanges} key exchanges");
        }
        finally
        {
            sshd.Kill(entireProcessTree: true);
            await sshd.WaitForExitAsync();
            sshd.Dispose();
        }
    }

    /// <summary>The next connection-protocol message (the host's global requests, such as hostkeys-00, are skipped).</summary>
    private static async Task<ReadOnlyMemory<byte>> NextChannelMessageAsync(SshTransport transport, CancellationToken cancellationToken)
    {
        while (true)
        {
            var message = await transport.ReceiveMessageAsync(cancellationToken);
            if (message.Span[0] != (byte)SshMessageNumber.GlobalRequest)
            {
                return message;
            }
        }
    }
}
