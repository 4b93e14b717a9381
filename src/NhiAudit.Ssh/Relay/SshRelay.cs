using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using NhiAudit.Approvals;
using NhiAudit.Audit;
using NhiAudit.Recording;
using NhiAudit.Ssh.Authentication;
using NhiAudit.Ssh.Commands;
using NhiAudit.Ssh.Scp;
using NhiAudit.Ssh.Sftp;
using NhiAudit.Ssh.Transport;

namespace NhiAudit.Ssh.Relay;

/// <summary>What every connection through one SSH target uses.</summary>
internal sealed record SshRelayServices(
    SshTargetOptions Target,
    Func<CancellationToken, Task<SshTransport>> ConnectUpstream,
    IAuditLog AuditLog,
    IPolicyEngine Policy,
    IApprovalBroker Approvals,
    TimeProvider Time,
    ILogger Logger)
{
    /// <summary>How long a connection may outlive its credential (a token's or certificate's end); see <c>Identity:SessionGrace</c>.</summary>
    public TimeSpan SessionGrace { get; init; }
}

/// <summary>
/// The connection protocol (RFC 4254) between an authenticated workload and the upstream host. Messages pass through
/// unchanged wherever the relay has nothing to say, channel numbers and windows included, so flow control is the two
/// peers' own end to end and bulk data costs one decrypt and one encrypt. What the relay looks at: channel opens
/// (port forwards need a policy that allows them), channel requests (exec, shell, subsystem: policy, approval, the
/// request record written before the request goes on), the data of SFTP, scp and terminal sessions (audit and
/// recording), and the exit status (the response record).
/// </summary>
/// <remarks>
/// Two loops drive it: the server session's read loop calls <see cref="OnClientMessageAsync"/>, and
/// <see cref="PumpUpstreamAsync"/> reads the upstream. A run request held for approval continues in a task of its own
/// while its channel's later messages wait in a backlog (the other channels go on); a held SFTP operation is decided
/// inline. Shared state is under one lock; sends happen outside it.
/// </remarks>
internal sealed class SshRelay : IAsyncDisposable
{
    private const uint OpenAdministrativelyProhibited = 1;
    private const uint OpenConnectFailed = 2;
    private const uint OpenUnknownChannelType = 3;
    private const uint OpenResourceShortage = 4;
    private const uint DeniedExitStatus = 126;
    private const int MaxBacklog = 4096;
    private const long MaxBacklogBytes = 16 * 1024 * 1024;

    private readonly SshRelayServices _services;
    private readonly SshTransport _client;
    private readonly SshAuthenticatedUser _user;
    private readonly string _connectionId;
    private readonly string _clientAddress;
    private readonly Action<string> _endConnection;
    private readonly byte[] _identityJson;
    private readonly Lock _gate = new();
    private readonly Dictionary<uint, SshRelayChannel> _byClientId = [];
    private readonly Dictionary<uint, SshRelayChannel> _byUpstreamId = [];
    private readonly CancellationTokenSource _stopping = new();
    private readonly ITimer? _expiry;
    private volatile PolicyDecision? _agentForwarding;
    private readonly List<Task> _holds = [];
    private SshTransport? _upstream;
    private Task? _upstreamPump;
    private int _requests;
    private int _disposed;

