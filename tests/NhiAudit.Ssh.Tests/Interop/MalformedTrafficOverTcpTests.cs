using System.Net;
using System.Net.Sockets;
using NhiAudit.Ssh.Server;
using NhiAudit.Ssh.Tests.Support;
using NhiAudit.Ssh.Transport;

namespace NhiAudit.Ssh.Tests.Interop;

public sealed class MalformedTrafficOverTcpTests
{
    /// <summary>Garbage connections on real sockets end with a disconnect while an OpenSSH session on the same server works.</summary>
    [Fact]
    public async Task Garbage_connections_end_with_a_disconnect_while_an_ssh_session_carries_on()
    {
        var results = new List<SshSessionResult>();
        var options = new SshServerOptions
        {
            Transport = new SshTransportOptions { HostKeys = TestHostKeys.All() },
            InsecureAcceptNoneAuthenticationForTesting = true,
            EnableTestExecForTesting = true,
        };
        await using var server = new SshServer(new IPEndPoint(IPAddress.Loopback, 0), options);
        server.SessionEnded += (_, result) =>
        {
            lock (results)
            {
                results.Add(result);
            }
        };
        server.Start();
        var port = server.LocalEndPoint.Port;

        var stdin = string.Concat(Enumerable.Range(0, 30000).Select(i => $"{i}\n"));
        var good = SshClientProcess.RunAsync(port, [], "cat", stdin);

        var random = new Random(99);
        var disconnectsSeen = 0;
        for (var i = 0; i < 20; i++)
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(IPAddress.Loopback, port);
            var garbage = new byte[random.Next(64, 4096)];
            random.NextBytes(garbage);
            await socket.SendAsync(System.Text.Encoding.ASCII.GetBytes("SSH-2.0-Garbage\r\n"));
            await socket.SendAsync(garbage);

            // Read until the server closes: its last packet is the (unencrypted) DISCONNECT.
            var received = new List<byte>();
            var buffer = new byte[4096];
            int read;
            while ((read = await socket.ReceiveAsync(buffer)) > 0)
            {
                received.AddRange(buffer.AsSpan(0, read));
            }

            if (ContainsDisconnect(received.ToArray()))
            {
                disconnectsSeen++;
            }
        }

        var goodResult = await good;
        Assert.Equal(0, goodResult.ExitCode);
        Assert.Equal(stdin, goodResult.StandardOutput);
        Assert.Equal(20, disconnectsSeen);
        lock (results)
        {
            Assert.All(results, r => Assert.Null(r.Fault));
        }
    }

    /// <summary>Looks for a none-cipher packet whose payload starts with SSH_MSG_DISCONNECT after the server's KEXINIT.</summary>
    private static bool ContainsDisconnect(byte[] data)
    {
        var lineEnd = Array.IndexOf(data, (byte)'\n');
        var offset = lineEnd + 1;
        while (offset + 5 < data.Length)
        {
            var length = (data[offset] << 24) | (data[offset + 1] << 16) | (data[offset + 2] << 8) | data[offset + 3];
            if (data[offset + 5] == (byte)SshMessageNumber.Disconnect)
            {
                return true;
            }

            offset += 4 + length;
        }

        return false;
    }
}
