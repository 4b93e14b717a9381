using NhiAudit.Identity;
using NhiAudit.Ssh.Authentication;
using NhiAudit.Ssh.HostKeys;
using NhiAudit.Ssh.Server;
using NhiAudit.Ssh.Tests.Support;
using NhiAudit.Ssh.Transport;

namespace NhiAudit.Ssh.Tests.Authentication;

/// <summary>
/// Our client transport speaking ssh-userauth to the server in memory: the steps OpenSSH never takes (a signature
/// by another key, ssh-rsa, a host certificate, an INFO_RESPONSE out of turn) and the attempt bound.
/// </summary>
public sealed class InMemoryAuthenticationTests(AuthenticationFixture fixture) : IClassFixture<AuthenticationFixture>
{
    private const byte PkOk = 60;

    private sealed class Connection : IAsyncDisposable
    {
        public required SshServerSession Server { get; init; }

        public required Task<SshSessionResult> ServerRun { get; init; }

        public required SshTransport Client { get; init; }

        public required RecordingAudit Audit { get; init; }

        public ValueTask Send(SshWriter writer) => Client.SendMessageAsync(writer.WrittenMemory, CancellationToken.None);

        public async Task<ReadOnlyMemory<byte>> ReceiveAsync() => await Client.ReceiveMessageAsync(CancellationToken.None);

        public async ValueTask DisposeAsync()
        {
            await Client.DisposeAsync();
            await ServerRun;
        }
    }

    private async Task<Connection> ConnectAsync(Func<SshAuthenticationOptions, SshAuthenticationOptions>? configure = null, System.Net.IPEndPoint? clientEndPoint = null)
    {
        var audit = new RecordingAudit();
        var options = fixture.Options(audit);
        options = configure?.Invoke(options) ?? options;
        var pipes = new DuplexPipePair();
        var hostKey = TestHostKeys.Load("ed25519");
        var server = new SshServerSession(
            pipes.ServerEnd,
            new SshServerOptions { Transport = new SshTransportOptions { HostKeys = [hostKey] }, Authentication = options },
            remoteEndPoint: clientEndPoint);
        var serverRun = Task.Run(() => server.RunAsync(CancellationToken.None));
        var hostBlob = hostKey.PublicKeyBlob.ToArray();
        var client = new SshTransport(pipes.ClientEnd, SshRole.Client, new SshTransportOptions { AcceptHostKey = blob => blob.Span.SequenceEqual(hostBlob) });
        await client.StartAsync(CancellationToken.None);
        var connection = new Connection { Server = server, ServerRun = serverRun, Client = client, Audit = audit };
        await connection.Send(new SshWriter(SshMessageNumber.ServiceRequest).WriteString("ssh-userauth"));
        var accept = await connection.ReceiveAsync();
        if (accept.Span[0] == (byte)SshMessageNumber.ExtInfo)
        {
            accept = await connection.ReceiveAsync();
        }

        Assert.Equal((byte)SshMessageNumber.ServiceAccept, accept.Span[0]);
        return connection;
    }

    private byte[] KeyBlob(string name, string suffix = ".pub") =>
        Convert.FromBase64String(File.ReadAllText(fixture.PathOf(name) + suffix).Split(' ')[1]);

    private static SshWriter PublicKeyRequest(string algorithm, byte[] blob, bool withSignature, string user = "workload") =>
        new SshWriter(SshMessageNumber.UserAuthRequest).WriteString(user).WriteString("ssh-connection").WriteString("publickey")
            .WriteBoolean(withSignature).WriteString(algorithm).WriteString(blob);

    private static SshWriter Signed(Connection connection, string algorithm, byte[] blob, SshHostKey signer, string signatureAlgorithm)
    {
        var request = PublicKeyRequest(algorithm, blob, withSignature: true);
        var data = new SshWriter().WriteString(connection.Client.SessionId!).WriteRaw(request.WrittenSpan).ToArray();
        return request.WriteString(signer.Sign(signatureAlgorithm, data));
    }

    private static string[] FailureMethods(ReadOnlyMemory<byte> message)
    {
        Assert.Equal((byte)SshMessageNumber.UserAuthFailure, message.Span[0]);
        var reader = new SshReader(message.Span[1..]);
        var methods = reader.ReadNameList();
        Assert.False(reader.ReadBoolean());
        return methods;
    }

