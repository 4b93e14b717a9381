using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using NhiAudit.Audit;
using NhiAudit.Postgres.Gateway;
using NhiAudit.Postgres.Protocol;
using NhiAudit.Postgres.Sql;

namespace NhiAudit.Postgres.Relay;

/// <summary>
/// One client connection through the gateway: TLS and startup, workload-token authentication, the upstream login
/// with the gateway's own credential, then two loops relaying messages. The client loop writes a request record for
/// every statement before the bytes that run it are flushed upstream; the server loop writes the response records and
/// is the only writer towards the client once the session is established.
/// </summary>
internal sealed partial class PgRelaySession : IDisposable
{
    private const int StartupMaxLength = 10_000;
    private const int StreamingThreshold = 64 * 1024;

    private readonly Socket _clientSocket;
    private readonly PostgresTargetOptions _target;
    private readonly PgGatewayServices _services;
    private readonly string _sessionId;
    private readonly string _clientAddress;
    private readonly ConcurrentQueue<PendingEntry> _pending = new();
    private readonly Dictionary<string, PreparedStatement> _statements = new(StringComparer.Ordinal);
    private readonly Dictionary<string, BoundPortal> _portals = new(StringComparer.Ordinal);
    private readonly AuditRecordWriter _requestRecords = new();

    // The request records appended for the batch being read, so that a failed commit can say they were not sent.
    private readonly List<long> _batchRequestSeqs = [];
    private readonly AuditRecordWriter _responseRecords = new();

    private WorkloadIdentity? _identity;
    private byte[] _identityJson = [];
    private byte[] _sessionJson = [];
    private string _database = "";
    private string _clientUser = "";
    private string? _reason;
    private long _statementCount;
    private PendingEntry? _lastEnqueued;
    private bool _discardUntilSync;
    private string _clientApplicationName = "";
    private string _upstreamApplicationName = "";

    public PgRelaySession(Socket clientSocket, PostgresTargetOptions target, PgGatewayServices services)
    {
        _clientSocket = clientSocket;
        _target = target;
        _services = services;
        _sessionId = SessionIds.Next();
        _clientAddress = clientSocket.RemoteEndPoint?.ToString() ?? "unknown";
    }

    /// <summary>A session with no client socket, for benchmarks that drive the relay's message handling directly.</summary>
    internal PgRelaySession(PostgresTargetOptions target, PgGatewayServices services)
    {
        _clientSocket = null!;
        _target = target;
        _services = services;
        _sessionId = SessionIds.Next();
        _clientAddress = "benchmark";
        _sessionJson = "{}"u8.ToArray();
    }

    public string SessionId => _sessionId;

    public void Dispose()
    {
        _requestRecords.Dispose();
        _responseRecords.Dispose();
        _clientWriteLock.Dispose();
    }

