using System.Text;
using FsCheck;
using FsCheck.Xunit;
using NhiAudit.Audit;
using static NhiAudit.Tests.Audit.AuditLogFiles;

namespace NhiAudit.Tests.Audit;

public sealed class AuditVerifierTests : IDisposable
{
    private const string Segment1 = "audit-000000000001.jsonl";

    private readonly AuditTestDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task An_untouched_log_is_intact()
    {
        var lines = await WriteLogAsync(_dir.Path, records: 8);

        var result = AuditVerifier.Verify(_dir.Path);

        Assert.True(result.IsIntact);
        Assert.Null(result.Problem);
        Assert.Equal(10, result.RecordCount);
        Assert.Equal(10, result.LastSequence);
        Assert.Equal(Sha256Hex(lines[^1]), result.LastHash);
    }

    [Fact]
    public void An_empty_directory_is_an_intact_empty_log()
    {
        var result = AuditVerifier.Verify(_dir.Path);

        Assert.True(result.IsIntact);
        Assert.Equal(0, result.RecordCount);
        Assert.Null(result.LastSequence);
    }

    [Fact]
    public void A_missing_directory_is_an_error_not_an_empty_log() =>
        Assert.Throws<DirectoryNotFoundException>(() => AuditVerifier.Verify(_dir.File("nope")));