    [Theory]
    [InlineData("user-ed25519", "ssh-ed25519", "ed25519-job")]
    [InlineData("user-rsa", "rsa-sha2-256", "rsa-job")]
    [InlineData("user-ecdsa", "ecdsa-sha2-nistp256", "ecdsa-job")]
    public async Task Query_gets_PK_OK_then_the_signature_authenticates(string key, string algorithm, string subject)
    {
        await using var connection = await ConnectAsync();
        var blob = KeyBlob(key);
        await connection.Send(PublicKeyRequest(algorithm, blob, withSignature: false));
        var pkOk = await connection.ReceiveAsync();
        Assert.Equal(PkOk, pkOk.Span[0]);
        var reader = new SshReader(pkOk.Span[1..]);
        Assert.Equal(algorithm, reader.ReadUtf8String());
        Assert.True(reader.ReadStringBytes().SequenceEqual(blob));

        using var signer = SshHostKey.Load(fixture.PathOf(key));
        await connection.Send(Signed(connection, algorithm, blob, signer, algorithm));
        Assert.Equal((byte)SshMessageNumber.UserAuthSuccess, (await connection.ReceiveAsync()).Span[0]);
        Assert.Equal(subject, connection.Server.AuthenticatedUser?.Identity.Subject);
        Assert.Equal(algorithm, connection.Server.AuthenticatedUser?.PublicKeyAlgorithm);
    }

    [Fact]
    public async Task Signature_by_another_key_is_refused()
    {
        await using var connection = await ConnectAsync();
        using var stranger = SshHostKey.Load(fixture.PathOf("stranger"));
        await connection.Send(Signed(connection, "ssh-ed25519", KeyBlob("user-ed25519"), stranger, "ssh-ed25519"));
        Assert.Equal(["publickey", "keyboard-interactive"], FailureMethods(await connection.ReceiveAsync()));
        Assert.Null(connection.Server.AuthenticatedUser);
        Assert.Equal("signature does not verify", Assert.Single(connection.Audit.Failures).Reason);
    }

    [Theory]
    [InlineData("ssh-rsa", "user-rsa", "signature algorithm ssh-rsa is refused (SHA-1)")]
    [InlineData("ssh-ed25519", "user-rsa", "algorithm ssh-ed25519 does not fit a ssh-rsa key")]
    [InlineData("rsa-sha2-512", "user-ed25519", "algorithm rsa-sha2-512 does not fit a ssh-ed25519 key")]
    [InlineData("ssh-dss", "user-ed25519", "signature algorithm ssh-dss is refused (SHA-1)")]
    public async Task Signature_algorithm_must_fit_the_key(string algorithm, string key, string reason)
    {
        await using var connection = await ConnectAsync();
        await connection.Send(PublicKeyRequest(algorithm, KeyBlob(key), withSignature: false));
        FailureMethods(await connection.ReceiveAsync());
        Assert.Equal(reason, Assert.Single(connection.Audit.Failures).Reason);
    }

    [Fact]
    public async Task Host_certificate_is_refused_by_the_server()
    {
        await using var connection = await ConnectAsync();
        using var signer = SshHostKey.Load(fixture.PathOf("cert-host"));
        var certificate = KeyBlob("cert-host", "-cert.pub");
        await connection.Send(Signed(connection, "ssh-ed25519-cert-v01@openssh.com", certificate, signer, "ssh-ed25519"));
        FailureMethods(await connection.ReceiveAsync());
        Assert.Equal("certificate is not a user certificate", Assert.Single(connection.Audit.Failures).Reason);
    }

    [Fact]
    public async Task Certificate_signed_by_the_key_holder_authenticates_and_by_another_key_does_not()
    {
        await using var connection = await ConnectAsync();
        var certificate = KeyBlob("cert-ed25519", "-cert.pub");
        using var stranger = SshHostKey.Load(fixture.PathOf("stranger"));
        await connection.Send(Signed(connection, "ssh-ed25519-cert-v01@openssh.com", certificate, stranger, "ssh-ed25519"));
        FailureMethods(await connection.ReceiveAsync());
        Assert.Equal("signature does not verify", Assert.Single(connection.Audit.Failures).Reason);

        using var holder = SshHostKey.Load(fixture.PathOf("cert-ed25519"));
        await connection.Send(Signed(connection, "ssh-ed25519-cert-v01@openssh.com", certificate, holder, "ssh-ed25519"));
        Assert.Equal((byte)SshMessageNumber.UserAuthSuccess, (await connection.ReceiveAsync()).Span[0]);
        Assert.Equal("deploy-job", connection.Server.AuthenticatedUser?.Identity.Subject);
    }