    public async Task RunAsync(CancellationToken shutdown)
    {
        Stream clientStream = new NetworkStream(_clientSocket, ownsSocket: true);
        UpstreamConnection? upstream = null;
        (int Pid, int Secret)? clientKey = null;
        var endReason = "client closed the connection";
        try
        {
            using var startupTimeout = CancellationTokenSource.CreateLinkedTokenSource(shutdown);
            startupTimeout.CancelAfter(_target.StartupTimeout);
            var handshake = await AcceptStartupAsync(clientStream, startupTimeout.Token).ConfigureAwait(false);
            clientStream = handshake.Stream;
            if (handshake.Startup is null)
            {
                return;
            }

            upstream = await LoginAsync(clientStream, handshake.Startup, handshake.Tls, startupTimeout.Token).ConfigureAwait(false);
            if (upstream is null)
            {
                return;
            }

            await StartMaskingAsync(startupTimeout.Token).ConfigureAwait(false);
            clientKey = _services.CancelKeys.Register(new UpstreamCancelKey(upstream.ServerEndPoint, upstream.BackendProcessId, upstream.BackendSecretKey, _sessionId) { CancelHeld = CancelHeldStatement });
            await SendLoginCompleteAsync(clientStream, upstream, clientKey.Value, shutdown).ConfigureAwait(false);
            endReason = await RelayAsync(clientStream, upstream, shutdown).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (shutdown.IsCancellationRequested)
        {
            endReason = "gateway shutting down";
        }
        catch (OperationCanceledException)
        {
            endReason = "startup timed out";
            await TrySendFatalAsync(clientStream, "08006", "the gateway timed out waiting for the startup sequence").ConfigureAwait(false);
        }
        catch (PgProtocolException ex)
        {
            endReason = "protocol violation: " + ex.Message;
            await TrySendFatalAsync(clientStream, ex.SqlState, ex.Message).ConfigureAwait(false);
        }
        catch (AuditLogUnavailableException ex)
        {
            endReason = "audit log unavailable";
            _services.Logger.LogError(ex, "Session {Session}: audit log unavailable", _sessionId);
            await TrySendFatalAsync(clientStream, "58030", "the audit log cannot be written; the gateway refuses to relay: " + ex.Message).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or SocketException or System.Security.Authentication.AuthenticationException)
        {
            endReason = "connection error: " + ex.Message;
            _services.Logger.LogDebug(ex, "Session {Session}: connection error", _sessionId);
        }
        catch (Exception ex)
        {
            endReason = "internal error: " + ex.GetType().Name;
            _services.Logger.LogError(ex, "Session {Session}: unexpected failure", _sessionId);
            await TrySendFatalAsync(clientStream, "XX000", "internal gateway error").ConfigureAwait(false);
        }
        finally
        {
            if (clientKey is { } key)
            {
                _services.CancelKeys.Remove(key.Pid, key.Secret);
            }

            if (_identity is not null)
            {
                await TryAuditSessionEndAsync(endReason).ConfigureAwait(false);
            }

            if (upstream is not null)
            {
                await upstream.DisposeAsync().ConfigureAwait(false);
            }

            await clientStream.DisposeAsync().ConfigureAwait(false);
        }
    }

    // ---------------------------------------------------------------- startup

    private readonly record struct Handshake(Stream Stream, PgStartupMessage? Startup, bool Tls);

    private async Task<Handshake> AcceptStartupAsync(Stream stream, CancellationToken ct)
    {
        var tls = false;
        var header = new byte[8];
        while (true)
        {
            await stream.ReadExactlyAsync(header.AsMemory(0, 4), ct).ConfigureAwait(false);
            var length = BinaryPrimitives.ReadInt32BigEndian(header);
            if (length is < 8 or > StartupMaxLength)
            {
                throw new PgProtocolException("08P01", $"invalid startup packet length {length}");
            }

            var packet = new byte[length];
            header.AsSpan(0, 4).CopyTo(packet);
            await stream.ReadExactlyAsync(packet.AsMemory(4), ct).ConfigureAwait(false);
            var code = BinaryPrimitives.ReadInt32BigEndian(packet.AsSpan(4));
            switch (code)
            {
                case PgStartupCodes.SslRequest:
                    if (tls)
                    {
                        throw new PgProtocolException("08P01", "SSLRequest received twice");
                    }

                    await stream.WriteAsync("S"u8.ToArray(), ct).ConfigureAwait(false);
                    var ssl = new SslStream(stream, leaveInnerStreamOpen: false);
                    await ssl.AuthenticateAsServerAsync(
                        new SslServerAuthenticationOptions
                        {
                            ServerCertificate = _services.ServerCertificate,
                            ClientCertificateRequired = false,
                            EnabledSslProtocols = System.Security.Authentication.SslProtocols.Tls12 | System.Security.Authentication.SslProtocols.Tls13,
                        },
                        ct).ConfigureAwait(false);
                    stream = ssl;
                    tls = true;
                    continue;
                case PgStartupCodes.GssEncRequest:
                    await stream.WriteAsync("N"u8.ToArray(), ct).ConfigureAwait(false);
                    continue;
                case PgStartupCodes.CancelRequest:
                    await HandleCancelAsync(packet, ct).ConfigureAwait(false);
                    return new Handshake(stream, null, tls);
                case var version when version >> 16 == 3:
                    var startup = PgStartupMessage.Parse(packet);
                    var extensions = startup.Parameters.Where(p => p.Key.StartsWith("_pq_.", StringComparison.Ordinal)).Select(p => p.Key).ToList();
                    if (version != PgStartupCodes.Protocol30 || extensions.Count > 0)
                    {
                        // We speak 3.0 with both peers; say so the way PostgreSQL does, and go on.
                        await WriteAsync(stream, w => PgBackendWriter.WriteNegotiateProtocolVersion(w, 0, extensions), ct).ConfigureAwait(false);
                    }

                    return new Handshake(stream, startup, tls);
                default:
                    var major = code >> 16;
                    var minor = code & 0xFFFF;
                    throw new PgProtocolException("0A000", $"unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.0");
            }
        }
    }

    private async Task<UpstreamConnection?> LoginAsync(Stream client, PgStartupMessage startup, bool tls, CancellationToken ct)
    {
        _clientUser = startup.User;
        _database = _target.Upstream.Database ?? startup.Database;

        if (!tls && _target.Tls.Required)
        {
            await RefuseLoginAsync(client, "28000", "the gateway requires TLS: connect with sslmode=require", startup).ConfigureAwait(false);
            return null;
        }

        if (startup.Replication is { Length: > 0 } and not "false" and not "off" and not "0")
        {
            await RefuseLoginAsync(client, "0A000", "replication connections are not relayed: they would bypass the statement audit", startup).ConfigureAwait(false);
            return null;
        }

        if (!ClientSettings(startup, out var settings, out var optionsError))
        {
            await RefuseLoginAsync(client, "0A000", optionsError!, startup).ConfigureAwait(false);
            return null;
        }

        if (LexicalStartupProblem(settings) is { } lexical)
        {
            await RefuseLoginAsync(client, "0A000", lexical, startup).ConfigureAwait(false);
            return null;
        }

        _clientApplicationName = startup.ApplicationName ?? settings.FirstOrDefault(s => s.Key == "application_name").Value ?? "";

        await WriteAsync(client, w => PgBackendWriter.WriteAuthenticationCleartextPassword(w), ct).ConfigureAwait(false);
        var token = await ReadPasswordAsync(client, ct).ConfigureAwait(false);
        var result = await _services.Authenticator.AuthenticateAsync(token, ct).ConfigureAwait(false);
        if (!result.Succeeded)
        {
            await RefuseLoginAsync(client, "28P01", "workload token rejected: " + result.Failure, startup).ConfigureAwait(false);
            return null;
        }

        _identity = result.Identity!;
        _identityJson = AuditRecordWriter.EncodeIdentity(_identity);
        _sessionJson = EncodeSessionContext();

        if (StartupSettingRefusal(settings) is { } refusal)
        {
            // A startup setting is a SET the client did not have to write as a statement: the same rules decide it.
            await RefuseLoginAsync(client, "42501", refusal, startup).ConfigureAwait(false);
            _identity = null;
            return null;
        }

        UpstreamConnection upstream;
        try
        {
            _upstreamApplicationName = ApplicationName();
            upstream = await UpstreamConnector.ConnectAsync(_target.Upstream, _database, _upstreamApplicationName, settings, _services.TokenCredential, ct).ConfigureAwait(false);
        }
        catch (UpstreamLoginException ex)
        {
            await AuditAsync(_requestRecords, "pg.session.refused", AuditAppendMode.Request, w =>
            {
                w.WriteString("reason", "upstream login failed");
                w.WriteString("sqlstate", ex.SqlState);
                w.WriteString("error", ex.Message);
            }).ConfigureAwait(false);
            await TrySendFatalAsync(client, ex.SqlState, "upstream: " + ex.Message).ConfigureAwait(false);
            _identity = null;
            return null;
        }

        try
        {
            await AuditAsync(_requestRecords, "pg.session.start", AuditAppendMode.Request, w =>
            {
                w.WriteBoolean("tls", tls);
                w.WriteString("applicationName", startup.ApplicationName);
                if (settings.Count > 0)
                {
                    w.WriteStartObject("settings");
                    foreach (var (name, value) in settings)
                    {
                        w.WriteString(name, value);
                    }

                    w.WriteEndObject();
                }

                w.WriteString("upstreamUser", _target.Upstream.Username);
                w.WriteNumber("upstreamPid", upstream.BackendProcessId);
                w.WriteString("tokenExpires", _identity.ExpiresAt);
            }).ConfigureAwait(false);
        }
        catch
        {
            await upstream.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        return upstream;
    }

    /// <summary>
    /// The run-time settings the client asked for at startup: the <c>-c</c> switches of <c>options</c>, then the
    /// packet's own parameters (which win, as on the server). The gateway's own parameters (user, database,
    /// application_name, replication, options, <c>_pq_.</c>) are not settings. Names are lower-case, as the server reads them.
    /// </summary>
    private static bool ClientSettings(PgStartupMessage startup, out List<KeyValuePair<string, string>> settings, out string? error)
    {
        settings = [];
        error = null;
        if (startup.Options is { Length: > 0 } options && !PgStartupOptions.TryParse(options, out settings, out error))
        {
            return false;
        }

        foreach (var (key, value) in startup.Parameters)
        {
            if (key is "user" or "database" or "application_name" or "replication" or "options" || key.StartsWith("_pq_.", StringComparison.Ordinal))
            {
                continue;
            }

            settings.Add(new KeyValuePair<string, string>(key.ToLowerInvariant(), value));
        }

        // A later setting of the same name wins; keep only the last of each.
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var i = settings.Count - 1; i >= 0; i--)
        {
            if (!seen.Add(settings[i].Key))
            {
                settings.RemoveAt(i);
            }
        }

        return true;
    }

    /// <summary>
    /// Startup settings that would make the server read SQL text differently from the gateway (and so let a statement
    /// hide from the audit) are refused; every other setting goes upstream and into the session-start record.
    /// </summary>
    private static string? LexicalStartupProblem(List<KeyValuePair<string, string>> settings)
    {
        foreach (var (name, value) in settings)
        {
            if (name == "standard_conforming_strings" && !IsOn(value))
            {
                return "standard_conforming_strings must stay on through the gateway: with it off the gateway could not read statements as the server does";
            }

            if (name == "client_encoding" && !PgClientEncoding.IsAsciiSafe(value.Trim()))
            {
                return $"client_encoding {value} is not supported through the gateway: its multibyte characters can hide quotes from the audit; use UTF8";
            }
        }

        return null;
    }

    /// <summary>
    /// Why the policy refuses one of the startup settings, each decided as the <c>SET name TO 'value'</c> it amounts to
    /// (so a rule against <c>SET ROLE</c> also holds for <c>-c role=…</c>); null when every one is allowed. A setting
    /// the policy would hold for approval is refused: there is no session yet to hold it on.
    /// </summary>
    private string? StartupSettingRefusal(List<KeyValuePair<string, string>> settings)
    {
        foreach (var (name, value) in settings)
        {
            var text = $"SET {name} TO '{value.Replace("'", "''", StringComparison.Ordinal)}'";
            var decision = _services.Policy.Evaluate(DescribeRequest(text, SqlClassifier.Classify(text)));
            if (decision.Effect != PolicyEffect.Allow)
            {
                return $"startup setting {name}: {decision.Reason}";
            }
        }

        return null;
    }

    /// <summary>True for the spellings of a true boolean the server accepts (on, true, yes, 1 and unique prefixes).</summary>
    private static bool IsOn(string value) =>
        value.Trim().ToLowerInvariant() is "on" or "true" or "yes" or "1" or "t" or "tr" or "tru" or "y" or "ye";

    private async Task RefuseLoginAsync(Stream client, string sqlState, string message, PgStartupMessage startup)
    {
        try
        {
            await AuditAsync(_requestRecords, "pg.auth.failed", AuditAppendMode.Request, w =>
            {
                w.WriteString("session", _sessionId);
                w.WriteString("target", _target.Name);
                w.WriteString("client", _clientAddress);
                w.WriteString("database", startup.Database);
                w.WriteString("user", startup.User);
                w.WriteString("sqlstate", sqlState);
                w.WriteString("reason", message);
            }, includeContext: false).ConfigureAwait(false);
        }
        catch (AuditLogUnavailableException ex)
        {
            _services.Logger.LogError(ex, "Session {Session}: could not audit a refused login", _sessionId);
        }

        await TrySendFatalAsync(client, sqlState, message).ConfigureAwait(false);
    }

    private static async Task<string> ReadPasswordAsync(Stream client, CancellationToken ct)
    {
        var header = new byte[5];
        await client.ReadExactlyAsync(header, ct).ConfigureAwait(false);
        if (header[0] != (byte)'p')
        {
            throw new PgProtocolException("08P01", $"expected a password message, got message type '{(char)header[0]}'");
        }

        var length = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(1));
        if (length is < 5 or > 64 * 1024)
        {
            throw new PgProtocolException("08P01", $"invalid password message length {length}");
        }

        var body = new byte[length - 4];
        await client.ReadExactlyAsync(body, ct).ConfigureAwait(false);
        var end = Array.IndexOf(body, (byte)0);
        if (end < 0)
        {
            throw new PgProtocolException("08P01", "password message is not NUL-terminated");
        }

        return Encoding.UTF8.GetString(body, 0, end);
    }

