using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using NhiAudit.Masking;
using NhiAudit.Postgres.Protocol;

namespace NhiAudit.Postgres.Masking;

/// <summary>
/// Masks the CopyData ('d') messages of one <c>COPY … TO STDOUT</c>. PostgreSQL sends one row per CopyData in text and
/// CSV (with its '\n'; several rows in one message are handled too, a row split over messages is refused), and in
/// binary the file header in front of the first tuple and the -1 trailer in a message of its own. Stateful: create one
/// per COPY.
/// </summary>
internal sealed class PgCopyOutMasker
{
    private const int StackScratch = 512;

    private readonly PgCopyOutStatement _statement;
    private readonly PgColumnMask[] _plan;
    private readonly MaskingPolicy _policy;
    private readonly byte[] _null;
    private readonly byte _delimiter;
    private readonly byte _quote;
    private readonly byte _escape;
    private bool _headerDone;
    private bool _trailerSeen;

    /// <summary>Creates the masker of one COPY.</summary>
    /// <param name="statement">The parsed statement (format, delimiter, quote, NULL string, header).</param>
    /// <param name="plan">One entry per output column; <see cref="PgColumnMask.Binary"/> set for the binary format.</param>
    /// <param name="policy">The masking policy.</param>
    public PgCopyOutMasker(PgCopyOutStatement statement, PgColumnMask[] plan, MaskingPolicy policy)
    {
        ArgumentNullException.ThrowIfNull(statement);
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(policy);
        _statement = statement;
        _plan = plan;
        _policy = policy;
        _null = Encoding.UTF8.GetBytes(statement.NullString);
        _delimiter = statement.Delimiter;
        _quote = statement.Quote;
        _escape = statement.Escape;
        _headerDone = statement.Format != PgCopyFormat.Binary && !statement.Header;
    }

    /// <summary>Bytes that mean something after a backslash in text format.</summary>
    private static readonly SearchValues<byte> SpecialAfterBackslash = SearchValues.Create("bfnrtvxN01234567\\"u8);

    /// <summary>The binary COPY file signature.</summary>
    private static ReadOnlySpan<byte> Signature => [(byte)'P', (byte)'G', (byte)'C', (byte)'O', (byte)'P', (byte)'Y', (byte)'\n', 0xFF, (byte)'\r', (byte)'\n', 0];

    /// <summary>
    /// Writes the masked copy of one CopyData to <paramref name="output"/> when a value changes; otherwise writes nothing.
    /// </summary>
    /// <param name="message">The whole message: 'd', Int32 length, data.</param>
    /// <param name="output">Receives the rewritten message.</param>
    /// <param name="counters">Counted into.</param>
    /// <returns>True when a rewritten message was written.</returns>
    /// <exception cref="PgProtocolException">08P01 when malformed; XX000 when a row's field count is not the plan's.</exception>
    public bool TryRewrite(ReadOnlySpan<byte> message, IBufferWriter<byte> output, ref PgMaskCounters counters)
    {
        ArgumentNullException.ThrowIfNull(output);
        ReadOnlySpan<byte> data = PgValueMasking.Body(message, (byte)'d', "CopyData");
        return _statement.Format == PgCopyFormat.Binary
            ? RewriteBinary(data, output, ref counters)
            : RewriteText(data, output, ref counters);
    }

