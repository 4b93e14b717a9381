using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Azure.Core;
using NhiAudit.Postgres.Gateway;
using NhiAudit.Postgres.Protocol;

namespace NhiAudit.Postgres.Relay;

/// <summary>Opens the gateway's own connection to the upstream server: TCP, TLS per sslmode, startup and login.</summary>
internal static class UpstreamConnector
{
    private const int MaxLoginMessage = 1024 * 1024;

    /// <summary>
    /// Client startup parameters that the gateway sets itself and never takes from the client. The lexical ones are
    /// pinned because the gateway reads the SQL text the way the server will: with a different
    /// standard_conforming_strings, a statement could hide inside what the gateway takes for a string literal.
    /// </summary>
    private static readonly HashSet<string> GatewayOwnedParameters = new(StringComparer.Ordinal)
    {
        "user", "database", "application_name", "replication", "options", "standard_conforming_strings",
    };

    public static async Task<UpstreamConnection> ConnectAsync(
        PostgresUpstreamOptions options,
        string database,
        string applicationName,
        IReadOnlyList<KeyValuePair<string, string>> clientSettings,
        TokenCredential? credential,
        CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.ConnectTimeout);
        var ct = timeout.Token;

        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        Stream stream;
        try
        {
            await socket.ConnectAsync(options.Host, options.Port, ct).ConfigureAwait(false);
            stream = new NetworkStream(socket, ownsSocket: true);
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            socket.Dispose();
            throw new UpstreamLoginException("08006", $"could not connect to the upstream server {options.Host}:{options.Port}: {ex.Message}");
        }

