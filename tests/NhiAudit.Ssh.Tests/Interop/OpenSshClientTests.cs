using System.Net;
using System.Text;
using NhiAudit.Ssh.HostKeys;
using NhiAudit.Ssh.Server;
using NhiAudit.Ssh.Tests.Support;
using NhiAudit.Ssh.Transport;

namespace NhiAudit.Ssh.Tests.Interop;

/// <summary>
/// The real OpenSSH 9.2 client against our server on 127.0.0.1, one test per algorithm, each forced with -o and
/// checked in ssh's own -v output.
/// </summary>
public sealed class OpenSshClientTests
{
    private static async Task<(SshClientProcess.Result Result, List<SshSessionResult> Sessions)> RunAsync(
        IEnumerable<string> options, string command = "true", string? stdin = null, string verbosity = "-v", SshTransportOptions? transport = null)
    {
        var sessions = new List<SshSessionResult>();
        var serverOptions = new SshServerOptions
        {
            Transport = transport ?? new SshTransportOptions { HostKeys = TestHostKeys.All() },
            InsecureAcceptNoneAuthenticationForTesting = true,
            EnableTestExecForTesting = true,
        };
        var server = new SshServer(new IPEndPoint(IPAddress.Loopback, 0), serverOptions);
        server.SessionEnded += (_, result) =>
        {
            lock (sessions)
            {
                sessions.Add(result);
            }
        };
        server.Start();
        SshClientProcess.Result result;
        try
        {
            result = await SshClientProcess.RunAsync(server.LocalEndPoint.Port, options, command, stdin, verbosity);
        }
        finally
        {
            await server.DisposeAsync();
        }

        Assert.True(result.ExitCode == 0, $"ssh exited {result.ExitCode}:\n{result.StandardError}");
        Assert.Contains("Authenticated to 127.0.0.1", result.StandardError, StringComparison.Ordinal);
        Assert.All(sessions, s => Assert.Null(s.Fault));
        return (result, sessions);
    }

    [Theory]
    [InlineData("curve25519-sha256")]
    [InlineData("curve25519-sha256@libssh.org")]
    [InlineData("ecdh-sha2-nistp256")]
    public async Task Key_exchange(string kex)
    {
        var (result, _) = await RunAsync([$"KexAlgorithms={kex}"], "hello");
        Assert.Contains($"kex: algorithm: {kex}", result.StandardError, StringComparison.Ordinal);
        Assert.Equal("nhiaudit-test exec: hello\n", result.StandardOutput);
    }

