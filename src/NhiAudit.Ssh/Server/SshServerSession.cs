using System.IO.Pipelines;
using System.Net;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using NhiAudit.Ssh.Authentication;
using NhiAudit.Ssh.Relay;
using NhiAudit.Ssh.Transport;

namespace NhiAudit.Ssh.Server;

/// <summary>
/// One workload connection, server side: the transport, the ssh-userauth service (RFC 4252, decided by
/// <see cref="SshUserAuthenticator"/>), then every connection-protocol message (RFC 4254) to the
/// <see cref="SshServerOptions.Relay"/> the gateway configured. Without one, a test-only session channel
/// (<see cref="SshServerOptions.EnableTestExecForTesting"/>) or a refusal answers.
/// </summary>
internal sealed class SshServerSession : IAsyncDisposable
{
    private const uint ChannelOpenAdministrativelyProhibited = 1;
    private const uint ChannelOpenUnknownChannelType = 3;
    private const uint OurInitialWindow = 2 * 1024 * 1024;
    private const uint OurMaxPacket = 32 * 1024;
    private const int MaxChannels = 16;

    private readonly SshTransport _transport;
    private readonly SshServerOptions _options;
    private readonly ILogger _logger;
    private readonly Dictionary<uint, TestChannel> _channels = [];
    private readonly SshUserAuthenticator _authenticator;
    private readonly IPEndPoint? _remoteEndPoint;
    private CancellationTokenSource? _ending;
    private string? _endReason;
    private SshRelay? _relay;
    private bool _userAuthServiceAccepted;
    private uint _nextChannelId;