        var serverEndPoint = socket.RemoteEndPoint!;
        try
        {
            stream = await NegotiateTlsAsync(stream, options, ct).ConfigureAwait(false);
            var parameters = new List<KeyValuePair<string, string>>
            {
                new("user", options.Username),
                new("database", database),
                new("application_name", applicationName),
                new("standard_conforming_strings", "on"),
            };
            foreach (var parameter in clientSettings)
            {
                if (!GatewayOwnedParameters.Contains(parameter.Key) && !parameter.Key.StartsWith("_pq_.", StringComparison.Ordinal))
                {
                    parameters.Add(parameter);
                }
            }

            var startup = new ArrayBufferWriter<byte>(256);
            PgStartupMessage.WriteStartupMessage(startup, PgStartupCodes.Protocol30, parameters);
            await stream.WriteAsync(startup.WrittenMemory, ct).ConfigureAwait(false);
            await stream.FlushAsync(ct).ConfigureAwait(false);
            var connection = new UpstreamConnection(stream, serverEndPoint);
            await LoginAsync(connection, options, credential, ct).ConfigureAwait(false);
            return connection;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            await stream.DisposeAsync().ConfigureAwait(false);
            throw new UpstreamLoginException("08006", $"the upstream server {options.Host}:{options.Port} did not complete the login within {options.ConnectTimeout.TotalSeconds:0} s");
        }
        catch (Exception ex) when (ex is IOException or System.Security.Authentication.AuthenticationException)
        {
            await stream.DisposeAsync().ConfigureAwait(false);
            throw new UpstreamLoginException("08006", $"the connection to the upstream server failed: {ex.Message}");
        }
        catch
        {
            await stream.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private static async Task<Stream> NegotiateTlsAsync(Stream stream, PostgresUpstreamOptions options, CancellationToken ct)
    {
        if (options.SslMode == PgSslMode.Disable)
        {
            return stream;
        }

        var request = new byte[8];
        BinaryPrimitives.WriteInt32BigEndian(request, 8);
        BinaryPrimitives.WriteInt32BigEndian(request.AsSpan(4), PgStartupCodes.SslRequest);
        await stream.WriteAsync(request, ct).ConfigureAwait(false);
        var answer = new byte[1];
        await stream.ReadExactlyAsync(answer, ct).ConfigureAwait(false);
        if (answer[0] != (byte)'S')
        {
            if (options.SslMode == PgSslMode.Prefer && answer[0] == (byte)'N')
            {
                return stream;
            }

            throw new UpstreamLoginException("08001", $"the upstream server refused TLS, and sslmode is {options.SslMode}");
        }

        var ssl = new SslStream(stream, leaveInnerStreamOpen: false);
        var authentication = new SslClientAuthenticationOptions
        {
            TargetHost = options.Host,
            EnabledSslProtocols = System.Security.Authentication.SslProtocols.Tls12 | System.Security.Authentication.SslProtocols.Tls13,
        };
        if (options.SslMode == PgSslMode.VerifyFull)
        {
            if (options.CaFile is not null)
            {
                var roots = new X509Certificate2Collection();
                roots.ImportFromPemFile(options.CaFile);
                authentication.CertificateChainPolicy = NhiAudit.Tls.TrustedRoots.ChainPolicy(roots);
            }
        }
        else
        {
            // require/prefer: encrypted but not verified, exactly as libpq defines those modes; verify-full is the mode that verifies.
#pragma warning disable CA5359
            authentication.RemoteCertificateValidationCallback = static (_, _, _, _) => true;
#pragma warning restore CA5359
        }

        await ssl.AuthenticateAsClientAsync(authentication, ct).ConfigureAwait(false);
        return ssl;
    }

    private static async Task LoginAsync(UpstreamConnection connection, PostgresUpstreamOptions options, TokenCredential? credential, CancellationToken ct)
    {
        var stream = connection.Stream;
        var header = new byte[5];
        ScramSha256Client? scram = null;
        while (true)
        {
            await stream.ReadExactlyAsync(header, ct).ConfigureAwait(false);
            var length = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(1));
            if (length is < 4 or > MaxLoginMessage)
            {
                throw new UpstreamLoginException("08P01", $"the upstream server sent an invalid message length {length} during login");
            }

            var body = new byte[length - 4];
            await stream.ReadExactlyAsync(body, ct).ConfigureAwait(false);
            switch (header[0])
            {
                case (byte)'R':
                    scram = await AnswerAuthenticationAsync(stream, body, options, credential, scram, ct).ConfigureAwait(false);
                    break;
                case (byte)'E':
                    var error = PgErrorOrNotice.Parse(body);
                    throw new UpstreamLoginException(error.SqlState, error.Message);
                case (byte)'S':
                    var status = PgParameterStatus.Parse(body);
                    connection.ParameterStatuses.Add(new KeyValuePair<string, string>(status.Name, status.Value));
                    break;
                case (byte)'K':
                    if (body.Length < 8)
                    {
                        throw new UpstreamLoginException("08P01", "the upstream server sent a short BackendKeyData");
                    }

                    connection.BackendProcessId = BinaryPrimitives.ReadInt32BigEndian(body);
                    connection.BackendSecretKey = body[4..];
                    break;
                case (byte)'Z':
                    connection.TransactionStatus = body.Length > 0 ? body[0] : (byte)'I';
                    return;
                case (byte)'N':
                case (byte)'v':
                    break;
                default:
                    throw new UpstreamLoginException("08P01", $"unexpected message '{(char)header[0]}' from the upstream server during login");
            }
        }
    }

