using System.Text.Json;

namespace NhiAudit.Sinks.OpenTelemetry;

/// <summary>
/// The OTLP sink's memory of how far each replica's chain has been exported. OTLP has no way to ask a collector
/// what it holds, so this file is the only answer to <see cref="Audit.Sinks.IAuditSink.GetDeliveredSequenceAsync"/>.
/// Format: <c>{"replicas":{"NAME":{"seq":N,"hash":"…"}}}</c>.
/// </summary>
/// <remarks>
/// Each write goes to a temporary file that is flushed to disk and then renamed over the cursor, so a crash leaves
/// the old or the new cursor, never a torn one. The directory itself is not fsync'd (.NET cannot open a directory
/// handle portably): after a power cut the rename may be lost and the cursor may fall back to its previous value,
/// which only means records are exported again, the documented at-least-once case; it can never skip a record.
/// </remarks>
internal sealed class SinkCursorFile
{
    private readonly string _path;

    public SinkCursorFile(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        _path = System.IO.Path.GetFullPath(path);
    }

    public string Path => _path;

    /// <summary>Every replica's position; empty when the file does not exist yet.</summary>
    /// <exception cref="InvalidDataException">The file exists but is not a cursor.</exception>
    public Dictionary<string, CursorPosition> Read()
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(_path);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return new Dictionary<string, CursorPosition>(StringComparer.Ordinal);
        }

        // A damaged cursor is not read as 0: that would silently re-export the whole log. The sink reports itself
        // down instead (the pump logs why) until a person fixes or deletes the file.
        try
        {
            using var document = JsonDocument.Parse(bytes);
            var positions = new Dictionary<string, CursorPosition>(StringComparer.Ordinal);
            foreach (var replica in document.RootElement.GetProperty("replicas").EnumerateObject())
            {
                var sequence = replica.Value.GetProperty("seq").GetInt64();
                if (sequence < 0)
                {
                    throw new InvalidDataException($"seq of replica '{replica.Name}' is negative");
                }

                positions[replica.Name] = new CursorPosition(sequence, replica.Value.TryGetProperty("hash", out var hash) ? hash.GetString() : null);
            }

            return positions;
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or FormatException or InvalidDataException)
        {
            throw new InvalidDataException($"the OTLP sink cursor {_path} is damaged ({ex.Message}); fix or delete it (deleting re-exports the whole log)", ex);
        }
    }

    /// <summary>Replaces the file with <paramref name="positions"/>, atomically and durably.</summary>
    public void Write(IReadOnlyDictionary<string, CursorPosition> positions)
    {
        var directory = System.IO.Path.GetDirectoryName(_path)!;
        Directory.CreateDirectory(directory);
        var temp = _path + "." + Guid.NewGuid().ToString("N") + ".tmp";
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                using (var json = new Utf8JsonWriter(stream))
                {
                    json.WriteStartObject();
                    json.WriteStartObject("replicas");
                    foreach (var (replica, position) in positions.OrderBy(p => p.Key, StringComparer.Ordinal))
                    {
                        json.WriteStartObject(replica);
                        json.WriteNumber("seq", position.Sequence);
                        if (position.Hash is not null)
                        {
                            json.WriteString("hash", position.Hash);
                        }

                        json.WriteEndObject();
                    }

                    json.WriteEndObject();
                    json.WriteEndObject();
                }

                // Durable before the rename: otherwise a crash could leave a renamed but empty cursor.
                stream.Flush(flushToDisk: true);
            }

            File.Move(temp, _path, overwrite: true);
        }
        finally
        {
            File.Delete(temp);
        }
    }
}

/// <summary>The last exported record of one replica's chain.</summary>
/// <param name="Sequence">Its <c>seq</c>: every record up to it has been exported.</param>
/// <param name="Hash">Its hash, kept for diagnostics; <see langword="null"/> in a cursor written by hand.</param>
internal readonly record struct CursorPosition(long Sequence, string? Hash);
