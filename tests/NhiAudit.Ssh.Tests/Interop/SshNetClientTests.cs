using System.Net;
using NhiAudit.Ssh.Server;
using NhiAudit.Ssh.Tests.Support;
using NhiAudit.Ssh.Transport;
using Renci.SshNet;

namespace NhiAudit.Ssh.Tests.Interop;

/// <summary>SSH.NET as a second, independent client implementation.</summary>
public sealed class SshNetClientTests
{
    [Theory]
    [InlineData("curve25519-sha256", "aes128-gcm@openssh.com")]
    [InlineData("ecdh-sha2-nistp256", "chacha20-poly1305@openssh.com")]
    [InlineData("curve25519-sha256", "aes256-ctr")]
    public async Task SshNet_connects_and_runs_the_test_exec(string kex, string cipher)
    {
        var options = new SshServerOptions
        {
            Transport = new SshTransportOptions
            {
                HostKeys = TestHostKeys.All(),
                Algorithms = new SshAlgorithmPreferences { KeyExchange = [kex], Encryption = [cipher] },
            },
            InsecureAcceptNoneAuthenticationForTesting = true,
            EnableTestExecForTesting = true,
        };
        await using var server = new SshServer(new IPEndPoint(IPAddress.Loopback, 0), options);
        server.Start();

        var connection = new ConnectionInfo("127.0.0.1", server.LocalEndPoint.Port, "workload", new NoneAuthenticationMethod("workload"));
        using var client = new SshClient(connection);
        string? fingerprint = null;
        client.HostKeyReceived += (_, e) =>
        {
            fingerprint = e.FingerPrintSHA256;
            e.CanTrust = true;
        };
        await client.ConnectAsync(CancellationToken.None);
        Assert.True(client.IsConnected);
        Assert.NotNull(fingerprint);

        using var command = client.RunCommand("status");
        Assert.Equal("nhiaudit-test exec: status\n", command.Result);
        Assert.Equal(0, command.ExitStatus);
        client.Disconnect();
    }
}