    [Theory]
    [InlineData("ssh-ed25519")]
    [InlineData("rsa-sha2-256")]
    [InlineData("rsa-sha2-512")]
    [InlineData("ecdsa-sha2-nistp256")]
    public async Task Host_key(string algorithm)
    {
        var (result, _) = await RunAsync([$"HostKeyAlgorithms={algorithm}"]);
        Assert.Contains($"kex: host key algorithm: {algorithm}", result.StandardError, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("aes128-gcm@openssh.com", "<implicit>")]
    [InlineData("aes256-gcm@openssh.com", "<implicit>")]
    [InlineData("chacha20-poly1305@openssh.com", "<implicit>")]
    [InlineData("aes128-ctr", "hmac-sha2-256-etm@openssh.com")]
    [InlineData("aes256-ctr", "hmac-sha2-512-etm@openssh.com")]
    public async Task Cipher(string cipher, string expectedMac)
    {
        var stdin = string.Concat(Enumerable.Repeat("line of input through the cipher\n", 2000));
        var (result, _) = await RunAsync([$"Ciphers={cipher}", "MACs=hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com"], "cat", stdin);
        Assert.Contains($"kex: server->client cipher: {cipher} MAC: {(expectedMac == "<implicit>" ? "<implicit>" : "hmac-sha2-256-etm@openssh.com")}", result.StandardError, StringComparison.Ordinal);
        Assert.Contains($"kex: client->server cipher: {cipher}", result.StandardError, StringComparison.Ordinal);
        Assert.Equal(stdin, result.StandardOutput);
    }

    [Theory]
    [InlineData("hmac-sha2-256-etm@openssh.com")]
    [InlineData("hmac-sha2-512-etm@openssh.com")]
    [InlineData("hmac-sha2-256")]
    [InlineData("hmac-sha2-512")]
    public async Task Mac(string mac)
    {
        var stdin = string.Concat(Enumerable.Repeat("authenticated data\n", 1000));
        var (result, _) = await RunAsync(["Ciphers=aes128-ctr", $"MACs={mac}"], "cat", stdin);
        Assert.Contains($"kex: server->client cipher: aes128-ctr MAC: {mac} compression: none", result.StandardError, StringComparison.Ordinal);
        Assert.Contains($"kex: client->server cipher: aes128-ctr MAC: {mac} compression: none", result.StandardError, StringComparison.Ordinal);
        Assert.Equal(stdin, result.StandardOutput);
    }

    [Fact]
    public async Task Strict_key_exchange_is_used()
    {
        var (result, sessions) = await RunAsync([], "hello", verbosity: "-vvv");
        Assert.Contains("will use strict KEX ordering", result.StandardError, StringComparison.Ordinal);
        Assert.Contains("kex-strict-s-v00@openssh.com", result.StandardError, StringComparison.Ordinal);
        Assert.Single(sessions);
    }

    [Fact]
    public async Task Server_sig_algs_reach_the_client_in_EXT_INFO()
    {
        var (result, _) = await RunAsync([], verbosity: "-vvv");
        Assert.Contains("SSH2_MSG_EXT_INFO received", result.StandardError, StringComparison.Ordinal);
        Assert.Contains("server-sig-algs=<ssh-ed25519,ecdsa-sha2-nistp256,rsa-sha2-512,rsa-sha2-256>", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Client_initiated_rekeying_with_data_flowing()
    {
        var stdin = string.Concat(Enumerable.Range(0, 20000).Select(i => $"{i}\n"));
        var (result, _) = await RunAsync(["RekeyLimit=16K"], "cat", stdin);
        Assert.Equal(stdin, result.StandardOutput);
        var kexCount = result.StandardError.Split("kex: algorithm:").Length - 1;
        Assert.True(kexCount > 3, $"ssh reports {kexCount} key exchanges");
    }

    [Fact]
    public async Task Server_initiated_rekeying_with_data_flowing()
    {
        var stdin = string.Concat(Enumerable.Range(0, 20000).Select(i => $"{i}\n"));
        var transport = new SshTransportOptions { HostKeys = TestHostKeys.All(), RekeyAfterBytes = 16 * 1024 };
        var (result, _) = await RunAsync([], "cat", stdin, transport: transport);
        Assert.Equal(stdin, result.StandardOutput);

        // ssh may push all of stdin before it reads our KEXINIT, so how many rekeys fit varies; at least one must.
        var kexCount = result.StandardError.Split("kex: algorithm:").Length - 1;
        Assert.True(kexCount >= 2, $"ssh reports {kexCount} key exchanges");
        Assert.Contains("SSH2_MSG_KEXINIT received", result.StandardError.Split("Authenticated to")[1], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_the_test_exec_a_channel_open_is_refused()
    {
        var server = new SshServer(
            new IPEndPoint(IPAddress.Loopback, 0),
            new SshServerOptions { Transport = new SshTransportOptions { HostKeys = [TestHostKeys.Load("ed25519")] }, InsecureAcceptNoneAuthenticationForTesting = true });
        server.Start();
        SshClientProcess.Result result;
        try
        {
            result = await SshClientProcess.RunAsync(server.LocalEndPoint.Port, [], "true");
        }
        finally
        {
            await server.DisposeAsync();
        }

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("Authenticated to 127.0.0.1", result.StandardError, StringComparison.Ordinal);
        Assert.Contains("open failed", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_the_test_switch_none_authentication_is_refused()
    {
        var server = new SshServer(
            new IPEndPoint(IPAddress.Loopback, 0),
            new SshServerOptions { Transport = new SshTransportOptions { HostKeys = [TestHostKeys.Load("ed25519")] } });
        server.Start();
        SshClientProcess.Result result;
        try
        {
            result = await SshClientProcess.RunAsync(server.LocalEndPoint.Port, [], "true");
        }
        finally
        {
            await server.DisposeAsync();
        }

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("Permission denied", result.StandardError, StringComparison.Ordinal);
    }
}