    public SshRelay(SshRelayServices services, SshTransport client, SshAuthenticatedUser user, string connectionId, IPEndPoint? clientEndPoint, Action<string> endConnection)
    {
        _services = services;
        _client = client;
        _user = user;
        _connectionId = connectionId;
        _clientAddress = clientEndPoint?.ToString() ?? "unknown";
        _endConnection = endConnection;
        _identityJson = AuditRecordWriter.EncodeIdentity(user.Identity);
        if (user.Identity.ExpiresAt < DateTimeOffset.MaxValue)
        {
            // A session ends with the credential that opened it (a token or a certificate), plus the configured grace.
            var end = user.Identity.ExpiresAt + services.SessionGrace;
            var due = end - services.Time.GetUtcNow();
            var reason = $"the workload's credential expired at {end:u}";
            _expiry = services.Time.CreateTimer(_ => endConnection(reason), null, due > TimeSpan.Zero ? due : TimeSpan.Zero, Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>Channels open now.</summary>
    public int OpenChannels
    {
        get
        {
            lock (_gate)
            {
                return _byClientId.Count;
            }
        }
    }

    /// <summary>
    /// Handles one connection-protocol message (numbers 80-127) from the authenticated client. A message for a channel
    /// whose request is held for approval waits in that channel's backlog, so the connection's other channels go on.
    /// </summary>
    public ValueTask OnClientMessageAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken) =>
        DeferredToBacklog(message) ? ValueTask.CompletedTask : DispatchClientMessageAsync(message, cancellationToken);

    /// <summary>Queues a message addressed to a channel that is held (or still draining what queued while it was).</summary>
    private bool DeferredToBacklog(ReadOnlyMemory<byte> message)
    {
        if (message.Span[0] is < (byte)SshMessageNumber.ChannelOpenConfirmation or > (byte)SshMessageNumber.ChannelFailure || message.Length < 5)
        {
            return false;
        }

        var recipient = System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(message.Span[1..]);
        lock (_gate)
        {
            if (ByUpstreamId(recipient) is not { Backlog: { } backlog } channel)
            {
                return false;
            }

            // A client that keeps to the window sends at most the window's worth of data while it waits; these bound
            // one that does not (its data is checked against the window only when the backlog is handled).
            channel.BacklogBytes += message.Length;
            if (backlog.Count >= MaxBacklog || channel.BacklogBytes > MaxBacklogBytes)
            {
                throw new SshProtocolException($"channel {recipient}: more than {MaxBacklog} messages or {MaxBacklogBytes} bytes while its request is held");
            }

            backlog.Enqueue(message);
            return true;
        }
    }

    private ValueTask DispatchClientMessageAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken) => (SshMessageNumber)message.Span[0] switch
    {
        SshMessageNumber.GlobalRequest => OnClientGlobalRequestAsync(message, cancellationToken),
        SshMessageNumber.RequestSuccess or SshMessageNumber.RequestFailure => ValueTask.CompletedTask,
        SshMessageNumber.ChannelOpen => OnClientChannelOpenAsync(message, cancellationToken),
        SshMessageNumber.ChannelOpenConfirmation => OnClientOpenConfirmationAsync(message, cancellationToken),
        SshMessageNumber.ChannelOpenFailure => OnClientOpenFailureAsync(message, cancellationToken),
        SshMessageNumber.ChannelWindowAdjust => OnClientWindowAdjustAsync(message, cancellationToken),
        SshMessageNumber.ChannelData => OnClientDataAsync(message, cancellationToken),
        SshMessageNumber.ChannelExtendedData or SshMessageNumber.ChannelEof or SshMessageNumber.ChannelSuccess or SshMessageNumber.ChannelFailure
            => ForwardClientChannelMessageAsync(message, cancellationToken),
        SshMessageNumber.ChannelClose => OnClientCloseAsync(message, cancellationToken),
        SshMessageNumber.ChannelRequest => OnClientChannelRequestAsync(message, cancellationToken),
        _ => _client.SendUnimplementedForLastPacketAsync(cancellationToken),
    };

    // ---------------------------------------------------------------- client → upstream

    private async ValueTask OnClientGlobalRequestAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
    {
        string name;
        bool wantReply;
        string? forward = null;
        ParseGlobalRequest(message.Span, out name, out wantReply, ref forward);
        if (forward is not null)
        {
            // Remote forwarding would open channels from the host toward the workload's side; it is not relayed.
            await RecordRefusedForwardAsync("remote-forward", forward, $"remote port forwarding ({name}) is not relayed by the gateway", cancellationToken).ConfigureAwait(false);
        }

        // keepalive@openssh.com, no-more-sessions@openssh.com and the like are answered here: the upstream's own
        // global state is the gateway's, not the workload's.
        if (wantReply)
        {
            await SendToClientAsync(new SshWriter(SshMessageNumber.RequestFailure).ToArray(), cancellationToken).ConfigureAwait(false);
        }
    }

    private static void ParseGlobalRequest(ReadOnlySpan<byte> message, out string name, out bool wantReply, ref string? forward)
    {
        var reader = new SshReader(message[1..]);
        name = reader.ReadUtf8String();
        wantReply = reader.ReadBoolean();
        if (name is "tcpip-forward" or "cancel-tcpip-forward")
        {
            var address = reader.ReadUtf8String();
            var port = reader.ReadUInt32();
            forward = $"{address}:{port}";
        }
        else if (name.StartsWith("streamlocal-forward", StringComparison.Ordinal))
        {
            forward = reader.ReadUtf8String();
        }
    }

    private async ValueTask OnClientChannelOpenAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
    {
        var reader = new SshReader(message.Span[1..]);
        var type = reader.ReadUtf8String();
        var senderChannel = reader.ReadUInt32();
        var window = reader.ReadUInt32();
        var maxPacket = reader.ReadUInt32();
        string? destination = null;
        if (type == "direct-tcpip")
        {
            var host = reader.ReadUtf8String();
            var port = reader.ReadUInt32();
            destination = $"{host}:{port}";
            reader.ReadUtf8String();
            reader.ReadUInt32();
            reader.EnsureEnd();
        }
        else if (type == "session")
        {
            reader.EnsureEnd();
        }

        lock (_gate)
        {
            if (_byClientId.ContainsKey(senderChannel))
            {
                throw new SshProtocolException($"channel {senderChannel} opened twice");
            }
        }

        if (type != "session" && type != "direct-tcpip")
        {
            await RefuseOpenAsync(senderChannel, OpenUnknownChannelType, $"channel type {type} is not relayed by the gateway", cancellationToken).ConfigureAwait(false);
            return;
        }

        if (OpenChannels >= _services.Target.MaxChannelsPerConnection)
        {
            await RefuseOpenAsync(senderChannel, OpenResourceShortage, $"at most {_services.Target.MaxChannelsPerConnection} channels per connection", cancellationToken).ConfigureAwait(false);
            return;
        }

        var channel = new SshRelayChannel(senderChannel, type, window, maxPacket);
        if (destination is not null)
        {
            // A tunnel to another host is refused unless a policy rule names it and allows it (the default effect does not count).
            var access = Access(channel, "port-forward", destination, [destination]);
            var decision = _services.Policy.Evaluate(access);
            var refusal = decision.Effect != PolicyEffect.Allow || decision.Rule == "(default)"
                ? $"port forwarding to {destination} is refused: {(decision.Effect == PolicyEffect.Allow ? "no policy rule allows it" : decision.Reason)}"
                : null;
            channel.RequestId = NewRequestId();
            channel.Kind = "port-forward";
            channel.Command = destination;
            channel.Started = Stopwatch.GetTimestamp();
            channel.RequestSeq = await WriteRequestAsync(channel, access, decision, refusal, null, cancellationToken).ConfigureAwait(false);
            if (refusal is not null)
            {
                await RefuseOpenAsync(senderChannel, OpenAdministrativelyProhibited, refusal, cancellationToken).ConfigureAwait(false);
                return;
            }
        }

        SshTransport upstream;
        try
        {
            upstream = await EnsureUpstreamAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (SshUpstreamException ex)
        {
            _services.Logger.LogWarning("SSH target {Target}: {Message}", _services.Target.Name, ex.Message);
            await RefuseOpenAsync(senderChannel, OpenConnectFailed, "the gateway cannot reach the host: " + ex.Message, cancellationToken).ConfigureAwait(false);
            return;
        }

        lock (_gate)
        {
            _byClientId.Add(senderChannel, channel);
        }

        await upstream.SendMessageAsync(message, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The client accepted a channel the upstream opened (a forwarded agent's connection): its number and window become known.</summary>
    private async ValueTask OnClientOpenConfirmationAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
    {
        var reader = new SshReader(message.Span[1..]);
        var recipient = reader.ReadUInt32();
        var sender = reader.ReadUInt32();
        var window = reader.ReadUInt32();
        var maxPacket = reader.ReadUInt32();
        reader.EnsureEnd();
        lock (_gate)
        {
            if (ByUpstreamId(recipient) is not { OpenedByUpstream: true, ClientConfirmed: false } channel || !_byClientId.TryAdd(sender, channel))
            {
                throw new SshProtocolException($"confirmation of a channel {recipient} nobody asked the client to open");
            }

            channel.ClientId = sender;
            channel.ClientWindow = window;
            channel.ClientMaxPacket = maxPacket;
            channel.ClientConfirmed = true;
        }

        await SendToUpstreamAsync(message, cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask OnClientOpenFailureAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
    {
        var recipient = ReadRecipient(message.Span);
        SshRelayChannel? channel;
        lock (_gate)
        {
            if (ByUpstreamId(recipient) is not { OpenedByUpstream: true, ClientConfirmed: false } opened)
            {
                throw new SshProtocolException($"refusal of a channel {recipient} nobody asked the client to open");
            }

            channel = opened;
            _byUpstreamId.Remove(recipient);
        }

        await SendToUpstreamAsync(message, cancellationToken).ConfigureAwait(false);
        await WriteResponseAsync(channel, "the workload refused the channel").ConfigureAwait(false);
    }

    private ValueTask RefuseOpenAsync(uint senderChannel, uint reason, string description, CancellationToken cancellationToken) =>
        SendToClientAsync(
            new SshWriter(SshMessageNumber.ChannelOpenFailure).WriteUInt32(senderChannel).WriteUInt32(reason).WriteString(description).WriteString("").ToArray(),
            cancellationToken);

    private async ValueTask OnClientWindowAdjustAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
    {
        var (recipient, grant) = ReadChannelAndUInt32(message.Span);
        uint pass;
        lock (_gate)
        {
            var channel = ByUpstreamId(recipient);
            if (channel is null || channel.ClosedByGateway)
            {
                return;
            }

            channel.ClientWindow += grant;
            var repaid = (uint)Math.Min(channel.WindowDebt, grant);
            channel.WindowDebt -= repaid;
            pass = grant - repaid;
        }

        if (pass == grant)
        {
            await SendToUpstreamAsync(message, cancellationToken).ConfigureAwait(false);
        }
        else if (pass > 0)
        {
            await SendToUpstreamAsync(new SshWriter(SshMessageNumber.ChannelWindowAdjust).WriteUInt32(recipient).WriteUInt32(pass).WrittenMemory, cancellationToken).ConfigureAwait(false);
        }
    }

    private async ValueTask OnClientDataAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
    {
        var recipient = ReadRecipient(message.Span);
        SshRelayChannel? channel;
        List<byte[]>? sftpPackets = null;
        lock (_gate)
        {
            channel = ByUpstreamId(recipient);
            if (channel is null || channel.ClosedByGateway)
            {
                return;
            }

            var data = DataOf(message.Span);
            channel.UpstreamWindow -= data.Length;
            if (channel.UpstreamWindow < 0)
            {
                throw new SshProtocolException($"channel {recipient}: the client sent more data than the window allows");
            }

            channel.BytesFromClient += data.Length;
            channel.Recording?.Input(data);
            channel.Scp?.ObserveClientData(data);
            if (channel.SftpClientPackets is { } packets)
            {
                if (!packets.Append(data))
                {
                    channel.SftpClientPackets = null;
                }
                else
                {
                    sftpPackets = [];
                    while (packets.TakePacket() is { } packet)
                    {
                        sftpPackets.Add(packet);
                    }
                }
            }
        }

        if (channel.Sftp is not null && sftpPackets is null && channel.SftpClientPackets is null)
        {
            // The stream broke the SFTP framing (a packet over the limit): it cannot be inspected, so it is ended.
            await CloseByGatewayAsync(channel, "the SFTP stream could not be inspected (a packet over the size limit); the channel was closed", 1, wantReply: false, cancellationToken).ConfigureAwait(false);
            return;
        }

        if (sftpPackets is null)
        {
            await SendToUpstreamAsync(message, cancellationToken).ConfigureAwait(false);
            return;
        }

        foreach (var packet in sftpPackets)
        {
            await RelaySftpPacketAsync(channel, packet, cancellationToken).ConfigureAwait(false);
        }
    }

    private async ValueTask ForwardClientChannelMessageAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
    {
        var recipient = ReadRecipient(message.Span);
        lock (_gate)
        {
            var channel = ByUpstreamId(recipient);
            if (channel is null || channel.ClosedByGateway)
            {
                return;
            }

            if (message.Span[0] == (byte)SshMessageNumber.ChannelExtendedData)
            {
                channel.UpstreamWindow -= ExtendedDataOf(message.Span).Length;
                if (channel.UpstreamWindow < 0)
                {
                    throw new SshProtocolException($"channel {recipient}: the client sent more data than the window allows");
                }
            }

            if (message.Span[0] == (byte)SshMessageNumber.ChannelEof && channel.SftpClientPackets is not null)
            {
                // Nothing half-sent stays behind: an incomplete packet at EOF is simply never forwarded.
                channel.SftpClientPackets = null;
            }
        }

        await SendToUpstreamAsync(message, cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask OnClientCloseAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
    {
        var recipient = ReadRecipient(message.Span);
        SshRelayChannel? channel;
        bool forward;
        lock (_gate)
        {
            channel = ByUpstreamId(recipient);
            if (channel is null || channel.ClientClosed)
            {
                return;
            }

            channel.ClientClosed = true;
            forward = !channel.ClosedByGateway;
        }

        if (forward)
        {
            await SendToUpstreamAsync(message, cancellationToken).ConfigureAwait(false);
        }

        await RetireIfClosedAsync(channel).ConfigureAwait(false);
    }

    private async ValueTask OnClientChannelRequestAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
    {
        var request = ChannelRequest.Parse(message.Span);
        SshRelayChannel? channel;
        lock (_gate)
        {
            channel = ByUpstreamId(request.Recipient);
            if (channel is null || channel.ClosedByGateway)
            {
                return;
            }
        }

        switch (request.Type)
        {
            case "pty-req":
                lock (_gate)
                {
                    // A client without a terminal of its own (ssh -tt from a pipe) sends 0x0: record the usual 80x24.
                    channel.Terminal = request.Terminal;
                    channel.Columns = request.Columns == 0 ? 80 : (int)Math.Min(request.Columns, 1000);
                    channel.Rows = request.Rows == 0 ? 24 : (int)Math.Min(request.Rows, 1000);
                }

                await ForwardRequestAsync(channel, message, request.WantReply, cancellationToken).ConfigureAwait(false);
                return;
            case "window-change":
                channel.Recording?.Resize((int)Math.Clamp(request.Columns, 1, 1000), (int)Math.Clamp(request.Rows, 1, 1000));
                await ForwardRequestAsync(channel, message, request.WantReply, cancellationToken).ConfigureAwait(false);
                return;
            case "env":
                lock (_gate)
                {
                    channel.EnvironmentNames.Add(request.Name ?? "");
                    if (request.Name == "NHIAUDIT_REASON")
                    {
                        channel.Reason = request.Value;
                    }
                }

                await ForwardRequestAsync(channel, message, request.WantReply, cancellationToken).ConfigureAwait(false);
                return;
            case "exec" or "shell" or "subsystem":
                await OnRunRequestAsync(channel, request, message, cancellationToken).ConfigureAwait(false);
                return;
            case "signal" or "break" or "eow@openssh.com" or "xon-xoff":
                await ForwardRequestAsync(channel, message, request.WantReply, cancellationToken).ConfigureAwait(false);
                return;
            case "auth-agent-req@openssh.com" when await AllowAgentForwardingAsync(channel, cancellationToken).ConfigureAwait(false):
                await ForwardRequestAsync(channel, message, request.WantReply, cancellationToken).ConfigureAwait(false);
                return;
            default:
                // X11 forwarding, agent forwarding no rule allows, and anything unknown: not relayed.
                if (request.Type is "x11-req")
                {
                    await RecordRefusedForwardAsync("x11-forward", request.Type, $"{request.Type} is not relayed by the gateway", cancellationToken).ConfigureAwait(false);
                }

                if (request.WantReply)
                {
                    await AnswerLocallyAsync(channel, [new SshWriter(SshMessageNumber.ChannelFailure).WriteUInt32(channel.ClientId).ToArray()], cancellationToken).ConfigureAwait(false);
                }

                return;
        }
    }

    private async ValueTask OnRunRequestAsync(SshRelayChannel channel, ChannelRequest request, ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
    {
        if (channel.Kind is not null || channel.Type != "session")
        {
            // RFC 4254 §6.5: one program per session channel.
            if (request.WantReply)
            {
                await AnswerLocallyAsync(channel, [new SshWriter(SshMessageNumber.ChannelFailure).WriteUInt32(channel.ClientId).ToArray()], cancellationToken).ConfigureAwait(false);
            }

            return;
        }

        ScpCommand? scp = null;
        ShellParseResult? commands = null;
        string action;
        IReadOnlyList<string> resources = [];
        switch (request.Type)
        {
            case "exec":
                channel.Command = request.Command ?? "";
                if (ScpCommand.TryParse(channel.Command, out scp))
                {
                    action = scp.Direction == ScpDirection.Upload ? "scp.write" : "scp.read";
                    resources = [scp.Path];
                }
                else
                {
                    // The host's shell runs the line: the policy decides every command it may run, as that shell reads it.
                    action = "exec";
                    commands = ShellCommandParser.Parse(channel.Command);
                }

                break;
            case "shell":
                action = "shell";
                break;
            default:
                channel.Command = request.Subsystem ?? "";
                action = channel.Command == "sftp" ? "sftp" : "subsystem";
                resources = [channel.Command];
                break;
        }

        channel.Kind = request.Type;
        channel.RequestId = NewRequestId();
        channel.Started = Stopwatch.GetTimestamp();
        var recorded = request.Type == "shell" || (channel.Terminal is not null && request.Type == "exec");
        Dictionary<string, object?>? extra = null;
        if (commands is not null)
        {
            extra = [];
            ShellCommandPolicy.AddAttributes(commands, extra);
        }

        var access = Access(channel, action, channel.Command ?? (channel.Terminal is null ? "shell" : $"shell ({channel.Terminal})"), resources, extra);
        if (commands is not null)
        {
            access = access with { Effects = ShellCommandPolicy.Effects(commands) };
        }

        var decision = _services.Policy.Evaluate(access);
        var run = new RunRequest(request, message, access, decision, scp, recorded);
        if (decision.Effect == PolicyEffect.RequireApproval)
        {
            // Held in the background: this channel's later messages wait in its backlog, the connection's others go on,
            // and a workload that gives up (disconnects) is noticed at once.
            lock (_gate)
            {
                channel.Backlog = new Queue<ReadOnlyMemory<byte>>();
                _holds.RemoveAll(t => t.IsCompleted);
                _holds.Add(Task.Run(() => HoldThenRunAsync(channel, run), CancellationToken.None));
            }

            return;
        }

        var refusal = decision.Effect == PolicyEffect.Deny ? $"denied by policy rule '{decision.Rule}': {decision.Reason}{DecidingEffect(access, decision)}" : null;
        await RunAsync(channel, run, null, refusal, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>When a command inside the line decided (not the line as a whole), which one: <c> (rm -rf x, via sh -c)</c>, or why it could not be read.</summary>
    private static string DecidingEffect(AccessRequest access, PolicyDecision decision)
    {
        if (decision.EffectIndex is not { } index || index < 0 || index >= access.Effects.Count)
        {
            return "";
        }

        var effect = access.Effects[index];
        return effect.Action == AccessRequest.UnclassifiedAction
            ? $" ({effect.Via}: {effect.Text})"
            : $" ({effect.Text}, via {effect.Via})";
    }

    /// <summary>What a run request (exec, shell, subsystem) was, as classified and decided.</summary>
    private sealed record RunRequest(ChannelRequest Request, ReadOnlyMemory<byte> Message, AccessRequest Access, PolicyDecision Decision, ScpCommand? Scp, bool Recorded);

    private async Task HoldThenRunAsync(SshRelayChannel channel, RunRequest run)
    {
        var token = _stopping.Token;
        string? approvalId = null;
        try
        {
            (approvalId, var refusal) = await HoldForApprovalAsync(channel, run.Access, run.Decision, token).ConfigureAwait(false);
            await RunAsync(channel, run, approvalId, refusal, token).ConfigureAwait(false);
            await DrainBacklogAsync(channel, token).ConfigureAwait(false);
        }
        catch (Exception ex) when (token.IsCancellationRequested)
        {
            // The connection ended while the request was held: it never runs, and the log says so.
            _ = ex;
            var refusal = "the workload's connection ended while the request was held for approval";
            try
            {
                if (channel.RequestSeq == 0)
                {
                    channel.RequestSeq = await WriteRequestAsync(channel, run.Access, run.Decision, refusal, null, CancellationToken.None, approvalId ?? channel.ApprovalId).ConfigureAwait(false);
                }

                await WriteResponseAsync(channel, refusal).ConfigureAwait(false);
            }
            catch (AuditLogUnavailableException logFailure)
            {
                _services.Logger.LogError("SSH request {Request} abandoned while held could not be logged: {Message}", channel.RequestId, logFailure.Message);
            }
        }
        catch (SshProtocolException ex)
        {
            _endConnection("protocol error: " + ex.Message);
        }
        catch (Exception ex)
        {
            _services.Logger.LogError(ex, "SSH request {Request} failed after its hold", channel.RequestId);
            _endConnection("the gateway failed: " + ex.Message);
        }
    }

    /// <summary>Handles, in order, what the client sent for the channel while it was held; then lets messages through directly again.</summary>
    private async Task DrainBacklogAsync(SshRelayChannel channel, CancellationToken cancellationToken)
    {
        while (true)
        {
            ReadOnlyMemory<byte> next;
            lock (_gate)
            {
                if (channel.Backlog is not { Count: > 0 } backlog)
                {
                    channel.Backlog = null;
                    return;
                }

                next = backlog.Dequeue();
                channel.BacklogBytes -= next.Length;
            }

            await DispatchClientMessageAsync(next, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Writes the request record and then runs the request on the host, or refuses it.</summary>
    private async ValueTask RunAsync(SshRelayChannel channel, RunRequest run, string? approvalId, string? refusal, CancellationToken cancellationToken)
    {
        var (request, message, access, decision, scp, recorded) = run;
        var action = access.Action;
        string? recordingPath = null;
        if (refusal is null && recorded)
        {
            recordingPath = Path.GetFullPath(Path.Combine(_services.Target.RecordingsDirectory, $"{channel.RequestId}.cast"));
        }

        try
        {
            channel.RequestSeq = await WriteRequestAsync(channel, access, decision, refusal, recordingPath, cancellationToken, approvalId).ConfigureAwait(false);
        }
        catch (AuditLogUnavailableException ex)
        {
            // Fail closed: nothing runs that the log does not hold.
            channel.Finished = true;
            await CloseByGatewayAsync(channel, "the audit log cannot be written: " + ex.Message, DeniedExitStatus, request.WantReply, cancellationToken).ConfigureAwait(false);
            return;
        }

        if (refusal is not null)
        {
            await CloseByGatewayAsync(channel, refusal, DeniedExitStatus, request.WantReply, cancellationToken).ConfigureAwait(false);
            await WriteResponseAsync(channel, refusal).ConfigureAwait(false);
            return;
        }

        if (recordingPath is not null)
        {
            var env = channel.Terminal is { } term ? new Dictionary<string, string> { ["TERM"] = term } : null;
            try
            {
                var recording = AsciicastWriter.Create(recordingPath, channel.Columns, channel.Rows, channel.Command, _services.Time, env);
                lock (_gate)
                {
                    channel.Recording = recording;
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Fail closed: a session that must be recorded does not run unrecorded.
                var reason = "the session cannot be recorded: " + ex.Message;
                await CloseByGatewayAsync(channel, reason, DeniedExitStatus, request.WantReply, cancellationToken).ConfigureAwait(false);
                await WriteResponseAsync(channel, reason).ConfigureAwait(false);
                return;
            }
        }

        lock (_gate)
        {
            // The observers report under the lock (they are fed under it); WritePendingEventsAsync takes the reports.
            if (action == "sftp")
            {
                channel.Sftp = new SftpObserver(channel.PendingSftpEvents.Add);
                channel.SftpClientPackets = new SftpPacketBuffer(new SftpObserverOptions().MaxPacketLength);
            }
            else if (scp is not null)
            {
                channel.Scp = new ScpObserver(scp, channel.PendingScpEvents.Add);
            }
        }

        // The host learns who it serves too (sshd passes these on if its AcceptEnv allows them; no reply is asked).
        var upstreamId = channel.UpstreamId!.Value;
        await SendToUpstreamAsync(Env(upstreamId, "NHIAUDIT_IDENTITY", _user.Identity.Subject), cancellationToken).ConfigureAwait(false);
        await SendToUpstreamAsync(Env(upstreamId, "NHIAUDIT_REQUEST_ID", channel.RequestId!), cancellationToken).ConfigureAwait(false);
        await ForwardRequestAsync(channel, message, request.WantReply, cancellationToken).ConfigureAwait(false);
    }

    private static ReadOnlyMemory<byte> Env(uint recipient, string name, string value) =>
        new SshWriter(SshMessageNumber.ChannelRequest).WriteUInt32(recipient).WriteString("env").WriteBoolean(false).WriteString(name).WriteString(value).WrittenMemory;

    /// <summary>Holds a run request until an approver decides; returns the approval id and, when not approved, why.</summary>
    private async Task<(string? ApprovalId, string? Refusal)> HoldForApprovalAsync(SshRelayChannel channel, AccessRequest access, PolicyDecision decision, CancellationToken cancellationToken)
    {
        var ticket = _services.Approvals.Submit(access, decision.Rule, channel.RequestId!);
        channel.ApprovalId = ticket.GrantedByTicket ?? ticket.Id;
        if (ticket.State == ApprovalState.Approved)
        {
            return (ticket.GrantedByTicket ?? ticket.Id, null);
        }

        await AppendAsync("ssh.approval.requested", w =>
        {
            WriteWho(w, channel);
            w.WriteString("requestId"u8, channel.RequestId);
            w.WriteString("approval"u8, ticket.Id);
            w.WriteString("rule"u8, ticket.Rule);
            w.WriteString("text"u8, access.Text);
            w.WriteString("expires"u8, ticket.ExpiresAt);
        }, AuditAppendMode.Request, cancellationToken).ConfigureAwait(false);
        _services.Logger.LogInformation("SSH {Action} '{Text}' of {Identity} held for approval {Ticket} (rule {Rule})", access.Action, access.Text, _user.Identity.DisplayName, ticket.Id, ticket.Rule);

        // The workload sees why it waits (stderr), and which ticket to name to an approver.
        await SendNoticeAsync(channel, $"nhiaudit: '{access.Text}' is held for approval {ticket.Id} (rule '{ticket.Rule}'); waiting until {ticket.ExpiresAt:u}\r\n", cancellationToken).ConfigureAwait(false);
        var final = await _services.Approvals.WaitAsync(ticket.Id, cancellationToken).ConfigureAwait(false);
        await AppendAsync("ssh.approval.decided", w =>
        {
            w.WriteString("requestId"u8, channel.RequestId);
            w.WriteString("approval"u8, final.Id);
            w.WriteString("state"u8, final.State.ToString());
            if (final.DecidedBy is { } approver)
            {
                w.WritePropertyName("decidedBy"u8);
                w.WriteRawValue(AuditRecordWriter.EncodeIdentity(approver));
            }

            if (final.DecisionReason is { } why)
            {
                w.WriteString("why"u8, why);
            }
        }, AuditAppendMode.Request, cancellationToken).ConfigureAwait(false);
        return (final.Id, ApprovalDecisionRules.Refusal(final, "request"));
    }

    private async ValueTask RelaySftpPacketAsync(SshRelayChannel channel, byte[] packet, CancellationToken cancellationToken)
    {
        IReadOnlyList<SftpOperation> operations;
        lock (_gate)
        {
            operations = channel.Sftp!.ObserveClientData(packet);
        }

        byte[]? refusal = null;
        foreach (var operation in operations)
        {
            var action = operation.Kind == SftpOperationKind.OpenRead ? "sftp.read" : "sftp.write";
            string[] paths = operation.TargetPath is { } second ? [operation.Path ?? "", second] : [operation.Path ?? ""];
            var text = $"{SftpOperationName(operation.Kind)} {string.Join(" -> ", paths)}";
            var access = Access(channel, action, text, paths, new Dictionary<string, object?> { ["operation"] = SftpOperationName(operation.Kind) });
            var decision = _services.Policy.Evaluate(access);
            var (approvalId, reason) = decision.Effect switch
            {
                PolicyEffect.Deny => (null, $"denied by policy rule '{decision.Rule}': {decision.Reason}"),
                PolicyEffect.RequireApproval => await HoldForApprovalAsync(channel, access, decision, cancellationToken).ConfigureAwait(false),
                _ => ((string?)null, (string?)null),
            };
            try
            {
                await AppendAsync("ssh.sftp.request", w =>
                {
                    WriteWho(w, channel);
                    w.WriteStartObject("request"u8);
                    w.WriteString("id"u8, channel.RequestId);
                    w.WriteString("target"u8, _services.Target.Name);
                    w.WriteString("connection"u8, _connectionId);
                    w.WriteString("action"u8, action);
                    w.WriteString("operation"u8, SftpOperationName(operation.Kind));
                    w.WriteNumber("sftpId"u8, operation.RequestId);
                    w.WriteString("path"u8, operation.Path);
                    if (operation.TargetPath is { } target)
                    {
                        w.WriteString("targetPath"u8, target);
                    }

                    w.WriteEndObject();
                    WritePolicy(w, decision, approvalId, reason);
                }, AuditAppendMode.Request, cancellationToken).ConfigureAwait(false);
            }
            catch (AuditLogUnavailableException ex)
            {
                reason = "the audit log cannot be written: " + ex.Message;
            }

            if (reason is not null)
            {
                lock (_gate)
                {
                    refusal = channel.Sftp!.Deny(operation.RequestId, "nhiaudit: " + reason);
                }
            }
        }

        await WritePendingEventsAsync(channel).ConfigureAwait(false);
        if (refusal is not null)
        {
            // The refused packet never reaches the host: the client gets the host's "answer" from us, and the window
            // its packet used back from us too (the host never saw those bytes, so it will not grant them).
            lock (_gate)
            {
                channel.UpstreamWindow += packet.Length;
            }

            await SendToClientAsync(new SshWriter(SshMessageNumber.ChannelWindowAdjust).WriteUInt32(channel.ClientId).WriteUInt32((uint)packet.Length).ToArray(), cancellationToken).ConfigureAwait(false);
            await SendDataToClientAsync(channel, refusal, cancellationToken).ConfigureAwait(false);
            return;
        }

        var upstreamId = channel.UpstreamId!.Value;
        var chunk = (int)Math.Max(1024, Math.Min(channel.UpstreamMaxPacket, 32 * 1024u));
        for (var offset = 0; offset < packet.Length; offset += chunk)
        {
            var part = packet.AsSpan(offset, Math.Min(chunk, packet.Length - offset));
            await SendToUpstreamAsync(new SshWriter(SshMessageNumber.ChannelData, part.Length + 16).WriteUInt32(upstreamId).WriteString(part).WrittenMemory, cancellationToken).ConfigureAwait(false);
        }
    }

    private static string SftpOperationName(SftpOperationKind kind) => kind switch
    {
        SftpOperationKind.OpenRead => "open-read",
        SftpOperationKind.OpenWrite => "open-write",
        SftpOperationKind.Remove => "remove",
        SftpOperationKind.Rename => "rename",
        SftpOperationKind.MakeDirectory => "mkdir",
        SftpOperationKind.RemoveDirectory => "rmdir",
        SftpOperationKind.SetStat => "setstat",
        SftpOperationKind.Symlink => "symlink",
        SftpOperationKind.Hardlink => "hardlink",
        _ => kind.ToString(),
    };

    private async ValueTask ForwardRequestAsync(SshRelayChannel channel, ReadOnlyMemory<byte> message, bool wantReply, CancellationToken cancellationToken)
    {
        if (wantReply)
        {
            lock (_gate)
            {
                channel.Replies.Enqueue(PendingReply.Upstream);
            }
        }

        await SendToUpstreamAsync(message, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Sends the relay's own answer, after every answer the upstream still owes on the channel.</summary>
    private async ValueTask AnswerLocallyAsync(SshRelayChannel channel, IReadOnlyList<byte[]> messages, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (channel.Replies.Count > 0)
            {
                channel.Replies.Enqueue(new PendingReply(messages));
                return;
            }
        }

        foreach (var message in messages)
        {
            await SendToClientAsync(message, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Ends a channel the gateway refused: the reason on stderr, exit status, EOF and CLOSE to the client (after the
    /// answers it awaits), CLOSE to the upstream; both peers' CLOSE answers are swallowed.
    /// </summary>
    private async ValueTask CloseByGatewayAsync(SshRelayChannel channel, string reason, uint exitStatus, bool wantReply, CancellationToken cancellationToken)
    {
        var messages = new List<byte[]>();
        if (wantReply)
        {
            messages.Add(new SshWriter(SshMessageNumber.ChannelSuccess).WriteUInt32(channel.ClientId).ToArray());
        }

        var text = Encoding.UTF8.GetBytes($"nhiaudit: {reason}\r\n");
        lock (_gate)
        {
            channel.ClosedByGateway = true;
            var room = (int)Math.Clamp(Math.Min(channel.ClientWindow, channel.ClientMaxPacket), 0, text.Length);
            if (room > 0)
            {
                messages.Add(new SshWriter(SshMessageNumber.ChannelExtendedData).WriteUInt32(channel.ClientId).WriteUInt32(1).WriteString(text.AsSpan(0, room)).ToArray());
                channel.ClientWindow -= room;
            }
        }

        messages.Add(new SshWriter(SshMessageNumber.ChannelRequest).WriteUInt32(channel.ClientId).WriteString("exit-status").WriteBoolean(false).WriteUInt32(exitStatus).ToArray());
        messages.Add(new SshWriter(SshMessageNumber.ChannelEof).WriteUInt32(channel.ClientId).ToArray());
        messages.Add(new SshWriter(SshMessageNumber.ChannelClose).WriteUInt32(channel.ClientId).ToArray());
        lock (_gate)
        {
            channel.ExitStatus = exitStatus;
        }

        if (channel.UpstreamId is { } upstreamId)
        {
            await SendToUpstreamAsync(new SshWriter(SshMessageNumber.ChannelClose).WriteUInt32(upstreamId).WrittenMemory, cancellationToken).ConfigureAwait(false);
        }

        await AnswerLocallyAsync(channel, messages, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Writes a notice on the channel's stderr, within the client's window; the upstream's view of that window is corrected as the client grants more.</summary>
    private async ValueTask SendNoticeAsync(SshRelayChannel channel, string notice, CancellationToken cancellationToken)
    {
        var text = Encoding.UTF8.GetBytes(notice);
        int room;
        lock (_gate)
        {
            room = (int)Math.Clamp(Math.Min(channel.ClientWindow, channel.ClientMaxPacket), 0, text.Length);
            channel.ClientWindow -= room;
            channel.WindowDebt += room;
        }

        if (room > 0)
        {
            await SendToClientAsync(new SshWriter(SshMessageNumber.ChannelExtendedData).WriteUInt32(channel.ClientId).WriteUInt32(1).WriteString(text.AsSpan(0, room)).ToArray(), cancellationToken).ConfigureAwait(false);
        }
    }

    private async ValueTask SendDataToClientAsync(SshRelayChannel channel, byte[] data, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            channel.ClientWindow -= data.Length;
            channel.WindowDebt += data.Length;
        }

        await SendToClientAsync(new SshWriter(SshMessageNumber.ChannelData, data.Length + 16).WriteUInt32(channel.ClientId).WriteString(data).ToArray(), cancellationToken).ConfigureAwait(false);
    }

    // ---------------------------------------------------------------- upstream → client

    private async Task<SshTransport> EnsureUpstreamAsync(CancellationToken cancellationToken)
    {
        if (_upstream is not null)
        {
            return _upstream;
        }

        _upstream = await _services.ConnectUpstream(cancellationToken).ConfigureAwait(false);
        _upstreamPump = Task.Run(PumpUpstreamAsync, CancellationToken.None);
        return _upstream;
    }

    private async Task PumpUpstreamAsync()
    {
        var upstream = _upstream!;
        var token = _stopping.Token;
        string why;
        try
        {
            while (true)
            {
                var message = await upstream.ReceiveMessageAsync(token).ConfigureAwait(false);
                await OnUpstreamMessageAsync(upstream, message, token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            return;
        }
        catch (SshConnectionClosedException ex)
        {
            why = "the host closed the connection: " + ex.Message;
        }
        catch (SshProtocolException ex)
        {
            why = "the host broke the protocol: " + ex.Message;
            await TryDisconnectAsync(upstream, ex.Reason, ex.Message).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or InvalidOperationException)
        {
            why = "the connection to the host was lost: " + ex.Message;
        }
        catch (Exception ex)
        {
            _services.Logger.LogError(ex, "SSH relay to {Target} failed", _services.Target.Name);
            why = "the gateway failed: " + ex.Message;
        }

        if (!token.IsCancellationRequested)
        {
            _endConnection(why);
        }
    }

    private ValueTask OnUpstreamMessageAsync(SshTransport upstream, ReadOnlyMemory<byte> message, CancellationToken cancellationToken) => (SshMessageNumber)message.Span[0] switch
    {
        SshMessageNumber.GlobalRequest => OnUpstreamGlobalRequestAsync(upstream, message, cancellationToken),
        SshMessageNumber.RequestSuccess or SshMessageNumber.RequestFailure => ValueTask.CompletedTask,
        SshMessageNumber.ChannelOpen => OnUpstreamChannelOpenAsync(upstream, message, cancellationToken),
        SshMessageNumber.ChannelOpenConfirmation => OnUpstreamOpenConfirmationAsync(message, cancellationToken),
        SshMessageNumber.ChannelOpenFailure => OnUpstreamOpenFailureAsync(message, cancellationToken),
        SshMessageNumber.ChannelData or SshMessageNumber.ChannelExtendedData => OnUpstreamDataAsync(message, cancellationToken),
        SshMessageNumber.ChannelSuccess or SshMessageNumber.ChannelFailure => OnUpstreamReplyAsync(message, cancellationToken),
        SshMessageNumber.ChannelRequest => OnUpstreamChannelRequestAsync(message, cancellationToken),
        SshMessageNumber.ChannelClose => OnUpstreamCloseAsync(message, cancellationToken),
        SshMessageNumber.ChannelWindowAdjust => OnUpstreamWindowAdjustAsync(message, cancellationToken),
        SshMessageNumber.ChannelEof => ForwardUpstreamChannelMessageAsync(message, cancellationToken),
        _ => upstream.SendUnimplementedForLastPacketAsync(cancellationToken),
    };

    private static ValueTask OnUpstreamGlobalRequestAsync(SshTransport upstream, ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
    {
        // hostkeys-00@openssh.com (no reply wanted) and keepalives: the gateway's business with the host, not the workload's.
        var reader = new SshReader(message.Span[1..]);
        reader.ReadUtf8String();
        return reader.ReadBoolean()
            ? upstream.SendMessageAsync(new SshWriter(SshMessageNumber.RequestFailure).WrittenMemory, cancellationToken)
            : ValueTask.CompletedTask;
    }

    private async ValueTask OnUpstreamChannelOpenAsync(SshTransport upstream, ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
    {
        var reader = new SshReader(message.Span[1..]);
        var type = reader.ReadUtf8String();
        var sender = reader.ReadUInt32();
        var window = reader.ReadUInt32();
        var maxPacket = reader.ReadUInt32();
        if (type == "auth-agent@openssh.com" && reader.IsAtEnd && _agentForwarding is { } allowance)
        {
            // The host asks to use the workload's forwarded agent: relayed (numbers and windows pass through, as for
            // the workload's own channels) and recorded, each use on its own.
            var channel = new SshRelayChannel(0, type, 0, 0)
            {
                OpenedByUpstream = true,
                UpstreamId = sender,
                UpstreamMaxPacket = maxPacket,
                UpstreamWindow = window,
                Kind = "agent",
                RequestId = NewRequestId(),
                Started = Stopwatch.GetTimestamp(),
            };
            lock (_gate)
            {
                if (!_byUpstreamId.TryAdd(sender, channel))
                {
                    throw new SshProtocolException($"the host opened channel {sender} twice");
                }
            }

            channel.RequestSeq = await RecordForwardRequestAsync(channel.RequestId, "agent-use", "auth-agent@openssh.com", allowance, null, cancellationToken).ConfigureAwait(false);
            await SendToClientAsync(message, cancellationToken).ConfigureAwait(false);
            return;
        }

        await upstream.SendMessageAsync(
            new SshWriter(SshMessageNumber.ChannelOpenFailure).WriteUInt32(sender).WriteUInt32(OpenAdministrativelyProhibited)
                .WriteString($"the gateway does not relay {type} channels toward the workload").WriteString("").WrittenMemory,
            cancellationToken);
    }

    private async ValueTask OnUpstreamOpenConfirmationAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
    {
        var reader = new SshReader(message.Span[1..]);
        var recipient = reader.ReadUInt32();
        var sender = reader.ReadUInt32();
        var window = reader.ReadUInt32();
        var maxPacket = reader.ReadUInt32();
        lock (_gate)
        {
            if (!_byClientId.TryGetValue(recipient, out var channel) || channel.UpstreamId is not null || _byUpstreamId.ContainsKey(sender))
            {
                throw new SshProtocolException($"the host confirmed a channel {recipient} the client did not open");
            }

            channel.UpstreamId = sender;
            channel.UpstreamMaxPacket = maxPacket;
            channel.UpstreamWindow = window;
            _byUpstreamId.Add(sender, channel);
        }

        await SendToClientAsync(message, cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask OnUpstreamOpenFailureAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
    {
        var recipient = ReadRecipient(message.Span);
        SshRelayChannel? channel;
        lock (_gate)
        {
            if (!_byClientId.Remove(recipient, out channel) || channel.UpstreamId is not null)
            {
                throw new SshProtocolException($"the host refused a channel {recipient} the client did not open");
            }
        }

        await SendToClientAsync(message, cancellationToken).ConfigureAwait(false);
        if (channel.RequestSeq > 0)
        {
            await WriteResponseAsync(channel, "the host refused the channel").ConfigureAwait(false);
        }
    }

    private async ValueTask OnUpstreamDataAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
    {
        var recipient = ReadRecipient(message.Span);
        SshRelayChannel? channel;
        lock (_gate)
        {
            if (!_byClientId.TryGetValue(recipient, out channel) || channel.ClosedByGateway)
            {
                return;
            }

            var extended = message.Span[0] == (byte)SshMessageNumber.ChannelExtendedData;
            var data = extended ? ExtendedDataOf(message.Span) : DataOf(message.Span);
            channel.ClientWindow -= data.Length;
            if (extended)
            {
                channel.StderrBytes += data.Length;
            }
            else
            {
                channel.BytesToClient += data.Length;
                channel.Sftp?.ObserveServerData(data);
                channel.Scp?.ObserveServerData(data);
            }

            channel.Recording?.Output(data);
        }

        await SendToClientAsync(message, cancellationToken).ConfigureAwait(false);
        if (channel.Sftp is not null || channel.Scp is not null)
        {
            await WritePendingEventsAsync(channel).ConfigureAwait(false);
        }
    }

    private async ValueTask OnUpstreamReplyAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
    {
        var recipient = ReadRecipient(message.Span);
        var release = new List<byte[]>();
        lock (_gate)
        {
            if (!_byClientId.TryGetValue(recipient, out var channel))
            {
                return;
            }

            // The answer to the oldest forwarded request, then every answer of the relay's own queued behind it.
            if (channel.Replies.TryPeek(out var head) && head.LocalMessages is null)
            {
                channel.Replies.Dequeue();
            }

            release.Add(message.ToArray());
            while (channel.Replies.TryPeek(out var next) && next.LocalMessages is { } local)
            {
                channel.Replies.Dequeue();
                release.AddRange(local);
            }
        }

        foreach (var send in release)
        {
            await SendToClientAsync(send, cancellationToken).ConfigureAwait(false);
        }
    }

    private async ValueTask OnUpstreamChannelRequestAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
    {
        var reader = new SshReader(message.Span[1..]);
        var recipient = reader.ReadUInt32();
        var type = reader.ReadUtf8String();
        reader.ReadBoolean();
        lock (_gate)
        {
            if (!_byClientId.TryGetValue(recipient, out var channel) || channel.ClosedByGateway)
            {
                return;
            }

            if (type == "exit-status")
            {
                channel.ExitStatus = reader.ReadUInt32();
            }
            else if (type == "exit-signal")
            {
                channel.ExitSignal = reader.ReadUtf8String();
            }
        }

        await SendToClientAsync(message, cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask OnUpstreamWindowAdjustAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
    {
        var (recipient, grant) = ReadChannelAndUInt32(message.Span);
        lock (_gate)
        {
            if (!_byClientId.TryGetValue(recipient, out var channel) || channel.ClosedByGateway)
            {
                return;
            }

            channel.UpstreamWindow += grant;
        }

        await SendToClientAsync(message, cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask ForwardUpstreamChannelMessageAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
    {
        var recipient = ReadRecipient(message.Span);
        lock (_gate)
        {
            if (!_byClientId.TryGetValue(recipient, out var channel) || channel.ClosedByGateway)
            {
                return;
            }
        }

        await SendToClientAsync(message, cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask OnUpstreamCloseAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
    {
        var recipient = ReadRecipient(message.Span);
        SshRelayChannel? channel;
        bool forward;
        lock (_gate)
        {
            if (!_byClientId.TryGetValue(recipient, out channel) || channel.UpstreamClosed)
            {
                return;
            }

            channel.UpstreamClosed = true;
            forward = !channel.ClosedByGateway;
        }

        if (forward)
        {
            await SendToClientAsync(message, cancellationToken).ConfigureAwait(false);
        }

        await RetireIfClosedAsync(channel).ConfigureAwait(false);
    }

    // ---------------------------------------------------------------- audit

    private AccessRequest Access(SshRelayChannel channel, string action, string text, IReadOnlyList<string> resources, Dictionary<string, object?>? extra = null)
    {
        var attributes = extra ?? [];
        attributes["user"] = _user.UserName;
        attributes["upstreamUser"] = _services.Target.Upstream.Username;
        attributes["pty"] = channel.Terminal is not null;
        attributes["method"] = _user.Method;
        return new AccessRequest
        {
            Protocol = "ssh",
            Target = _services.Target.Name,
            Action = action,
            Resources = resources,
            Text = text,
            Attributes = attributes,
            Identity = _user.Identity,
        };
    }

    private string NewRequestId() => $"{_connectionId}-{Interlocked.Increment(ref _requests)}";

    private void WriteWho(Utf8JsonWriter w, SshRelayChannel? channel)
    {
        AuditRecordWriter.WriteRawIdentity(w, _identityJson);
        if (channel?.Reason is { } reason)
        {
            w.WriteString("reason"u8, reason);
        }
    }

    private static void WritePolicy(Utf8JsonWriter w, PolicyDecision decision, string? approvalId, string? refusal)
    {
        AuditRecordWriter.WritePolicyDecision(w, decision);
        if (approvalId is not null)
        {
            w.WriteString("approval"u8, approvalId);
        }

        if (refusal is not null)
        {
            w.WriteString("refused"u8, refusal);
        }
    }

    private Task<long> WriteRequestAsync(SshRelayChannel channel, AccessRequest access, PolicyDecision decision, string? refusal, string? recording, CancellationToken cancellationToken, string? approvalId = null) =>
        AppendAsync("ssh.request", w =>
        {
            WriteWho(w, channel);
            w.WriteStartObject("request"u8);
            w.WriteString("id"u8, channel.RequestId);
            w.WriteString("target"u8, _services.Target.Name);
            w.WriteString("connection"u8, _connectionId);
            w.WriteString("client"u8, _clientAddress);
            w.WriteString("user"u8, _user.UserName);
            w.WriteString("upstreamUser"u8, _services.Target.Upstream.Username);
            w.WriteString("action"u8, access.Action);
            if (channel.Kind == "exec")
            {
                w.WriteString("command"u8, channel.Command);
                WriteCommands(w, access.Effects);
            }
            else if (channel.Kind == "subsystem")
            {
                w.WriteString("subsystem"u8, channel.Command);
            }
            else if (channel.Kind == "port-forward")
            {
                w.WriteString("destination"u8, channel.Command);
            }

            if (channel.Terminal is { } term)
            {
                w.WriteStartObject("pty"u8);
                w.WriteString("term"u8, term);
                w.WriteNumber("cols"u8, channel.Columns);
                w.WriteNumber("rows"u8, channel.Rows);
                w.WriteEndObject();
            }

            if (channel.EnvironmentNames.Count > 0)
            {
                w.WriteStartArray("env"u8);
                foreach (var name in channel.EnvironmentNames)
                {
                    w.WriteStringValue(name);
                }

                w.WriteEndArray();
            }

            if (recording is not null)
            {
                w.WriteString("recording"u8, recording);
            }

            w.WriteEndObject();
            AuditRecordWriter.WriteEffects(w, access.Effects);
            WritePolicy(w, decision, approvalId, refusal);
        }, AuditAppendMode.Request, cancellationToken);

    /// <summary>Writes <c>"commands": [{name, flags, args, via, writes, dynamic}]</c>: what the exec line runs, as the policy read it.</summary>
    private static void WriteCommands(Utf8JsonWriter w, IReadOnlyList<AccessEffect> effects)
    {
        if (!effects.Any(e => e.Action == ShellCommandPolicy.ExecAction))
        {
            return;
        }

        w.WriteStartArray("commands"u8);
        foreach (var effect in effects)
        {
            if (effect.Action != ShellCommandPolicy.ExecAction)
            {
                continue;
            }

            w.WriteStartObject();
            w.WriteString("name"u8, effect.Attributes.TryGetValue("name", out var name) ? name as string : "");
            WriteList(w, "flags"u8, effect.Attributes.GetValueOrDefault("flags"), always: true);
            WriteList(w, "args"u8, effect.Attributes.GetValueOrDefault("args"), always: true);
            w.WriteString("via"u8, effect.Via);
            WriteList(w, "writes"u8, effect.Attributes.GetValueOrDefault("writes"), always: false);
            if (effect.Attributes.GetValueOrDefault("dynamic") is true)
            {
                w.WriteBoolean("dynamic"u8, true);
            }

            w.WriteEndObject();
        }

        w.WriteEndArray();
    }

    private static void WriteList(Utf8JsonWriter w, ReadOnlySpan<byte> property, object? values, bool always)
    {
        var items = values as object[] ?? [];
        if (items.Length == 0 && !always)
        {
            return;
        }

        w.WriteStartArray(property);
        foreach (var item in items)
        {
            w.WriteStringValue(item as string);
        }

        w.WriteEndArray();
    }

    private async Task WriteResponseAsync(SshRelayChannel channel, string? error)
    {
        AsciicastWriter? recording;
        lock (_gate)
        {
            if (channel.Finished || channel.RequestSeq == 0)
            {
                return;
            }

            channel.Finished = true;
            recording = channel.Recording;
            channel.Recording = null;
            channel.Sftp?.Complete();
            channel.Scp?.Complete();
        }

        await WritePendingEventsAsync(channel).ConfigureAwait(false);
        if (recording is not null)
        {
            await recording.DisposeAsync().ConfigureAwait(false);
        }

        try
        {
            await AppendAsync("ssh.response", w =>
            {
                w.WriteNumber("request"u8, channel.RequestSeq);
                w.WriteString("requestId"u8, channel.RequestId);
                if (channel.ExitStatus is { } status)
                {
                    w.WriteNumber("exitStatus"u8, status);
                }

                if (channel.ExitSignal is { } signal)
                {
                    w.WriteString("exitSignal"u8, signal);
                }

                w.WriteNumber("bytesIn"u8, channel.BytesFromClient);
                w.WriteNumber("bytesOut"u8, channel.BytesToClient);
                w.WriteNumber("stderrBytes"u8, channel.StderrBytes);
                if (channel.SftpMetadataQueries > 0)
                {
                    w.WriteNumber("sftpMetadataQueries"u8, channel.SftpMetadataQueries);
                }

                w.WriteNumber("durationMs"u8, Math.Round(Stopwatch.GetElapsedTime(channel.Started).TotalMilliseconds, 3));
                if (recording is not null)
                {
                    w.WriteString("recording"u8, Path.GetFullPath(recording.Path));
                    w.WriteString("recordingSha256"u8, recording.Sha256);
                    w.WriteNumber("recordingEvents"u8, recording.EventCount);
                }

                if (error is not null)
                {
                    w.WriteString("error"u8, error);
                }
            }, AuditAppendMode.Deferred, CancellationToken.None).ConfigureAwait(false);
        }
        catch (AuditLogUnavailableException ex)
        {
            _services.Logger.LogError("SSH response of {Request} could not be logged: {Message}", channel.RequestId, ex.Message);
        }
    }

    private async Task WritePendingEventsAsync(SshRelayChannel channel)
    {
        List<SftpEvent>? sftp = null;
        List<ScpFileEvent>? scp = null;
        lock (_gate)
        {
            var s = channel.PendingSftpEvents;
            if (s.Count > 0)
            {
                // Metadata lookups change nothing and move no file content: counted in the response, not recorded one by one.
                channel.SftpMetadataQueries += s.Count(e => e.Kind is SftpEventKind.Stat or SftpEventKind.RealPath or SftpEventKind.ReadLink or SftpEventKind.Extended);
                sftp = s.FindAll(e => e.Kind is not (SftpEventKind.Version or SftpEventKind.Stat or SftpEventKind.RealPath or SftpEventKind.ReadLink or SftpEventKind.Extended));
                s.Clear();
            }

            if (channel.PendingScpEvents.Count > 0)
            {
                scp = [.. channel.PendingScpEvents];
                channel.PendingScpEvents.Clear();
            }
        }

        try
        {
            foreach (var e in sftp ?? [])
            {

                await AppendAsync("ssh.sftp", w =>
                {
                    w.WriteNumber("request"u8, channel.RequestSeq);
                    w.WriteString("requestId"u8, channel.RequestId);
                    w.WriteString("kind"u8, e.Kind.ToString());
                    w.WriteString("path"u8, e.Path);
                    if (e.TargetPath is { } target)
                    {
                        w.WriteString("targetPath"u8, target);
                    }

                    w.WriteBoolean("succeeded"u8, e.Succeeded);
                    if (e.Denied)
                    {
                        w.WriteBoolean("denied"u8, true);
                    }

                    if (e.Status is { } status)
                    {
                        w.WriteString("status"u8, status.ToString());
                    }

                    if (e.Transfer is { } transfer)
                    {
                        w.WriteNumber("bytesRead"u8, transfer.BytesRead);
                        w.WriteNumber("bytesWritten"u8, transfer.BytesWritten);
                        if (transfer.Sha256 is { } sha)
                        {
                            w.WriteString("sha256"u8, sha);
                        }

                        if (transfer.NotHashedReason is { } why)
                        {
                            w.WriteString("notHashed"u8, why);
                        }
                    }

                    if (e.EntryCount is { } entries)
                    {
                        w.WriteNumber("entries"u8, entries);
                    }

                    if (e.Detail is { } detail)
                    {
                        w.WriteString("detail"u8, detail);
                    }
                }, AuditAppendMode.Deferred, CancellationToken.None).ConfigureAwait(false);
            }

            foreach (var e in scp ?? [])
            {
                await AppendAsync("ssh.scp", w =>
                {
                    w.WriteNumber("request"u8, channel.RequestSeq);
                    w.WriteString("requestId"u8, channel.RequestId);
                    w.WriteString("kind"u8, e.Kind.ToString());
                    w.WriteString("path"u8, e.Path);
                    w.WriteNumber("size"u8, e.Size);
                    if (e.Mode is { } mode)
                    {
                        w.WriteString("mode"u8, mode);
                    }

                    if (e.Sha256 is { } sha)
                    {
                        w.WriteString("sha256"u8, sha);
                    }

                    if (e.Error is { } error)
                    {
                        w.WriteString("error"u8, error);
                    }
                }, AuditAppendMode.Deferred, CancellationToken.None).ConfigureAwait(false);
            }
        }
        catch (AuditLogUnavailableException ex)
        {
            _services.Logger.LogError("SSH file events of {Request} could not be logged: {Message}", channel.RequestId, ex.Message);
        }
    }

    private async Task RecordRefusedForwardAsync(string action, string what, string refusal, CancellationToken cancellationToken)
    {
        var access = new AccessRequest { Protocol = "ssh", Target = _services.Target.Name, Action = action, Resources = [what], Text = what, Identity = _user.Identity };
        await RecordForwardRequestAsync(NewRequestId(), action, what, _services.Policy.Evaluate(access), refusal, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Agent forwarding: allowed only when a policy rule with effect Allow names it (the default effect does not
    /// count), like a port forward. The decision is recorded either way.
    /// </summary>
    private async Task<bool> AllowAgentForwardingAsync(SshRelayChannel channel, CancellationToken cancellationToken)
    {
        var decision = _services.Policy.Evaluate(Access(channel, "agent-forward", "agent forwarding", []));
        var allowed = decision.Effect == PolicyEffect.Allow && decision.Rule != "(default)";
        var refusal = allowed ? null : $"agent forwarding is refused: {(decision.Effect == PolicyEffect.Allow ? "no policy rule allows it" : decision.Reason)}";
        await RecordForwardRequestAsync(NewRequestId(), "agent-forward", "auth-agent-req@openssh.com", decision, refusal, cancellationToken).ConfigureAwait(false);
        if (allowed)
        {
            _agentForwarding = decision;
        }

        return allowed;
    }

    private Task<long> RecordForwardRequestAsync(string requestId, string action, string what, PolicyDecision decision, string? refusal, CancellationToken cancellationToken) =>
        AppendAsync("ssh.request", w =>
        {
            WriteWho(w, null);
            w.WriteStartObject("request"u8);
            w.WriteString("id"u8, requestId);
            w.WriteString("target"u8, _services.Target.Name);
            w.WriteString("connection"u8, _connectionId);
            w.WriteString("client"u8, _clientAddress);
            w.WriteString("user"u8, _user.UserName);
            w.WriteString("action"u8, action);
            w.WriteString("destination"u8, what);
            w.WriteEndObject();
            WritePolicy(w, decision, null, refusal);
        }, AuditAppendMode.Request, cancellationToken);

    /// <summary>As durable as configured before the request goes on; file events and responses ride with the next commit.</summary>
    private Task<long> AppendAsync(string type, Action<Utf8JsonWriter> fields, AuditAppendMode mode, CancellationToken cancellationToken) =>
        _services.AuditLog.AppendRecordAsync(type, fields, mode, cancellationToken);

    // ---------------------------------------------------------------- plumbing

    private SshRelayChannel? ByUpstreamId(uint upstreamId) => _byUpstreamId.GetValueOrDefault(upstreamId);

    private async Task RetireIfClosedAsync(SshRelayChannel channel)
    {
        lock (_gate)
        {
            if (!channel.FullyClosed)
            {
                return;
            }

            _byClientId.Remove(channel.ClientId);
            if (channel.UpstreamId is { } upstreamId)
            {
                _byUpstreamId.Remove(upstreamId);
            }
        }

        await WriteResponseAsync(channel, null).ConfigureAwait(false);
    }

    private ValueTask SendToClientAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken) =>
        _client.SendMessageAsync(message, cancellationToken);

    private ValueTask SendToUpstreamAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken) =>
        _upstream is { } upstream ? upstream.SendMessageAsync(message, cancellationToken) : ValueTask.CompletedTask;

    /// <summary>
    /// The recipient channel of a channel message, after checking the whole message has exactly the fields RFC 4254
    /// gives it: the relay forwards messages verbatim, so it must never pass on one the other peer would choke on.
    /// </summary>
    private static uint ReadRecipient(ReadOnlySpan<byte> message)
    {
        var reader = new SshReader(message[1..]);
        var recipient = reader.ReadUInt32();
        switch ((SshMessageNumber)message[0])
        {
            case SshMessageNumber.ChannelOpenConfirmation:
                reader.ReadUInt32();
                reader.ReadUInt32();
                reader.ReadUInt32();
                break;
            case SshMessageNumber.ChannelOpenFailure:
                reader.ReadUInt32();
                reader.ReadUtf8String();
                reader.ReadUtf8String();
                break;
            case SshMessageNumber.ChannelWindowAdjust:
                reader.ReadUInt32();
                break;
            case SshMessageNumber.ChannelData:
                reader.ReadStringBytes();
                break;
            case SshMessageNumber.ChannelExtendedData:
                reader.ReadUInt32();
                reader.ReadStringBytes();
                break;
        }

        reader.EnsureEnd();
        return recipient;
    }

    private static (uint Channel, uint Value) ReadChannelAndUInt32(ReadOnlySpan<byte> message)
    {
        var reader = new SshReader(message[1..]);
        var result = (reader.ReadUInt32(), reader.ReadUInt32());
        reader.EnsureEnd();
        return result;
    }

    private static ReadOnlySpan<byte> DataOf(ReadOnlySpan<byte> message)
    {
        var reader = new SshReader(message[1..]);
        reader.ReadUInt32();
        return reader.ReadStringBytes();
    }

    private static ReadOnlySpan<byte> ExtendedDataOf(ReadOnlySpan<byte> message)
    {
        var reader = new SshReader(message[1..]);
        reader.ReadUInt32();
        reader.ReadUInt32();
        return reader.ReadStringBytes();
    }

    private static async Task TryDisconnectAsync(SshTransport transport, SshDisconnectReason reason, string description)
    {
        try
        {
            await transport.DisconnectAsync(reason, description, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or InvalidOperationException or OperationCanceledException)
        {
            // Best effort: the peer may be gone.
        }
    }

    /// <summary>Ends the upstream connection, writes what is still owed for open channels and an <c>ssh.closed</c> record with <paramref name="reason"/>.</summary>
    public async ValueTask CloseAsync(string reason)
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            return;
        }

        await DisposeAsync().ConfigureAwait(false);
        try
        {
            await AppendAsync("ssh.closed", w =>
            {
                AuditRecordWriter.WriteRawIdentity(w, _identityJson);
                w.WriteString("target"u8, _services.Target.Name);
                w.WriteString("connection"u8, _connectionId);
                w.WriteString("client"u8, _clientAddress);
                w.WriteNumber("requests"u8, Volatile.Read(ref _requests));
                w.WriteString("why"u8, reason);
            }, AuditAppendMode.Deferred, CancellationToken.None).ConfigureAwait(false);
        }
        catch (AuditLogUnavailableException ex)
        {
            _services.Logger.LogError("SSH connection {Connection} end could not be logged: {Message}", _connectionId, ex.Message);
        }
    }

    /// <summary>Ends the upstream connection and writes what is still owed for open channels.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        Task[] holds;
        lock (_gate)
        {
            holds = [.. _holds];
        }

        // Each hold ends on the cancellation and records what became of its request; none throws.
        await Task.WhenAll(holds).ConfigureAwait(false);
        if (_expiry is not null)
        {
            await _expiry.DisposeAsync().ConfigureAwait(false);
        }

        if (_upstream is { } upstream)
        {
            await TryDisconnectAsync(upstream, SshDisconnectReason.ByApplication, "the workload's connection ended").ConfigureAwait(false);
            await upstream.DisposeAsync().ConfigureAwait(false);
        }

        if (_upstreamPump is { } pump)
        {
            await pump.ConfigureAwait(false);
        }

        List<SshRelayChannel> open;
        lock (_gate)
        {
            open = [.. _byClientId.Values.Union(_byUpstreamId.Values)];
            _byClientId.Clear();
            _byUpstreamId.Clear();
        }

        foreach (var channel in open)
        {
            await WriteResponseAsync(channel, "the connection ended with the channel open").ConfigureAwait(false);
        }

        _stopping.Dispose();
    }

    /// <summary>The fields of SSH_MSG_CHANNEL_REQUEST the relay reads (RFC 4254 §6).</summary>
    private sealed record ChannelRequest(uint Recipient, string Type, bool WantReply)
    {
        public string? Command { get; private init; }

        public string? Subsystem { get; private init; }

        public string? Terminal { get; private init; }

        public uint Columns { get; private init; }

        public uint Rows { get; private init; }

        public string? Name { get; private init; }

        public string? Value { get; private init; }

        public static ChannelRequest Parse(ReadOnlySpan<byte> message)
        {
            var reader = new SshReader(message[1..]);
            var request = new ChannelRequest(reader.ReadUInt32(), reader.ReadUtf8String(), reader.ReadBoolean());
            switch (request.Type)
            {
                case "exec":
                    request = request with { Command = reader.ReadUtf8String() };
                    break;
                case "subsystem":
                    request = request with { Subsystem = reader.ReadUtf8String() };
                    break;
                case "pty-req":
                    // Terminal, size in characters and pixels, encoded modes (RFC 4254 §6.2).
                    request = request with { Terminal = reader.ReadUtf8String(), Columns = reader.ReadUInt32(), Rows = reader.ReadUInt32() };
                    reader.ReadUInt32();
                    reader.ReadUInt32();
                    reader.ReadStringBytes();
                    break;
                case "window-change":
                    request = request with { Columns = reader.ReadUInt32(), Rows = reader.ReadUInt32() };
                    reader.ReadUInt32();
                    reader.ReadUInt32();
                    break;
                case "env":
                    request = request with { Name = reader.ReadUtf8String(), Value = reader.ReadUtf8String() };
                    break;
                case "signal":
                    reader.ReadUtf8String();
                    break;
                case "break":
                    reader.ReadUInt32();
                    break;
                case "xon-xoff":
                    reader.ReadBoolean();
                    break;
                case "shell" or "eow@openssh.com" or "auth-agent-req@openssh.com":
                    break;
                default:
                    // Not relayed (refused or kept to the upstream side): its fields are not read.
                    return request;
            }

            reader.EnsureEnd();
            return request;
        }
    }
}
