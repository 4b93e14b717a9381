namespace NhiAudit.Ssh.Scp;

/// <summary>What an <see cref="ScpFileEvent"/> reports.</summary>
public enum ScpFileEventKind
{
    /// <summary>A file's whole content passed and the sink acknowledged it; <see cref="ScpFileEvent.Sha256"/> holds its hash.</summary>
    FileTransferred,

    /// <summary>
    /// A file the sink refused or failed to write, the source failed to read, or whose transfer the channel cut short;
    /// <see cref="ScpFileEvent.Error"/> says why.
    /// </summary>
    FileFailed,

    /// <summary>The source entered a directory (a <c>D</c> line) and the sink accepted it.</summary>
    DirectoryEntered,

    /// <summary>The sink refused a directory (a <c>D</c> line); the source skips its content.</summary>
    DirectoryFailed,

    /// <summary>A warning or fatal error message (<c>\1</c> or <c>\2</c>) not tied to a file, e.g. a source file that cannot be read.</summary>
    Error,

    /// <summary>A stream broke the protocol; <see cref="ScpFileEvent.Error"/> says how. The observer stops inspecting.</summary>
    ProtocolProblem,
}

/// <summary>One audited step of a legacy scp copy.</summary>
/// <param name="Kind">What happened.</param>
/// <param name="Path">
/// The file or directory on the remote host, as far as the relay can know it. Upload: where the sink writes, the
/// command's target joined with the directories entered and the name, except a single top-level file of a copy
/// that is neither recursive nor to a target known to be a directory (<c>-d</c>, <c>.</c>, a trailing <c>/</c>), which
/// is the target itself (it may still be a directory: <see cref="Name"/> then completes the path). The sink's file system
/// decides what the relay cannot see: a recursive copy to a target that does not exist yet lands in the target itself,
/// without the top directory's name. Download: where the
/// source reads, the command's path with its last component replaced by the names sent (which is the command's path
/// itself for a plain single file, and the real file for a glob). For <see cref="ScpFileEventKind.Error"/> the
/// directory the source was in; empty for <see cref="ScpFileEventKind.ProtocolProblem"/>.
/// </param>
/// <param name="Size">The size the source announced in its <c>C</c> line; 0 for directories and errors.</param>
/// <param name="Mode">The four octal digits of the <c>C</c> or <c>D</c> line, e.g. <c>0644</c>; null otherwise.</param>
/// <param name="Sha256">
/// Lower-case hex SHA-256 of the content, computed as it passed, whenever all of it passed and the source vouched for it
/// (also for a file the sink then failed to write); null when cut short or when the source reported a read error.
/// </param>
/// <param name="Error">The peer's message (without its status byte and newline) or the observer's reason; null on success.</param>
public sealed record ScpFileEvent(ScpFileEventKind Kind, string Path, long Size, string? Mode, string? Sha256, string? Error)
{
    /// <summary>The file or directory name the source sent in its <c>C</c> or <c>D</c> line; null for other events.</summary>
    public string? Name { get; init; }

    /// <summary>Content bytes that passed for the file (equals <see cref="Size"/> when complete).</summary>
    public long TransferredBytes { get; init; }

    /// <summary>The modification time of the preceding <c>T</c> line (seconds since the epoch), when the copy preserves times.</summary>
    public long? ModifyTime { get; init; }

    /// <summary>The access time of the preceding <c>T</c> line (seconds since the epoch), when the copy preserves times.</summary>
    public long? AccessTime { get; init; }
}

/// <summary>Limits of an <see cref="ScpObserver"/>.</summary>
public sealed record ScpObserverOptions
{
    /// <summary>The longest control or message line accepted, excluding its newline; the line buffer never grows beyond it.</summary>
    public int MaxLineLength { get; init; } = 4096;

    /// <summary>How deeply <c>D</c> lines may nest.</summary>
    public int MaxDepth { get; init; } = 64;

    /// <summary>
    /// How many source messages may await the sink's answer at once. OpenSSH waits for each answer (one at a time); a
    /// source that runs further ahead is reported as a protocol problem.
    /// </summary>
    public int MaxUnacknowledged { get; init; } = 64;
}
