using System.Buffers;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace NhiAudit.Recording;

/// <summary>
/// Writes a terminal session as an asciicast v2 file (<c>asciinema play</c> replays it): a JSON header line, then one JSON
/// array per event, <c>[seconds, "o" | "i" | "r", data]</c>. Safe to call from several threads (the output and input pumps).
/// </summary>
/// <remarks>
/// Output and input are UTF-8 byte streams cut anywhere: a multi-byte sequence split across two calls is carried over to
/// the next call of the same direction, and invalid bytes become U+FFFD. Calls after <see cref="DisposeAsync"/> are ignored,
/// so a pump that outlives the session cannot fail it.
/// </remarks>
public sealed class AsciicastWriter : IAsyncDisposable
{
    private static readonly JsonWriterOptions JsonOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false);

    private readonly Lock _gate = new();
    private readonly FileStream _stream;
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private readonly TimeProvider _time;
    private readonly long _start;
    private readonly Decoder _outputDecoder = Utf8.GetDecoder();
    private readonly Decoder _inputDecoder = Utf8.GetDecoder();
    private readonly ArrayBufferWriter<byte> _line = new(256);
    private readonly Utf8JsonWriter _json;
    private char[] _chars = new char[256];
    private long _eventCount;
    private string? _sha256;
    private bool _disposed;

    private AsciicastWriter(string path, FileStream stream, TimeProvider time)
    {
        Path = path;
        _stream = stream;
        _time = time;
        _start = time.GetTimestamp();
        _json = new Utf8JsonWriter(_line, JsonOptions);
    }

    /// <summary>The file's path.</summary>
    public string Path { get; }

    /// <summary>How many events have been written.</summary>
    public long EventCount => Interlocked.Read(ref _eventCount);

    /// <summary>The lower-case hex SHA-256 of the whole file, set once the writer is disposed; null before.</summary>
    public string? Sha256 => Volatile.Read(ref _sha256);

    /// <summary>Creates the file (it must not exist; its directory is created) and writes the header.</summary>
    /// <param name="path">The file to create.</param>
    /// <param name="width">The terminal's width in columns.</param>
    /// <param name="height">The terminal's height in rows.</param>
    /// <param name="command">The command recorded, or null.</param>
    /// <param name="time">The clock; <see cref="TimeProvider.System"/> when null.</param>
    /// <param name="env">Environment entries for the header (<c>TERM</c>, <c>SHELL</c>), or null.</param>
    /// <returns>The writer.</returns>
    /// <exception cref="IOException">The file exists or cannot be created.</exception>
    public static AsciicastWriter Create(string path, int width, int height, string? command, TimeProvider? time = null, IReadOnlyDictionary<string, string>? env = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentOutOfRangeException.ThrowIfNegative(width);
        ArgumentOutOfRangeException.ThrowIfNegative(height);
        time ??= TimeProvider.System;

        var directory = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }

        var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.Read, bufferSize: 16 * 1024);
        var writer = new AsciicastWriter(path, stream, time);
        try
        {
            writer.WriteHeader(width, height, command, env);
        }
        catch
        {
            stream.Dispose();
            throw;
        }

        return writer;
    }

    /// <summary>Records terminal output (an <c>"o"</c> event).</summary>
    /// <param name="utf8">The bytes the terminal was sent.</param>
    public void Output(ReadOnlySpan<byte> utf8) => WriteText(utf8, "o", _outputDecoder);

    /// <summary>Records terminal input (an <c>"i"</c> event).</summary>
    /// <param name="utf8">The bytes typed.</param>
    public void Input(ReadOnlySpan<byte> utf8) => WriteText(utf8, "i", _inputDecoder);

    /// <summary>Records a terminal resize (an <c>"r"</c> event, <c>WxH</c>).</summary>
    /// <param name="width">The new width in columns.</param>
    /// <param name="height">The new height in rows.</param>
    public void Resize(int width, int height)
    {
        var size = width.ToString(CultureInfo.InvariantCulture) + "x" + height.ToString(CultureInfo.InvariantCulture);
        lock (_gate)
        {
            if (!_disposed)
            {
                WriteEvent("r", size.AsSpan());
            }
        }
    }

    /// <summary>Writes buffered events to the file.</summary>
    /// <param name="ct">Not used: the flush is short and synchronous.</param>
    /// <returns>A completed task.</returns>
    public ValueTask FlushAsync(CancellationToken ct = default)
    {
        lock (_gate)
        {
            if (!_disposed)
            {
                _stream.Flush();
            }
        }

        return ValueTask.CompletedTask;
    }

    /// <summary>Writes what is left of a split UTF-8 sequence (as U+FFFD), closes the file and sets <see cref="Sha256"/>.</summary>
    /// <returns>A task that completes when the file is closed.</returns>
    public async ValueTask DisposeAsync()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            FlushDecoder(_outputDecoder, "o");
            FlushDecoder(_inputDecoder, "i");
            _disposed = true;
        }

        await _stream.FlushAsync().ConfigureAwait(false);
        await _stream.DisposeAsync().ConfigureAwait(false);
        await _json.DisposeAsync().ConfigureAwait(false);
        Volatile.Write(ref _sha256, Convert.ToHexStringLower(_hash.GetHashAndReset()));
        _hash.Dispose();
    }

    private void WriteHeader(int width, int height, string? command, IReadOnlyDictionary<string, string>? env)
    {
        lock (_gate)
        {
            _json.Reset();
            _json.WriteStartObject();
            _json.WriteNumber("version", 2);
            _json.WriteNumber("width", width);
            _json.WriteNumber("height", height);
            _json.WriteNumber("timestamp", _time.GetUtcNow().ToUnixTimeSeconds());
            if (command is not null)
            {
                _json.WriteString("command", command);
            }

            if (env is not null)
            {
                _json.WriteStartObject("env");
                foreach (var (name, value) in env)
                {
                    _json.WriteString(name, value);
                }

                _json.WriteEndObject();
            }

            _json.WriteEndObject();
            _json.Flush();
            AppendLine();
        }
    }

    private void WriteText(ReadOnlySpan<byte> utf8, string code, Decoder decoder)
    {
        if (utf8.IsEmpty)
        {
            return;
        }

        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            var needed = decoder.GetCharCount(utf8, flush: false);
            if (needed == 0)
            {
                // Only the start of a split sequence: the decoder keeps it for the next call.
                decoder.GetChars(utf8, [], flush: false);
                return;
            }

            if (_chars.Length < needed)
            {
                _chars = new char[Math.Max(needed, _chars.Length * 2)];
            }

            var n = decoder.GetChars(utf8, _chars, flush: false);
            WriteEvent(code, _chars.AsSpan(0, n));
        }
    }

    private void FlushDecoder(Decoder decoder, string code)
    {
        Span<char> rest = stackalloc char[8];
        var n = decoder.GetChars([], rest, flush: true);
        if (n > 0)
        {
            WriteEvent(code, rest[..n]);
        }
    }

    /// <summary>Writes one event line; the caller holds the lock.</summary>
    private void WriteEvent(string code, ReadOnlySpan<char> data)
    {
        var elapsed = _time.GetElapsedTime(_start).TotalSeconds;
        Span<byte> seconds = stackalloc byte[32];
        if (!elapsed.TryFormat(seconds, out var written, "F6", CultureInfo.InvariantCulture))
        {
            written = 0;
        }

        _json.Reset();
        _json.WriteStartArray();
        if (written > 0)
        {
            _json.WriteRawValue(seconds[..written], skipInputValidation: true);
        }
        else
        {
            _json.WriteNumberValue(0);
        }

        _json.WriteStringValue(code);
        _json.WriteStringValue(data);
        _json.WriteEndArray();
        _json.Flush();
        AppendLine();
        Interlocked.Increment(ref _eventCount);
    }

    /// <summary>Writes the JSON in <see cref="_line"/> and a newline to the file and the hash; the caller holds the lock.</summary>
    private void AppendLine()
    {
        _line.GetSpan(1)[0] = (byte)'\n';
        _line.Advance(1);
        var bytes = _line.WrittenSpan;
        _stream.Write(bytes);
        _hash.AppendData(bytes);
        _line.ResetWrittenCount();
    }
}
