using NhiAudit.Identity;
using NhiAudit.Ssh.Authentication;
using Renci.SshNet;
using Renci.SshNet.Common;

namespace NhiAudit.Ssh.Tests.Authentication;

/// <summary>SSH.NET as a second client: private keys, an OpenSSH certificate, keyboard-interactive with a token.</summary>
public sealed class SshNetClientAuthenticationTests(AuthenticationFixture fixture) : IClassFixture<AuthenticationFixture>
{
    private static async Task<(string Output, SshAuthenticatedUser? User, RecordingAudit Audit)> RunAsync(
        AuthenticationFixture fixture, Func<AuthenticationMethod> method)
    {
        var audit = new RecordingAudit();
        var (output, sessions) = await AuthenticationFixture.WithServerAsync(fixture.Options(audit), async port =>
        {
            var authentication = method();
            using var disposable = authentication as IDisposable;
            var connection = new ConnectionInfo("127.0.0.1", port, "workload", authentication);
            using var client = new SshClient(connection);
            client.HostKeyReceived += (_, e) => e.CanTrust = true;
            try
            {
                await client.ConnectAsync(CancellationToken.None);
            }
            catch (SshAuthenticationException ex)
            {
                return "refused: " + ex.Message;
            }

            using var command = client.RunCommand("hello");
            client.Disconnect();
            return command.Result;
        });
        return (output, Assert.Single(sessions).User, audit);
    }

    [Theory]
    [InlineData("user-ed25519", "ed25519-job")]
    [InlineData("user-rsa", "rsa-job")]
    [InlineData("user-ecdsa", "ecdsa-job")]
    public async Task Private_key_authenticates(string key, string subject)
    {
        var (output, user, _) = await RunAsync(fixture, () => new PrivateKeyAuthenticationMethod("workload", new PrivateKeyFile(fixture.PathOf(key))));
        Assert.Equal("nhiaudit-test exec: hello\n", output);
        Assert.Equal(subject, user?.Identity.Subject);
        Assert.Equal("publickey", user?.Method);
    }

    [Fact]
    public async Task Certificate_authenticates()
    {
        var (output, user, _) = await RunAsync(
            fixture,
            () => new PrivateKeyAuthenticationMethod("workload", new PrivateKeyFile(fixture.PathOf("cert-ed25519"), null, fixture.PathOf("cert-ed25519") + "-cert.pub")));
        Assert.Equal("nhiaudit-test exec: hello\n", output);
        Assert.Equal("deploy-job", user?.Identity.Subject);
        Assert.Equal("ssh-ed25519-cert-v01@openssh.com", user?.PublicKeyAlgorithm);
    }

    [Fact]
    public async Task Unregistered_key_is_refused()
    {
        var (output, user, audit) = await RunAsync(fixture, () => new PrivateKeyAuthenticationMethod("workload", new PrivateKeyFile(fixture.PathOf("stranger"))));
        Assert.StartsWith("refused: ", output, StringComparison.Ordinal);
        Assert.Null(user);
        Assert.Contains(audit.Failures, a => a.Reason == "key is not registered to an identity");
    }

    [Fact]
    public async Task Keyboard_interactive_with_a_token()
    {
        var token = fixture.Issuer.MintToken(new TokenRequest { Subject = "sshnet-job" });
        var (output, user, _) = await RunAsync(fixture, () =>
        {
            var method = new KeyboardInteractiveAuthenticationMethod("workload");
            method.AuthenticationPrompt += (_, e) =>
            {
                foreach (var prompt in e.Prompts)
                {
                    prompt.Response = token;
                }
            };
            return method;
        });
        Assert.Equal("nhiaudit-test exec: hello\n", output);
        Assert.Equal("sshnet-job", user?.Identity.Subject);
        Assert.Equal("keyboard-interactive", user?.Method);
    }
}