    private bool RewriteBinary(ReadOnlySpan<byte> data, IBufferWriter<byte> output, ref PgMaskCounters counters)
    {
        var measure = new PgPayloadReader(data, "CopyData");
        int headerLength = 0;
        if (!_headerDone)
        {
            if (data.Length < 19 || !data[..11].SequenceEqual(Signature))
            {
                throw new PgProtocolException("invalid binary COPY data: missing PGCOPY signature");
            }

            measure.Skip(11);
            int flags = measure.ReadInt32();
            if ((flags & 0x10000) != 0)
            {
                // Tuples would carry an OID field first (WITH OIDS, gone since PostgreSQL 12): refuse rather than misread.
                throw new PgProtocolException("XX000", "binary COPY data with OIDs cannot be masked");
            }

            int extension = measure.ReadInt32();
            measure.Skip(extension);
            headerLength = measure.Position;
        }

        long bound = 5 + headerLength;
        bool mayChange = false;
        bool trailer = _trailerSeen;
        while (measure.Remaining > 0)
        {
            if (trailer)
            {
                throw new PgProtocolException("invalid binary COPY data: data after the trailer");
            }

            if (measure.Remaining >= 2 && BinaryPrimitives.ReadInt16BigEndian(data[measure.Position..]) == -1)
            {
                measure.Skip(2);
                bound += 2;
                trailer = true;
                continue;
            }

            bound += PgValueMasking.MeasureFields(ref measure, _plan, "binary COPY", out bool tupleMayChange);
            mayChange |= tupleMayChange;
        }

        _headerDone = true;
        _trailerSeen = trailer;
        if (!mayChange)
        {
            return false;
        }

        Span<byte> destination = output.GetSpan(PgValueMasking.CheckBound(bound, "CopyData"));
        data[..headerLength].CopyTo(destination[5..]);
        int position = 5 + headerLength;
        var reader = new PgPayloadReader(data, "CopyData");
        reader.Skip(headerLength);
        bool changed = false;
        while (reader.Remaining > 0)
        {
            if (BinaryPrimitives.ReadInt16BigEndian(data[reader.Position..]) == -1)
            {
                reader.Skip(2);
                BinaryPrimitives.WriteInt16BigEndian(destination[position..], -1);
                position += 2;
                continue;
            }

            changed |= PgValueMasking.WriteFields(ref reader, _plan, _policy, destination, ref position, ref counters);
        }

        return changed && Finish(destination, position, output);
    }