    [Fact]
    public async Task A_changed_byte_names_the_edited_record()
    {
        var lines = await WriteLogAsync(_dir.Path, records: 8);
        lines[3] = Replace(lines[3], "value-4", "valuX-4");
        Save(lines);

        var problem = Verify();

        Assert.Equal((AuditProblemKind.Edited, Segment1, 4, 4L), (problem.Kind, problem.File, problem.Line, problem.Sequence));
        Assert.StartsWith("record seq=4 (audit-000000000001.jsonl line 4) was edited: its hash does not match prev of seq=5", problem.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_edited_seq_field_names_that_record()
    {
        var lines = await WriteLogAsync(_dir.Path, records: 8);
        lines[3] = Replace(lines[3], "\"seq\":4,", "\"seq\":7,");
        Save(lines);

        var problem = Verify();

        Assert.Equal((AuditProblemKind.Edited, 4, 4L), (problem.Kind, problem.Line, problem.Sequence));
        Assert.Contains("seq field reads 7", problem.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_edit_that_breaks_the_JSON_names_that_line()
    {
        var lines = await WriteLogAsync(_dir.Path, records: 8);
        lines[3] = Replace(lines[3], "\"text\":", "\"text\"");
        Save(lines);

        var problem = Verify();

        Assert.Equal((AuditProblemKind.Malformed, 4, 4L), (problem.Kind, problem.Line, problem.Sequence));
        Assert.StartsWith("audit-000000000001.jsonl line 4 is not an audit record", problem.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_deleted_line_names_the_missing_seq()
    {
        var lines = await WriteLogAsync(_dir.Path, records: 8);
        lines.RemoveAt(4);
        Save(lines);

        var problem = Verify();

        Assert.Equal((AuditProblemKind.Deleted, 5, 5L), (problem.Kind, problem.Line, problem.Sequence));
        Assert.Equal("record seq=5 is missing (deleted) before audit-000000000001.jsonl line 5", problem.Message);
    }

    [Fact]
    public async Task Several_deleted_lines_name_the_missing_range()
    {
        var lines = await WriteLogAsync(_dir.Path, records: 8);
        lines.RemoveRange(4, 2);
        Save(lines);

        var problem = Verify();

        Assert.Equal(AuditProblemKind.Deleted, problem.Kind);
        Assert.Equal("records seq=5..6 are missing (deleted) before audit-000000000001.jsonl line 5", problem.Message);
    }

    [Fact]
    public async Task A_deleted_first_record_is_reported_even_though_nothing_precedes_it()
    {
        var lines = await WriteLogAsync(_dir.Path, records: 8);
        lines.RemoveAt(0);
        Save(lines);

        var problem = Verify();

        Assert.Equal((AuditProblemKind.Deleted, 1, 1L), (problem.Kind, problem.Line, problem.Sequence));
    }

    [Fact]
    public async Task Two_swapped_lines_are_named_as_a_swap()
    {
        var lines = await WriteLogAsync(_dir.Path, records: 8);
        (lines[3], lines[4]) = (lines[4], lines[3]);
        Save(lines);

        var problem = Verify();

        Assert.Equal((AuditProblemKind.Reordered, 4, 4L), (problem.Kind, problem.Line, problem.Sequence));
        Assert.StartsWith("records seq=4 and seq=5 were swapped", problem.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_record_moved_later_is_named_where_it_is_missing_and_where_it_went()
    {
        var lines = await WriteLogAsync(_dir.Path, records: 8);
        var moved = lines[2];
        lines.RemoveAt(2);
        lines.Insert(6, moved);
        Save(lines);

        var problem = Verify();

        Assert.Equal((AuditProblemKind.Reordered, 3, 3L), (problem.Kind, problem.Line, problem.Sequence));
        Assert.Equal("record seq=3 was moved: it is at audit-000000000001.jsonl line 7, but belongs before audit-000000000001.jsonl line 3", problem.Message);
    }

    [Fact]
    public async Task A_record_moved_earlier_is_named_where_it_now_sits()
    {
        var lines = await WriteLogAsync(_dir.Path, records: 8);
        var moved = lines[7];
        lines.RemoveAt(7);
        lines.Insert(2, moved);
        Save(lines);

        var problem = Verify();

        Assert.Equal((AuditProblemKind.Reordered, 3, 8L), (problem.Kind, problem.Line, problem.Sequence));
        Assert.StartsWith("record seq=8 was moved: it is at audit-000000000001.jsonl line 3", problem.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_inserted_copy_of_an_earlier_record_is_named()
    {
        var lines = await WriteLogAsync(_dir.Path, records: 8);
        lines.Insert(6, lines[2]);
        Save(lines);

        var problem = Verify();

        Assert.Equal((AuditProblemKind.Inserted, 7, 3L), (problem.Kind, problem.Line, problem.Sequence));
        Assert.StartsWith("audit-000000000001.jsonl line 7 (seq=3) was inserted", problem.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_inserted_forgery_that_chains_correctly_is_named_by_the_record_it_displaced()
    {
        var lines = await WriteLogAsync(_dir.Path, records: 8);
        var forged = Encoding.UTF8.GetBytes(
            $$"""{"seq":7,"prev":"{{Sha256Hex(lines[5])}}","time":"2026-11-28T08:00:00.0000000Z","type":"test","n":99}""" + "\n");
        lines.Insert(6, forged);
        Save(lines);

        var problem = Verify();

        Assert.Equal((AuditProblemKind.Inserted, 7, 7L), (problem.Kind, problem.Line, problem.Sequence));
        Assert.StartsWith("audit-000000000001.jsonl line 7 (seq=7) was inserted", problem.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_torn_final_line_is_reported_as_torn()
    {
        var lines = await WriteLogAsync(_dir.Path, records: 8);
        lines.Add(Encoding.UTF8.GetBytes("""{"seq":11,"prev":"ab"""));
        Save(lines);

        var result = AuditVerifier.Verify(_dir.Path);

        Assert.False(result.IsIntact);
        Assert.Equal(10, result.RecordCount);
        Assert.Equal((AuditProblemKind.Torn, 11), (result.Problem!.Kind, result.Problem.Line));
        Assert.Contains("torn", result.Problem.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_edit_of_the_last_line_of_a_segment_is_named_in_that_segment()
    {
        await WriteLogAsync(_dir.Path, records: 3);
        await WriteLogAsync(_dir.Path, records: 3);
        var first = _dir.File(Segment1);
        var lines = Lines(first);
        lines[^1] = Replace(lines[^1], "log.closed", "log.closeD");
        WriteLines(first, lines);

        var problem = Verify();

        Assert.Equal((AuditProblemKind.Edited, Segment1, 5, 5L), (problem.Kind, problem.File, problem.Line, problem.Sequence));
        Assert.StartsWith("record seq=5 (audit-000000000001.jsonl line 5) was edited: its hash does not match prev of seq=6 (audit-000000000006.jsonl line 1)", problem.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_edit_of_the_very_last_record_is_beyond_the_chain_alone()
    {
        // Nothing after it commits to its hash; signed checkpoints and a published LastHash are what catch this.
        var lines = await WriteLogAsync(_dir.Path, records: 3);
        var published = AuditVerifier.Verify(_dir.Path).LastHash;
        lines[^1] = Replace(lines[^1], "log.closed", "log.closeD");
        Save(lines);

        var result = AuditVerifier.Verify(_dir.Path);

        Assert.True(result.IsIntact);
        Assert.NotEqual(published, result.LastHash);
    }

    [Property(MaxTest = 200)]
    public bool Any_single_byte_change_before_the_last_line_is_detected_at_that_record_or_the_one_before(NonNegativeInt position, byte value)
    {
        var (segments, lines) = MutationTemplate.Value;
        var mutable = segments.SelectMany(s => s.Bytes).ToArray();
        var lastLineStart = mutable.Length - lines[^1].Length;
        var at = position.Get % lastLineStart;
        if (mutable[at] == value)
        {
            value ^= 0x01;
        }

        mutable[at] = value;
        using var dir = new AuditTestDirectory();
        var offset = 0;
        foreach (var (name, bytes) in segments)
        {
            File.WriteAllBytes(dir.File(name), mutable[offset..(offset + bytes.Length)]);
            offset += bytes.Length;
        }

        var result = AuditVerifier.Verify(dir.Path);
        if (result.IsIntact)
        {
            return false;
        }

        // The record a person is sent to: the changed one, or (when its prev was changed) the one it points back to.
        var changedLine = IndexOfLine(lines, at);
        var reported = segments.TakeWhile(s => s.Name != result.Problem!.File).Sum(s => SplitLines(s.Bytes).Count) + result.Problem!.Line - 1;
        return reported == changedLine || reported == changedLine - 1;
    }

    private static readonly Lazy<(List<(string Name, byte[] Bytes)> Segments, List<byte[]> Lines)> MutationTemplate = new(() =>
    {
        using var dir = new AuditTestDirectory();
        WriteLogAsync(dir.Path, records: 4).GetAwaiter().GetResult();
        WriteLogAsync(dir.Path, records: 4).GetAwaiter().GetResult();
        var segments = SegmentNames(dir.Path).Select(n => (n, File.ReadAllBytes(dir.File(n)))).ToList();
        return (segments, AllLines(dir.Path));
    });

    private static int IndexOfLine(List<byte[]> lines, int byteOffset)
    {
        var end = 0;
        for (var i = 0; i < lines.Count; i++)
        {
            end += lines[i].Length;
            if (byteOffset < end)
            {
                return i;
            }
        }

        throw new ArgumentOutOfRangeException(nameof(byteOffset));
    }

    private static List<byte[]> SplitLines(byte[] bytes)
    {
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllBytes(path, bytes);
            return AuditLogFiles.Lines(path);
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>A log of log.opened, <paramref name="records"/> test records and log.closed; returns the segment's lines.</summary>
    private static async Task<List<byte[]>> WriteLogAsync(string directory, int records)
    {
        string segment;
        await using (var log = await FileAuditLog.OpenAsync(new AuditOptions { Directory = directory }))
        {
            segment = log.SegmentPath;
            for (var i = 0; i < records; i++)
            {
                var seq = log.LastSequence + 1;
                await log.AppendAsync(Body($$"""{"type":"test","text":"value-{{seq}}"}"""));
            }
        }

        return AuditLogFiles.Lines(segment);
    }

    private static byte[] Replace(byte[] line, string from, string to)
    {
        var text = Text(line);
        Assert.Contains(from, text, StringComparison.Ordinal);
        return Encoding.UTF8.GetBytes(text.Replace(from, to, StringComparison.Ordinal));
    }

    private void Save(List<byte[]> lines) => WriteLines(_dir.File(Segment1), lines);

    private AuditVerificationProblem Verify()
    {
        var result = AuditVerifier.Verify(_dir.Path);
        Assert.False(result.IsIntact);
        return result.Problem!;
    }
}