    private static async Task<ScramSha256Client?> AnswerAuthenticationAsync(Stream stream, byte[] body, PostgresUpstreamOptions options, TokenCredential? credential, ScramSha256Client? scram, CancellationToken ct)
    {
        if (body.Length < 4)
        {
            throw new UpstreamLoginException("08P01", "the upstream server sent a short authentication request");
        }

        var code = BinaryPrimitives.ReadInt32BigEndian(body);
        var reply = new ArrayBufferWriter<byte>(256);
        switch (code)
        {
            case 0:
                return scram;
            case 3:
                PgFrontendWriter.WritePasswordMessage(reply, await PasswordAsync(options, credential, ct).ConfigureAwait(false));
                break;
            case 5:
                var md5Secret = await PasswordAsync(options, credential, ct).ConfigureAwait(false);
                PgFrontendWriter.WritePasswordMessage(reply, Md5Password.Compute(options.Username, md5Secret, body.AsSpan(4, 4)));
                break;
            case 10:
                var mechanisms = Encoding.UTF8.GetString(body, 4, body.Length - 4).Split('\0', StringSplitOptions.RemoveEmptyEntries);
                if (!mechanisms.Contains("SCRAM-SHA-256"))
                {
                    throw new UpstreamLoginException("28000", "the upstream server offers no SASL mechanism the gateway supports (SCRAM-SHA-256): " + string.Join(", ", mechanisms));
                }

                scram = new ScramSha256Client(await PasswordAsync(options, credential, ct).ConfigureAwait(false));
                PgFrontendWriter.WriteSaslInitialResponse(reply, "SCRAM-SHA-256", Encoding.UTF8.GetBytes(scram.CreateClientFirst()));
                break;
            case 11:
                if (scram is null)
                {
                    throw new UpstreamLoginException("08P01", "SASL continue without SASL start");
                }

                PgFrontendWriter.WriteSaslResponse(reply, Encoding.UTF8.GetBytes(scram.CreateClientFinal(Encoding.UTF8.GetString(body, 4, body.Length - 4))));
                break;
            case 12:
                if (scram is null)
                {
                    throw new UpstreamLoginException("08P01", "SASL final without SASL start");
                }

                try
                {
                    scram.VerifyServerFinal(Encoding.UTF8.GetString(body, 4, body.Length - 4));
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    // A server that cannot prove it knows the password is not the server we were configured for.
                    throw new UpstreamLoginException("28000", "the upstream server's SCRAM signature is invalid: " + ex.Message);
                }

                return scram;
            default:
                throw new UpstreamLoginException("28000", $"the upstream server asks for authentication method {code}, which the gateway does not support");
        }

        await stream.WriteAsync(reply.WrittenMemory, ct).ConfigureAwait(false);
        await stream.FlushAsync(ct).ConfigureAwait(false);
        return scram;
    }

    private static async ValueTask<string> PasswordAsync(PostgresUpstreamOptions options, TokenCredential? credential, CancellationToken ct)
    {
        if (options.UseAzureIdentity)
        {
            if (credential is null)
            {
                throw new UpstreamLoginException("28000", "UseAzureIdentity is set but no Azure TokenCredential is registered");
            }

            var token = await credential.GetTokenAsync(new TokenRequestContext([options.AzureScope]), ct).ConfigureAwait(false);
            return token.Token;
        }

        return options.Password ?? throw new UpstreamLoginException("28000", "the upstream server asks for a password and none is configured");
    }

    /// <summary>Forwards a client's CancelRequest to the backend it maps to, with that backend's own key.</summary>
    public static async Task SendCancelAsync(UpstreamCancelKey key, CancellationToken ct)
    {
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(10));
        await socket.ConnectAsync(key.Server, timeout.Token).ConfigureAwait(false);
        var packet = new byte[12 + key.SecretKey.Length];
        BinaryPrimitives.WriteInt32BigEndian(packet, packet.Length);
        BinaryPrimitives.WriteInt32BigEndian(packet.AsSpan(4), PgStartupCodes.CancelRequest);
        BinaryPrimitives.WriteInt32BigEndian(packet.AsSpan(8), key.ProcessId);
        key.SecretKey.CopyTo(packet.AsSpan(12));
        await socket.SendAsync(packet, SocketFlags.None, timeout.Token).ConfigureAwait(false);
        socket.Shutdown(SocketShutdown.Send);

        // Wait for the server to close its side, so the cancel has been taken before we report it done.
        var sink = new byte[16];
        while (await socket.ReceiveAsync(sink, SocketFlags.None, timeout.Token).ConfigureAwait(false) > 0)
        {
        }
    }
}

/// <summary>An established, logged-in upstream connection.</summary>
internal sealed class UpstreamConnection(Stream stream, EndPoint serverEndPoint) : IAsyncDisposable
{
    public Stream Stream { get; } = stream;

    public EndPoint ServerEndPoint { get; } = serverEndPoint;

    public int BackendProcessId { get; set; }

    public byte[] BackendSecretKey { get; set; } = [];

    public List<KeyValuePair<string, string>> ParameterStatuses { get; } = [];

    public byte TransactionStatus { get; set; } = (byte)'I';

    public ValueTask DisposeAsync() => Stream.DisposeAsync();
}

/// <summary>The upstream refused or failed the gateway's login; carries the SQLSTATE to give the client.</summary>
internal sealed class UpstreamLoginException(string sqlState, string message) : Exception(message)
{
    public string SqlState { get; } = sqlState;
}