    private async Task SendLoginCompleteAsync(Stream client, UpstreamConnection upstream, (int Pid, int Secret) key, CancellationToken ct)
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        PgBackendWriter.WriteAuthenticationOk(buffer);
        foreach (var parameter in upstream.ParameterStatuses)
        {
            if (LexicallyUnsafeStatus(parameter.Key, parameter.Value) is { } problem)
            {
                // A role or database default the login did not override: the server would read SQL differently from us.
                throw new PgProtocolException("0A000", problem);
            }

            PgBackendWriter.WriteParameterStatus(buffer, parameter.Key, ClientFacingStatus(parameter.Key, parameter.Value));
        }

        Span<byte> secret = stackalloc byte[4];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(secret, key.Secret);
        PgBackendWriter.WriteBackendKeyData(buffer, key.Pid, secret);
        PgBackendWriter.WriteReadyForQuery(buffer, (PgTransactionStatus)upstream.TransactionStatus);
        await client.WriteAsync(buffer.WrittenMemory, ct).ConfigureAwait(false);
        await client.FlushAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Why a reported setting leaves the server reading SQL text differently from the gateway, or null.</summary>
    private static string? LexicallyUnsafeStatus(string name, string value) =>
        (name == "standard_conforming_strings" && !IsOn(value)) || (name == "client_encoding" && !PgClientEncoding.IsAsciiSafe(value))
            ? $"terminating connection: the server reports {name} = {value}, under which the gateway cannot read statements as the server does"
            : null;

