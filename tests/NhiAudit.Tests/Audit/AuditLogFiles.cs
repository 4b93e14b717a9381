using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace NhiAudit.Tests.Audit;

/// <summary>Reads a log directory the way a person with a text editor would.</summary>
internal static class AuditLogFiles
{
    public static string[] SegmentNames(string directory) =>
        Directory.GetFiles(directory, "audit-*.jsonl").Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray()!;

    /// <summary>The lines of one file, each with its trailing newline (a torn rest has none).</summary>
    public static List<byte[]> Lines(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var lines = new List<byte[]>();
        var start = 0;
        for (var i = 0; i < bytes.Length; i++)
        {
            if (bytes[i] == (byte)'\n')
            {
                lines.Add(bytes[start..(i + 1)]);
                start = i + 1;
            }
        }

        if (start < bytes.Length)
        {
            lines.Add(bytes[start..]);
        }

        return lines;
    }

    /// <summary>All lines of all segments in order.</summary>
    public static List<byte[]> AllLines(string directory) =>
        SegmentNames(directory).SelectMany(name => Lines(Path.Combine(directory, name))).ToList();

    public static void WriteLines(string path, IEnumerable<byte[]> lines) => File.WriteAllBytes(path, lines.SelectMany(l => l).ToArray());

    public static JsonElement Parse(byte[] line) => JsonDocument.Parse(line).RootElement.Clone();

    public static string Text(byte[] line) => Encoding.UTF8.GetString(line);

    public static string Sha256Hex(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    public static ReadOnlyMemory<byte> Body(string json) => Encoding.UTF8.GetBytes(json);
}
