using NhiAudit.Ssh.Server;
using NhiAudit.Ssh.Tests.Support;
using NhiAudit.Ssh.Transport;

namespace NhiAudit.Ssh.Tests.Transport;

/// <summary>
/// Seeded-random malformed input to whole server sessions: every session must end with a disconnect we send (or
/// the peer's close), never an unexpected exception, while a good session alongside carries on.
/// </summary>
public sealed class FuzzTests
{
    [Fact]
    public async Task Malformed_handshake_packets_end_only_their_own_session_with_a_disconnect()
    {
        await using var good = await InMemorySessionPair.ConnectAsync(new SshTransportOptions { HostKeys = TestHostKeys.All() });
        await good.RequestUserAuthServiceAsync();
        var goodStdin = new byte[256 * 1024];
        new Random(7).NextBytes(goodStdin);
        var goodRun = good.ExecAsync("cat", goodStdin);

        var random = new Random(20261128);
        var validKexInit = RawClient.KexInit(strict: true);
        for (var iteration = 0; iteration < 300; iteration++)
        {
            var client = new RawClient();
            await client.SendVersionAsync();

            // 1. A KEXINIT with random bytes flipped or cut short.
            var kexInit = (byte[])validKexInit.Clone();
            for (var flips = random.Next(1, 6); flips > 0; flips--)
            {
                kexInit[random.Next(1, kexInit.Length)] = (byte)random.Next(256);
            }

            if (random.Next(3) == 0)
            {
                kexInit = kexInit[..random.Next(1, kexInit.Length)];
            }

            await client.SendPacketAsync(kexInit);

            // 2. An ECDH_INIT with a public key of random length and content.
            var publicKey = new byte[random.Next(3) == 0 ? 32 : random.Next(0, 80)];
            random.NextBytes(publicKey);
            await client.SendPacketAsync(new SshWriter(SshMessageNumber.KexEcdhInit).WriteString(publicKey).ToArray());

            // 3. Anything but NEWKEYS: a service message is never allowed before the keys are in place.
            await client.SendPacketAsync(new SshWriter(SshMessageNumber.UserAuthRequest).WriteString("u").ToArray());

            var result = await client.CloseAndWaitAsync();
            Assert.Null(result.Fault);
            Assert.NotNull(result.SentDisconnectReason);
        }

        Assert.Equal(goodStdin, await goodRun);
    }

    [Fact]
    public async Task Random_bytes_after_the_version_line_never_fault_a_session()
    {
        var random = new Random(4253);
        var disconnects = 0;
        for (var iteration = 0; iteration < 300; iteration++)
        {
            var client = new RawClient();
            await client.SendVersionAsync();
            var garbage = new byte[random.Next(1, 2048)];
            random.NextBytes(garbage);
            if (random.Next(2) == 0 && garbage.Length > 8)
            {
                // A plausible length field so the packet is buffered and its payload parsed.
                var length = (uint)Math.Max(12, (garbage.Length - 4) & ~7);
                garbage[0] = (byte)(length >> 24);
                garbage[1] = (byte)(length >> 16);
                garbage[2] = (byte)(length >> 8);
                garbage[3] = (byte)length;
                garbage[4] = 4;
            }

            await client.SendRawAsync(garbage);
            var result = await client.CloseAndWaitAsync();
            Assert.Null(result.Fault);
            if (result.SentDisconnectReason is not null)
            {
                disconnects++;
            }
        }

        Assert.True(disconnects > 200, $"only {disconnects} disconnects");
    }
}
