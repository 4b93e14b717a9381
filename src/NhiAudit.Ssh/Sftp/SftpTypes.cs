namespace NhiAudit.Ssh.Sftp;

/// <summary>SFTP packet types of protocol version 3 (draft-ietf-secsh-filexfer-02 §3).</summary>
internal enum SftpPacketType : byte
{
    Init = 1,
    Version = 2,
    Open = 3,
    Close = 4,
    Read = 5,
    Write = 6,
    LStat = 7,
    FStat = 8,
    SetStat = 9,
    FSetStat = 10,
    OpenDir = 11,
    ReadDir = 12,
    Remove = 13,
    MkDir = 14,
    RmDir = 15,
    RealPath = 16,
    Stat = 17,
    Rename = 18,
    ReadLink = 19,
    Symlink = 20,
    Status = 101,
    Handle = 102,
    Data = 103,
    Name = 104,
    Attrs = 105,
    Extended = 200,
    ExtendedReply = 201,
}

/// <summary>SSH_FXP_STATUS codes of protocol version 3 (draft-ietf-secsh-filexfer-02 §7).</summary>
public enum SftpStatusCode : uint
{
    /// <summary>SSH_FX_OK.</summary>
    Ok = 0,

    /// <summary>SSH_FX_EOF.</summary>
    Eof = 1,

    /// <summary>SSH_FX_NO_SUCH_FILE.</summary>
    NoSuchFile = 2,

    /// <summary>SSH_FX_PERMISSION_DENIED.</summary>
    PermissionDenied = 3,

    /// <summary>SSH_FX_FAILURE.</summary>
    Failure = 4,

    /// <summary>SSH_FX_BAD_MESSAGE.</summary>
    BadMessage = 5,

    /// <summary>SSH_FX_NO_CONNECTION.</summary>
    NoConnection = 6,

    /// <summary>SSH_FX_CONNECTION_LOST.</summary>
    ConnectionLost = 7,

    /// <summary>SSH_FX_OP_UNSUPPORTED.</summary>
    OpUnsupported = 8,
}

/// <summary>The pflags of SSH_FXP_OPEN (draft-ietf-secsh-filexfer-02 §6.3).</summary>
[Flags]
public enum SftpOpenModes : uint
{
    /// <summary>No flag.</summary>
    None = 0,

    /// <summary>SSH_FXF_READ.</summary>
    Read = 0x01,

    /// <summary>SSH_FXF_WRITE.</summary>
    Write = 0x02,

    /// <summary>SSH_FXF_APPEND.</summary>
    Append = 0x04,

    /// <summary>SSH_FXF_CREAT.</summary>
    Create = 0x08,

    /// <summary>SSH_FXF_TRUNC.</summary>
    Truncate = 0x10,

    /// <summary>SSH_FXF_EXCL.</summary>
    Exclusive = 0x20,
}

/// <summary>
/// File attributes as sent in an SFTP request or response (draft-ietf-secsh-filexfer-02 §5): each value is null when its
/// flag was not set.
/// </summary>
/// <param name="Size">SSH_FILEXFER_ATTR_SIZE.</param>
/// <param name="Uid">The owner (SSH_FILEXFER_ATTR_UIDGID).</param>
/// <param name="Gid">The group (SSH_FILEXFER_ATTR_UIDGID).</param>
/// <param name="Permissions">SSH_FILEXFER_ATTR_PERMISSIONS (type and mode bits).</param>
/// <param name="AccessTime">SSH_FILEXFER_ATTR_ACMODTIME, seconds since the epoch.</param>
/// <param name="ModifyTime">SSH_FILEXFER_ATTR_ACMODTIME, seconds since the epoch.</param>
/// <param name="ExtendedCount">How many extended attribute pairs were sent.</param>
public sealed record SftpAttributes(ulong? Size, uint? Uid, uint? Gid, uint? Permissions, uint? AccessTime, uint? ModifyTime, int ExtendedCount)
{
    /// <summary>Names the attributes set, e.g. <c>size=0 mode=0644</c>; empty when none.</summary>
    /// <returns>The description.</returns>
    public string Describe()
    {
        var parts = new List<string>(5);
        if (Size is { } size)
        {
            parts.Add(FormattableString.Invariant($"size={size}"));
        }

        if (Uid is { } uid)
        {
            parts.Add(FormattableString.Invariant($"uid={uid} gid={Gid}"));
        }

        if (Permissions is { } permissions)
        {
            parts.Add("mode=" + Convert.ToString(permissions & 0xFFF, 8).PadLeft(4, '0'));
        }

        if (AccessTime is { } atime)
        {
            parts.Add(FormattableString.Invariant($"atime={atime} mtime={ModifyTime}"));
        }

        if (ExtendedCount > 0)
        {
            parts.Add(FormattableString.Invariant($"extended={ExtendedCount}"));
        }

        return string.Join(' ', parts);
    }
}

