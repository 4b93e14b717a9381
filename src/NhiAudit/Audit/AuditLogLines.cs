namespace NhiAudit.Audit;

/// <summary>Every line of every segment in chain order, one at a time.</summary>
internal sealed class AuditLogLines : IDisposable
{
    private readonly List<AuditSegment> _segments;
    private int _segmentIndex = -1;
    private AuditLineReader? _reader;

    /// <summary>Reads <paramref name="segments"/> in the given order.</summary>
    public AuditLogLines(List<AuditSegment> segments) => _segments = segments;

    /// <summary>The current line's segment file name.</summary>
    public string File { get; private set; } = "";

    /// <summary>The current line's 1-based number inside <see cref="File"/>.</summary>
    public int LineNumber { get; private set; }

    /// <summary>The 0-based position of the current line in the whole log.</summary>
    public long Index { get; private set; } = -1;

    /// <summary>Whether the current line is in the newest segment.</summary>
    public bool InLastSegment => _segmentIndex == _segments.Count - 1;

    /// <summary>Moves to the next line; see <see cref="AuditLineReader.TryReadLine"/> for the span's lifetime.</summary>
    public bool TryReadLine(out ReadOnlySpan<byte> line, out bool complete)
    {
        while (true)
        {
            if (_reader is not null && _reader.TryReadLine(out line, out complete))
            {
                LineNumber++;
                Index++;
                return true;
            }

            _reader?.Dispose();
            _reader = null;
            if (++_segmentIndex >= _segments.Count)
            {
                line = default;
                complete = false;
                return false;
            }

            var segment = _segments[_segmentIndex];
            // A live log is being appended to and may be rotated; reading must not stand in the writer's way.
            var stream = new FileStream(segment.Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, bufferSize: 1, FileOptions.SequentialScan);
            _reader = new AuditLineReader(stream);
            File = segment.Name;
            LineNumber = 0;
        }
    }

    /// <inheritdoc />
    public void Dispose() => _reader?.Dispose();
}
