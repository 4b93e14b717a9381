using NhiAudit.Recording;
using NhiAudit.Ssh.Scp;
using NhiAudit.Ssh.Sftp;

namespace NhiAudit.Ssh.Relay;

/// <summary>
/// One channel as the relay sees it. Channel numbers pass through unchanged (each side addresses the other's own
/// number), so windows and packet sizes are the two peers' own and flow control holds end to end; the relay keeps
/// only what it needs to inspect, answer in order and audit.
/// </summary>
internal sealed class SshRelayChannel(uint clientId, string type, uint clientWindow, uint clientMaxPacket)
{
    /// <summary>The client's number for the channel (what the upstream addresses); for a channel the upstream opened, set by the client's confirmation.</summary>
    public uint ClientId { get; set; } = clientId;

    /// <summary>The upstream opened the channel toward the workload (a forwarded agent's connection).</summary>
    public bool OpenedByUpstream { get; init; }

    /// <summary>For a channel the upstream opened: the client confirmed it.</summary>
    public bool ClientConfirmed { get; set; }

    /// <summary>The upstream's number (what the client addresses), once confirmed.</summary>
    public uint? UpstreamId { get; set; }

    /// <summary>The channel type (<c>session</c>, <c>direct-tcpip</c>).</summary>
    public string Type { get; } = type;

    /// <summary>
    /// Bytes the client will still accept toward it: its window as it granted it, less what went its way. The relay
    /// checks its own messages (a refusal on stderr) against it.
    /// </summary>
    public long ClientWindow { get; set; } = clientWindow;

    /// <summary>
    /// Bytes the client may still send: the window the upstream granted, less what the client sent. The relay holds
    /// the client to it, so a client that ignores flow control cannot make the gateway queue without end.
    /// </summary>
    public long UpstreamWindow { get; set; }

    /// <summary>The client's largest data packet.</summary>
    public uint ClientMaxPacket { get; set; } = clientMaxPacket;

    /// <summary>The upstream's largest data packet (from its confirmation).</summary>
    public uint UpstreamMaxPacket { get; set; } = 32 * 1024;

    /// <summary>
    /// Bytes the relay sent the client on this channel that the upstream does not know of: taken off the client's
    /// next window grants before they are passed on, so the upstream never overruns the client's real window.
    /// </summary>
    public long WindowDebt { get; set; }

    /// <summary>Answers owed to the client's want-reply requests, in the order it asked (RFC 4254 §5.4).</summary>
    public Queue<PendingReply> Replies { get; } = new();

    /// <summary>The relay ended the channel itself (a refusal): later traffic is dropped, the peers' CLOSE swallowed.</summary>
    public bool ClosedByGateway { get; set; }

    /// <summary>The client sent CHANNEL_CLOSE.</summary>
    public bool ClientClosed { get; set; }

    /// <summary>The upstream sent CHANNEL_CLOSE.</summary>
    public bool UpstreamClosed { get; set; }

    /// <summary>What the channel runs (<c>exec</c>, <c>shell</c>, <c>subsystem</c>), once the client asked; later requests of that kind are refused.</summary>
    public string? Kind { get; set; }

    /// <summary>The command (exec), the subsystem name, or null for a shell.</summary>
    public string? Command { get; set; }

    /// <summary>The terminal asked for with pty-req, or null.</summary>
    public string? Terminal { get; set; }

    /// <summary>Terminal width in columns.</summary>
    public int Columns { get; set; } = 80;

    /// <summary>Terminal height in rows.</summary>
    public int Rows { get; set; } = 24;

    /// <summary>Environment the client set with <c>env</c> requests (names only are audited, values stay out).</summary>
    public List<string> EnvironmentNames { get; } = [];

    /// <summary>The reason the client stated in <c>NHIAUDIT_REASON</c>.</summary>
    public string? Reason { get; set; }

    /// <summary>The approval ticket the channel's request was held under, once submitted.</summary>
    public string? ApprovalId { get; set; }

    /// <summary>The audit id of what runs on the channel.</summary>
    public string? RequestId { get; set; }

    /// <summary>The seq of its request record.</summary>
    public long RequestSeq { get; set; }

    /// <summary>When it started (<see cref="System.Diagnostics.Stopwatch"/> ticks).</summary>
    public long Started { get; set; }

