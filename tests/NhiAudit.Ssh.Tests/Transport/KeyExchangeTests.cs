using System.Text;
using NhiAudit.Ssh.HostKeys;
using NhiAudit.Ssh.Tests.Support;
using NhiAudit.Ssh.Transport;

namespace NhiAudit.Ssh.Tests.Transport;

/// <summary>Our client transport against our server session, in memory, across the algorithm matrix.</summary>
public sealed class KeyExchangeTests
{
    public static TheoryData<string, string, string, string> Matrix()
    {
        var data = new TheoryData<string, string, string, string>();
        foreach (var kex in SshAlgorithms.KeyExchange)
        {
            foreach (var hostKey in SshAlgorithms.HostKey)
            {
                data.Add(kex, hostKey, "aes128-gcm@openssh.com", "hmac-sha2-256-etm@openssh.com");
            }
        }

        foreach (var cipher in SshAlgorithms.Encryption)
        {
            // AEAD ciphers ignore the MAC; the CTR ciphers go with every MAC.
            foreach (var mac in SshAlgorithms.IsAead(cipher) ? SshAlgorithms.Mac.Take(1) : SshAlgorithms.Mac)
            {
                if (cipher != "aes128-gcm@openssh.com")
                {
                    data.Add("curve25519-sha256", "ssh-ed25519", cipher, mac);
                }
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Matrix))]
    public async Task Client_and_server_agree_and_exchange_data(string kex, string hostKey, string cipher, string mac)
    {
        var preferences = new SshAlgorithmPreferences { KeyExchange = [kex], HostKey = [hostKey], Encryption = [cipher], Mac = [mac] };
        await using var pair = await InMemorySessionPair.ConnectAsync(
            new SshTransportOptions { HostKeys = TestHostKeys.All() },
            new SshTransportOptions { Algorithms = preferences });
        await pair.RequestUserAuthServiceAsync();

        Assert.Equal(kex, pair.Client.Algorithms!.KeyExchange);
        Assert.Equal(hostKey, pair.Client.Algorithms.HostKey);
        Assert.Equal(cipher, pair.Client.Algorithms.EncryptionClientToServer);
        Assert.Equal(SshAlgorithms.IsAead(cipher) ? null : mac, pair.Client.Algorithms.MacServerToClient);
        Assert.True(pair.Client.StrictKeyExchange);
        Assert.Equal(pair.Client.SessionId, pair.Server.Transport.SessionId);

        var stdin = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("data both ways ", 5000)));
        var output = await pair.ExecAsync("cat", stdin);
        Assert.Equal(stdin, output);
    }

    [Fact]
    public async Task Rekeying_started_by_the_client_after_a_byte_budget_keeps_traffic_flowing()
    {
        await using var pair = await InMemorySessionPair.ConnectAsync(
            new SshTransportOptions { HostKeys = TestHostKeys.All() },
            new SshTransportOptions { RekeyAfterBytes = 64 * 1024 });
        await pair.RequestUserAuthServiceAsync();
        var stdin = new byte[1024 * 1024];
        new Random(1).NextBytes(stdin);

        var output = await pair.ExecAsync("cat", stdin);

        Assert.Equal(stdin, output);
        // Messages sent during a rekey wait for it, so how many rekeys fit depends on scheduling; at least one must.
        Assert.True(pair.Client.CompletedKeyExchanges >= 2, $"only {pair.Client.CompletedKeyExchanges} key exchanges");
        Assert.Equal(pair.Client.SessionId, pair.Server.Transport.SessionId);
    }

    [Fact]
    public async Task Rekeying_started_by_the_server_keeps_traffic_flowing()
    {
        await using var pair = await InMemorySessionPair.ConnectAsync(
            new SshTransportOptions { HostKeys = TestHostKeys.All(), RekeyAfterPackets = 20 });
        await pair.RequestUserAuthServiceAsync();
        var stdin = new byte[512 * 1024];
        new Random(2).NextBytes(stdin);

        var output = await pair.ExecAsync("cat", stdin);

        Assert.Equal(stdin, output);
        // Counted on the client: it has seen the server's NEWKEYS before the CHANNEL_CLOSE deferred behind it.
        Assert.True(pair.Client.CompletedKeyExchanges >= 2, $"only {pair.Client.CompletedKeyExchanges} key exchanges");
    }

    [Fact]
    public async Task Rekeying_on_demand_keeps_the_session_id()
    {
        await using var pair = await InMemorySessionPair.ConnectAsync(new SshTransportOptions { HostKeys = TestHostKeys.All() });
        await pair.RequestUserAuthServiceAsync();
        var sessionId = pair.Client.SessionId;

        await pair.Server.Transport.RequestKeyExchangeAsync(CancellationToken.None);
        var output = await pair.ExecAsync("echo hi", []);

        Assert.Equal("nhiaudit-test exec: echo hi\n", Encoding.UTF8.GetString(output));
        Assert.Equal(2, pair.Client.CompletedKeyExchanges);
        Assert.Equal(sessionId, pair.Server.Transport.SessionId);
    }

    [Fact]
    public async Task The_client_refuses_a_host_key_it_does_not_expect()
    {
        var pipes = new DuplexPipePair();
        var server = new Server.SshServerSession(pipes.ServerEnd, new Server.SshServerOptions { Transport = new SshTransportOptions { HostKeys = [TestHostKeys.Load("ed25519")] } });
        var serverRun = server.RunAsync(CancellationToken.None);
        var client = new SshTransport(pipes.ClientEnd, SshRole.Client, new SshTransportOptions());
        await client.StartAsync(CancellationToken.None);

        var ex = await Assert.ThrowsAsync<SshProtocolException>(async () => await client.ReceiveMessageAsync(CancellationToken.None));
        Assert.Equal(SshDisconnectReason.HostKeyNotVerifiable, ex.Reason);
        await client.DisposeAsync();
        Assert.Null((await serverRun).Fault);
    }

    [Fact]
    public void Key_derivation_extends_short_hashes_per_RFC_4253_section_7_2()
    {
        var secret = new byte[] { 0x80, 1, 2, 3 };
        var hash = new byte[32];
        var key = KeyDerivation.DeriveKey(secret, hash, 'C', hash, 64);
        var encodedSecret = new SshWriter().WriteMpint(secret).ToArray();
        var k1 = System.Security.Cryptography.SHA256.HashData([.. encodedSecret, .. hash, (byte)'C', .. hash]);
        var k2 = System.Security.Cryptography.SHA256.HashData([.. encodedSecret, .. hash, .. k1]);
        Assert.Equal([.. k1, .. k2], key);
    }
}
