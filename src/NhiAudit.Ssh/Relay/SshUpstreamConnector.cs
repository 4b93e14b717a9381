using System.IO.Pipelines;
using System.Net.Sockets;
using NhiAudit.Ssh.Authentication;
using NhiAudit.Ssh.HostKeys;
using NhiAudit.Ssh.Transport;

namespace NhiAudit.Ssh.Relay;

/// <summary>
/// The gateway's own login to the upstream host: our transport in the client role with the host key pinned by
/// fingerprint, then <c>publickey</c> authentication (RFC 4252 §7) with the gateway's key. The workload's credential
/// never goes further than the gateway.
/// </summary>
internal sealed class SshUpstreamConnector(SshUpstreamOptions options, SshHostKey clientKey, SshTransportOptions? transport = null)
{
    private const byte UserAuthFailure = 51;
    private const byte UserAuthSuccess = 52;
    private const byte UserAuthBanner = 53;

    /// <summary>Connects and logs in; the transport returned is ready for the connection protocol.</summary>
    /// <exception cref="SshUpstreamException">The host is unreachable, its host key is not the pinned one, or it refused the gateway's key.</exception>
    public async Task<SshTransport> ConnectAsync(CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.ConnectTimeout);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        SshTransport? connected = null;
        try
        {
            try
            {
                await socket.ConnectAsync(options.Host, options.Port, timeout.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is SocketException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
            {
                throw new SshUpstreamException($"cannot reach {options.Host}:{options.Port}: {(ex is OperationCanceledException ? "timed out" : ex.Message)}", ex);
            }

            var stream = new NetworkStream(socket, ownsSocket: true);
            var pinned = options.HostKeyFingerprint;
            string? offered = null;
            connected = new SshTransport(
                new Duplex(PipeReader.Create(stream), PipeWriter.Create(stream)),
                SshRole.Client,
                (transport ?? new SshTransportOptions()) with
                {
                    AcceptHostKey = blob =>
                    {
                        offered = SshPublicKeyBlob.Fingerprint(blob.Span);
                        return string.Equals(offered, pinned, StringComparison.Ordinal);
                    },
                });
            try
            {
                await connected.StartAsync(timeout.Token).ConfigureAwait(false);
                await LogInAsync(connected, timeout.Token).ConfigureAwait(false);
            }
            catch (SshProtocolException ex) when (offered is not null && !string.Equals(offered, pinned, StringComparison.Ordinal))
            {
                throw new SshUpstreamException($"the host key of {options.Host}:{options.Port} is {offered}, not the pinned {pinned}: refusing to connect", ex);
            }
            catch (Exception ex) when (ex is SshProtocolException or SshConnectionClosedException or IOException || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
            {
                throw new SshUpstreamException($"{options.Host}:{options.Port}: {(ex is OperationCanceledException ? "login timed out" : ex.Message)}", ex);
            }

            var result = connected;
            connected = null;
            return result;
        }
        finally
        {
            if (connected is not null)
            {
                await connected.DisposeAsync().ConfigureAwait(false);
            }
            else if (!socket.Connected)
            {
                socket.Dispose();
            }
        }
    }

    private async Task LogInAsync(SshTransport connection, CancellationToken cancellationToken)
    {
        await connection.SendMessageAsync(new SshWriter(SshMessageNumber.ServiceRequest).WriteString("ssh-userauth").WrittenMemory, cancellationToken).ConfigureAwait(false);
        var accept = await connection.ReceiveMessageAsync(cancellationToken).ConfigureAwait(false);
        if (accept.Span[0] != (byte)SshMessageNumber.ServiceAccept)
        {
            throw new SshUpstreamException($"{options.Host}:{options.Port} did not accept ssh-userauth (message {accept.Span[0]})");
        }

        var sessionId = connection.SessionId!;
        string? lastRefusal = null;
        foreach (var algorithm in clientKey.SignatureAlgorithms)
        {
            // The signed data of RFC 4252 §7: the session id, then the request itself up to the signature.
            var request = new SshWriter(SshMessageNumber.UserAuthRequest).WriteString(options.Username).WriteString("ssh-connection")
                .WriteString("publickey").WriteBoolean(true).WriteString(algorithm).WriteString(clientKey.PublicKeyBlob.Span);
            var signed = new SshWriter().WriteString(sessionId).WriteRaw(request.WrittenSpan);
            request.WriteString(clientKey.Sign(algorithm, signed.WrittenSpan));
            await connection.SendMessageAsync(request.WrittenMemory, cancellationToken).ConfigureAwait(false);
            while (true)
            {
                var answer = await connection.ReceiveMessageAsync(cancellationToken).ConfigureAwait(false);
                switch (answer.Span[0])
                {
                    case UserAuthBanner:
                        continue;
                    case UserAuthSuccess:
                        return;
                    case UserAuthFailure:
                        lastRefusal = $"{options.Host}:{options.Port} refused the gateway's {algorithm} key {clientKey.Fingerprint} for user {options.Username}";
                        break;
                    default:
                        throw new SshUpstreamException($"{options.Host}:{options.Port} answered the login with message {answer.Span[0]}");
                }

                break;
            }
        }

        throw new SshUpstreamException(lastRefusal ?? "the gateway's key has no signature algorithm");
    }

    private sealed record Duplex(PipeReader Input, PipeWriter Output) : IDuplexPipe;
}

/// <summary>The gateway could not connect or log in to the upstream host.</summary>
public sealed class SshUpstreamException : Exception
{
    /// <summary>Creates the exception.</summary>
    public SshUpstreamException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    /// <param name="message">What went wrong, fit to show the workload.</param>
    public SshUpstreamException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and its cause.</summary>
    /// <param name="message">What went wrong, fit to show the workload.</param>
    /// <param name="innerException">The cause.</param>
    public SshUpstreamException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
