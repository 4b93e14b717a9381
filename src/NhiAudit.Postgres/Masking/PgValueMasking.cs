using System.Buffers.Binary;
using NhiAudit.Masking;
using NhiAudit.Postgres.Protocol;

namespace NhiAudit.Postgres.Masking;

/// <summary>What <see cref="PgValueMasking.Apply"/> did to one value.</summary>
internal enum PgMaskedValue : byte
{
    /// <summary>Nothing to change: the caller keeps the original bytes.</summary>
    Unchanged,

    /// <summary>The value becomes NULL.</summary>
    Null,

    /// <summary>The replacement was written to the destination.</summary>
    Written,
}

/// <summary>
/// Masks one value per its <see cref="PgColumnMask"/>, and the length-prefixed field lists DataRow and binary COPY
/// share (<c>Int16 count, (Int32 length or -1, bytes)*</c>). Writes straight into the caller's span: no allocation.
/// </summary>
internal static class PgValueMasking
{
    /// <summary>The largest message the maskers build (PostgreSQL's own limit on a message is 1 GB).</summary>
    private const long MaxOutput = 0x7FFF_FFC7;

    /// <summary>The most bytes <see cref="Apply"/> writes for a value of <paramref name="valueLength"/> bytes.</summary>
    public static long MaxOutputLength(in PgColumnMask column, int valueLength)
    {
        long bound = valueLength;
        if (column.Mask)
        {
            // '"' + mask + '"', after jsonb's version byte.
            bound = Math.Max(bound, (long)MaskingPolicy.MaxMaskedLength(valueLength) + 3);
        }

        if (column.Detect)
        {
            bound = Math.Max(bound, ((long)valueLength * 4) + 32 + 1);
        }

        return bound;
    }

    /// <summary>True when <see cref="Apply"/> may change a non-NULL value of this column.</summary>
    public static bool MayChange(in PgColumnMask column) =>
        column.Mask || (column.Detect && !(column.Binary && column.Shape == PgValueShape.Other));

    /// <summary>Masks one non-NULL value.</summary>
    /// <param name="value">The value as sent (text or binary format per <see cref="PgColumnMask.Binary"/>).</param>
    /// <param name="column">What to do.</param>
    /// <param name="policy">The masking policy.</param>
    /// <param name="destination">At least <see cref="MaxOutputLength"/> bytes.</param>
    /// <param name="written">The bytes written when <see cref="PgMaskedValue.Written"/>.</param>
    /// <param name="counters">Counted into.</param>
    public static PgMaskedValue Apply(
        ReadOnlySpan<byte> value,
        in PgColumnMask column,
        MaskingPolicy policy,
        Span<byte> destination,
        out int written,
        ref PgMaskCounters counters)
    {
        written = 0;
        if (column.Mask)
        {
            counters.MaskedValues++;
            if (column.Strategy == MaskingStrategy.Null || column.Shape == PgValueShape.Other)
            {
                return PgMaskedValue.Null;
            }

            switch (column.Shape)
            {
                case PgValueShape.Text:
                    written = policy.MaskValue(value, column.Strategy, destination);
                    return PgMaskedValue.Written;
                case PgValueShape.Jsonb when column.Binary:
                    {
                        ReadOnlySpan<byte> body = value.IsEmpty ? value : value[1..];
                        destination[0] = 1;
                        destination[1] = (byte)'"';
                        int n = policy.MaskValue(body, column.Strategy, destination[2..]);
                        destination[n + 2] = (byte)'"';
                        written = n + 3;
                        return PgMaskedValue.Written;
                    }

                default:
                    {
                        destination[0] = (byte)'"';
                        int n = policy.MaskValue(value, column.Strategy, destination[1..]);
                        destination[n + 1] = (byte)'"';
                        written = n + 2;
                        return PgMaskedValue.Written;
                    }
            }
        }

        if (!column.Detect || (column.Binary && column.Shape == PgValueShape.Other))
        {
            return PgMaskedValue.Unchanged;
        }

        bool versioned = column.Binary && column.Shape == PgValueShape.Jsonb;
        if (versioned && value.IsEmpty)
        {
            return PgMaskedValue.Unchanged;
        }

        int offset = versioned ? 1 : 0;
        int length = policy.MaskDetected(value[offset..], destination[offset..], out SensitiveValueKinds found, out bool wholeValueNull);
        if (length < 0)
        {
            return PgMaskedValue.Unchanged;
        }

        counters.DetectedValues++;
        counters.Found |= found;
        if (wholeValueNull)
        {
            return PgMaskedValue.Null;
        }

        if (versioned)
        {
            destination[0] = value[0];
        }

        written = length + offset;
        return PgMaskedValue.Written;
    }

