using System.Buffers;
using System.Buffers.Binary;
using NhiAudit.Masking;
using NhiAudit.Postgres.Masking;
using NhiAudit.Postgres.Protocol;
using static NhiAudit.Postgres.Tests.Masking.MaskingTestData;

namespace NhiAudit.Postgres.Tests.Masking;

public class PgCopyOutMaskerTests
{
    private static readonly MaskingPolicy Pii = PiiPolicy();

    private static readonly byte[] Signature = [(byte)'P', (byte)'G', (byte)'C', (byte)'O', (byte)'P', (byte)'Y', (byte)'\n', 0xFF, (byte)'\r', (byte)'\n', 0];

    private static PgCopyOutStatement Statement(string sql)
    {
        Assert.Equal(PgCopyParseResult.CopyToStdout, PgCopyStatementParser.Parse(sql, out var statement, out _));
        return statement!;
    }

    private static byte[] CopyData(string text) => Frame('d', Utf8(text));

    /// <summary>The rewritten data as text, or null when the masker left the message alone.</summary>
    private static string? Rewrite(PgCopyOutMasker masker, byte[] message, ref PgMaskCounters counters)
    {
        var buffer = new ArrayBufferWriter<byte>();
        if (!masker.TryRewrite(message, buffer, ref counters))
        {
            Assert.Equal(0, buffer.WrittenCount);
            return null;
        }

        byte[] written = buffer.WrittenSpan.ToArray();
        Assert.Equal((byte)'d', written[0]);
        Assert.Equal(written.Length - 1, BinaryPrimitives.ReadInt32BigEndian(written.AsSpan(1)));
        return Text(written[5..]);
    }

    [Fact]
    public void Text_rows_mask_fields_and_keep_nulls()
    {
        var masker = new PgCopyOutMasker(Statement("COPY customers TO STDOUT"), [Keep, Keep, Masked(MaskingStrategy.Redact), Masked(MaskingStrategy.Null)], Pii);
        var counters = new PgMaskCounters();

        Assert.Equal("1\tAda\\tL\t****\t\\N\n", Rewrite(masker, CopyData("1\tAda\\tL\t123-45-6789\tx\n"), ref counters));
        Assert.Equal(2, counters.MaskedValues);
        Assert.Null(Rewrite(masker, CopyData("2\tx\t\\N\t\\N\n"), ref counters));
    }

    [Fact]
    public void Text_rows_split_on_unescaped_delimiters_only()
    {
        var masker = new PgCopyOutMasker(Statement("COPY t TO STDOUT"), [Keep, Masked(MaskingStrategy.Redact), Keep], Pii);
        var counters = new PgMaskCounters();

        Assert.Equal("a\\\tb\t****\tc\n", Rewrite(masker, CopyData("a\\\tb\tsecret\\\\x\tc\n"), ref counters));
    }

    [Fact]
    public void Text_hash_sees_the_decoded_value()
    {
        var masker = new PgCopyOutMasker(Statement("COPY t TO STDOUT"), [Masked(MaskingStrategy.Hash)], Pii);
        var counters = new PgMaskCounters();
        Assert.Equal(MaskOf(Pii, "a\tb", MaskingStrategy.Hash) + "\n", Rewrite(masker, CopyData("a\\tb\n"), ref counters));
    }

    [Fact]
    public void Text_masks_containing_the_delimiter_are_escaped()
    {
        var masker = new PgCopyOutMasker(Statement("COPY t TO STDOUT (DELIMITER '*')"), [Masked(MaskingStrategy.Redact), Keep], Pii);
        var counters = new PgMaskCounters();
        Assert.Equal("\\*\\*\\*\\**x\n", Rewrite(masker, CopyData("secret*x\n"), ref counters));
    }

    [Fact]
    public void Text_detectors_mask_inside_fields()
    {
        var masker = new PgCopyOutMasker(Statement("COPY t TO STDOUT"), [Keep, Detected()], Pii);
        var counters = new PgMaskCounters();
        string? rewritten = Rewrite(masker, CopyData("1\tmail bob@example.com\n"), ref counters);
        Assert.Equal("1\t" + DetectedOf(Pii, "mail bob@example.com") + "\n", rewritten);
        Assert.Equal(1, counters.DetectedValues);
        Assert.Null(Rewrite(masker, CopyData("2\tnothing here\n"), ref counters));
    }