/// <summary>What a request asks for, as far as policy cares (see <see cref="SftpOperation"/>).</summary>
public enum SftpOperationKind
{
    /// <summary>OPEN with SSH_FXF_READ only.</summary>
    OpenRead,

    /// <summary>OPEN with SSH_FXF_WRITE, APPEND, CREAT or TRUNC: the file may be changed.</summary>
    OpenWrite,

    /// <summary>REMOVE.</summary>
    Remove,

    /// <summary>RENAME or posix-rename@openssh.com; the target is <see cref="SftpOperation.TargetPath"/>.</summary>
    Rename,

    /// <summary>MKDIR.</summary>
    MakeDirectory,

    /// <summary>RMDIR.</summary>
    RemoveDirectory,

    /// <summary>SETSTAT, FSETSTAT (path of the handle) or lsetstat@openssh.com.</summary>
    SetStat,

    /// <summary>SYMLINK: <see cref="SftpOperation.Path"/> is the new link, <see cref="SftpOperation.TargetPath"/> what it points to.</summary>
    Symlink,

    /// <summary>hardlink@openssh.com: <see cref="SftpOperation.Path"/> is the existing file, <see cref="SftpOperation.TargetPath"/> the new link.</summary>
    Hardlink,
}

/// <summary>
/// A request that changes or reads the file system, reported when its packet is complete so that policy can refuse it
/// with <see cref="SftpObserver.Deny"/> before the relay forwards it.
/// </summary>
/// <param name="RequestId">The request id.</param>
/// <param name="Kind">What the request does.</param>
/// <param name="Path">The path it acts on (for FSETSTAT the path the handle was opened with; null if unknown).</param>
/// <param name="TargetPath">The second path of RENAME, SYMLINK and hardlink; null otherwise.</param>
/// <param name="PacketStart">Where the packet (its length field) starts in the client-to-server stream, counted from 0.</param>
/// <param name="PacketLength">The packet's whole length including its 4-byte length field.</param>
public sealed record SftpOperation(uint RequestId, SftpOperationKind Kind, string? Path, string? TargetPath, long PacketStart, int PacketLength);

/// <summary>What an <see cref="SftpEvent"/> reports.</summary>
public enum SftpEventKind
{
    /// <summary>The server's VERSION: <see cref="SftpEvent.Detail"/> holds the version and extension names.</summary>
    Version,

    /// <summary>A file handle was closed (or the session ended with it open): <see cref="SftpEvent.Transfer"/> holds the counts and hash.</summary>
    FileClosed,

    /// <summary>A directory handle was closed: <see cref="SftpEvent.EntryCount"/> holds the entries listed.</summary>
    DirectoryClosed,

    /// <summary>An OPEN that failed or was denied (successful opens are reported when closed).</summary>
    OpenFailed,

    /// <summary>An OPENDIR that failed or was denied.</summary>
    OpenDirectoryFailed,

    /// <summary>REMOVE.</summary>
    Remove,

    /// <summary>RENAME or posix-rename@openssh.com.</summary>
    Rename,

    /// <summary>MKDIR.</summary>
    MakeDirectory,

    /// <summary>RMDIR.</summary>
    RemoveDirectory,

    /// <summary>SETSTAT, FSETSTAT or lsetstat@openssh.com; <see cref="SftpEvent.Attributes"/> says which attributes.</summary>
    SetStat,

    /// <summary>SYMLINK.</summary>
    Symlink,

    /// <summary>hardlink@openssh.com.</summary>
    Hardlink,

    /// <summary>READLINK; <see cref="SftpEvent.TargetPath"/> holds the answer.</summary>
    ReadLink,

