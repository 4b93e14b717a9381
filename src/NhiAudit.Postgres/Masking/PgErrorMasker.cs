using System.Buffers;
using System.Buffers.Binary;
using NhiAudit.Masking;
using NhiAudit.Postgres.Protocol;

namespace NhiAudit.Postgres.Masking;

/// <summary>What the error masker needs to know about the statement an error answers.</summary>
/// <param name="StatementTouchesProtected">The statement reads or writes a protected column.</param>
/// <param name="StatementRunsProtectedCode">The statement runs code (a function) that reads protected data: whatever it raises may carry it, so the free-text fields are masked whole.</param>
/// <param name="IsProtectedTable">Whether a table (schema, which may be null, and name from the error's 's' and 't' fields) has a protected column.</param>
internal readonly record struct PgErrorMaskContext(bool StatementTouchesProtected, bool StatementRunsProtectedCode, Func<string?, string?, bool> IsProtectedTable);

/// <summary>
/// Masks the values an ErrorResponse or NoticeResponse may echo: key and row values in the DETAIL of constraint
/// violations, the input quoted in data exceptions, and whatever the value detectors find in the free-text fields.
/// Errors are rare: this path may allocate.
/// </summary>
internal static class PgErrorMasker
{
    private const string MaskedDetail = "(detail masked by the gateway)";

    /// <summary>Writes the masked copy of one 'E' or 'N' message when a field changes; otherwise writes nothing.</summary>
    /// <param name="message">The whole message: type, Int32 length, (code byte, string)*, 0.</param>
    /// <param name="context">What the answered statement touched.</param>
    /// <param name="policy">The masking policy.</param>
    /// <param name="output">Receives the rewritten message.</param>
    /// <param name="counters">Counted into.</param>
    /// <returns>True when a rewritten message was written.</returns>
    /// <exception cref="PgProtocolException">08P01 when malformed.</exception>
    public static bool TryRewrite(
        ReadOnlySpan<byte> message,
        in PgErrorMaskContext context,
        MaskingPolicy policy,
        IBufferWriter<byte> output,
        ref PgMaskCounters counters)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(output);
        if (message.IsEmpty || message[0] is not ((byte)'E' or (byte)'N'))
        {
            throw new PgProtocolException("invalid ErrorResponse message: expected type 'E' or 'N'");
        }

        byte type = message[0];
        ReadOnlySpan<byte> payload = PgValueMasking.Body(message, type, "ErrorResponse");

        // Pass 1: check the layout and find SQLSTATE, schema and table.
        var reader = new PgPayloadReader(payload, "ErrorResponse");
        ReadOnlySpan<byte> sqlState = default;
        string? schema = null, table = null;
        while (true)
        {
            byte code = reader.ReadByte();
            if (code == 0)
            {
                break;
            }

            ReadOnlySpan<byte> value = reader.ReadCString();
            switch (code)
            {
                case (byte)'C': sqlState = value; break;
                case (byte)'s': schema = PgText.DecodeText(value); break;
                case (byte)'t': table = PgText.DecodeText(value); break;
                default: break;
            }
        }

        reader.EnsureEnd();
        bool sensitive = context.StatementTouchesProtected
            || (table is not null && context.IsProtectedTable is not null && context.IsProtectedTable(schema, table));
        bool detect = policy.HasDetectors;
        if (!sensitive && !detect)
        {
            return false;
        }

        bool class22 = sqlState.StartsWith("22"u8);
        bool class23 = sqlState.StartsWith("23"u8);

        // Pass 2: rebuild the fields.
        var rebuilt = new ArrayBufferWriter<byte>(message.Length + 64);
        rebuilt.Write<byte>([type, 0, 0, 0, 0]);
        bool changed = false;
        reader = new PgPayloadReader(payload, "ErrorResponse");
        while (true)
        {
            byte code = reader.ReadByte();
            if (code == 0)
            {
                break;
            }

            ReadOnlySpan<byte> value = reader.ReadCString();
            byte[]? replaced = null;
            if (context.StatementRunsProtectedCode && code is (byte)'M' or (byte)'D' or (byte)'H' or (byte)'W' or (byte)'q')
            {
                replaced = "(masked by the gateway: raised by code that reads protected data)"u8.ToArray();
            }
            else if (sensitive && code == (byte)'D')
            {
                replaced = MaskDetail(value, class22 || class23);
            }
            else if (sensitive && class22 && code == (byte)'M')
            {
                replaced = MaskQuoted(value);
            }

            if (replaced is not null)
            {
                counters.MaskedValues++;
                value = replaced;
            }

            byte[]? detected = null;
            if (detect && code is (byte)'M' or (byte)'D' or (byte)'H' or (byte)'W' or (byte)'q')
            {
                detected = Detect(value, policy, ref counters);
            }

            changed |= replaced is not null || detected is not null;
            rebuilt.Write<byte>([code]);
            rebuilt.Write(detected is not null ? detected : value);
            rebuilt.Write<byte>([0]);
        }

