using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using NhiAudit.Masking;
using NhiAudit.Postgres.Masking;

namespace NhiAudit.Postgres.Tests.Masking;

/// <summary>Policies, plans and hand-built messages for the masking tests.</summary>
internal static class MaskingTestData
{
    public static readonly byte[] HashKey = [.. Enumerable.Range(1, 32).Select(i => (byte)i)];

    /// <summary>A policy whose detectors find e-mail addresses and card numbers (redacted).</summary>
    public static MaskingPolicy PiiPolicy(MaskingStrategy strategy = MaskingStrategy.Redact) => MaskingPolicy.Create(
        [new MaskingRuleOptions { Name = "pii", Columns = ["public.customers.ssn"], Detectors = ["email", "credit-card"], Strategy = strategy }],
        HashKey);

    /// <summary>A policy without detectors.</summary>
    public static MaskingPolicy ColumnsOnly() => MaskingPolicy.Create(
        [new MaskingRuleOptions { Name = "pii", Columns = ["public.customers.ssn"], Strategy = MaskingStrategy.Redact }],
        HashKey);

    public static PgColumnMask Keep => new(false, MaskingStrategy.Redact, false, PgValueShape.Other, false);

    public static PgColumnMask Masked(MaskingStrategy strategy, PgValueShape shape = PgValueShape.Text, bool binary = false) =>
        new(true, strategy, false, shape, binary);

    public static PgColumnMask Detected(PgValueShape shape = PgValueShape.Text, bool binary = false) =>
        new(false, MaskingStrategy.Redact, true, shape, binary);

    public static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);

    /// <summary>The field list of a DataRow or binary COPY tuple: Int16 count, (Int32 length or -1, bytes)*.</summary>
    public static byte[] Fields(params byte[]?[] values)
    {
        var bytes = new List<byte>();
        var b2 = new byte[2];
        BinaryPrimitives.WriteInt16BigEndian(b2, (short)values.Length);
        bytes.AddRange(b2);
        foreach (var value in values)
        {
            var b4 = new byte[4];
            BinaryPrimitives.WriteInt32BigEndian(b4, value?.Length ?? -1);
            bytes.AddRange(b4);
            if (value is not null)
            {
                bytes.AddRange(value);
            }
        }

        return [.. bytes];
    }

    public static byte[] DataRow(params byte[]?[] values) => Frame('D', Fields(values));

    public static byte[] DataRow(params string?[] values) => DataRow([.. values.Select(v => v is null ? null : Utf8(v))]);

    public static byte[] Frame(char type, byte[] body)
    {
        var message = new byte[body.Length + 5];
        message[0] = (byte)type;
        BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(1), body.Length + 4);
        body.CopyTo(message, 5);
        return message;
    }

    /// <summary>Parses a DataRow (or binary tuple field list) back into values, checking the length header.</summary>
    public static byte[]?[] ParseRow(byte[] message, char type = 'D')
    {
        Assert.Equal((byte)type, message[0]);
        Assert.Equal(message.Length - 1, BinaryPrimitives.ReadInt32BigEndian(message.AsSpan(1)));
        int pos = 5;
        var values = ParseFields(message, ref pos);
        Assert.Equal(message.Length, pos);
        return values;
    }

    public static byte[]?[] ParseFields(byte[] data, ref int pos)
    {
        int count = BinaryPrimitives.ReadInt16BigEndian(data.AsSpan(pos));
        pos += 2;
        var values = new byte[]?[count];
        for (int i = 0; i < count; i++)
        {
            int length = BinaryPrimitives.ReadInt32BigEndian(data.AsSpan(pos));
            pos += 4;
            if (length >= 0)
            {
                values[i] = data.AsSpan(pos, length).ToArray();
                pos += length;
            }
        }

        return values;
    }

    public static string? Text(byte[]? value) => value is null ? null : Encoding.UTF8.GetString(value);

    /// <summary>What the policy makes of a whole value.</summary>
    public static string MaskOf(MaskingPolicy policy, string value, MaskingStrategy strategy)
    {
        var buffer = new byte[MaskingPolicy.MaxMaskedLength(Encoding.UTF8.GetByteCount(value))];
        int n = policy.MaskValue(Utf8(value), strategy, buffer);
        return Encoding.UTF8.GetString(buffer, 0, n);
    }

    /// <summary>What the policy's detectors make of a value, or null when they find nothing.</summary>
    public static string? DetectedOf(MaskingPolicy policy, string value)
    {
        var buffer = new byte[MaskingPolicy.MaxDetectedLength(Encoding.UTF8.GetByteCount(value))];
        int n = policy.MaskDetected(Utf8(value), buffer, out _, out _);
        return n < 0 ? null : Encoding.UTF8.GetString(buffer, 0, n);
    }

    /// <summary>Runs a rewrite into a fresh buffer; returns the bytes written, or null when it returned false (and checks nothing was written).</summary>
    public static byte[]? Rewrite(Func<IBufferWriter<byte>, bool> rewrite)
    {
        var buffer = new ArrayBufferWriter<byte>();
        bool changed = rewrite(buffer);
        if (!changed)
        {
            Assert.Equal(0, buffer.WrittenCount);
            return null;
        }

        return buffer.WrittenSpan.ToArray();
    }
}