    [Fact]
    public async Task Failures_are_bounded_then_the_connection_ends_with_no_more_auth_methods()
    {
        var connection = await ConnectAsync();
        var none = new SshWriter(SshMessageNumber.UserAuthRequest).WriteString("workload").WriteString("ssh-connection").WriteString("none");
        await connection.Send(none);
        FailureMethods(await connection.ReceiveAsync()); // "none" asks for the methods and is not counted.

        var stranger = KeyBlob("stranger");
        for (var attempt = 1; attempt < 6; attempt++)
        {
            await connection.Send(PublicKeyRequest("ssh-ed25519", stranger, withSignature: false));
            FailureMethods(await connection.ReceiveAsync());
        }

        await connection.Send(PublicKeyRequest("ssh-ed25519", stranger, withSignature: false));
        var closed = await Assert.ThrowsAsync<SshConnectionClosedException>(async () => await connection.ReceiveAsync());
        Assert.Equal(SshDisconnectReason.NoMoreAuthMethodsAvailable, closed.Reason);
        await connection.Client.DisposeAsync();
        var result = await connection.ServerRun;
        Assert.Equal(SshDisconnectReason.NoMoreAuthMethodsAvailable, result.SentDisconnectReason);
        Assert.Null(result.User);
        Assert.Equal(6, connection.Audit.Failures.Count);
        Assert.Equal(6, connection.Audit.Failures[^1].FailedAttempts);
    }

    [Fact]
    public async Task Banner_comes_first_and_failure_lists_only_configured_methods()
    {
        await using var connection = await ConnectAsync(o => o with { Banner = "Audited gateway\n", WorkloadAuthenticator = null });
        await connection.Send(new SshWriter(SshMessageNumber.UserAuthRequest).WriteString("workload").WriteString("ssh-connection").WriteString("password"));
        var banner = await connection.ReceiveAsync();
        Assert.Equal((byte)SshMessageNumber.UserAuthBanner, banner.Span[0]);
        Assert.Equal("Audited gateway\n", new SshReader(banner.Span[1..]).ReadUtf8String());
        Assert.Equal(["publickey"], FailureMethods(await connection.ReceiveAsync()));
        Assert.Equal("method password is not offered", Assert.Single(connection.Audit.Failures).Reason);
    }

    [Fact]
    public async Task Keyboard_interactive_prompts_once_and_accepts_a_valid_token()
    {
        await using var connection = await ConnectAsync();
        await connection.Send(new SshWriter(SshMessageNumber.UserAuthRequest).WriteString("workload").WriteString("ssh-connection")
            .WriteString("keyboard-interactive").WriteString("").WriteString(""));
        var infoRequest = await connection.ReceiveAsync();
        Assert.Equal(60, infoRequest.Span[0]);
        var reader = new SshReader(infoRequest.Span[1..]);
        reader.ReadUtf8String();
        reader.ReadUtf8String();
        reader.ReadUtf8String();
        Assert.Equal(1u, reader.ReadUInt32());
        Assert.Equal("Workload token: ", reader.ReadUtf8String());
        Assert.False(reader.ReadBoolean());

        var token = fixture.Issuer.MintToken(new TokenRequest { Subject = "in-memory-job" });
        await connection.Send(new SshWriter().WriteByte(61).WriteUInt32(1).WriteString(token));
        Assert.Equal((byte)SshMessageNumber.UserAuthSuccess, (await connection.ReceiveAsync()).Span[0]);
        Assert.Equal("in-memory-job", connection.Server.AuthenticatedUser?.Identity.Subject);
    }

    [Fact]
    public async Task Info_response_without_a_request_ends_the_connection()
    {
        var connection = await ConnectAsync();
        await connection.Send(new SshWriter().WriteByte(61).WriteUInt32(1).WriteString("x"));
        await Assert.ThrowsAsync<SshConnectionClosedException>(async () => await connection.ReceiveAsync());
        await connection.Client.DisposeAsync();
        Assert.Equal(SshDisconnectReason.ProtocolError, (await connection.ServerRun).SentDisconnectReason);
    }

    [Theory]
    [InlineData("10.1.2.3", true)]
    [InlineData("::ffff:10.200.0.1", true)]
    [InlineData("11.0.0.1", false)]
    [InlineData(null, false)]
    public async Task Source_address_is_checked_against_the_client_address(string? address, bool accepted)
    {
        // cert-source-bad allows 10.0.0.0/8 only.
        var endPoint = address is null ? null : new System.Net.IPEndPoint(System.Net.IPAddress.Parse(address), 40000);
        await using var connection = await ConnectAsync(clientEndPoint: endPoint);
        using var holder = SshHostKey.Load(fixture.PathOf("cert-source-bad"));
        await connection.Send(Signed(connection, "ssh-ed25519-cert-v01@openssh.com", KeyBlob("cert-source-bad", "-cert.pub"), holder, "ssh-ed25519"));
        var reply = await connection.ReceiveAsync();
        if (accepted)
        {
            Assert.Equal((byte)SshMessageNumber.UserAuthSuccess, reply.Span[0]);
            Assert.Equal("source-bad-job", connection.Server.AuthenticatedUser?.Identity.Subject);
        }
        else
        {
            FailureMethods(reply);
            Assert.Contains("outside the certificate's source-address", Assert.Single(connection.Audit.Failures).Reason, StringComparison.Ordinal);
        }
    }
}