    /// <summary>REALPATH or expand-path@openssh.com; <see cref="SftpEvent.TargetPath"/> holds the answer.</summary>
    RealPath,

    /// <summary>STAT, LSTAT or FSTAT (<see cref="SftpEvent.Detail"/> says which).</summary>
    Stat,

    /// <summary>Another EXTENDED request; <see cref="SftpEvent.Detail"/> names it.</summary>
    Extended,

    /// <summary>A handle or request beyond the tracking caps: what follows on it is not audited in detail.</summary>
    Untracked,

    /// <summary>The stream broke the protocol; <see cref="SftpEvent.Detail"/> says how. The observer stops inspecting.</summary>
    ProtocolProblem,
}

/// <summary>Counts and hash of one file handle, reported when it is closed.</summary>
/// <param name="OpenModes">The pflags it was opened with.</param>
/// <param name="BytesRead">Bytes the server returned in DATA responses.</param>
/// <param name="BytesWritten">Bytes the client sent in WRITE requests.</param>
/// <param name="Sha256">Lower-case hex SHA-256 of the bytes transferred, when the transfer ran from offset 0 without gaps.</param>
/// <param name="NotHashedReason">Why <paramref name="Sha256"/> is null (e.g. <c>not hashed: non-sequential</c>); null when hashed.</param>
public sealed record SftpFileTransfer(SftpOpenModes OpenModes, long BytesRead, long BytesWritten, string? Sha256, string? NotHashedReason)
{
    /// <summary><c>write</c> when any byte was written or the file was opened for writing, else <c>read</c>.</summary>
    public string Mode => BytesWritten > 0 || (OpenModes & (SftpOpenModes.Write | SftpOpenModes.Append)) != 0 ? "write" : "read";
}

/// <summary>One audited SFTP operation.</summary>
/// <param name="Kind">What happened.</param>
/// <param name="RequestId">The request id (of the CLOSE for closed handles); 0 for events that belong to no request.</param>
/// <param name="Path">The path acted on, or null.</param>
public sealed record SftpEvent(SftpEventKind Kind, uint RequestId, string? Path)
{
    /// <summary>The second path (RENAME target, SYMLINK target, READLINK/REALPATH answer).</summary>
    public string? TargetPath { get; init; }

    /// <summary>The STATUS code the server answered, or null when it answered with data (HANDLE, NAME, ATTRS, ...) or not at all.</summary>
    public SftpStatusCode? Status { get; init; }

    /// <summary>The STATUS message, or null.</summary>
    public string? StatusMessage { get; init; }

    /// <summary>Whether the request succeeded (STATUS OK or a data answer).</summary>
    public bool Succeeded { get; init; }

    /// <summary>True when policy refused the request through <see cref="SftpObserver.Deny"/>; it never reached the server.</summary>
    public bool Denied { get; init; }

    /// <summary>OPEN's pflags, for open and file events.</summary>
    public SftpOpenModes OpenModes { get; init; }

    /// <summary>Attributes sent with OPEN, MKDIR, SETSTAT and FSETSTAT, or returned by a stat request.</summary>
    public SftpAttributes? Attributes { get; init; }

    /// <summary>Counts and hash of a closed file.</summary>
    public SftpFileTransfer? Transfer { get; init; }

    /// <summary>Entries listed through a directory handle.</summary>
    public long? EntryCount { get; init; }

    /// <summary>Extra text: the extension name, the stat flavour, the problem.</summary>
    public string? Detail { get; init; }
}

/// <summary>Limits of an <see cref="SftpObserver"/>.</summary>
public sealed record SftpObserverOptions
{
    /// <summary>The largest packet accepted, excluding its length field (OpenSSH's own limit is 256 KiB).</summary>
    public int MaxPacketLength { get; init; } = (256 * 1024) + 1024;

    /// <summary>Open handles tracked; handles beyond are reported <see cref="SftpEventKind.Untracked"/>.</summary>
    public int MaxTrackedHandles { get; init; } = 1024;

    /// <summary>Requests awaiting their response tracked; requests beyond are reported <see cref="SftpEventKind.Untracked"/>.</summary>
    public int MaxPendingRequests { get; init; } = 4096;
}