    /// <summary>
    /// The value the client sees for a reported setting: the server knows the session by the gateway's
    /// <c>nhi:</c> application_name, the client by its own, and gets its own back, as it would direct.
    /// </summary>
    private string ClientFacingStatus(string name, string value) =>
        name == "application_name" && value == _upstreamApplicationName ? _clientApplicationName : value;

    private string ApplicationName()
    {
        // The server's own log (%a) then names the identity and our session, so both logs tell one story.
        var name = $"nhi:{_sessionId}:{_identity!.DisplayName}";
        return Utf8Truncate(name, 63);
    }

    private static string Utf8Truncate(string value, int maxBytes)
    {
        if (Encoding.UTF8.GetByteCount(value) <= maxBytes)
        {
            return value;
        }

        var end = value.Length;
        while (end > 0 && Encoding.UTF8.GetByteCount(value.AsSpan(0, end)) > maxBytes)
        {
            end--;
        }

        if (end > 0 && char.IsHighSurrogate(value[end - 1]))
        {
            end--;
        }

        return value[..end];
    }

    // ---------------------------------------------------------------- cancel

    private async Task HandleCancelAsync(byte[] packet, CancellationToken ct)
    {
        var cancel = PgCancelRequest.Parse(packet);

        // The gateway issues 4-byte keys only, so a longer key (protocol 3.2) cannot be one of ours.
        UpstreamCancelKey? upstream = null;
        var found = cancel.SecretKey.Length == 4
            && _services.CancelKeys.TryGet(cancel.ProcessId, BinaryPrimitives.ReadInt32BigEndian(cancel.SecretKey), out upstream);
        await AuditAsync(_requestRecords, "pg.cancel", AuditAppendMode.Request, w =>
        {
            w.WriteString("target", _target.Name);
            w.WriteString("client", _clientAddress);
            w.WriteBoolean("matched", found);
            if (found)
            {
                w.WriteString("cancelledSession", upstream!.SessionId);
            }
        }, includeContext: false).ConfigureAwait(false);

        if (found)
        {
            // A statement held for approval is not at the server yet: the hold ends and it fails as cancelled. The cancel
            // still goes upstream, for whatever of the client's batch the server is running.
            upstream!.CancelHeld?.Invoke();
            await UpstreamConnector.SendCancelAsync(upstream!, ct).ConfigureAwait(false);
        }

        // PostgreSQL answers a CancelRequest by closing the connection, matched or not: so do we.
    }