    [Fact]
    public void Header_line_is_never_masked()
    {
        var masker = new PgCopyOutMasker(Statement("COPY t TO STDOUT (FORMAT csv, HEADER)"), [Keep, Masked(MaskingStrategy.Redact)], Pii);
        var counters = new PgMaskCounters();
        Assert.Null(Rewrite(masker, CopyData("id,ssn\n"), ref counters));
        Assert.Equal("1,****\n", Rewrite(masker, CopyData("1,123-45-6789\n"), ref counters));
        Assert.Equal(1, counters.MaskedValues);
    }

    [Fact]
    public void Header_and_rows_in_one_message()
    {
        var masker = new PgCopyOutMasker(Statement("COPY t TO STDOUT WITH CSV HEADER"), [Keep, Masked(MaskingStrategy.Redact)], Pii);
        var counters = new PgMaskCounters();
        Assert.Equal("id,ssn\n1,****\n2,****\n", Rewrite(masker, CopyData("id,ssn\n1,123-45-6789\n2,\"98,7\"\n"), ref counters));
    }

    [Fact]
    public void Csv_quoted_fields_and_nulls()
    {
        var masker = new PgCopyOutMasker(
            Statement("COPY t TO STDOUT (FORMAT csv)"),
            [Keep, Masked(MaskingStrategy.Redact), Masked(MaskingStrategy.Null), Masked(MaskingStrategy.Redact), Keep],
            Pii);
        var counters = new PgMaskCounters();

        Assert.Equal(
            "\"a,\"\"b\"\"\",****,,,\"x\ny\"\n",
            Rewrite(masker, CopyData("\"a,\"\"b\"\"\",\"se,\"\"cret\",value,,\"x\ny\"\n"), ref counters));
        Assert.Equal(2, counters.MaskedValues);
    }

    [Fact]
    public void Csv_empty_quoted_string_is_not_null()
    {
        var masker = new PgCopyOutMasker(Statement("COPY t TO STDOUT (FORMAT csv)"), [Masked(MaskingStrategy.Redact)], Pii);
        var counters = new PgMaskCounters();
        Assert.Equal("****\n", Rewrite(masker, CopyData("\"\"\n"), ref counters));
        Assert.Null(Rewrite(masker, CopyData("\n"), ref counters));
    }

    [Fact]
    public void Csv_json_mask_is_quoted()
    {
        var masker = new PgCopyOutMasker(Statement("COPY t TO STDOUT (FORMAT csv)"), [Masked(MaskingStrategy.Redact, PgValueShape.Json)], Pii);
        var counters = new PgMaskCounters();
        Assert.Equal("\"\"\"****\"\"\"\n", Rewrite(masker, CopyData("\"{\"\"a\"\":1}\"\n"), ref counters));
    }

    [Fact]
    public void Csv_with_an_escape_character()
    {
        var masker = new PgCopyOutMasker(Statement("COPY t TO STDOUT WITH CSV QUOTE '''' ESCAPE '\\'"), [Masked(MaskingStrategy.Hash), Keep], Pii);
        var counters = new PgMaskCounters();
        Assert.Equal(MaskOf(Pii, "it's", MaskingStrategy.Hash) + ",'x'\n", Rewrite(masker, CopyData("'it\\'s','x'\n"), ref counters));
    }

    [Fact]
    public void Csv_null_string_collision_is_quoted()
    {
        var masker = new PgCopyOutMasker(Statement("COPY t TO STDOUT (FORMAT csv, NULL '****')"), [Masked(MaskingStrategy.Redact)], Pii);
        var counters = new PgMaskCounters();
        Assert.Equal("\"****\"\n", Rewrite(masker, CopyData("secret\n"), ref counters));
        Assert.Null(Rewrite(masker, CopyData("****\n"), ref counters));
    }

    [Fact]
    public void Text_row_of_another_shape_fails_closed()
    {
        var masker = new PgCopyOutMasker(Statement("COPY t TO STDOUT"), [Keep, Masked(MaskingStrategy.Redact)], Pii);
        var counters = new PgMaskCounters();
        Assert.Equal("XX000", Assert.Throws<PgProtocolException>(() => Rewrite(masker, CopyData("1\t2\t3\n"), ref counters)).SqlState);
    }

    [Fact]
    public void Csv_quote_across_messages_is_refused()
    {
        var masker = new PgCopyOutMasker(Statement("COPY t TO STDOUT (FORMAT csv)"), [Keep, Masked(MaskingStrategy.Redact)], Pii);
        var counters = new PgMaskCounters();
        Assert.Equal("08P01", Assert.Throws<PgProtocolException>(() => Rewrite(masker, CopyData("1,\"abc"), ref counters)).SqlState);
    }

