using System.Globalization;

namespace NhiAudit.Audit;

/// <summary>Naming and listing of segment files, shared by the writer and the verifier so both agree on the order.</summary>
internal static class AuditSegments
{
    private const string Prefix = "audit-";
    private const string Suffix = ".jsonl";

    /// <summary>The name of the segment whose first record has <paramref name="firstSequence"/>.</summary>
    public static string GetFileName(long firstSequence) =>
        string.Create(CultureInfo.InvariantCulture, $"{Prefix}{firstSequence:D12}{Suffix}");

    /// <summary>The segments in <paramref name="directory"/>, oldest first.</summary>
    /// <remarks>
    /// Sorted by the number rather than the name: twelve digits last about 190 days at 60k records/s, and a
    /// thirteen-digit name would sort before a twelve-digit one.
    /// </remarks>
    public static List<AuditSegment> List(string directory)
    {
        var segments = new List<AuditSegment>();
        foreach (var path in Directory.EnumerateFiles(directory, Prefix + "*" + Suffix))
        {
            var name = System.IO.Path.GetFileName(path);
            if (!name.StartsWith(Prefix, StringComparison.Ordinal) || !name.EndsWith(Suffix, StringComparison.Ordinal))
            {
                continue;
            }

            var digits = name.AsSpan(Prefix.Length, name.Length - Prefix.Length - Suffix.Length);
            if (digits.Length < 12 || digits.ContainsAnyExceptInRange('0', '9')
                || !long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var first))
            {
                continue;
            }

            segments.Add(new AuditSegment(path, name, first));
        }

        segments.Sort(static (a, b) =>
        {
            var byNumber = a.FirstSequence.CompareTo(b.FirstSequence);
            return byNumber != 0 ? byNumber : string.CompareOrdinal(a.Name, b.Name);
        });
        return segments;
    }
}