    // ---------------------------------------------------------------- relay

    private async Task<string> RelayAsync(Stream clientStream, UpstreamConnection upstream, CancellationToken shutdown)
    {
        using var sessionEnd = CancellationTokenSource.CreateLinkedTokenSource(shutdown);
        var expiresIn = _identity!.ExpiresAt + _services.SessionGrace - _services.TimeProvider.GetUtcNow();
        var tokenExpired = 0;
        using var expiry = _services.TimeProvider.CreateTimer(
            _ =>
            {
                // Said here, not judged from the clock afterwards: a timer may fire a hair before the expiry it was set for.
                Volatile.Write(ref tokenExpired, 1);
                sessionEnd.Cancel();
            },
            null,
            expiresIn > TimeSpan.Zero ? expiresIn : TimeSpan.Zero,
            Timeout.InfiniteTimeSpan);

        var clientIn = PipeReader.Create(clientStream, new StreamPipeReaderOptions(bufferSize: 16 * 1024, minimumReadSize: 4096, leaveOpen: true));
        var clientOut = PipeWriter.Create(clientStream, new StreamPipeWriterOptions(minimumBufferSize: 16 * 1024, leaveOpen: true));
        var upstreamIn = PipeReader.Create(upstream.Stream, new StreamPipeReaderOptions(bufferSize: 16 * 1024, minimumReadSize: 4096, leaveOpen: true));
        var upstreamOut = PipeWriter.Create(upstream.Stream, new StreamPipeWriterOptions(minimumBufferSize: 16 * 1024, leaveOpen: true));

        _clientOut = clientOut;
        var clientLoop = ClientToServerAsync(clientIn, upstreamOut, sessionEnd.Token);
        var serverLoop = ServerToClientAsync(upstreamIn, clientOut, sessionEnd.Token);
        var first = await Task.WhenAny(clientLoop, serverLoop).ConfigureAwait(false);
        await sessionEnd.CancelAsync().ConfigureAwait(false);
        var outcomes = await Task.WhenAll(Settle(clientLoop), Settle(serverLoop)).ConfigureAwait(false);

        string reason;
        if (shutdown.IsCancellationRequested)
        {
            reason = "gateway shutting down";
            await TryWriteFatalAsync(clientOut, "57P01", "terminating connection: the gateway is shutting down").ConfigureAwait(false);
        }
        else if (first.IsCompletedSuccessfully && first.Result is { } ended)
        {
            reason = ended;
        }
        else if (outcomes.FirstOrDefault(e => e is PgProtocolException) is PgProtocolException protocolError)
        {
            reason = "protocol violation: " + protocolError.Message;
            await TryWriteFatalAsync(clientOut, protocolError.SqlState, protocolError.Message).ConfigureAwait(false);
        }
        else if (outcomes.FirstOrDefault(e => e is AuditLogUnavailableException) is { } auditError)
        {
            reason = "audit log unavailable";
            await TryWriteFatalAsync(clientOut, "58030", "the audit log cannot be written: " + auditError.Message).ConfigureAwait(false);
        }
        else if (sessionEnd.IsCancellationRequested && Volatile.Read(ref tokenExpired) == 1)
        {
            reason = "workload token expired";
            await TryWriteFatalAsync(clientOut, "28000", $"terminating connection: the workload token expired at {_identity.ExpiresAt:u}; reconnect with a fresh token").ConfigureAwait(false);
        }
        else
        {
            var error = outcomes.FirstOrDefault(e => e is not null and not OperationCanceledException);
            reason = error is null ? "connection closed" : "connection error: " + error.Message;
        }

        if (reason != "client terminated the session" && _pending.Any(e => e.Kind == PendingKind.Statement))
        {
            // The client left while the server runs its statement: a server notices a closed socket only when it next
            // writes, so a long query would run on for nobody. Cancel it, as the client can no longer.
            await TryCancelUpstreamAsync(upstream).ConfigureAwait(false);
        }

        await TryTerminateUpstreamAsync(upstreamOut).ConfigureAwait(false);
        await clientIn.CompleteAsync().ConfigureAwait(false);
        await clientOut.CompleteAsync().ConfigureAwait(false);
        await upstreamIn.CompleteAsync().ConfigureAwait(false);
        await upstreamOut.CompleteAsync().ConfigureAwait(false);
        return reason;

        static async Task<Exception?> Settle(Task<string?> loop)
        {
            try
            {
                await loop.ConfigureAwait(false);
                return null;
            }
            catch (Exception ex)
            {
                return ex;
            }
        }
    }