    private static byte[] BinaryHeader(byte[]? extension = null)
    {
        extension ??= [];
        var header = new byte[19 + extension.Length];
        Signature.CopyTo(header, 0);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(15), extension.Length);
        extension.CopyTo(header, 19);
        return header;
    }

    private static readonly byte[] Trailer = [0xFF, 0xFF];

    [Fact]
    public void Binary_header_tuples_and_trailer()
    {
        var statement = Statement("COPY customers TO STDOUT (FORMAT binary)");
        var masker = new PgCopyOutMasker(statement, [Keep with { Binary = true }, Masked(MaskingStrategy.Redact, binary: true), Masked(MaskingStrategy.Redact, PgValueShape.Jsonb, binary: true)], Pii);
        var counters = new PgMaskCounters();
        byte[] header = BinaryHeader([9, 9]);
        byte[] id = [0, 0, 0, 7];

        var buffer = new ArrayBufferWriter<byte>();
        Assert.True(masker.TryRewrite(Frame('d', [.. header, .. Fields(id, Utf8("123-45-6789"), [1, .. Utf8("{}")])]), buffer, ref counters));
        byte[] first = buffer.WrittenSpan.ToArray();
        Assert.Equal(first.Length - 1, BinaryPrimitives.ReadInt32BigEndian(first.AsSpan(1)));
        Assert.Equal(header, first[5..(5 + header.Length)]);
        int pos = 5 + header.Length;
        var values = ParseFields(first, ref pos);
        Assert.Equal(first.Length, pos);
        Assert.Equal(id, values[0]);
        Assert.Equal("****", Text(values[1]));
        Assert.Equal([1, .. Utf8("\"****\"")], values[2]);

        Assert.Null(Rewrite(masker, Frame('d', Fields(id, null, null)), ref counters));

        buffer.ResetWrittenCount();
        Assert.True(masker.TryRewrite(Frame('d', Fields(id, Utf8("x"), null)), buffer, ref counters));
        pos = 5;
        Assert.Equal("****", Text(ParseFields(buffer.WrittenSpan.ToArray(), ref pos)[1]));

        Assert.Null(Rewrite(masker, Frame('d', Trailer), ref counters));
        Assert.Equal(3, counters.MaskedValues);
        Assert.Equal("08P01", Assert.Throws<PgProtocolException>(() => Rewrite(masker, Frame('d', Fields(id, null, null)), ref counters)).SqlState);
    }

    [Fact]
    public void Binary_header_with_the_trailer_only()
    {
        var masker = new PgCopyOutMasker(Statement("COPY BINARY t TO STDOUT"), [Masked(MaskingStrategy.Redact, binary: true)], Pii);
        var counters = new PgMaskCounters();
        Assert.Null(Rewrite(masker, Frame('d', [.. BinaryHeader(), .. Trailer]), ref counters));
    }

    [Fact]
    public void Binary_without_signature_is_refused()
    {
        var masker = new PgCopyOutMasker(Statement("COPY BINARY t TO STDOUT"), [Masked(MaskingStrategy.Redact, binary: true)], Pii);
        var counters = new PgMaskCounters();
        Assert.Equal("08P01", Assert.Throws<PgProtocolException>(() => Rewrite(masker, Frame('d', Fields(Utf8("x"))), ref counters)).SqlState);
    }

    [Fact]
    public void Binary_with_oids_fails_closed()
    {
        var masker = new PgCopyOutMasker(Statement("COPY BINARY t TO STDOUT"), [Masked(MaskingStrategy.Redact, binary: true)], Pii);
        var counters = new PgMaskCounters();
        byte[] header = BinaryHeader();
        header[12] = 1;
        Assert.Equal("XX000", Assert.Throws<PgProtocolException>(() => Rewrite(masker, Frame('d', [.. header, .. Fields(Utf8("x"))]), ref counters)).SqlState);
    }

    [Fact]
    public void Binary_tuple_of_another_shape_fails_closed()
    {
        var masker = new PgCopyOutMasker(Statement("COPY BINARY t TO STDOUT"), [Masked(MaskingStrategy.Redact, binary: true)], Pii);
        var counters = new PgMaskCounters();
        Assert.Equal("XX000", Assert.Throws<PgProtocolException>(() => Rewrite(masker, Frame('d', [.. BinaryHeader(), .. Fields(Utf8("x"), Utf8("y"))]), ref counters)).SqlState);
    }
}