    /// <summary>
    /// Reads a field list (count, then length-prefixed values) and checks it: returns the bytes a masked copy needs at
    /// most, and whether any value may change.
    /// </summary>
    /// <exception cref="PgProtocolException">08P01 when malformed; XX000 when the count is not the plan's.</exception>
    public static long MeasureFields(ref PgPayloadReader reader, ReadOnlySpan<PgColumnMask> plan, string what, out bool mayChange)
    {
        int count = reader.ReadUInt16();
        CheckShape(count, plan.Length, what);
        long bound = 2;
        mayChange = false;
        for (int i = 0; i < count; i++)
        {
            int length = reader.ReadInt32();
            bound += 4;
            if (length == -1)
            {
                continue;
            }

            reader.Skip(length);
            if (MayChange(plan[i]))
            {
                mayChange = true;
                bound += MaxOutputLength(plan[i], length);
            }
            else
            {
                bound += length;
            }
        }

        return bound;
    }

    /// <summary>Writes the masked copy of a field list already checked by <see cref="MeasureFields"/>.</summary>
    /// <returns>True when any value changed.</returns>
    public static bool WriteFields(
        ref PgPayloadReader reader,
        ReadOnlySpan<PgColumnMask> plan,
        MaskingPolicy policy,
        Span<byte> destination,
        ref int position,
        ref PgMaskCounters counters)
    {
        int count = reader.ReadUInt16();
        BinaryPrimitives.WriteUInt16BigEndian(destination[position..], (ushort)count);
        int pos = position + 2;
        bool changed = false;
        for (int i = 0; i < count; i++)
        {
            int length = reader.ReadInt32();
            if (length == -1)
            {
                BinaryPrimitives.WriteInt32BigEndian(destination[pos..], -1);
                pos += 4;
                continue;
            }

            ReadOnlySpan<byte> value = reader.ReadBytes(length);
            int written = 0;
            PgMaskedValue outcome = MayChange(plan[i])
                ? Apply(value, plan[i], policy, destination[(pos + 4)..], out written, ref counters)
                : PgMaskedValue.Unchanged;
            switch (outcome)
            {
                case PgMaskedValue.Null:
                    BinaryPrimitives.WriteInt32BigEndian(destination[pos..], -1);
                    pos += 4;
                    changed = true;
                    break;
                case PgMaskedValue.Written:
                    BinaryPrimitives.WriteInt32BigEndian(destination[pos..], written);
                    pos += 4 + written;
                    changed = true;
                    break;
                default:
                    BinaryPrimitives.WriteInt32BigEndian(destination[pos..], length);
                    value.CopyTo(destination[(pos + 4)..]);
                    pos += 4 + length;
                    break;
            }
        }

        position = pos;
        return changed;
    }

    /// <summary>Fails closed when a row does not have the columns the plan was made for.</summary>
    /// <exception cref="PgProtocolException">XX000.</exception>
    public static void CheckShape(int count, int expected, string what)
    {
        if (count != expected)
        {
            throw new PgProtocolException(
                "XX000",
                $"{what} row shape does not match its description: {count} columns where {expected} were announced; the masking plan cannot be applied");
        }
    }

    /// <summary>Checks a message bound before it is requested from a writer.</summary>
    /// <exception cref="PgProtocolException">54000 when the masked message could exceed PostgreSQL's message limit.</exception>
    public static int CheckBound(long bound, string what)
    {
        if (bound > MaxOutput)
        {
            throw new PgProtocolException("54000", $"{what} is too large to mask ({bound} bytes at most after masking)");
        }

        return (int)bound;
    }

    /// <summary>Checks the type byte and length header of a whole message and returns its body.</summary>
    /// <exception cref="PgProtocolException">08P01 when they do not match.</exception>
    public static ReadOnlySpan<byte> Body(ReadOnlySpan<byte> message, byte type, string what)
    {
        if (message.Length < 5 || message[0] != type)
        {
            throw new PgProtocolException($"invalid {what} message: expected type '{(char)type}' and a 4-byte length");
        }

        int length = BinaryPrimitives.ReadInt32BigEndian(message[1..]);
        if (length != message.Length - 1)
        {
            throw new PgProtocolException($"invalid {what} message: length {length} but {message.Length - 1} bytes follow the type");
        }

        return message[5..];
    }
}