    private async Task<string?> ClientToServerAsync(PipeReader clientIn, PipeWriter upstreamOut, CancellationToken ct)
    {
        long passthrough = 0;
        while (true)
        {
            var read = await clientIn.ReadAsync(ct).ConfigureAwait(false);
            await FollowMaskingPolicyAsync(ct).ConfigureAwait(false);
            await FollowCodeCatalogAsync(ct).ConfigureAwait(false);

            var buffer = read.Buffer;
            var requestsInBatch = false;
            var terminated = false;
            var held = false;
            _batchRequestSeqs.Clear();
            try
            {
                while (!buffer.IsEmpty)
                {
                    if (passthrough > 0)
                    {
                        var take = (int)Math.Min(passthrough, buffer.Length);
                        Forward(buffer.Slice(0, take), upstreamOut);
                        buffer = buffer.Slice(take);
                        passthrough -= take;
                        continue;
                    }

                    var frame = PgMessageFraming.TryReadFrame(buffer, _target.MaxInspectedMessageBytes, out var type, out var length);
                    if (frame == PgFrameResult.Malformed)
                    {
                        throw new PgProtocolException("08P01", $"invalid message length {length} for message type '{Printable(type)}'");
                    }

                    if (frame != PgFrameResult.Complete)
                    {
                        if (IsStreamable(type) && buffer.Length >= 5)
                        {
                            // Bulk data (COPY FROM STDIN): forward what has arrived and the rest as it comes; never buffer it whole.
                            if (type == (byte)'d' && _discardUntilSync is false && _lastEnqueued is { } copyTarget)
                            {
                                Interlocked.Add(ref copyTarget.BytesIn, length - 4);
                            }

                            passthrough = length + 1L;
                            continue;
                        }

                        if (frame == PgFrameResult.TooLarge)
                        {
                            throw new PgProtocolException("54000", $"message type '{Printable(type)}' of {length} bytes exceeds the gateway's limit of {_target.MaxInspectedMessageBytes} bytes");
                        }

                        break;
                    }

                    var message = buffer.Slice(0, length + 1);
                    var outcome = OnClientMessage(type, message, upstreamOut);
                    if (outcome == ClientMessageOutcome.Hold)
                    {
                        // The message stays unread: it is handled again once the approval is decided.
                        held = true;
                        break;
                    }

                    buffer = buffer.Slice(length + 1);
                    if (outcome == ClientMessageOutcome.Audited)
                    {
                        requestsInBatch = true;
                    }
                    else if (outcome == ClientMessageOutcome.Terminate)
                    {
                        terminated = true;
                        break;
                    }
                }

                if (requestsInBatch)
                {
                    // Every request record of this batch was appended; make them as durable as configured before the
                    // statements leave for the server.
                    await _services.AuditLog.CommitAsync(ct).ConfigureAwait(false);
                }
            }
            catch (Exception ex) when (ex is AuditLogUnavailableException or PgProtocolException)
            {
                // Completing with an error drops the batch's buffered bytes unsent: nothing whose record is not
                // committed reaches the server, even the well-formed messages read before a bad one.
                RecordBatchNotSent(ex);
                await upstreamOut.CompleteAsync(ex).ConfigureAwait(false);
                throw;
            }
            finally
            {
                // A held message stays unconsumed; the hold watches for more (or for the client leaving), and the read after
                // the decision is woken at once (CancelPendingRead) to handle it again.
                clientIn.AdvanceTo(buffer.Start, buffer.End);
            }

            await upstreamOut.FlushAsync(ct).ConfigureAwait(false);
            if (terminated)
            {
                return "client terminated the session";
            }

            if (held)
            {
                if (!await AwaitApprovalAsync(clientIn, ct).ConfigureAwait(false))
                {
                    return "client closed the connection while its statement was held for approval";
                }

                clientIn.CancelPendingRead();
                continue;
            }

            if (read.IsCompleted)
            {
                return buffer.IsEmpty ? "client closed the connection" : "client closed the connection in the middle of a message";
            }
        }
    }

