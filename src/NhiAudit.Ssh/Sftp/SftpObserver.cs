using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using NhiAudit.Ssh.Transport;

namespace NhiAudit.Ssh.Sftp;

/// <summary>
/// Watches the two byte streams of an SFTP session (protocol version 3, as OpenSSH speaks it) as they pass through the
/// relay and turns them into <see cref="SftpEvent"/>s: files opened, read and written (with byte counts and the SHA-256
/// of sequential transfers), removed, renamed, directories made and listed, attributes set. It never changes or holds
/// the relayed bytes; chunks may be cut anywhere.
/// </summary>
/// <remarks>
/// <para>
/// Requests are matched to responses by request id. A packet longer than <see cref="SftpObserverOptions.MaxPacketLength"/>
/// or malformed is reported once as <see cref="SftpEventKind.ProtocolProblem"/>; the observer then stops inspecting
/// (it never throws for what the peers send) and the relay decides whether to end the channel.
/// </para>
/// <para>
/// Not thread-safe across directions: the relay calls <see cref="ObserveClientData"/> and <see cref="ObserveServerData"/>
/// (and <see cref="Deny"/>) under one lock or from one loop.
/// </para>
/// </remarks>
public sealed class SftpObserver
{
    private const string NonSequential = "not hashed: non-sequential";
    private static readonly UTF8Encoding LenientUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false);

    private readonly SftpObserverOptions _options;
    private readonly Action<SftpEvent> _sink;
    private readonly PacketFramer _client;
    private readonly PacketFramer _server;
    private readonly Dictionary<uint, Pending> _pending = [];
    private readonly Dictionary<string, HandleState> _handles = new(StringComparer.Ordinal);
    private List<SftpOperation>? _operations;
    private bool _pendingOverflowReported;
    private string[] _extensions = [];

    /// <summary>Creates an observer that reports to <paramref name="sink"/>.</summary>
    /// <param name="sink">Receives every event, synchronously, on the thread that fed the bytes.</param>
    /// <param name="options">Limits; the defaults when null.</param>
    public SftpObserver(Action<SftpEvent> sink, SftpObserverOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(sink);
        _sink = sink;
        _options = options ?? new SftpObserverOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(_options.MaxPacketLength, 16, nameof(options));
        _client = new PacketFramer(_options.MaxPacketLength);
        _server = new PacketFramer(_options.MaxPacketLength);
    }

    /// <summary>False once a protocol problem was reported: later bytes are ignored.</summary>
    public bool IsInspecting => Problem is null;

    /// <summary>The protocol problem reported, or null.</summary>
    public string? Problem { get; private set; }

    /// <summary>The protocol version the server answered, or 0 before its VERSION.</summary>
    public uint ProtocolVersion { get; private set; }

    /// <summary>The extension names of the server's VERSION (e.g. <c>posix-rename@openssh.com</c>).</summary>
    public IReadOnlyList<string> ServerExtensions => _extensions;

    /// <summary>Open handles tracked now.</summary>
    public int TrackedHandleCount => _handles.Count;

    /// <summary>Requests awaiting their response now.</summary>
    public int PendingRequestCount => _pending.Count;

    /// <summary>
    /// Observes bytes the client sent toward the server. Returns the policy-relevant requests whose packets were
    /// completed by this chunk (empty most of the time); a relay that enforces policy passes whole packets and, for a
    /// refused one, sends <see cref="Deny"/>'s answer to the client instead of forwarding the packet.
    /// </summary>
    /// <param name="data">The next bytes of the client-to-server stream.</param>
    /// <returns>The operations of the requests completed in this chunk.</returns>
    public IReadOnlyList<SftpOperation> ObserveClientData(ReadOnlySpan<byte> data)
    {
        _operations = null;
        Feed(_client, data, fromClient: true);
        var result = (IReadOnlyList<SftpOperation>?)_operations ?? [];
        _operations = null;
        return result;
    }

    /// <summary>Observes bytes the server sent toward the client.</summary>
    /// <param name="data">The next bytes of the server-to-client stream.</param>
    public void ObserveServerData(ReadOnlySpan<byte> data) => Feed(_server, data, fromClient: false);

    /// <summary>
    /// Refuses a request the relay will not forward: forgets it, reports it as denied and returns the SSH_FXP_STATUS
    /// packet (SSH_FX_PERMISSION_DENIED with <paramref name="message"/>) to send to the client in its place.
    /// </summary>
    /// <param name="requestId">The refused request's id.</param>
    /// <param name="message">The reason the client shows (OpenSSH's sftp prints its own text for the code).</param>
    /// <returns>The whole packet, length field included.</returns>
    public byte[] Deny(uint requestId, string message)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (_pending.Remove(requestId, out var pending))
        {
            if (pending.Type == SftpPacketType.Write && pending.HandleKey is { } key && _handles.TryGetValue(key, out var handle))
            {
                handle.Invalidate("not hashed: a write was denied");
            }

            var denied = EventFor(pending, requestId);
            if (denied is not null)
            {
                _sink(denied with { Status = SftpStatusCode.PermissionDenied, StatusMessage = message, Denied = true, Succeeded = false });
            }
        }

        var writer = new SshWriter(64);
        writer.WriteUInt32(0).WriteByte((byte)SftpPacketType.Status).WriteUInt32(requestId)
            .WriteUInt32((uint)SftpStatusCode.PermissionDenied).WriteString(message).WriteString(string.Empty);
        var packet = writer.ToArray();
        BinaryPrimitives.WriteUInt32BigEndian(packet, (uint)(packet.Length - 4));
        return packet;
    }

    /// <summary>
    /// Ends the session: reports every handle still open (a file event with no close status) and drops all state.
    /// Call when the channel closes.
    /// </summary>
    public void Complete()
    {
        foreach (var (_, handle) in _handles)
        {
            _sink(HandleEvent(handle, 0, null, null) with { Detail = "session ended with the handle open" });
        }

        _handles.Clear();
        _pending.Clear();
    }

    private void Feed(PacketFramer framer, ReadOnlySpan<byte> data, bool fromClient)
    {
        while (!data.IsEmpty && Problem is null)
        {
            var status = framer.Push(ref data, out var packet, out var start, out var problem);
            if (status == FrameStatus.Problem)
            {
                ReportProblem((fromClient ? "client: " : "server: ") + problem);
                return;
            }

            if (status == FrameStatus.NeedMore)
            {
                return;
            }

            try
            {
                if (fromClient)
                {
                    OnRequest(packet, start);
                }
                else
                {
                    OnResponse(packet);
                }
            }
            catch (SshProtocolException ex)
            {
                ReportProblem((fromClient ? "client: " : "server: ") + ex.Message);
                return;
            }
        }
    }

    private void ReportProblem(string problem)
    {
        Problem = problem;
        _pending.Clear();
        _sink(new SftpEvent(SftpEventKind.ProtocolProblem, 0, null) { Detail = problem });
    }

    private void OnRequest(ReadOnlySpan<byte> packet, long start)
    {
        var reader = new SshReader(packet);
        var type = (SftpPacketType)reader.ReadByte();
        if (type == SftpPacketType.Init)
        {
            _ = reader.ReadUInt32();
            return;
        }

        var id = reader.ReadUInt32();
        var pending = new Pending { Type = type };
        SftpOperationKind? operation = null;
        switch (type)
        {
            case SftpPacketType.Open:
                pending.Path = ReadPath(ref reader);
                pending.Flags = (SftpOpenModes)reader.ReadUInt32();
                pending.Attributes = ReadAttributes(ref reader);
                operation = (pending.Flags & (SftpOpenModes.Write | SftpOpenModes.Append | SftpOpenModes.Create | SftpOpenModes.Truncate)) != 0
                    ? SftpOperationKind.OpenWrite
                    : SftpOperationKind.OpenRead;
                break;
            case SftpPacketType.Close:
            case SftpPacketType.FStat:
            case SftpPacketType.ReadDir:
                pending.HandleKey = ReadHandle(ref reader);
                break;
            case SftpPacketType.Read:
                pending.HandleKey = ReadHandle(ref reader);
                pending.Offset = reader.ReadUInt64();
                pending.Length = reader.ReadUInt32();
                break;
            case SftpPacketType.Write:
                pending.HandleKey = ReadHandle(ref reader);
                pending.Offset = reader.ReadUInt64();
                var data = reader.ReadStringBytes();
                if (_handles.TryGetValue(pending.HandleKey, out var writeHandle))
                {
                    writeHandle.Written(pending.Offset, data);
                }

                break;
            case SftpPacketType.FSetStat:
                pending.HandleKey = ReadHandle(ref reader);
                pending.Attributes = ReadAttributes(ref reader);
                pending.Path = _handles.TryGetValue(pending.HandleKey, out var statHandle) ? statHandle.Path : null;
                operation = SftpOperationKind.SetStat;
                break;
            case SftpPacketType.SetStat:
            case SftpPacketType.MkDir:
                pending.Path = ReadPath(ref reader);
                pending.Attributes = ReadAttributes(ref reader);
                operation = type == SftpPacketType.MkDir ? SftpOperationKind.MakeDirectory : SftpOperationKind.SetStat;
                break;
            case SftpPacketType.Remove:
            case SftpPacketType.RmDir:
            case SftpPacketType.OpenDir:
            case SftpPacketType.RealPath:
            case SftpPacketType.Stat:
            case SftpPacketType.LStat:
            case SftpPacketType.ReadLink:
                pending.Path = ReadPath(ref reader);
                operation = type switch
                {
                    SftpPacketType.Remove => SftpOperationKind.Remove,
                    SftpPacketType.RmDir => SftpOperationKind.RemoveDirectory,
                    _ => null,
                };
                break;
            case SftpPacketType.Rename:
                pending.Path = ReadPath(ref reader);
                pending.TargetPath = ReadPath(ref reader);
                operation = SftpOperationKind.Rename;
                break;
            case SftpPacketType.Symlink:
                // OpenSSH sends the arguments in the reverse of the draft's order: the link's target first, then the link.
                pending.TargetPath = ReadPath(ref reader);
                pending.Path = ReadPath(ref reader);
                operation = SftpOperationKind.Symlink;
                break;
            case SftpPacketType.Extended:
                operation = ReadExtended(ref reader, pending);
                break;
            default:
                // An unknown request type: its response is matched and dropped.
                break;
        }

        Track(id, pending);
        if (operation is { } kind)
        {
            (_operations ??= []).Add(new SftpOperation(id, kind, pending.Path, pending.TargetPath, start, packet.Length + 4));
        }
    }

    private SftpOperationKind? ReadExtended(ref SshReader reader, Pending pending)
    {
        var name = Text(reader.ReadStringBytes());
        pending.Extension = name;
        switch (name)
        {
            case "posix-rename@openssh.com":
                pending.Path = ReadPath(ref reader);
                pending.TargetPath = ReadPath(ref reader);
                return SftpOperationKind.Rename;
            case "hardlink@openssh.com":
                pending.Path = ReadPath(ref reader);
                pending.TargetPath = ReadPath(ref reader);
                return SftpOperationKind.Hardlink;
            case "lsetstat@openssh.com":
                pending.Path = ReadPath(ref reader);
                pending.Attributes = ReadAttributes(ref reader);
                return SftpOperationKind.SetStat;
            case "statvfs@openssh.com":
            case "expand-path@openssh.com":
                pending.Path = ReadPath(ref reader);
                return null;
            case "fstatvfs@openssh.com":
            case "fsync@openssh.com":
                pending.HandleKey = ReadHandle(ref reader);
                pending.Path = _handles.TryGetValue(pending.HandleKey, out var handle) ? handle.Path : null;
                return null;
            default:
                return null;
        }
    }

    private void Track(uint id, Pending pending)
    {
        if (_pending.Count >= _options.MaxPendingRequests && !_pending.ContainsKey(id))
        {
            if (!_pendingOverflowReported)
            {
                _pendingOverflowReported = true;
                _sink(new SftpEvent(SftpEventKind.Untracked, id, pending.Path)
                {
                    Detail = FormattableString.Invariant($"more than {_options.MaxPendingRequests} requests outstanding; the excess is not matched"),
                });
            }

            if (pending.HandleKey is { } key && _handles.TryGetValue(key, out var handle))
            {
                handle.Invalidate("not hashed: a request was not tracked");
            }

            return;
        }

        _pendingOverflowReported = false;
        _pending[id] = pending;
    }

    private void OnResponse(ReadOnlySpan<byte> packet)
    {
        var reader = new SshReader(packet);
        var type = (SftpPacketType)reader.ReadByte();
        if (type == SftpPacketType.Version)
        {
            ProtocolVersion = reader.ReadUInt32();
            var extensions = new List<string>();
            while (!reader.IsAtEnd && extensions.Count < 64)
            {
                var name = Text(reader.ReadStringBytes());
                _ = reader.ReadStringBytes();
                extensions.Add(name);
            }

            _extensions = [.. extensions];
            _sink(new SftpEvent(SftpEventKind.Version, 0, null)
            {
                Succeeded = true,
                Detail = FormattableString.Invariant($"version {ProtocolVersion}; extensions: {string.Join(", ", extensions)}"),
            });
            return;
        }

        var id = reader.ReadUInt32();
        if (!_pending.Remove(id, out var pending))
        {
            return;
        }

        SftpStatusCode? status = null;
        string? message = null;
        if (type == SftpPacketType.Status)
        {
            status = (SftpStatusCode)reader.ReadUInt32();

            // Version 3 servers add a message and a language tag; very old ones sent the code alone.
            message = reader.IsAtEnd ? null : Text(reader.ReadStringBytes());
        }

        var ok = status is null or SftpStatusCode.Ok;
        switch (pending.Type)
        {
            case SftpPacketType.Open:
            case SftpPacketType.OpenDir:
                if (type == SftpPacketType.Handle)
                {
                    OnHandle(id, pending, reader.ReadStringBytes());
                }
                else
                {
                    _sink(EventFor(pending, id)! with { Status = status, StatusMessage = message, Succeeded = false });
                }

                return;
            case SftpPacketType.Read:
                if (_handles.TryGetValue(pending.HandleKey!, out var readHandle))
                {
                    if (type == SftpPacketType.Data)
                    {
                        readHandle.Read(pending.Offset, reader.ReadStringBytes());
                    }
                    else if (status != SftpStatusCode.Eof)
                    {
                        readHandle.Invalidate("not hashed: a read failed");
                    }
                }

                return;
            case SftpPacketType.Write:
                if (!ok && _handles.TryGetValue(pending.HandleKey!, out var writeHandle))
                {
                    writeHandle.Invalidate("not hashed: a write failed");
                }

                return;
            case SftpPacketType.ReadDir:
                if (type == SftpPacketType.Name && _handles.TryGetValue(pending.HandleKey!, out var dirHandle))
                {
                    dirHandle.Entries += reader.ReadUInt32();
                }

                return;
            case SftpPacketType.Close:
                if (_handles.Remove(pending.HandleKey!, out var closed))
                {
                    _sink(HandleEvent(closed, id, status, message));
                }
                else
                {
                    _sink(new SftpEvent(SftpEventKind.FileClosed, id, null) { Status = status, StatusMessage = message, Succeeded = ok, Detail = "untracked handle" });
                }

                return;
            default:
                break;
        }

        var result = EventFor(pending, id);
        if (result is null)
        {
            return;
        }

        result = result with { Status = status, StatusMessage = message, Succeeded = ok };
        if (type == SftpPacketType.Name && reader.ReadUInt32() > 0)
        {
            result = result with { TargetPath = Text(reader.ReadStringBytes()) };
        }
        else if (type == SftpPacketType.Attrs)
        {
            result = result with { Attributes = ReadAttributes(ref reader) };
        }

        _sink(result);
    }

    private void OnHandle(uint id, Pending pending, ReadOnlySpan<byte> handleBytes)
    {
        var key = Encoding.Latin1.GetString(handleBytes);
        var directory = pending.Type == SftpPacketType.OpenDir;
        if (_handles.Count >= _options.MaxTrackedHandles && !_handles.ContainsKey(key))
        {
            _sink(new SftpEvent(SftpEventKind.Untracked, id, pending.Path)
            {
                OpenModes = pending.Flags,
                Succeeded = true,
                Detail = FormattableString.Invariant($"more than {_options.MaxTrackedHandles} handles open; this one is not tracked"),
            });
            return;
        }

        _handles[key] = new HandleState(pending.Path, pending.Flags, pending.Attributes, directory);
    }

    private static SftpEvent HandleEvent(HandleState handle, uint id, SftpStatusCode? status, string? message)
    {
        if (handle.IsDirectory)
        {
            return new SftpEvent(SftpEventKind.DirectoryClosed, id, handle.Path)
            {
                Status = status,
                StatusMessage = message,
                Succeeded = status == SftpStatusCode.Ok,
                EntryCount = handle.Entries,
            };
        }

        var (sha256, reason) = handle.Finish();
        return new SftpEvent(SftpEventKind.FileClosed, id, handle.Path)
        {
            Status = status,
            StatusMessage = message,
            Succeeded = status == SftpStatusCode.Ok,
            OpenModes = handle.Flags,
            Attributes = handle.Attributes,
            Transfer = new SftpFileTransfer(handle.Flags, handle.BytesRead, handle.BytesWritten, sha256, reason),
        };
    }

    /// <summary>The event a finished (or denied) request reports, or null for requests audited elsewhere.</summary>
    private SftpEvent? EventFor(Pending pending, uint id)
    {
        SftpEventKind? kind = pending.Type switch
        {
            SftpPacketType.Open => SftpEventKind.OpenFailed,
            SftpPacketType.OpenDir => SftpEventKind.OpenDirectoryFailed,
            SftpPacketType.Remove => SftpEventKind.Remove,
            SftpPacketType.Rename => SftpEventKind.Rename,
            SftpPacketType.MkDir => SftpEventKind.MakeDirectory,
            SftpPacketType.RmDir => SftpEventKind.RemoveDirectory,
            SftpPacketType.SetStat or SftpPacketType.FSetStat => SftpEventKind.SetStat,
            SftpPacketType.Symlink => SftpEventKind.Symlink,
            SftpPacketType.ReadLink => SftpEventKind.ReadLink,
            SftpPacketType.RealPath => SftpEventKind.RealPath,
            SftpPacketType.Stat or SftpPacketType.LStat or SftpPacketType.FStat => SftpEventKind.Stat,
            SftpPacketType.Extended => pending.Extension switch
            {
                "posix-rename@openssh.com" => SftpEventKind.Rename,
                "hardlink@openssh.com" => SftpEventKind.Hardlink,
                "lsetstat@openssh.com" => SftpEventKind.SetStat,
                "expand-path@openssh.com" => SftpEventKind.RealPath,
                _ => SftpEventKind.Extended,
            },
            _ => null,
        };

        if (kind is null)
        {
            return null;
        }

        var path = pending.Path;
        if (path is null && pending.HandleKey is { } key && _handles.TryGetValue(key, out var handle))
        {
            path = handle.Path;
        }

        return new SftpEvent(kind.Value, id, path)
        {
            TargetPath = pending.TargetPath,
            OpenModes = pending.Flags,
            Attributes = pending.Attributes,
            Detail = pending.Type switch
            {
                SftpPacketType.Stat => "stat",
                SftpPacketType.LStat => "lstat",
                SftpPacketType.FStat => "fstat",
                SftpPacketType.FSetStat => "fsetstat",
                SftpPacketType.Extended => pending.Extension,
                _ => null,
            },
        };
    }

    private static string ReadPath(ref SshReader reader) => Text(reader.ReadStringBytes());

    private static string ReadHandle(ref SshReader reader)
    {
        var handle = reader.ReadStringBytes();
        if (handle.Length > 256)
        {
            throw new SshProtocolException(FormattableString.Invariant($"handle of {handle.Length} bytes (at most 256)"));
        }

        return Encoding.Latin1.GetString(handle);
    }

    private static string Text(ReadOnlySpan<byte> bytes) => LenientUtf8.GetString(bytes);

    private static SftpAttributes ReadAttributes(ref SshReader reader)
    {
        var flags = reader.ReadUInt32();
        ulong? size = (flags & 0x1) != 0 ? reader.ReadUInt64() : null;
        uint? uid = null, gid = null, permissions = null, atime = null, mtime = null;
        if ((flags & 0x2) != 0)
        {
            uid = reader.ReadUInt32();
            gid = reader.ReadUInt32();
        }

        if ((flags & 0x4) != 0)
        {
            permissions = reader.ReadUInt32();
        }

        if ((flags & 0x8) != 0)
        {
            atime = reader.ReadUInt32();
            mtime = reader.ReadUInt32();
        }

        var extended = 0;
        if ((flags & 0x80000000) != 0)
        {
            var count = reader.ReadUInt32();
            for (var i = 0u; i < count; i++)
            {
                _ = reader.ReadStringBytes();
                _ = reader.ReadStringBytes();
                extended++;
            }
        }

        return new SftpAttributes(size, uid, gid, permissions, atime, mtime, extended);
    }

    private sealed class Pending
    {
        public SftpPacketType Type { get; init; }

        public string? Path { get; set; }

        public string? TargetPath { get; set; }

        public string? HandleKey { get; set; }

        public string? Extension { get; set; }

        public ulong Offset { get; set; }

        public uint Length { get; set; }

        public SftpOpenModes Flags { get; set; }

        public SftpAttributes? Attributes { get; set; }
    }

    /// <summary>One open handle: counts and an incremental hash while the transfer stays sequential from offset 0.</summary>
    private sealed class HandleState(string? path, SftpOpenModes flags, SftpAttributes? attributes, bool directory)
    {
        private IncrementalHash? _hash = directory ? null : IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private ulong _next;
        private string? _notHashed;

        public string? Path { get; } = path;

        public SftpOpenModes Flags { get; } = flags;

        public SftpAttributes? Attributes { get; } = attributes;

        public bool IsDirectory { get; } = directory;

        public long BytesRead { get; private set; }

        public long BytesWritten { get; private set; }

        public long Entries { get; set; }

        public void Read(ulong offset, ReadOnlySpan<byte> data)
        {
            BytesRead += data.Length;
            if (BytesWritten > 0)
            {
                Invalidate("not hashed: read and written");
            }

            Append(offset, data);
        }

        public void Written(ulong offset, ReadOnlySpan<byte> data)
        {
            BytesWritten += data.Length;
            if (BytesRead > 0)
            {
                Invalidate("not hashed: read and written");
            }

            // Appends go to the end of the file whatever the offset says; the file's start is not what was sent.
            if ((Flags & SftpOpenModes.Append) != 0)
            {
                Invalidate("not hashed: append");
            }

            Append(offset, data);
        }

        public void Invalidate(string reason)
        {
            if (_hash is null)
            {
                return;
            }

            _hash.Dispose();
            _hash = null;
            _notHashed ??= reason;
        }

        public (string? Sha256, string? Reason) Finish()
        {
            if (_hash is null)
            {
                return (null, _notHashed ?? "not hashed");
            }

            var digest = _hash.GetHashAndReset();
            _hash.Dispose();
            _hash = null;
            return (Convert.ToHexStringLower(digest), null);
        }

        private void Append(ulong offset, ReadOnlySpan<byte> data)
        {
            if (_hash is null)
            {
                return;
            }

            if (offset != _next)
            {
                Invalidate(NonSequential);
                return;
            }

            _hash.AppendData(data);
            _next += (ulong)data.Length;
        }
    }

    private enum FrameStatus
    {
        NeedMore,
        Packet,
        Problem,
    }

    /// <summary>
    /// Cuts one direction's stream into packets. A packet wholly inside a chunk is parsed in place; one split across
    /// chunks is gathered in a buffer sized to that packet (never more than the packet bound).
    /// </summary>
    private sealed class PacketFramer(int maxPacketLength)
    {
        private readonly byte[] _header = new byte[4];
        private int _headerFilled;
        private byte[] _body = [];
        private int _bodyLength = -1;
        private int _bodyFilled;

        /// <summary>The stream offset of the next byte to arrive.</summary>
        public long Position { get; private set; }

        private long _packetStart;

        public FrameStatus Push(ref ReadOnlySpan<byte> data, out ReadOnlySpan<byte> packet, out long start, out string? problem)
        {
            packet = default;
            problem = null;
            start = _packetStart;
            if (_bodyLength < 0)
            {
                // Fast path: a whole packet at the start of the chunk with nothing gathered.
                if (_headerFilled == 0 && data.Length >= 4)
                {
                    var length = BinaryPrimitives.ReadUInt32BigEndian(data);
                    if (!Check(length, out problem))
                    {
                        return FrameStatus.Problem;
                    }

                    if (data.Length - 4 >= (long)length)
                    {
                        start = Position;
                        packet = data.Slice(4, (int)length);
                        data = data[(4 + (int)length)..];
                        Position += 4 + length;
                        _packetStart = Position;
                        return FrameStatus.Packet;
                    }
                }

                var take = Math.Min(4 - _headerFilled, data.Length);
                data[..take].CopyTo(_header.AsSpan(_headerFilled));
                _headerFilled += take;
                data = data[take..];
                Position += take;
                if (_headerFilled < 4)
                {
                    return FrameStatus.NeedMore;
                }

                var bodyLength = BinaryPrimitives.ReadUInt32BigEndian(_header);
                if (!Check(bodyLength, out problem))
                {
                    return FrameStatus.Problem;
                }

                _bodyLength = (int)bodyLength;
                _bodyFilled = 0;
                if (_body.Length < _bodyLength)
                {
                    _body = new byte[Math.Max(_bodyLength, Math.Min(_body.Length * 2, maxPacketLength))];
                }
            }

            var copy = Math.Min(_bodyLength - _bodyFilled, data.Length);
            data[..copy].CopyTo(_body.AsSpan(_bodyFilled));
            _bodyFilled += copy;
            data = data[copy..];
            Position += copy;
            if (_bodyFilled < _bodyLength)
            {
                return FrameStatus.NeedMore;
            }

            packet = _body.AsSpan(0, _bodyLength);
            start = _packetStart;
            _packetStart = Position;
            _bodyLength = -1;
            _headerFilled = 0;
            return FrameStatus.Packet;
        }

        private bool Check(uint length, out string? problem)
        {
            if (length > (uint)maxPacketLength)
            {
                problem = FormattableString.Invariant($"packet length {length} exceeds the bound of {maxPacketLength}");
                return false;
            }

            if (length < 5)
            {
                problem = FormattableString.Invariant($"packet length {length} is shorter than a type and an id");
                return false;
            }

            problem = null;
            return true;
        }
    }
}
