using System.Buffers.Binary;
using System.Text;
using NhiAudit.Postgres.Protocol;

namespace NhiAudit.Postgres.Tests.Protocol;

public class PgParameterRendererTests
{
    private static string Binary(uint oid, byte[] value, int maxChars = 1024) => PgParameterRenderer.Render(value, 1, oid, maxChars);

    private static byte[] Int16(short v)
    {
        var b = new byte[2];
        BinaryPrimitives.WriteInt16BigEndian(b, v);
        return b;
    }

    private static byte[] Int32(int v)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(b, v);
        return b;
    }

    private static byte[] Int64(long v)
    {
        var b = new byte[8];
        BinaryPrimitives.WriteInt64BigEndian(b, v);
        return b;
    }

    private static byte[] Numeric(short weight, ushort sign, short dscale, params short[] digits)
    {
        var b = new PgTestMessages().Int16((short)digits.Length).Int16(weight).Int16(unchecked((short)sign)).Int16(dscale);
        foreach (short d in digits)
        {
            b.Int16(d);
        }

        return b.ToArray();
    }

    [Fact]
    public void Text_format_is_the_utf8_text_whatever_the_type()
    {
        Assert.Equal("héllo", PgParameterRenderer.Render("héllo"u8, 0, PgTypeOids.Int4));
        Assert.Equal("42", PgParameterRenderer.Render("42"u8, 0, 0));
        Assert.Equal(string.Empty, PgParameterRenderer.Render([], 0, 25));
    }

    [Fact]
    public void Text_is_truncated_with_a_byte_count_marker()
    {
        byte[] value = Encoding.UTF8.GetBytes(new string('a', 3000));
        Assert.Equal(new string('a', 1024) + "…(3000 bytes)", PgParameterRenderer.Render(value, 0, 25));
        Assert.Equal(new string('a', 20) + "…(3000 bytes)", PgParameterRenderer.Render(value, 0, 25, maxChars: 20));
    }

    [Fact]
    public void Truncation_never_splits_a_surrogate_pair()
    {
        byte[] value = Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("😀", 20)));
        string rendered = PgParameterRenderer.Render(value, 0, 25, maxChars: 17);
        string kept = rendered[..rendered.IndexOf('…', StringComparison.Ordinal)];
        Assert.Equal(16, kept.Length);
        Assert.False(char.IsHighSurrogate(kept[^1]));
        Assert.EndsWith("…(80 bytes)", rendered, StringComparison.Ordinal);
    }

    [Fact]
    public void Scalars()
    {
        Assert.Equal("true", Binary(16, [1]));
        Assert.Equal("false", Binary(16, [0]));
        Assert.Equal("-2", Binary(21, Int16(-2)));
        Assert.Equal("2147483647", Binary(23, Int32(int.MaxValue)));
        Assert.Equal("-9223372036854775808", Binary(20, Int64(long.MinValue)));
        Assert.Equal("3000000000", Binary(26, Int32(unchecked((int)3_000_000_000))));
        Assert.Equal("1.5", Binary(700, BitConverter.GetBytes(BinaryPrimitives.ReverseEndianness(BitConverter.SingleToInt32Bits(1.5f)))));
        Assert.Equal("0.1", Binary(701, Int64(BitConverter.DoubleToInt64Bits(0.1))));
        Assert.Equal("NaN", Binary(701, Int64(BitConverter.DoubleToInt64Bits(double.NaN))));
        Assert.Equal("Infinity", Binary(701, Int64(BitConverter.DoubleToInt64Bits(double.PositiveInfinity))));
        Assert.Equal("-Infinity", Binary(701, Int64(BitConverter.DoubleToInt64Bits(double.NegativeInfinity))));
    }

    [Fact]
    public void Text_types_and_jsonb()
    {
        foreach (uint oid in new uint[] { 25, 1043, 1042, 19, 114 })
        {
            Assert.Equal("abc", Binary(oid, "abc"u8.ToArray()));
        }

        Assert.Equal("{\"a\": 1}", Binary(3802, [1, .. "{\"a\": 1}"u8.ToArray()]));
        Assert.Equal("\\x027b7d", Binary(3802, [2, (byte)'{', (byte)'}']));
    }

    [Fact]
    public void Bytea_and_unknown_types_are_hex()
    {
        Assert.Equal("\\xdeadbeef", Binary(17, [0xDE, 0xAD, 0xBE, 0xEF]));
        Assert.Equal("\\x0102", Binary(0, [1, 2]));
        Assert.Equal("\\x0102", Binary(99999, [1, 2]));
        Assert.Equal("\\x", Binary(17, []));
        Assert.Equal("\\x0102", PgParameterRenderer.Render([1, 2], 7, 23));
        Assert.Equal("\\x" + string.Concat(Enumerable.Repeat("ab", 9)) + "…(100 bytes)", Binary(17, Enumerable.Repeat((byte)0xAB, 100).ToArray(), maxChars: 20));
    }

    [Theory]
    [InlineData(23u, 3)]
    [InlineData(20u, 4)]
    [InlineData(21u, 1)]
    [InlineData(16u, 2)]
    [InlineData(2950u, 15)]
    [InlineData(1082u, 8)]
    [InlineData(1114u, 4)]
    [InlineData(1186u, 12)]
    [InlineData(1700u, 7)]
    public void Wrong_length_for_the_type_is_hex_not_an_exception(uint oid, int length)
    {
        Assert.StartsWith("\\x", Binary(oid, new byte[length]), StringComparison.Ordinal);
    }

    [Fact]
    public void Uuid()
    {
        var guid = Guid.Parse("0b9e5f7a-1c2d-4e3f-8a9b-0c1d2e3f4a5b");
        Assert.Equal("0b9e5f7a-1c2d-4e3f-8a9b-0c1d2e3f4a5b", Binary(2950, guid.ToByteArray(bigEndian: true)));
    }

    [Theory]
    [InlineData(0, 1, 0, new short[] { }, "0")]
    [InlineData(0, 0x4000, 1, new short[] { 1, 5000 }, "-1.5")]
    [InlineData(1, 0, 4, new short[] { 1234, 5678, 9012 }, "12345678.9012")]
    [InlineData(0, 0xC000, 0, new short[] { }, "NaN")]
    [InlineData(0, 0xD000, 0, new short[] { }, "Infinity")]
    [InlineData(0, 0xF000, 0, new short[] { }, "-Infinity")]
    [InlineData(-1, 0, 4, new short[] { 1 }, "0.0001")]
    [InlineData(-1, 0, 1, new short[] { 5000 }, "0.5")]
    [InlineData(1, 0, 0, new short[] { 10 }, "100000")]
    [InlineData(0, 0, 2, new short[] { }, "0.00")]
    [InlineData(0, 0, 2, new short[] { 1, 5000 }, "1.50")]
    [InlineData(-1, 0x4000, 8, new short[] { 12, 3400 }, "-0.00123400")]
    [InlineData(-2, 0, 8, new short[] { 12, 3400 }, "0.00000012")]
    [InlineData(2, 0, 0, new short[] { 1, 0, 1 }, "100000001")]
    public void Numeric_binary(short weight, int sign, short dscale, short[] digits, string expected)
    {
        byte[] value = Numeric(weight, (ushort)sign, dscale, digits);
        if (sign == 1)
        {
            // The theory's "1" marks a plain zero: sign 0.
            value = Numeric(weight, 0, dscale, digits);
        }

        Assert.Equal(expected, Binary(1700, value));
    }

    [Fact]
    public void Numeric_invalid_forms_are_hex_and_huge_ones_are_truncated()
    {
        Assert.StartsWith("\\x", Binary(1700, Numeric(0, 0x1234, 0)), StringComparison.Ordinal);
        Assert.StartsWith("\\x", Binary(1700, Numeric(0, 0, 0, 10000)), StringComparison.Ordinal);
        Assert.StartsWith("\\x", Binary(1700, Numeric(0, 0, -1, 1)), StringComparison.Ordinal);

        string huge = Binary(1700, Numeric(32767, 0, 0, 1), maxChars: 64);
        Assert.Equal("1" + new string('0', 63) + "…(10 bytes)", huge);
    }

    [Fact]
    public void Dates()
    {
        Assert.Equal("2000-01-01", Binary(1082, Int32(0)));
        Assert.Equal("1999-12-31", Binary(1082, Int32(-1)));
        int days = new DateOnly(2024, 2, 29).DayNumber - new DateOnly(2000, 1, 1).DayNumber;
        Assert.Equal("2024-02-29", Binary(1082, Int32(days)));
        int firstAd = new DateOnly(1, 1, 1).DayNumber - new DateOnly(2000, 1, 1).DayNumber;
        Assert.Equal("0001-01-01", Binary(1082, Int32(firstAd)));
        Assert.Equal("0000-12-31", Binary(1082, Int32(firstAd - 1)));
        Assert.Equal("infinity", Binary(1082, Int32(int.MaxValue)));
        Assert.Equal("-infinity", Binary(1082, Int32(int.MinValue)));
        Assert.StartsWith("\\x", Binary(1082, Int32(-3_000_000)), StringComparison.Ordinal);
    }

    [Fact]
    public void Timestamps_are_iso_8601()
    {
        long Micros(DateTime t) => (t - new DateTime(2000, 1, 1, 0, 0, 0, DateTimeKind.Unspecified)).Ticks / 10;

        Assert.Equal("2000-01-01T00:00:00", Binary(1114, Int64(0)));
        Assert.Equal("2024-02-29T12:34:56.789", Binary(1114, Int64(Micros(new DateTime(2024, 2, 29, 12, 34, 56, 789)))));
        Assert.Equal("1999-12-31T23:59:59.999999", Binary(1114, Int64(-1)));
        Assert.Equal("1970-01-01T00:00:00Z", Binary(1184, Int64(Micros(new DateTime(1970, 1, 1)))));
        Assert.Equal("2000-01-02T00:00:01.5Z", Binary(1184, Int64(86_400_000_000 + 1_500_000)));
        Assert.Equal("infinity", Binary(1184, Int64(long.MaxValue)));
        Assert.Equal("-infinity", Binary(1114, Int64(long.MinValue)));
    }

    [Fact]
    public void Times()
    {
        Assert.Equal("01:02:03.000001", Binary(1083, Int64(3_723_000_001)));
        Assert.Equal("24:00:00", Binary(1083, Int64(86_400_000_000)));
        Assert.StartsWith("\\x", Binary(1083, Int64(-1)), StringComparison.Ordinal);
        byte[] timetz = [.. Int64(36_000_000_000), .. Int32(-3600)];
        Assert.Equal("10:00:00+01:00", Binary(1266, timetz));
    }

    [Theory]
    [InlineData(14, 3, 14_706_500_000L, "1 year 2 mons 3 days 04:05:06.5")]
    [InlineData(0, 0, 0L, "00:00:00")]
    [InlineData(-1, 0, -3_600_000_000L, "-1 mons -01:00:00")]
    [InlineData(0, 1, -3_600_000_000L, "1 day -01:00:00")]
    [InlineData(0, -1, 3_600_000_000L, "-1 days +01:00:00")]
    [InlineData(12, 0, 0L, "1 year")]
    [InlineData(0, 0, 90_000_000_000L, "25:00:00")]
    public void Intervals_in_postgres_style(int months, int days, long micros, string expected)
    {
        byte[] value = [.. Int64(micros), .. Int32(days), .. Int32(months)];
        Assert.Equal(expected, Binary(1186, value));
    }

    [Fact]
    public void Append_reuses_a_builder()
    {
        var builder = new StringBuilder("x=");
        PgParameterRenderer.Append(builder, Int32(7), 1, 23);
        Assert.Equal("x=7", builder.ToString());
    }
}