    private static bool IsStreamable(byte type) => type is (byte)'d';

    internal enum ClientMessageOutcome
    {
        Forwarded,
        Hold,
        Audited,
        Discarded,
        Terminate,
    }

    internal ClientMessageOutcome OnClientMessage(byte type, in ReadOnlySequence<byte> message, PipeWriter upstreamOut)
    {
        if (_discardUntilSync && type != (byte)'S')
        {
            // After a refused Execute, PostgreSQL's own rule applies: everything up to Sync is ignored.
            return ClientMessageOutcome.Discarded;
        }

        switch (type)
        {
            case (byte)'Q':
                return OnQuery(message, upstreamOut);
            case (byte)'P':
                OnParse(message);
                break;
            case (byte)'B':
                OnBind(message);
                break;
            case (byte)'E':
                return OnExecute(message, upstreamOut);
            case (byte)'C':
                OnClose(message);
                break;
            case (byte)'S':
                _discardUntilSync = false;
                _pending.Enqueue(new PendingEntry { Kind = PendingKind.SyncPoint });
                break;
            case (byte)'F':
                return OnFunctionCall(message, upstreamOut);
            case (byte)'d':
                if (_lastEnqueued is { } copyTarget)
                {
                    Interlocked.Add(ref copyTarget.BytesIn, message.Length - 5);
                }

                break;
            case (byte)'X':
                Forward(message, upstreamOut);
                return ClientMessageOutcome.Terminate;
            case (byte)'D':
                OnClientDescribe(message);
                break;
            case (byte)'H' or (byte)'c' or (byte)'f':
                break;
            default:
                throw new PgProtocolException("08P01", $"invalid frontend message type '{Printable(type)}'");
        }

        Forward(message, upstreamOut);
        return ClientMessageOutcome.Forwarded;
    }

    private static void Forward(in ReadOnlySequence<byte> bytes, PipeWriter output)
    {
        foreach (var segment in bytes)
        {
            output.Write(segment.Span);
        }
    }

    private static char Printable(byte type) => type is >= 0x20 and < 0x7F ? (char)type : '?';

    // ---------------------------------------------------------------- audit helpers

    private async ValueTask<long> AuditAsync(AuditRecordWriter records, string type, AuditAppendMode mode, Action<Utf8JsonWriter> fields, bool includeContext = true)
    {
        ReadOnlyMemory<byte> body;
        lock (records)
        {
            var w = records.Begin(type);
            if (includeContext)
            {
                WriteContext(w);
            }

            fields(w);
            body = records.End();
        }

        return await _services.AuditLog.AppendAsync(body, mode).ConfigureAwait(false);
    }