        if (!changed)
        {
            return false;
        }

        rebuilt.Write<byte>([0]);
        Span<byte> destination = output.GetSpan(rebuilt.WrittenCount);
        rebuilt.WrittenSpan.CopyTo(destination);
        BinaryPrimitives.WriteInt32BigEndian(destination[1..], rebuilt.WrittenCount - 1);
        output.Advance(rebuilt.WrittenCount);
        return true;
    }

    /// <summary>Runs the value detectors over one field; null when they found nothing.</summary>
    private static byte[]? Detect(ReadOnlySpan<byte> value, MaskingPolicy policy, ref PgMaskCounters counters)
    {
        byte[] scratch = ArrayPool<byte>.Shared.Rent(MaskingPolicy.MaxDetectedLength(value.Length));
        try
        {
            int length = policy.MaskDetected(value, scratch, out SensitiveValueKinds found, out _);
            if (length < 0)
            {
                return null;
            }

            counters.DetectedValues++;
            counters.Found |= found;

            // In free text a NULL cannot stand: the detector's replacement (a redaction) is kept. A NUL would end the field early.
            byte[] result = scratch.AsSpan(0, length).ToArray();
            result.AsSpan().Replace((byte)0, (byte)'?');
            return result;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(scratch);
        }
    }

    /// <summary>
    /// Masks the value tuples of a DETAIL: each <c>(…)</c> after <c>)=</c> and the row of <c>Failing row contains (…)</c>.
    /// Null when nothing was masked.
    /// </summary>
    internal static byte[]? MaskDetail(ReadOnlySpan<byte> detail, bool wholeWhenUnknown)
    {
        var result = new ArrayBufferWriter<byte>(detail.Length + 16);
        bool found = false;
        int pos = 0;
        int failing = detail.IndexOf("Failing row contains "u8);
        while (pos < detail.Length)
        {
            int rest = failing >= pos ? failing - pos : -1;
            int key = detail[pos..].IndexOf(")=("u8);
            if (rest >= 0 && (key < 0 || rest <= key))
            {
                // The whole row is sensitive: replace everything after the prefix.
                result.Write(detail.Slice(pos, rest + "Failing row contains "u8.Length));
                result.Write("(****)."u8);
                found = true;
                pos = detail.Length;
                break;
            }

            if (key < 0)
            {
                break;
            }

            int open = pos + key + 2;
            result.Write(detail[pos..open]);
            result.Write("(****)"u8);
            found = true;
            int close = MatchingParen(detail, open);
            if (close < 0)
            {
                pos = detail.Length;
                break;
            }

            pos = close + 1;
        }

        if (!found)
        {
            return wholeWhenUnknown ? System.Text.Encoding.ASCII.GetBytes(MaskedDetail) : null;
        }

        result.Write(detail[pos..]);
        return result.WrittenSpan.ToArray();
    }

    /// <summary>Replaces every double-quoted substring by <c>"****"</c>; an unpaired quote masks the rest. Null when none.</summary>
    internal static byte[]? MaskQuoted(ReadOnlySpan<byte> text)
    {
        int first = text.IndexOf((byte)'"');
        if (first < 0)
        {
            return null;
        }

        var result = new ArrayBufferWriter<byte>(text.Length + 8);
        int pos = 0;
        while (pos < text.Length)
        {
            int open = text[pos..].IndexOf((byte)'"');
            if (open < 0)
            {
                break;
            }

            open += pos;
            result.Write(text[pos..open]);
            result.Write("\"****\""u8);
            int close = text[(open + 1)..].IndexOf((byte)'"');
            if (close < 0)
            {
                pos = text.Length;
                break;
            }

            pos = open + 1 + close + 1;
        }

        result.Write(text[pos..]);
        return result.WrittenSpan.ToArray();
    }

    /// <summary>The index of the ')' closing the '(' at <paramref name="open"/>, or -1 when unbalanced.</summary>
    private static int MatchingParen(ReadOnlySpan<byte> text, int open)
    {
        int depth = 0;
        for (int i = open; i < text.Length; i++)
        {
            if (text[i] == (byte)'(')
            {
                depth++;
            }
            else if (text[i] == (byte)')' && --depth == 0)
            {
                return i;
            }
        }

        return -1;
    }
}
