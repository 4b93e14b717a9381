using System.Buffers;
using NhiAudit.Masking;
using NhiAudit.Postgres.Masking;
using NhiAudit.Postgres.Protocol;
using static NhiAudit.Postgres.Tests.Masking.MaskingTestData;

namespace NhiAudit.Postgres.Tests.Masking;

public class PgDataRowMaskerTests
{
    private static readonly MaskingPolicy Pii = PiiPolicy();

    private static byte[]? Rewrite(byte[] message, PgColumnMask[] plan, ref PgMaskCounters counters, MaskingPolicy? policy = null)
    {
        var buffer = new ArrayBufferWriter<byte>();
        bool changed = PgDataRowMasker.TryRewrite(message, plan, policy ?? Pii, buffer, ref counters);
        if (!changed)
        {
            Assert.Equal(0, buffer.WrittenCount);
            return null;
        }

        return buffer.WrittenSpan.ToArray();
    }

    public static TheoryData<MaskingStrategy, int, bool> StrategyShapeFormat()
    {
        var data = new TheoryData<MaskingStrategy, int, bool>();
        foreach (var strategy in Enum.GetValues<MaskingStrategy>())
        {
            foreach (var shape in Enum.GetValues<PgValueShape>())
            {
                data.Add(strategy, (int)shape, false);
                data.Add(strategy, (int)shape, true);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(StrategyShapeFormat))]
    public void Masks_each_strategy_and_shape(MaskingStrategy strategy, int shapeCode, bool binary)
    {
        var shape = (PgValueShape)shapeCode;
        string clear = "123-45-6789";
        byte[] value = shape == PgValueShape.Jsonb && binary ? [1, .. Utf8("\"" + clear + "\"")] : Utf8(shape is PgValueShape.Json or PgValueShape.Jsonb ? "\"" + clear + "\"" : clear);
        byte[] message = DataRow([Utf8("7"), value]);
        var counters = new PgMaskCounters();

        var rewritten = Rewrite(message, [Keep, Masked(strategy, shape, binary)], ref counters);

        Assert.NotNull(rewritten);
        var values = ParseRow(rewritten);
        Assert.Equal("7", Text(values[0]));
        Assert.Equal(1, counters.MaskedValues);
        if (strategy == MaskingStrategy.Null || shape == PgValueShape.Other)
        {
            Assert.Null(values[1]);
            return;
        }

        byte[] body = shape == PgValueShape.Jsonb && binary ? value[1..] : value;
        string mask = MaskOf(Pii, Text(body)!, strategy);
        Assert.DoesNotContain("6789-", Text(values[1]));
        switch (shape)
        {
            case PgValueShape.Text:
                Assert.Equal(mask, Text(values[1]));
                break;
            case PgValueShape.Jsonb when binary:
                Assert.Equal([1, .. Utf8("\"" + mask + "\"")], values[1]);
                break;
            default:
                Assert.Equal("\"" + mask + "\"", Text(values[1]));
                break;
        }
    }

    [Fact]
    public void Redact_writes_stars_and_hash_is_stable()
    {
        var counters = new PgMaskCounters();
        var redacted = ParseRow(Rewrite(DataRow("123-45-6789"), [Masked(MaskingStrategy.Redact)], ref counters)!);
        Assert.Equal("****", Text(redacted[0]));

        var first = ParseRow(Rewrite(DataRow("123-45-6789"), [Masked(MaskingStrategy.Hash)], ref counters)!);
        var second = ParseRow(Rewrite(DataRow("123-45-6789"), [Masked(MaskingStrategy.Hash)], ref counters)!);
        var other = ParseRow(Rewrite(DataRow("123-45-6780"), [Masked(MaskingStrategy.Hash)], ref counters)!);
        Assert.Equal(first[0], second[0]);
        Assert.NotEqual(first[0], other[0]);
        Assert.StartsWith("hmac:", Text(first[0]));
        Assert.Equal(4, counters.MaskedValues);
    }

    [Fact]
    public void Null_values_pass_and_an_unchanged_row_is_not_written()
    {
        var counters = new PgMaskCounters();
        Assert.Null(Rewrite(DataRow("1", null, "plain note"), [Keep, Masked(MaskingStrategy.Redact), Detected()], ref counters));
        Assert.Null(Rewrite(DataRow("1", "x"), [Keep, Keep], ref counters));
        Assert.Equal(default, counters);
    }

    [Fact]
    public void Null_stays_null_next_to_a_masked_value()
    {
        var counters = new PgMaskCounters();
        var values = ParseRow(Rewrite(DataRow(null, "123-45-6789", ""), [Masked(MaskingStrategy.Redact), Masked(MaskingStrategy.Redact), Keep], ref counters)!);
        Assert.Null(values[0]);
        Assert.Equal("****", Text(values[1]));
        Assert.Equal("", Text(values[2]));
        Assert.Equal(1, counters.MaskedValues);
    }

    [Fact]
    public void Detectors_mask_inside_text()
    {
        var counters = new PgMaskCounters();
        string note = "write to bob@example.com today";
        var values = ParseRow(Rewrite(DataRow("1", note), [Keep, Detected()], ref counters)!);

        Assert.Equal(DetectedOf(Pii, note), Text(values[1]));
        Assert.DoesNotContain("bob@example.com", Text(values[1]));
        Assert.Equal(1, counters.DetectedValues);
        Assert.True(counters.Found.HasFlag(SensitiveValueKinds.Email));
        Assert.Equal(0, counters.MaskedValues);
    }

    [Fact]
    public void Detectors_keep_the_jsonb_version_byte()
    {
        var counters = new PgMaskCounters();
        string json = "{\"mail\":\"bob@example.com\"}";
        var values = ParseRow(Rewrite(DataRow([[1, .. Utf8(json)]]), [Detected(PgValueShape.Jsonb, binary: true)], ref counters)!);

        Assert.Equal((byte)1, values[0]![0]);
        Assert.Equal(DetectedOf(Pii, json), Text(values[0]![1..]));
    }

    [Fact]
    public void Detectors_with_the_null_strategy_make_the_value_null()
    {
        var policy = PiiPolicy(MaskingStrategy.Null);
        var counters = new PgMaskCounters();
        var values = ParseRow(Rewrite(DataRow("mail bob@example.com"), [Detected()], ref counters, policy)!);
        Assert.Null(values[0]);
        Assert.Equal(1, counters.DetectedValues);
    }

    [Fact]
    public void Detectors_skip_binary_values_of_other_types()
    {
        var counters = new PgMaskCounters();
        Assert.Null(Rewrite(DataRow("bob@example.com"), [Detected(PgValueShape.Other, binary: true)], ref counters));
    }

    [Fact]
    public void A_row_of_another_shape_fails_closed()
    {
        var counters = new PgMaskCounters();
        var ex = Assert.Throws<PgProtocolException>(() => Rewrite(DataRow("1", "2"), [Keep], ref counters));
        Assert.Equal("XX000", ex.SqlState);
        Assert.Contains("row shape", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("44")]
    [InlineData("440000000A000100000001")]
    [InlineData("440000000B00010000000531")]
    [InlineData("440000000B0001FFFFFFFE31")]
    [InlineData("440000000D000100000001310000")]
    [InlineData("510000000A0001000000013131")]
    public void Malformed_rows_are_protocol_violations(string hex)
    {
        var counters = new PgMaskCounters();
        var ex = Assert.Throws<PgProtocolException>(() => Rewrite(Convert.FromHexString(hex), [Masked(MaskingStrategy.Redact)], ref counters));
        Assert.Equal("08P01", ex.SqlState);
    }

    [Fact]
    public void Rewriting_allocates_nothing_after_warm_up()
    {
        byte[] row = DataRow("42", "Ada Lovelace", "123-45-6789", "4111-1111-1111-1111");
        PgColumnMask[] plan = [Keep, Keep, Masked(MaskingStrategy.Redact), Masked(MaskingStrategy.Hash)];
        var buffer = new ArrayBufferWriter<byte>(4096);
        var counters = new PgMaskCounters();
        for (int i = 0; i < 100; i++)
        {
            buffer.ResetWrittenCount();
            Assert.True(PgDataRowMasker.TryRewrite(row, plan, Pii, buffer, ref counters));
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++)
        {
            buffer.ResetWrittenCount();
            PgDataRowMasker.TryRewrite(row, plan, Pii, buffer, ref counters);
        }

        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(0, allocated);
    }
}