    /// <summary>Data bytes from the client (stdin).</summary>
    public long BytesFromClient { get; set; }

    /// <summary>Data bytes toward the client (stdout).</summary>
    public long BytesToClient { get; set; }

    /// <summary>Extended data bytes toward the client (stderr).</summary>
    public long StderrBytes { get; set; }

    /// <summary>The exit status the upstream reported.</summary>
    public uint? ExitStatus { get; set; }

    /// <summary>The signal that ended the command, as the upstream reported it.</summary>
    public string? ExitSignal { get; set; }

    /// <summary>The terminal recording, for shells and commands run with a terminal.</summary>
    public AsciicastWriter? Recording { get; set; }

    /// <summary>The SFTP session watched on this channel.</summary>
    public SftpObserver? Sftp { get; set; }

    /// <summary>What <see cref="Sftp"/> reported and the relay has not written yet (under the relay's lock).</summary>
    public List<SftpEvent> PendingSftpEvents { get; } = [];

    /// <summary>What <see cref="Scp"/> reported and the relay has not written yet (under the relay's lock).</summary>
    public List<ScpFileEvent> PendingScpEvents { get; } = [];

    /// <summary>Client bytes of an SFTP packet not yet complete (the relay forwards whole packets so it can refuse one).</summary>
    public SftpPacketBuffer? SftpClientPackets { get; set; }

    /// <summary>The legacy scp transfer watched on this channel.</summary>
    public ScpObserver? Scp { get; set; }

    /// <summary>SFTP stat, realpath, readlink and extension queries seen (counted, not recorded one by one).</summary>
    public long SftpMetadataQueries { get; set; }

    /// <summary>
    /// While the channel's request is held for approval (and until what queued meanwhile is handled): the client's
    /// later messages for the channel, in order. Null otherwise.
    /// </summary>
    public Queue<ReadOnlyMemory<byte>>? Backlog { get; set; }

    /// <summary>The bytes of the messages in <see cref="Backlog"/>.</summary>
    public long BacklogBytes { get; set; }

    /// <summary>The response record was written.</summary>
    public bool Finished { get; set; }

    /// <summary>True once both sides closed (or the gateway closed it and both answered).</summary>
    public bool FullyClosed => ClientClosed && (UpstreamClosed || UpstreamId is null);
}

/// <summary>An answer owed to the client: the upstream's (forwarded when it comes) or the relay's own messages.</summary>
internal sealed record PendingReply(IReadOnlyList<byte[]>? LocalMessages)
{
    /// <summary>The upstream answers this one.</summary>
    public static PendingReply Upstream { get; } = new((IReadOnlyList<byte[]>?)null);
}

/// <summary>
/// Collects the client's SFTP stream into whole packets (4-byte length, then the packet). Memory is bounded by the
/// largest packet allowed.
/// </summary>
internal sealed class SftpPacketBuffer(int maxPacketLength)
{
    private byte[] _buffer = new byte[4096];
    private int _count;

    /// <summary>Adds bytes; returns false if a packet claims more than the limit (the stream cannot be inspected).</summary>
    public bool Append(ReadOnlySpan<byte> data)
    {
        if (_count + data.Length > _buffer.Length)
        {
            var needed = _count + data.Length;
            if (needed > maxPacketLength + 4 + (64 * 1024))
            {
                // More buffered than one packet plus one channel message: the length check below already failed.
                return false;
            }

            Array.Resize(ref _buffer, Math.Max(needed, _buffer.Length * 2));
        }

        data.CopyTo(_buffer.AsSpan(_count));
        _count += data.Length;
        return _count < 4 || PacketLength() <= maxPacketLength;
    }

    /// <summary>Takes the next whole packet (length field included), or returns null.</summary>
    public byte[]? TakePacket()
    {
        if (_count < 4)
        {
            return null;
        }

        var length = PacketLength();
        if (length > maxPacketLength || _count < 4 + length)
        {
            return null;
        }

        var packet = _buffer.AsSpan(0, 4 + (int)length).ToArray();
        _buffer.AsSpan(4 + (int)length, _count - 4 - (int)length).CopyTo(_buffer);
        _count -= 4 + (int)length;
        return packet;
    }

    private uint PacketLength() => System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(_buffer);
}
