using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using NhiAudit.Ssh.Tests.Support;
using NhiAudit.Ssh.Transport;

namespace NhiAudit.Ssh.Tests.Interop;

/// <summary>
/// Our transport in the client role (the gateway's side toward the upstream host) against a real OpenSSH sshd:
/// key exchange, host key pinning and encrypted traffic both ways up to the first authentication answer.
/// </summary>
public sealed class OpenSshServerUpstreamTests
{
    public static TheoryData<string, string, string, string> Cases => new()
    {
        { "curve25519-sha256", "ssh-ed25519", "aes128-gcm@openssh.com", "hmac-sha2-256-etm@openssh.com" },
        { "ecdh-sha2-nistp256", "ecdsa-sha2-nistp256", "chacha20-poly1305@openssh.com", "hmac-sha2-256-etm@openssh.com" },
        { "curve25519-sha256@libssh.org", "rsa-sha2-512", "aes256-ctr", "hmac-sha2-512-etm@openssh.com" },
        { "curve25519-sha256", "rsa-sha2-256", "aes128-ctr", "hmac-sha2-256" },
        { "curve25519-sha256", "ssh-ed25519", "aes256-gcm@openssh.com", "hmac-sha2-512" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Our_client_transport_talks_to_a_real_sshd(string kex, string hostKey, string cipher, string mac)
    {
        await using var sshd = await PrivateSshd.StartAsync();
        var expectedKey = TestHostKeys.All().Single(k => k.SignatureAlgorithms.Contains(hostKey)).PublicKeyBlob.ToArray();
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(IPAddress.Loopback, sshd.Port);
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        var transport = new SshTransport(
            new Duplex(PipeReader.Create(stream), PipeWriter.Create(stream)),
            SshRole.Client,
            new SshTransportOptions
            {
                Algorithms = new SshAlgorithmPreferences { KeyExchange = [kex], HostKey = [hostKey], Encryption = [cipher], Mac = [mac] },
                AcceptHostKey = blob => blob.Span.SequenceEqual(expectedKey),
            });
        // A guard against a hung peer, not a timing assertion.
        using var guard = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await transport.StartAsync(guard.Token);
        Assert.StartsWith("SSH-2.0-OpenSSH_9.2", transport.PeerVersion, StringComparison.Ordinal);

        await transport.SendMessageAsync(new SshWriter(SshMessageNumber.ServiceRequest).WriteString("ssh-userauth").WrittenMemory, guard.Token);
        Assert.Equal((byte)SshMessageNumber.ServiceAccept, (await transport.ReceiveMessageAsync(guard.Token)).Span[0]);
        Assert.True(transport.StrictKeyExchange);
        Assert.Equal(cipher, transport.Algorithms!.EncryptionServerToClient);

        // sshd answers KEXINIT with UNIMPLEMENTED during user authentication (its auth dispatch table has no
        // kex handlers), so client-side rekeying is tested in memory; here: encrypted requests and answers.
        for (var attempt = 0; attempt < 3; attempt++)
        {
            await transport.SendMessageAsync(
                new SshWriter(SshMessageNumber.UserAuthRequest).WriteString("nobody").WriteString("ssh-connection").WriteString("none").WrittenMemory,
                CancellationToken.None);
            var answer = await transport.ReceiveMessageAsync(guard.Token);
            if (answer.Span[0] == (byte)SshMessageNumber.UserAuthBanner)
            {
                answer = await transport.ReceiveMessageAsync(guard.Token);
            }

            Assert.Equal((byte)SshMessageNumber.UserAuthFailure, answer.Span[0]);
        }

        Assert.Equal(1, transport.CompletedKeyExchanges);
        await transport.DisconnectAsync(SshDisconnectReason.ByApplication, "done", CancellationToken.None);
        await transport.DisposeAsync();
    }

    private sealed record Duplex(PipeReader Input, PipeWriter Output) : IDuplexPipe;

    /// <summary>An sshd of its own on a free 127.0.0.1 port, with the test host keys (ENVIRONMENT.md "OpenSSH").</summary>
    private sealed class PrivateSshd : IAsyncDisposable
    {
        private readonly Process _process;

        private PrivateSshd(Process process, int port)
        {
            _process = process;
            Port = port;
        }

        public int Port { get; }

        public static async Task<PrivateSshd> StartAsync()
        {
            Directory.CreateDirectory("/run/sshd");
            var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            var port = ((IPEndPoint)listener.LocalEndpoint).Port;
            listener.Stop();
            var directory = TestHostKeys.Directory;
            var config = Path.Combine(directory, $"sshd_config_{port}");
            await File.WriteAllTextAsync(config, $"""
                Port {port}
                ListenAddress 127.0.0.1
                HostKey {TestHostKeys.PathOf("ed25519")}
                HostKey {TestHostKeys.PathOf("rsa")}
                HostKey {TestHostKeys.PathOf("ecdsa")}
                PidFile {Path.Combine(directory, $"sshd_{port}.pid")}
                AuthorizedKeysFile {directory}/%u
                StrictModes no
                UsePAM no
                """);
            var start = new ProcessStartInfo("/usr/sbin/sshd") { RedirectStandardError = true, RedirectStandardOutput = true };
            foreach (var argument in new[] { "-D", "-f", config, "-E", config + ".log" })
            {
                start.ArgumentList.Add(argument);
            }

            var process = Process.Start(start)!;
            _ = process.StandardError.ReadToEndAsync();
            for (var attempt = 0; attempt < 200; attempt++)
            {
                try
                {
                    using var probe = new TcpClient();
                    await probe.ConnectAsync(IPAddress.Loopback, port);
                    return new PrivateSshd(process, port);
                }
                catch (SocketException) when (!process.HasExited)
                {
                    await Task.Delay(50);
                }
            }

            process.Kill();
            throw new InvalidOperationException("sshd did not start listening");
        }

        public async ValueTask DisposeAsync()
        {
            if (!_process.HasExited)
            {
                _process.Kill();
                await _process.WaitForExitAsync();
            }

            _process.Dispose();
        }
    }
}
