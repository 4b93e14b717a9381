namespace NhiAudit.Audit;

/// <summary>
/// Reads a segment one line at a time, keeping only the current line in memory, so verifying a multi-gigabyte
/// log needs memory for its longest record, not for a segment.
/// </summary>
internal sealed class AuditLineReader : IDisposable
{
    private readonly Stream _stream;
    private byte[] _buffer;
    private int _start;
    private int _end;
    private int _scanned;
    private bool _eof;

    /// <summary>Reads from <paramref name="stream"/>, which the reader owns.</summary>
    public AuditLineReader(Stream stream, int bufferSize = 64 * 1024)
    {
        _stream = stream;
        _buffer = new byte[bufferSize];
    }

    /// <summary>
    /// Reads the next line. <paramref name="line"/> includes its newline when <paramref name="complete"/>; at the end of
    /// the file a rest without newline comes back with <paramref name="complete"/> false. The span is valid until the
    /// next call.
    /// </summary>
    public bool TryReadLine(out ReadOnlySpan<byte> line, out bool complete)
    {
        while (true)
        {
            var newline = _buffer.AsSpan(_start + _scanned, _end - _start - _scanned).IndexOf((byte)'\n');
            if (newline >= 0)
            {
                var length = _scanned + newline + 1;
                line = _buffer.AsSpan(_start, length);
                _start += length;
                _scanned = 0;
                complete = true;
                return true;
            }

            // Remember how far we looked so a long line is scanned once, not once per refill.
            _scanned = _end - _start;
            if (_eof)
            {
                complete = false;
                if (_end > _start)
                {
                    line = _buffer.AsSpan(_start, _end - _start);
                    _start = _end;
                    _scanned = 0;
                    return true;
                }

                line = default;
                return false;
            }

            if (_start > 0)
            {
                Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
                _end -= _start;
                _start = 0;
            }

            if (_end == _buffer.Length)
            {
                Array.Resize(ref _buffer, _buffer.Length * 2);
            }

            var read = _stream.Read(_buffer, _end, _buffer.Length - _end);
            if (read == 0)
            {
                _eof = true;
            }
            else
            {
                _end += read;
            }
        }
    }

    /// <inheritdoc />
    public void Dispose() => _stream.Dispose();
}
