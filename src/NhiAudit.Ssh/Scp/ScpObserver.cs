using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace NhiAudit.Ssh.Scp;

/// <summary>
/// Watches the two byte streams of a legacy (rcp-style) scp copy, as OpenSSH's <c>scp -O</c> speaks it, while they pass
/// through the relay, and turns them into <see cref="ScpFileEvent"/>s: each file with its name, announced size, mode and
/// the SHA-256 of its content, directories entered, and the peers' error messages. It never changes or holds the relayed
/// bytes (content is hashed as it passes); chunks may be cut anywhere.
/// </summary>
/// <remarks>
/// <para>
/// The source (the client for <see cref="ScpDirection.Upload"/>, the server for <see cref="ScpDirection.Download"/>)
/// sends control lines (<c>C</c> file, <c>D</c> directory, <c>E</c> end of directory, <c>T</c> times), each file's
/// content followed by a status byte, and <c>\1</c>/<c>\2</c> messages about files it cannot read. The sink answers every
/// control line and every file's content with one status: <c>\0</c>, or a <c>\1</c> (warning) or <c>\2</c> (fatal)
/// message line; it also answers once before the source starts. The observer pairs the answers with what awaits them
/// in order, so it follows a source that waits for each answer (as OpenSSH does) as well as one that runs ahead, up to
/// <see cref="ScpObserverOptions.MaxUnacknowledged"/>.
/// </para>
/// <para>
/// Malformed input is reported once as <see cref="ScpFileEventKind.ProtocolProblem"/>; the observer then stops
/// inspecting (it never throws for what the peers send) and the relay decides whether to end the channel. Memory is
/// bounded: two line buffers of at most <see cref="ScpObserverOptions.MaxLineLength"/> bytes, the directory names of
/// the current nesting, and one incremental hash per file awaiting its answer.
/// </para>
/// <para>
/// Not thread-safe across directions: the relay calls <see cref="ObserveClientData"/>, <see cref="ObserveServerData"/>
/// and <see cref="Complete"/> under one lock or from one loop, in the order the bytes pass.
/// </para>
/// </remarks>
public sealed class ScpObserver
{
    private static readonly UTF8Encoding LenientUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false);

    private readonly ScpCommand _command;
    private readonly Action<ScpFileEvent> _sink;
    private readonly ScpObserverOptions _options;
    private readonly bool _targetIsDirectory;
    private readonly LineReader _sourceLine;
    private readonly LineReader _sinkLine;
    private readonly Queue<Awaiting> _unacknowledged = new();
    private readonly List<string> _directories = [];
    private SourceState _sourceState = SourceState.Line;
    private Entry? _sourceFile;
    private bool _sinkInMessage;
    private (long Modify, long Access)? _times;
    private bool _completed;

    /// <summary>Creates an observer for the copy <paramref name="command"/> asked for, reporting to <paramref name="sink"/>.</summary>
    /// <param name="command">The parsed exec command: says which stream is the source and where files go.</param>
    /// <param name="sink">Receives every event, synchronously, on the thread that fed the bytes.</param>
    /// <param name="options">Limits; the defaults when null.</param>
    public ScpObserver(ScpCommand command, Action<ScpFileEvent> sink, ScpObserverOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(command);
        ArgumentNullException.ThrowIfNull(sink);
        _command = command;
        _sink = sink;
        _options = options ?? new ScpObserverOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(_options.MaxLineLength, 64, nameof(options));
        ArgumentOutOfRangeException.ThrowIfLessThan(_options.MaxDepth, 1, nameof(options));
        ArgumentOutOfRangeException.ThrowIfLessThan(_options.MaxUnacknowledged, 1, nameof(options));
        _sourceLine = new LineReader(_options.MaxLineLength);
        _sinkLine = new LineReader(_options.MaxLineLength);
        _targetIsDirectory = command.Recursive || command.TargetShouldBeDirectory || IsDirectoryLike(command.Path);

        // The sink speaks first: one status saying it is ready (or why it is not).
        _unacknowledged.Enqueue(new Awaiting(AwaitingKind.Start, null, 0));
    }

    /// <summary>False once a protocol problem was reported: later bytes are ignored.</summary>
    public bool IsInspecting => Problem is null;

    /// <summary>The protocol problem reported, or null.</summary>
    public string? Problem { get; private set; }

    /// <summary>How many directories deep the source is now.</summary>
    public int Depth => _directories.Count;

    /// <summary>Observes bytes the client sent toward the server.</summary>
    /// <param name="data">The next bytes of the client-to-server stream.</param>
    public void ObserveClientData(ReadOnlySpan<byte> data)
    {
        if (_command.Direction == ScpDirection.Upload)
        {
            FeedSource(data);
        }
        else
        {
            FeedSink(data);
        }
    }

    /// <summary>Observes bytes the server sent toward the client.</summary>
    /// <param name="data">The next bytes of the server-to-client stream.</param>
    public void ObserveServerData(ReadOnlySpan<byte> data)
    {
        if (_command.Direction == ScpDirection.Download)
        {
            FeedSource(data);
        }
        else
        {
            FeedSink(data);
        }
    }

    /// <summary>
    /// Ends the copy: reports every file not yet reported (content cut short or never answered) as
    /// <see cref="ScpFileEventKind.FileFailed"/> and drops all state. Call when the channel closes; later bytes are ignored.
    /// </summary>
    public void Complete()
    {
        if (_completed)
        {
            return;
        }

        _completed = true;
        if (Problem is null)
        {
            foreach (var awaiting in _unacknowledged)
            {
                if (awaiting.Entry is { IsFile: true } file)
                {
                    ReportFile(file, ScpFileEventKind.FileFailed, ClosedReason(file));
                }
            }

            if (_sourceFile is { } current)
            {
                ReportFile(current, ScpFileEventKind.FileFailed, ClosedReason(current));
            }
        }

        Release();
    }

    private static string ClosedReason(Entry file) => file.ContentComplete
        ? "channel closed before the sink acknowledged the file"
        : FormattableString.Invariant($"channel closed after {file.Transferred} of {file.Size} content bytes");

    private void FeedSource(ReadOnlySpan<byte> data)
    {
        while (!data.IsEmpty && Problem is null && !_completed)
        {
            switch (_sourceState)
            {
                case SourceState.Line:
                case SourceState.ContentError:
                    switch (_sourceLine.Read(ref data, out var line))
                    {
                        case LineStatus.NeedMore:
                            return;
                        case LineStatus.TooLong:
                            ReportProblem(FormattableString.Invariant($"source: line longer than {_options.MaxLineLength} bytes"));
                            return;
                    }

                    if (_sourceState == SourceState.Line)
                    {
                        OnSourceLine(line);
                    }
                    else
                    {
                        OnSourceFileError(line);
                    }

                    break;
                case SourceState.Content:
                    var file = _sourceFile!;
                    var take = (int)Math.Min(file.Size - file.Transferred, data.Length);
                    file.Append(data[..take]);
                    data = data[take..];
                    if (file.Transferred == file.Size)
                    {
                        _sourceState = SourceState.ContentStatus;
                    }

                    break;
                case SourceState.ContentStatus:
                    OnContentStatus(ref data);
                    break;
            }
        }
    }

    private void OnContentStatus(ref ReadOnlySpan<byte> data)
    {
        var file = _sourceFile!;
        switch (data[0])
        {
            case 0:
                data = data[1..];
                file.FinishContent(hash: true);
                _sourceFile = null;
                _sourceState = SourceState.Line;
                Await(AwaitingKind.FileContent, file);
                break;
            case 1 or 2:
                // The source could not read the file: it padded the content and says why in a message line.
                _sourceState = SourceState.ContentError;
                break;
            default:
                ReportProblem(FormattableString.Invariant($"source: status byte 0x{data[0]:x2} after the content of {file.Name}"));
                break;
        }
    }

    private void OnSourceFileError(ReadOnlySpan<byte> line)
    {
        var file = _sourceFile!;
        _sourceFile = null;
        _sourceState = SourceState.Line;
        file.FinishContent(hash: false);
        file.SourceError = Decode(line[1..]);
        if (line[0] == 2)
        {
            // Fatal: the sink exits without answering.
            ReportFile(file, ScpFileEventKind.FileFailed, file.SourceError);
        }
        else
        {
            Await(AwaitingKind.FileContent, file);
        }
    }

    private void OnSourceLine(ReadOnlySpan<byte> line)
    {
        if (line.IsEmpty)
        {
            ReportProblem("source: empty control line");
            return;
        }

        switch (line[0])
        {
            case 1 or 2:
                Emit(new ScpFileEvent(ScpFileEventKind.Error, PathOf(null), 0, null, null, Decode(line[1..])));
                break;
            case (byte)'C':
                if (TryParseEntry(line, out var mode, out var size, out var name, out var problem))
                {
                    var file = NewEntry(name, mode, size, isFile: true);
                    _sourceFile = file;
                    _sourceState = size == 0 ? SourceState.ContentStatus : SourceState.Content;
                    Await(AwaitingKind.FileHeader, file);
                }
                else
                {
                    ReportProblem("source: " + problem);
                }

                break;
            case (byte)'D':
                if (!TryParseEntry(line, out mode, out _, out name, out problem))
                {
                    ReportProblem("source: " + problem);
                }
                else if (_directories.Count >= _options.MaxDepth)
                {
                    ReportProblem(FormattableString.Invariant($"source: directories nested deeper than {_options.MaxDepth}"));
                }
                else
                {
                    var directory = NewEntry(name, mode, 0, isFile: false);
                    _directories.Add(name);
                    Await(AwaitingKind.Directory, directory);
                }

                break;
            case (byte)'E':
                if (line.Length != 1)
                {
                    ReportProblem("source: E line with trailing text");
                }
                else if (_directories.Count == 0)
                {
                    ReportProblem("source: E line outside any directory");
                }
                else
                {
                    _directories.RemoveAt(_directories.Count - 1);
                    Await(AwaitingKind.Other, null);
                }

                break;
            case (byte)'T':
                if (TryParseTimes(line[1..], out var modify, out var access))
                {
                    _times = (modify, access);
                    Await(AwaitingKind.Other, null);
                }
                else
                {
                    ReportProblem("source: malformed T line");
                }

                break;
            default:
                ReportProblem(FormattableString.Invariant($"source: unknown control line type 0x{line[0]:x2}"));
                break;
        }
    }

    private Entry NewEntry(string name, string mode, long size, bool isFile)
    {
        var entry = new Entry(name, PathOf(name), mode, size, isFile, _times);
        _times = null;
        return entry;
    }

    private void Await(AwaitingKind kind, Entry? entry)
    {
        if (_unacknowledged.Count >= _options.MaxUnacknowledged)
        {
            ReportProblem(FormattableString.Invariant($"source: more than {_options.MaxUnacknowledged} messages await the sink's answer"));
            return;
        }

        _unacknowledged.Enqueue(new Awaiting(kind, entry, _directories.Count));
    }

    private void FeedSink(ReadOnlySpan<byte> data)
    {
        while (!data.IsEmpty && Problem is null && !_completed)
        {
            if (!_sinkInMessage)
            {
                switch (data[0])
                {
                    case 0:
                        data = data[1..];
                        OnAnswer(null);
                        continue;
                    case 1 or 2:
                        _sinkInMessage = true;
                        break;
                    default:
                        ReportProblem(FormattableString.Invariant($"sink: unexpected byte 0x{data[0]:x2} where a status was due"));
                        return;
                }
            }

            switch (_sinkLine.Read(ref data, out var line))
            {
                case LineStatus.NeedMore:
                    return;
                case LineStatus.TooLong:
                    ReportProblem(FormattableString.Invariant($"sink: message longer than {_options.MaxLineLength} bytes"));
                    return;
            }

            _sinkInMessage = false;
            OnAnswer(Decode(line[1..]));
        }
    }

    /// <summary>Pairs the sink's status (null for <c>\0</c>, else its message) with the oldest message awaiting it.</summary>
    private void OnAnswer(string? error)
    {
        if (!_unacknowledged.TryDequeue(out var awaiting))
        {
            if (error is null)
            {
                ReportProblem("sink: status 0 with nothing to answer");
            }
            else
            {
                Emit(new ScpFileEvent(ScpFileEventKind.Error, PathOf(null), 0, null, null, error));
            }

            return;
        }

        switch (awaiting.Kind)
        {
            case AwaitingKind.Start or AwaitingKind.Other:
                if (error is not null)
                {
                    Emit(new ScpFileEvent(ScpFileEventKind.Error, PathOf(null), 0, null, null, error));
                }

                break;
            case AwaitingKind.Directory:
                var directory = awaiting.Entry!;
                Emit(EventFor(directory, error is null ? ScpFileEventKind.DirectoryEntered : ScpFileEventKind.DirectoryFailed, error));
                if (error is not null)
                {
                    // The source skips a refused directory: no content and no E line follow.
                    if (_directories.Count == awaiting.Depth)
                    {
                        _directories.RemoveAt(_directories.Count - 1);
                    }
                    else
                    {
                        ReportProblem("source: went on inside a directory the sink refused");
                    }
                }

                break;
            case AwaitingKind.FileHeader:
                var file = awaiting.Entry!;
                if (error is null || file.Reported)
                {
                    break;
                }

                // The source skips a refused file; it must not have started its content.
                if (ReferenceEquals(_sourceFile, file) && file.Transferred == 0 && _sourceState is SourceState.Content or SourceState.ContentStatus)
                {
                    _sourceFile = null;
                    _sourceState = SourceState.Line;
                    ReportFile(file, ScpFileEventKind.FileFailed, error);
                }
                else
                {
                    ReportFile(file, ScpFileEventKind.FileFailed, error);
                    ReportProblem("source: sent content of a file the sink refused");
                }

                break;
            case AwaitingKind.FileContent:
                var sent = awaiting.Entry!;
                if (error is null && sent.SourceError is null)
                {
                    ReportFile(sent, ScpFileEventKind.FileTransferred, null);
                }
                else
                {
                    ReportFile(sent, ScpFileEventKind.FileFailed, sent.SourceError is { } sourceError && error is not null
                        ? sourceError + "; " + error
                        : sent.SourceError ?? error);
                }

                break;
        }
    }

    private void ReportFile(Entry file, ScpFileEventKind kind, string? error)
    {
        if (file.Reported)
        {
            return;
        }

        file.Reported = true;
        file.FinishContent(hash: false);
        Emit(EventFor(file, kind, error));
    }

    private static ScpFileEvent EventFor(Entry entry, ScpFileEventKind kind, string? error) =>
        new(kind, entry.Path, entry.Size, entry.Mode, entry.Sha256, error)
        {
            Name = entry.Name,
            TransferredBytes = entry.Transferred,
            ModifyTime = entry.Times?.Modify,
            AccessTime = entry.Times?.Access,
        };

    private void Emit(ScpFileEvent scpEvent) => _sink(scpEvent);

    private void ReportProblem(string problem)
    {
        Problem = problem;
        Release();
        _sink(new ScpFileEvent(ScpFileEventKind.ProtocolProblem, string.Empty, 0, null, null, problem));
    }

    private void Release()
    {
        foreach (var awaiting in _unacknowledged)
        {
            awaiting.Entry?.FinishContent(hash: false);
        }

        _sourceFile?.FinishContent(hash: false);
        _sourceFile = null;
        _unacknowledged.Clear();
        _directories.Clear();
    }

    /// <summary>
    /// The remote path of <paramref name="name"/> in the current directory (or of the current directory when null); see
    /// <see cref="ScpFileEvent.Path"/> for why uploads and downloads differ.
    /// </summary>
    private string PathOf(string? name)
    {
        if (_directories.Count == 0 && (name is null || (_command.Direction == ScpDirection.Upload && !_targetIsDirectory)))
        {
            return _command.Path;
        }

        var path = new StringBuilder(_command.Direction == ScpDirection.Upload ? _command.Path : ParentOf(_command.Path));
        foreach (var directory in _directories)
        {
            AppendSegment(path, directory);
        }

        if (name is not null)
        {
            AppendSegment(path, name);
        }

        return path.ToString();
    }

    private static void AppendSegment(StringBuilder path, string segment)
    {
        if (path.Length > 0 && path[^1] != '/')
        {
            path.Append('/');
        }

        path.Append(segment);
    }

    private static string ParentOf(string path)
    {
        var trimmed = path.TrimEnd('/');
        if (trimmed.Length == 0)
        {
            return "/";
        }

        var slash = trimmed.LastIndexOf('/');
        return slash switch
        {
            < 0 => string.Empty,
            0 => "/",
            _ => trimmed[..slash],
        };
    }

    private static bool IsDirectoryLike(string path) =>
        path is "." or ".." or "~" || path.EndsWith('/') || path.EndsWith("/.", StringComparison.Ordinal) || path.EndsWith("/..", StringComparison.Ordinal);

    /// <summary>Parses <c>C0644 123 name</c> or <c>D0755 0 name</c> as OpenSSH's sink checks it.</summary>
    private static bool TryParseEntry(ReadOnlySpan<byte> line, out string mode, out long size, out string name, out string? problem)
    {
        mode = name = string.Empty;
        size = 0;
        var type = (char)line[0];
        line = line[1..];
        if (line.Length < 5 || line[..4].ContainsAnyExceptInRange((byte)'0', (byte)'7') || line[4] != (byte)' ')
        {
            problem = type + " line: bad mode";
            return false;
        }

        mode = Encoding.ASCII.GetString(line[..4]);
        line = line[5..];
        var space = line.IndexOf((byte)' ');
        if (space <= 0 || !TryParseNumber(line[..space], out size))
        {
            problem = type + " line: size not a non-negative number";
            return false;
        }

        var nameBytes = line[(space + 1)..];
        if (nameBytes.IsEmpty || nameBytes.IndexOfAny((byte)'/', (byte)0) >= 0 || nameBytes.SequenceEqual("."u8) || nameBytes.SequenceEqual(".."u8))
        {
            problem = type + " line: unacceptable name";
            return false;
        }

        name = Decode(nameBytes);
        problem = null;
        return true;
    }

    /// <summary>Parses the rest of <c>T&lt;mtime&gt; &lt;usec&gt; &lt;atime&gt; &lt;usec&gt;</c>.</summary>
    private static bool TryParseTimes(ReadOnlySpan<byte> text, out long modify, out long access)
    {
        modify = access = 0;
        Span<long> values = stackalloc long[4];
        for (var i = 0; i < 4; i++)
        {
            var end = i < 3 ? text.IndexOf((byte)' ') : text.Length;
            if (end <= 0 || !TryParseNumber(text[..end], out values[i]) || (i % 2 == 1 && values[i] > 999_999))
            {
                return false;
            }

            text = i < 3 ? text[(end + 1)..] : [];
        }

        modify = values[0];
        access = values[2];
        return true;
    }

    private static bool TryParseNumber(ReadOnlySpan<byte> digits, out long value)
    {
        value = 0;
        if (digits.IsEmpty || digits.ContainsAnyExceptInRange((byte)'0', (byte)'9'))
        {
            return false;
        }

        return long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out value);
    }

    private static string Decode(ReadOnlySpan<byte> text) => LenientUtf8.GetString(text);

    private enum SourceState
    {
        /// <summary>At a control line or a message line.</summary>
        Line,

        /// <summary>Inside a file's content.</summary>
        Content,

        /// <summary>At the status byte after a file's content.</summary>
        ContentStatus,

        /// <summary>In the message line of a source that could not read the file it was sending.</summary>
        ContentError,
    }

    private enum AwaitingKind
    {
        /// <summary>The sink's first status, before the source starts.</summary>
        Start,

        /// <summary>A <c>T</c> or <c>E</c> line.</summary>
        Other,

        /// <summary>A <c>D</c> line.</summary>
        Directory,

        /// <summary>A <c>C</c> line: the sink opened the file (or says why not).</summary>
        FileHeader,

        /// <summary>A file's content and status: the sink wrote the file (or says why not).</summary>
        FileContent,
    }

    /// <summary>A source message awaiting the sink's status; <see cref="Depth"/> is the nesting after it.</summary>
    private sealed record Awaiting(AwaitingKind Kind, Entry? Entry, int Depth);

    private enum LineStatus
    {
        NeedMore,
        Line,
        TooLong,
    }

    /// <summary>A file or directory the source announced; a file's content is hashed as it passes.</summary>
    private sealed class Entry(string name, string path, string mode, long size, bool isFile, (long Modify, long Access)? times)
    {
        private IncrementalHash? _hash = isFile ? IncrementalHash.CreateHash(HashAlgorithmName.SHA256) : null;

        public string Name { get; } = name;

        public string Path { get; } = path;

        public string Mode { get; } = mode;

        public long Size { get; } = size;

        public bool IsFile { get; } = isFile;

        public (long Modify, long Access)? Times { get; } = times;

        public long Transferred { get; private set; }

        public bool ContentComplete { get; private set; }

        public string? Sha256 { get; private set; }

        public string? SourceError { get; set; }

        public bool Reported { get; set; }

        public void Append(ReadOnlySpan<byte> data)
        {
            _hash?.AppendData(data);
            Transferred += data.Length;
        }

        /// <summary>Ends hashing: keeps the digest when <paramref name="hash"/> and all content passed, and frees the hash.</summary>
        public void FinishContent(bool hash)
        {
            if (_hash is null)
            {
                return;
            }

            if (hash && Transferred == Size)
            {
                ContentComplete = true;
                Sha256 = Convert.ToHexStringLower(_hash.GetHashAndReset());
            }
            else if (Transferred == Size)
            {
                ContentComplete = true;
            }

            _hash.Dispose();
            _hash = null;
        }
    }

    /// <summary>
    /// Gathers one line (up to, not including, its newline). A line wholly inside the chunk is returned in place; one
    /// split across chunks is gathered in a buffer that never grows beyond the line bound.
    /// </summary>
    private sealed class LineReader(int maxLength)
    {
        private byte[] _buffer = [];
        private int _length;

        public LineStatus Read(ref ReadOnlySpan<byte> data, out ReadOnlySpan<byte> line)
        {
            line = default;
            var newline = data.IndexOf((byte)'\n');
            var take = newline < 0 ? data.Length : newline;
            if ((long)_length + take > maxLength)
            {
                return LineStatus.TooLong;
            }

            if (newline >= 0 && _length == 0)
            {
                line = data[..newline];
                data = data[(newline + 1)..];
                return LineStatus.Line;
            }

            if (_buffer.Length < _length + take)
            {
                Array.Resize(ref _buffer, Math.Min(maxLength, Math.Max(_length + take, Math.Max(64, _buffer.Length * 2))));
            }

            data[..take].CopyTo(_buffer.AsSpan(_length));
            _length += take;
            if (newline < 0)
            {
                data = [];
                return LineStatus.NeedMore;
            }

            data = data[(newline + 1)..];
            line = _buffer.AsSpan(0, _length);
            _length = 0;
            return LineStatus.Line;
        }
    }
}