    private bool RewriteText(ReadOnlySpan<byte> data, IBufferWriter<byte> output, ref PgMaskCounters counters)
    {
        bool csv = _statement.Format == PgCopyFormat.Csv;

        // Pass 1: check every row's shape and bound the output and scratch sizes.
        int headerEnd = _headerDone ? 0 : LineEnd(data, 0);
        long bound = 5L + data.Length;
        int maxDecoded = 0;
        long maxApplied = 0;
        bool mayChange = false;
        int pos = headerEnd;
        while (pos < data.Length)
        {
            int field = 0;
            while (true)
            {
                int end = FieldEnd(data, pos, csv, out bool quoted);
                if (field < _plan.Length && PgValueMasking.MayChange(_plan[field]) && !IsNull(data[pos..end], quoted))
                {
                    long applied = PgValueMasking.MaxOutputLength(_plan[field], end - pos);
                    mayChange = true;
                    maxDecoded = Math.Max(maxDecoded, end - pos);
                    maxApplied = Math.Max(maxApplied, applied);
                    bound += _null.Length + (2 * applied) + 2;
                }

                field++;
                if (end < data.Length && data[end] == _delimiter)
                {
                    pos = end + 1;
                    continue;
                }

                pos = end < data.Length ? end + 1 : data.Length;
                break;
            }

            PgValueMasking.CheckShape(field, _plan.Length, "COPY");
        }

        _headerDone = true;
        if (!mayChange)
        {
            return false;
        }

        int destinationLength = PgValueMasking.CheckBound(bound, "CopyData");
        int scratchLength = PgValueMasking.CheckBound(maxDecoded + maxApplied, "A COPY field");
        byte[]? rented = null;
        Span<byte> scratch = scratchLength <= StackScratch
            ? stackalloc byte[StackScratch]
            : (rented = ArrayPool<byte>.Shared.Rent(scratchLength));
        try
        {
            Span<byte> destination = output.GetSpan(destinationLength);
            data[..headerEnd].CopyTo(destination[5..]);
            int position = 5 + headerEnd;
            bool changed = false;
            pos = headerEnd;
            while (pos < data.Length)
            {
                int field = 0;
                while (true)
                {
                    int end = FieldEnd(data, pos, csv, out bool quoted);
                    ReadOnlySpan<byte> raw = data[pos..end];
                    if (PgValueMasking.MayChange(_plan[field]) && !IsNull(raw, quoted))
                    {
                        changed |= WriteField(raw, quoted, csv, _plan[field], scratch, destination, ref position, ref counters);
                    }
                    else
                    {
                        raw.CopyTo(destination[position..]);
                        position += raw.Length;
                    }

                    field++;
                    if (end < data.Length)
                    {
                        destination[position++] = data[end];
                    }

                    if (end < data.Length && data[end] == _delimiter)
                    {
                        pos = end + 1;
                        continue;
                    }

                    pos = end < data.Length ? end + 1 : data.Length;
                    break;
                }
            }

            return changed && Finish(destination, position, output);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    private static bool Finish(Span<byte> destination, int position, IBufferWriter<byte> output)
    {
        destination[0] = (byte)'d';
        BinaryPrimitives.WriteInt32BigEndian(destination[1..], position - 1);
        output.Advance(position);
        return true;
    }

    /// <summary>Masks one non-NULL text or CSV field into the destination; returns true when it changed.</summary>
    private bool WriteField(
        ReadOnlySpan<byte> raw,
        bool quoted,
        bool csv,
        in PgColumnMask column,
        Span<byte> scratch,
        Span<byte> destination,
        ref int position,
        ref PgMaskCounters counters)
    {
        int decodedLength = csv ? (quoted ? Unquote(raw, scratch) : CopyTo(raw, scratch)) : Unescape(raw, scratch);
        ReadOnlySpan<byte> decoded = scratch[..decodedLength];
        Span<byte> applied = scratch[decodedLength..];
        switch (PgValueMasking.Apply(decoded, column, _policy, applied, out int written, ref counters))
        {
            case PgMaskedValue.Null:
                _null.CopyTo(destination[position..]);
                position += _null.Length;
                return true;
            case PgMaskedValue.Written:
                position += csv
                    ? WriteCsv(applied[..written], destination[position..])
                    : WriteText(applied[..written], destination[position..]);
                return true;
            default:
                raw.CopyTo(destination[position..]);
                position += raw.Length;
                return false;
        }
    }

    private static int CopyTo(ReadOnlySpan<byte> raw, Span<byte> scratch)
    {
        raw.CopyTo(scratch);
        return raw.Length;
    }

    private bool IsNull(ReadOnlySpan<byte> raw, bool quoted) => !quoted && raw.SequenceEqual(_null);

    /// <summary>The end of the line starting at <paramref name="start"/>, past its '\n'.</summary>
    private int LineEnd(ReadOnlySpan<byte> data, int start)
    {
        bool csv = _statement.Format == PgCopyFormat.Csv;
        int pos = start;
        while (true)
        {
            int end = FieldEnd(data, pos, csv, out _);
            if (end < data.Length && data[end] == _delimiter)
            {
                pos = end + 1;
                continue;
            }

            return end < data.Length ? end + 1 : data.Length;
        }
    }

    /// <summary>The index of the delimiter or '\n' ending the field at <paramref name="start"/>, or the data's length.</summary>
    private int FieldEnd(ReadOnlySpan<byte> data, int start, bool csv, out bool quoted)
    {
        quoted = false;
        int pos = start;
        if (csv && pos < data.Length && data[pos] == _quote)
        {
            quoted = true;
            pos++;
            while (true)
            {
                if (pos >= data.Length)
                {
                    throw new PgProtocolException("invalid COPY CSV data: a quoted field does not end within its CopyData message");
                }

                byte b = data[pos];
                if (b == _escape && pos + 1 < data.Length && (data[pos + 1] == _quote || data[pos + 1] == _escape) && !(_escape == _quote && data[pos + 1] != _quote))
                {
                    pos += 2;
                }
                else if (b == _quote)
                {
                    pos++;
                    break;
                }
                else
                {
                    pos++;
                }
            }
        }

        while (pos < data.Length)
        {
            byte b = data[pos];
            if (b == _delimiter || b == (byte)'\n')
            {
                return pos;
            }

            if (!csv && b == (byte)'\\' && pos + 1 < data.Length && data[pos + 1] != (byte)'\n')
            {
                pos += 2;
                continue;
            }

            pos++;
        }

        return data.Length;
    }

    /// <summary>Removes the quotes and escapes of a quoted CSV field.</summary>
    private int Unquote(ReadOnlySpan<byte> raw, Span<byte> destination)
    {
        int n = 0;
        int pos = 1;
        bool inside = true;
        while (pos < raw.Length)
        {
            byte b = raw[pos];
            if (inside && b == _escape && pos + 1 < raw.Length && (raw[pos + 1] == _quote || raw[pos + 1] == _escape) && !(_escape == _quote && raw[pos + 1] != _quote))
            {
                destination[n++] = raw[pos + 1];
                pos += 2;
            }
            else if (inside && b == _quote)
            {
                inside = false;
                pos++;
            }
            else
            {
                destination[n++] = b;
                pos++;
            }
        }

        return n;
    }

    /// <summary>Decodes the backslash escapes of a text-format field.</summary>
    private static int Unescape(ReadOnlySpan<byte> raw, Span<byte> destination)
    {
        int n = 0;
        int pos = 0;
        while (pos < raw.Length)
        {
            byte b = raw[pos++];
            if (b != (byte)'\\' || pos >= raw.Length)
            {
                destination[n++] = b;
                continue;
            }

            byte c = raw[pos++];
            switch (c)
            {
                case (byte)'b': destination[n++] = 8; break;
                case (byte)'f': destination[n++] = 12; break;
                case (byte)'n': destination[n++] = (byte)'\n'; break;
                case (byte)'r': destination[n++] = (byte)'\r'; break;
                case (byte)'t': destination[n++] = (byte)'\t'; break;
                case (byte)'v': destination[n++] = 11; break;
                case >= (byte)'0' and <= (byte)'7':
                    {
                        int value = c - '0';
                        for (int i = 0; i < 2 && pos < raw.Length && raw[pos] is >= (byte)'0' and <= (byte)'7'; i++)
                        {
                            value = (value * 8) + (raw[pos++] - '0');
                        }

                        destination[n++] = (byte)value;
                        break;
                    }

                case (byte)'x' when pos < raw.Length && IsHex(raw[pos]):
                    {
                        int value = HexValue(raw[pos++]);
                        if (pos < raw.Length && IsHex(raw[pos]))
                        {
                            value = (value * 16) + HexValue(raw[pos++]);
                        }

                        destination[n++] = (byte)value;
                        break;
                    }

                default:
                    destination[n++] = c;
                    break;
            }
        }

        return n;
    }

    private static bool IsHex(byte b) => char.IsAsciiHexDigit((char)b);

    private static int HexValue(byte b) => b <= '9' ? b - '0' : (b | 0x20) - 'a' + 10;

    /// <summary>Writes a value in text format, escaped as PostgreSQL's CopyAttributeOutText does.</summary>
    private int WriteText(ReadOnlySpan<byte> value, Span<byte> destination)
    {
        int n = 0;
        foreach (byte b in value)
        {
            byte escaped = b switch
            {
                8 => (byte)'b',
                12 => (byte)'f',
                (byte)'\n' => (byte)'n',
                (byte)'\r' => (byte)'r',
                (byte)'\t' => (byte)'t',
                11 => (byte)'v',
                (byte)'\\' => (byte)'\\',
                _ => b == _delimiter ? b : (byte)0,
            };
            if (escaped != 0)
            {
                destination[n++] = (byte)'\\';
                destination[n++] = escaped;
            }
            else
            {
                destination[n++] = b;
            }
        }

        // A mask that reads as the NULL string would turn into NULL: escape one character (a reader compares the NULL
        // string before it decodes escapes).
        if (destination[..n].SequenceEqual(_null))
        {
            int at = destination[..n].IndexOfAnyExcept(SpecialAfterBackslash);
            if (at >= 0)
            {
                destination[at..n].CopyTo(destination[(at + 1)..]);
                destination[at] = (byte)'\\';
                n++;
            }
        }

        return n;
    }

    /// <summary>Writes a value in CSV, quoted when it holds a special character, is empty or reads as the NULL string.</summary>
    private int WriteCsv(ReadOnlySpan<byte> value, Span<byte> destination)
    {
        bool quote = value.IsEmpty || value.SequenceEqual(_null);
        foreach (byte b in value)
        {
            if (b == _delimiter || b == _quote || b == _escape || b is (byte)'\n' or (byte)'\r')
            {
                quote = true;
                break;
            }
        }

        if (!quote)
        {
            value.CopyTo(destination);
            return value.Length;
        }

        int n = 0;
        destination[n++] = _quote;
        foreach (byte b in value)
        {
            if (b == _quote || b == _escape)
            {
                destination[n++] = _escape;
            }

            destination[n++] = b;
        }

        destination[n++] = _quote;
        return n;
    }
}