    /// <summary>
    /// The batch's request records are already in the chain (they are written once the disk recovers), but their
    /// statements never reached the server: say so for each, so the log does not read as if they ran.
    /// </summary>
    private void RecordBatchNotSent(Exception reason)
    {
        foreach (var requestSeq in _batchRequestSeqs)
        {
            var w = _requestRecords.Begin("pg.response");
            w.WritePropertyName("session"u8);
            w.WriteRawValue(_sessionJson, skipInputValidation: true);
            w.WriteNumber("request"u8, requestSeq);
            w.WriteBoolean("executed"u8, false);
            w.WriteString("severity"u8, "FATAL");
            w.WriteString("sqlstate"u8, reason is PgProtocolException protocol ? protocol.SqlState : "58030");
            w.WriteString("error"u8, reason is AuditLogUnavailableException
                ? "not sent to the server: the audit log could not be written"
                : "not sent to the server: the session ended on a protocol error in the same batch");
            try
            {
                var append = _services.AuditLog.AppendAsync(_requestRecords.End(), AuditAppendMode.Deferred);
                if (!append.IsCompletedSuccessfully)
                {
                    append.AsTask().GetAwaiter().GetResult();
                }
            }
            catch (AuditLogUnavailableException)
            {
                return; // the log is closed: nothing more can be said in it
            }
        }
    }

    private void WriteContext(Utf8JsonWriter w)
    {
        w.WritePropertyName("session"u8);
        w.WriteRawValue(_sessionJson, skipInputValidation: true);
        if (_identityJson.Length > 0)
        {
            w.WritePropertyName("identity"u8);
            w.WriteRawValue(_identityJson, skipInputValidation: true);
        }

        if (_reason is not null)
        {
            w.WriteString("reason"u8, _reason);
        }
    }

    private byte[] EncodeSessionContext()
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("id", _sessionId);
            w.WriteString("protocol", "postgres");
            w.WriteString("target", _target.Name);
            w.WriteString("database", _database);
            w.WriteString("user", _clientUser);
            w.WriteString("client", _clientAddress);
            w.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    private async Task TryAuditSessionEndAsync(string reason)
    {
        try
        {
            await AuditAsync(_responseRecords, "pg.session.end", AuditAppendMode.Deferred, w =>
            {
                w.WriteString("endReason", reason);
                w.WriteNumber("statements", Interlocked.Read(ref _statementCount));
            }).ConfigureAwait(false);
        }
        catch (AuditLogUnavailableException ex)
        {
            _services.Logger.LogError(ex, "Session {Session}: could not audit the session end", _sessionId);
        }
    }

    private static async Task WriteAsync(Stream stream, Action<IBufferWriter<byte>> write, CancellationToken ct)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        write(buffer);
        await stream.WriteAsync(buffer.WrittenMemory, ct).ConfigureAwait(false);
        await stream.FlushAsync(ct).ConfigureAwait(false);
    }

    private static async Task TrySendFatalAsync(Stream stream, string sqlState, string message)
    {
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await WriteAsync(stream, w => PgBackendWriter.WriteErrorResponse(w, "FATAL", sqlState, message), timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or OperationCanceledException or SocketException or InvalidOperationException)
        {
            // The client is gone; nothing more to tell it.
        }
    }

    private static async Task TryWriteFatalAsync(PipeWriter clientOut, string sqlState, string message)
    {
        try
        {
            PgBackendWriter.WriteErrorResponse(clientOut, "FATAL", sqlState, message);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await clientOut.FlushAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or OperationCanceledException or SocketException or InvalidOperationException)
        {
            // The client is gone; nothing more to tell it.
        }
    }

    private async Task TryCancelUpstreamAsync(UpstreamConnection upstream)
    {
        try
        {
            await UpstreamConnector.SendCancelAsync(new UpstreamCancelKey(upstream.ServerEndPoint, upstream.BackendProcessId, upstream.BackendSecretKey, _sessionId), CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException)
        {
            _services.Logger.LogDebug(ex, "Session {Session}: could not cancel the statement of a client that left", _sessionId);
        }
    }

    private static async Task TryTerminateUpstreamAsync(PipeWriter upstreamOut)
    {
        try
        {
            PgFrontendWriter.WriteTerminate(upstreamOut);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await upstreamOut.FlushAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or OperationCanceledException or SocketException or InvalidOperationException)
        {
            // The server connection is already gone.
        }
    }
}