    public SshServerSession(IDuplexPipe connection, SshServerOptions options, ILogger? logger = null, IPEndPoint? remoteEndPoint = null)
    {
        _options = options;
        _logger = logger ?? NullLogger.Instance;
        _transport = new SshTransport(connection, SshRole.Server, options.Transport);
        _remoteEndPoint = remoteEndPoint;
        ConnectionId = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(6));
        _authenticator = new SshUserAuthenticator(
            options.Authentication, options.InsecureAcceptNoneAuthenticationForTesting, remoteEndPoint?.Address, _logger, Send)
        {
            ConnectionId = ConnectionId,
        };
    }

    /// <summary>The connection's id in the audit records.</summary>
    internal string ConnectionId { get; }

    internal SshTransport Transport => _transport;

    /// <summary>Who the client authenticated as; null until authentication succeeds.</summary>
    internal SshAuthenticatedUser? AuthenticatedUser => _authenticator.User;

    private bool IsAuthenticated => _authenticator.User is not null;

    /// <summary>Releases the transport (also done when <see cref="RunAsync"/> returns).</summary>
    public ValueTask DisposeAsync() => _transport.DisposeAsync();

    /// <summary>Runs the connection to its end. Never throws: every way out is described by the result.</summary>
    public async Task<SshSessionResult> RunAsync(CancellationToken cancellationToken)
    {
        var result = await RunConnectionAsync(cancellationToken).ConfigureAwait(false);
        if (_relay is not null)
        {
            // After the client side is gone: closes the upstream and writes what the open channels still owe.
            await _relay.CloseAsync(result.Description).ConfigureAwait(false);
        }

        return result;
    }

    private async Task<SshSessionResult> RunConnectionAsync(CancellationToken cancellationToken)
    {
        // Cancelled by the relay when the upstream side ends, so that this read loop ends too.
        using var ending = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _ending = ending;
        var token = ending.Token;
        try
        {
            await _transport.StartAsync(token).ConfigureAwait(false);
            while (true)
            {
                var message = await _transport.ReceiveMessageAsync(token).ConfigureAwait(false);
                await HandleAsync(message, token).ConfigureAwait(false);
            }
        }
        catch (SshProtocolException ex)
        {
            _logger.LogInformation("SSH connection from {Peer} ends: {Reason} {Message}", _transport.PeerVersion, ex.Reason, ex.Message);
            await TryDisconnectAsync(ex.Reason, ex.Message).ConfigureAwait(false);
            return new SshSessionResult(ex.Reason, ex.Message, null) { User = AuthenticatedUser };
        }
        catch (SshConnectionClosedException ex)
        {
            return new SshSessionResult(null, ex.Message, null) { User = AuthenticatedUser };
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or InvalidOperationException { Source: "System.IO.Pipelines" })
        {
            return new SshSessionResult(null, "connection lost: " + ex.Message, null) { User = AuthenticatedUser };
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested && Volatile.Read(ref _endReason) is { } reason)
        {
            await TryDisconnectAsync(SshDisconnectReason.ByApplication, reason).ConfigureAwait(false);
            return new SshSessionResult(SshDisconnectReason.ByApplication, reason, null) { User = AuthenticatedUser };
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await TryDisconnectAsync(SshDisconnectReason.ByApplication, "gateway shutting down").ConfigureAwait(false);
            return new SshSessionResult(SshDisconnectReason.ByApplication, "gateway shutting down", null) { User = AuthenticatedUser };
        }
        catch (Exception ex)
        {
            // A bug of ours must end only this connection, with a disconnect the client can read.
            _logger.LogError(ex, "SSH connection failed unexpectedly");
            await TryDisconnectAsync(SshDisconnectReason.ProtocolError, "internal error").ConfigureAwait(false);
            return new SshSessionResult(SshDisconnectReason.ProtocolError, ex.Message, ex) { User = AuthenticatedUser };
        }
        finally
        {
            await _transport.DisposeAsync().ConfigureAwait(false);
        }
    }

    private void End(string reason)
    {
        Interlocked.CompareExchange(ref _endReason, reason, null);
        try
        {
            _ending?.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // The connection already ended.
        }
    }

    private async Task TryDisconnectAsync(SshDisconnectReason reason, string description)
    {
        try
        {
            await _transport.DisconnectAsync(reason, description, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or InvalidOperationException or OperationCanceledException)
        {
            // The peer may already be gone; the disconnect is best effort.
        }
    }

    private ValueTask HandleAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
    {
        var number = (SshMessageNumber)message.Span[0];
        if (!IsAuthenticated && (byte)number >= 60)
        {
            if ((byte)number == SshUserAuthenticator.UserAuthInfoResponse && _userAuthServiceAccepted)
            {
                return _authenticator.HandleInfoResponseAsync(message, cancellationToken);
            }

            throw new SshProtocolException($"message {(byte)number} before authentication");
        }

        if (_options.Relay is { } relay && IsAuthenticated && (byte)number >= 80)
        {
            _relay ??= relay(_transport, _authenticator.User!, ConnectionId, _remoteEndPoint, End);
            return _relay.OnClientMessageAsync(message, cancellationToken);
        }

        return number switch
        {
            SshMessageNumber.ServiceRequest => OnServiceRequestAsync(message, cancellationToken),
            SshMessageNumber.UserAuthRequest => OnUserAuthRequestAsync(message, cancellationToken),
            SshMessageNumber.GlobalRequest => OnGlobalRequestAsync(message, cancellationToken),
            SshMessageNumber.ChannelOpen => OnChannelOpenAsync(message, cancellationToken),
            SshMessageNumber.ChannelRequest => OnChannelRequestAsync(message, cancellationToken),
            SshMessageNumber.ChannelData => OnChannelDataAsync(message, cancellationToken),
            SshMessageNumber.ChannelExtendedData => OnIgnoredChannelMessageAsync(message),
            SshMessageNumber.ChannelWindowAdjust => OnWindowAdjustAsync(message, cancellationToken),
            SshMessageNumber.ChannelEof => OnChannelEofAsync(message, cancellationToken),
            SshMessageNumber.ChannelClose => OnChannelCloseAsync(message, cancellationToken),
            SshMessageNumber.ChannelSuccess or SshMessageNumber.ChannelFailure => OnIgnoredChannelMessageAsync(message),
            SshMessageNumber.RequestSuccess or SshMessageNumber.RequestFailure => ValueTask.CompletedTask,
            _ => SendUnimplementedAsync(cancellationToken),
        };
    }

    private ValueTask SendUnimplementedAsync(CancellationToken cancellationToken) =>
        _transport.SendUnimplementedForLastPacketAsync(cancellationToken);

    private ValueTask OnServiceRequestAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
    {
        var reader = new SshReader(message.Span[1..]);
        var service = reader.ReadUtf8String();
        reader.EnsureEnd();
        if (service != "ssh-userauth" || _userAuthServiceAccepted)
        {
            throw new SshProtocolException(SshDisconnectReason.ServiceNotAvailable, $"service {service} not available");
        }

        _userAuthServiceAccepted = true;
        return Send(new SshWriter(SshMessageNumber.ServiceAccept).WriteString(service), cancellationToken);
    }

    /// <summary>RFC 4252 §5, handled by <see cref="SshUserAuthenticator"/>.</summary>
    private ValueTask OnUserAuthRequestAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
    {
        if (!_userAuthServiceAccepted)
        {
            throw new SshProtocolException("USERAUTH_REQUEST before the ssh-userauth service was accepted");
        }

        return _authenticator.HandleRequestAsync(message, _transport.SessionId ?? throw new SshProtocolException("USERAUTH_REQUEST before the key exchange"), cancellationToken);
    }

    private ValueTask OnGlobalRequestAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
    {
        var reader = new SshReader(message.Span[1..]);
        reader.ReadUtf8String();
        var wantReply = reader.ReadBoolean();
        return wantReply ? Send(new SshWriter(SshMessageNumber.RequestFailure), cancellationToken) : ValueTask.CompletedTask;
    }

    private ValueTask OnChannelOpenAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
    {
        var reader = new SshReader(message.Span[1..]);
        var type = reader.ReadUtf8String();
        var senderChannel = reader.ReadUInt32();
        var initialWindow = reader.ReadUInt32();
        var maxPacket = reader.ReadUInt32();
        if (!_options.EnableTestExecForTesting || type != "session" || _channels.Count >= MaxChannels)
        {
            var reason = type == "session" ? ChannelOpenAdministrativelyProhibited : ChannelOpenUnknownChannelType;
            return Send(
                new SshWriter(SshMessageNumber.ChannelOpenFailure).WriteUInt32(senderChannel).WriteUInt32(reason)
                    .WriteString($"channel type {type} is not allowed").WriteString(""),
                cancellationToken);
        }

        var channel = new TestChannel(_nextChannelId++, senderChannel, initialWindow, Math.Clamp(maxPacket, 1u, OurMaxPacket));
        _channels.Add(channel.LocalId, channel);
        return Send(
            new SshWriter(SshMessageNumber.ChannelOpenConfirmation).WriteUInt32(senderChannel).WriteUInt32(channel.LocalId)
                .WriteUInt32(OurInitialWindow).WriteUInt32(OurMaxPacket),
            cancellationToken);
    }

    private async ValueTask OnChannelRequestAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
    {
        var reader = new SshReader(message.Span[1..]);
        var channel = FindChannel(reader.ReadUInt32());
        var type = reader.ReadUtf8String();
        var wantReply = reader.ReadBoolean();
        var accepted = false;
        string? command = null;
        if (type == "exec" && channel.Command is null)
        {
            command = reader.ReadUtf8String();
            accepted = true;
        }

        if (wantReply)
        {
            await Send(new SshWriter(accepted ? SshMessageNumber.ChannelSuccess : SshMessageNumber.ChannelFailure).WriteUInt32(channel.RemoteId), cancellationToken).ConfigureAwait(false);
        }

        if (command is not null)
        {
            channel.Command = command;
            if (command != "cat")
            {
                channel.Pending.AddRange(Encoding.UTF8.GetBytes($"nhiaudit-test exec: {command}\n"));
                channel.Finishing = true;
                await FlushChannelAsync(channel, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private async ValueTask OnChannelDataAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
    {
        var reader = new SshReader(message.Span[1..]);
        var channel = FindChannel(reader.ReadUInt32());
        var data = reader.ReadStringBytes();
        if ((uint)data.Length > channel.LocalWindow || (uint)data.Length > OurMaxPacket)
        {
            throw new SshProtocolException("channel data exceeds the window or packet size we granted");
        }

        channel.LocalWindow -= (uint)data.Length;
        if (channel.Command == "cat" && !channel.Finishing)
        {
            channel.Pending.AddRange(data);
        }

        if (channel.LocalWindow < OurInitialWindow / 2)
        {
            // Grant the consumed half back (RFC 4254 §5.2) so a long stream never stalls.
            var grant = OurInitialWindow - channel.LocalWindow;
            channel.LocalWindow += grant;
            await Send(new SshWriter(SshMessageNumber.ChannelWindowAdjust).WriteUInt32(channel.RemoteId).WriteUInt32(grant), cancellationToken).ConfigureAwait(false);
        }

        await FlushChannelAsync(channel, cancellationToken).ConfigureAwait(false);
    }

    private ValueTask OnWindowAdjustAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
    {
        var reader = new SshReader(message.Span[1..]);
        var channel = FindChannel(reader.ReadUInt32());
        var grant = reader.ReadUInt32();
        channel.RemoteWindow = (uint)Math.Min((ulong)channel.RemoteWindow + grant, uint.MaxValue);
        return FlushChannelAsync(channel, cancellationToken);
    }

    private ValueTask OnChannelEofAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
    {
        var reader = new SshReader(message.Span[1..]);
        var channel = FindChannel(reader.ReadUInt32());
        if (channel.Command == "cat")
        {
            channel.Finishing = true;
        }

        return FlushChannelAsync(channel, cancellationToken);
    }

    private async ValueTask OnChannelCloseAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
    {
        var reader = new SshReader(message.Span[1..]);
        var channel = FindChannel(reader.ReadUInt32());
        if (!channel.SentClose)
        {
            channel.SentClose = true;
            await Send(new SshWriter(SshMessageNumber.ChannelClose).WriteUInt32(channel.RemoteId), cancellationToken).ConfigureAwait(false);
        }

        _channels.Remove(channel.LocalId);
    }

    private ValueTask OnIgnoredChannelMessageAsync(ReadOnlyMemory<byte> message)
    {
        var reader = new SshReader(message.Span[1..]);
        FindChannel(reader.ReadUInt32());
        return ValueTask.CompletedTask;
    }

    /// <summary>Sends what the peer's window allows; when finishing and all sent: EOF, exit-status 0, CLOSE.</summary>
    private async ValueTask FlushChannelAsync(TestChannel channel, CancellationToken cancellationToken)
    {
        while (channel.Pending.Count > 0 && channel.RemoteWindow > 0 && !channel.SentClose)
        {
            var size = (int)Math.Min(Math.Min((uint)channel.Pending.Count, channel.RemoteWindow), channel.RemoteMaxPacket - 64);
            var chunk = channel.Pending.GetRange(0, size).ToArray();
            channel.Pending.RemoveRange(0, size);
            channel.RemoteWindow -= (uint)size;
            await Send(new SshWriter(SshMessageNumber.ChannelData, size + 16).WriteUInt32(channel.RemoteId).WriteString(chunk), cancellationToken).ConfigureAwait(false);
        }

        if (channel.Finishing && channel.Pending.Count == 0 && !channel.SentClose)
        {
            channel.SentClose = true;
            await Send(new SshWriter(SshMessageNumber.ChannelEof).WriteUInt32(channel.RemoteId), cancellationToken).ConfigureAwait(false);
            await Send(
                new SshWriter(SshMessageNumber.ChannelRequest).WriteUInt32(channel.RemoteId).WriteString("exit-status").WriteBoolean(false).WriteUInt32(0),
                cancellationToken).ConfigureAwait(false);
            await Send(new SshWriter(SshMessageNumber.ChannelClose).WriteUInt32(channel.RemoteId), cancellationToken).ConfigureAwait(false);
        }
    }

    private TestChannel FindChannel(uint localId) =>
        _channels.TryGetValue(localId, out var channel) ? channel : throw new SshProtocolException($"no channel {localId}");

    private ValueTask Send(SshWriter message, CancellationToken cancellationToken) =>
        _transport.SendMessageAsync(message.WrittenMemory, cancellationToken);

    private sealed class TestChannel(uint localId, uint remoteId, uint remoteWindow, uint remoteMaxPacket)
    {
        public uint LocalId { get; } = localId;

        public uint RemoteId { get; } = remoteId;

        public uint RemoteWindow { get; set; } = remoteWindow;

        public uint RemoteMaxPacket { get; } = Math.Max(remoteMaxPacket, 128);

        public uint LocalWindow { get; set; } = OurInitialWindow;

        public string? Command { get; set; }

        public List<byte> Pending { get; } = [];

        public bool Finishing { get; set; }

        public bool SentClose { get; set; }
    }
}
