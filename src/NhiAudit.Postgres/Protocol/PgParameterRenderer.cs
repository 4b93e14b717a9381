using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace NhiAudit.Postgres.Protocol;

/// <summary>
/// Renders one Bind parameter value as readable text for the audit log.
/// </summary>
/// <remarks>
/// <para>
/// Output goes into a caller-supplied <see cref="StringBuilder"/> (<see cref="Append"/>) so a
/// connection can reuse one builder for every parameter; <see cref="Render(ReadOnlySpan{byte}, short, uint, int)"/>
/// is the convenience form and allocates only the final string.
/// </para>
/// <para>
/// Text-format values are shown as sent (UTF-8). Binary values are decoded by type OID the way
/// PostgreSQL's output functions print them (dates and timestamps as ISO 8601, numeric as an exact
/// decimal string). Unknown OIDs, OID 0 and values with the wrong length for their type are shown
/// as <c>\x</c> hex instead of failing: a client may lie about types, and the log must still record
/// what was sent. Everything is cut at <c>maxChars</c> characters followed by <c>…(N bytes)</c>.
/// </para>
/// </remarks>
internal static class PgParameterRenderer
{
    /// <summary>Default cap on rendered characters per value.</summary>
    public const int DefaultMaxChars = 1024;

    /// <summary>PostgreSQL's epoch (2000-01-01) as a Julian day number (POSTGRES_EPOCH_JDATE).</summary>
    private const int PostgresEpochJulianDay = 2451545;

    private const long MicrosecondsPerDay = 86_400_000_000L;
    private const long MicrosecondsPerHour = 3_600_000_000L;
    private const long MicrosecondsPerMinute = 60_000_000L;
    private const long MicrosecondsPerSecond = 1_000_000L;

    // Last Julian day PostgreSQL accepts for dates (DATE_END_JULIAN - 1): 5874897-12-31.
    private const long MaxJulianDay = 2147483494L;

    [ThreadStatic]
    private static StringBuilder? t_builder;

    /// <summary>Renders a value to a new string (see the class remarks for the format rules).</summary>
    /// <param name="value">The parameter bytes (not NULL: the caller logs NULL itself).</param>
    /// <param name="formatCode">0 text, 1 binary; anything else is shown as hex.</param>
    /// <param name="typeOid">The parameter's type OID from Parse, 0 when unspecified.</param>
    /// <param name="maxChars">Characters to keep before the truncation marker; at least 16.</param>
    public static string Render(ReadOnlySpan<byte> value, short formatCode, uint typeOid, int maxChars = DefaultMaxChars)
    {
        StringBuilder builder = t_builder ??= new StringBuilder(256);
        builder.Clear();
        Append(builder, value, formatCode, typeOid, maxChars);
        string result = builder.ToString();
        if (builder.Capacity > 8 * 1024)
        {
            // Do not pin a huge builder to the thread after one large value.
            t_builder = null;
        }

        return result;
    }

    /// <summary>Renders a value whose type OID is held as a signed int (as some callers store OIDs).</summary>
    public static string Render(ReadOnlySpan<byte> value, short formatCode, int typeOid, int maxChars = DefaultMaxChars) =>
        Render(value, formatCode, unchecked((uint)typeOid), maxChars);

    /// <summary>Appends the rendering of a value to <paramref name="builder"/>.</summary>
    /// <param name="builder">Destination.</param>
    /// <param name="value">The parameter bytes.</param>
    /// <param name="formatCode">0 text, 1 binary.</param>
    /// <param name="typeOid">Type OID, 0 when unspecified.</param>
    /// <param name="maxChars">Characters to keep before the truncation marker.</param>
    public static void Append(StringBuilder builder, ReadOnlySpan<byte> value, short formatCode, uint typeOid, int maxChars = DefaultMaxChars)
    {
        ArgumentNullException.ThrowIfNull(builder);
        maxChars = Math.Max(maxChars, 16);
        if (formatCode == 0)
        {
            AppendText(builder, value, maxChars);
            return;
        }

        if (formatCode != 1 || !TryAppendBinary(builder, value, typeOid, maxChars))
        {
            AppendHex(builder, value, maxChars);
        }
    }

    private static bool TryAppendBinary(StringBuilder builder, ReadOnlySpan<byte> value, uint typeOid, int maxChars)
    {
        CultureInfo inv = CultureInfo.InvariantCulture;
        switch (typeOid)
        {
            case PgTypeOids.Bool when value.Length == 1:
                builder.Append(value[0] != 0 ? "true" : "false");
                return true;
            case PgTypeOids.Int2 when value.Length == 2:
                builder.Append(inv, $"{BinaryPrimitives.ReadInt16BigEndian(value)}");
                return true;
            case PgTypeOids.Int4 when value.Length == 4:
                builder.Append(inv, $"{BinaryPrimitives.ReadInt32BigEndian(value)}");
                return true;
            case PgTypeOids.Int8 when value.Length == 8:
                builder.Append(inv, $"{BinaryPrimitives.ReadInt64BigEndian(value)}");
                return true;
            case PgTypeOids.Oid when value.Length == 4:
                builder.Append(inv, $"{BinaryPrimitives.ReadUInt32BigEndian(value)}");
                return true;
            case PgTypeOids.Float4 when value.Length == 4:
                builder.Append(inv, $"{BinaryPrimitives.ReadSingleBigEndian(value)}");
                return true;
            case PgTypeOids.Float8 when value.Length == 8:
                builder.Append(inv, $"{BinaryPrimitives.ReadDoubleBigEndian(value)}");
                return true;
            case PgTypeOids.Text or PgTypeOids.Varchar or PgTypeOids.Bpchar or PgTypeOids.Name
                or PgTypeOids.Json or PgTypeOids.Xml or PgTypeOids.Unknown or PgTypeOids.Char:
                // The binary form of the text types is the text itself.
                AppendText(builder, value, maxChars);
                return true;
            case PgTypeOids.Jsonb when value.Length >= 1 && value[0] == 1:
                // jsonb binary: a version byte (only 1 exists) then the JSON text.
                AppendText(builder, value[1..], maxChars, value.Length);
                return true;
            case PgTypeOids.Bytea:
                AppendHex(builder, value, maxChars);
                return true;
            case PgTypeOids.Uuid when value.Length == 16:
                AppendUuid(builder, value);
                return true;
            case PgTypeOids.Date when value.Length == 4:
                return TryAppendDate(builder, BinaryPrimitives.ReadInt32BigEndian(value));
            case PgTypeOids.Time when value.Length == 8:
                return TryAppendTime(builder, BinaryPrimitives.ReadInt64BigEndian(value));
            case PgTypeOids.TimeTz when value.Length == 12:
                return TryAppendTimeTz(builder, BinaryPrimitives.ReadInt64BigEndian(value), BinaryPrimitives.ReadInt32BigEndian(value[8..]));
            case PgTypeOids.Timestamp when value.Length == 8:
                return TryAppendTimestamp(builder, BinaryPrimitives.ReadInt64BigEndian(value), utc: false);
            case PgTypeOids.TimestampTz when value.Length == 8:
                return TryAppendTimestamp(builder, BinaryPrimitives.ReadInt64BigEndian(value), utc: true);
            case PgTypeOids.Interval when value.Length == 16:
                AppendInterval(builder, BinaryPrimitives.ReadInt64BigEndian(value), BinaryPrimitives.ReadInt32BigEndian(value[8..]), BinaryPrimitives.ReadInt32BigEndian(value[12..]));
                return true;
            case PgTypeOids.Numeric:
                return TryAppendNumeric(builder, value, maxChars);
            default:
                return false;
        }
    }

    /// <summary>Appends UTF-8 text, cut at <paramref name="maxChars"/> UTF-16 characters without splitting a surrogate pair.</summary>
    private static void AppendText(StringBuilder builder, ReadOnlySpan<byte> utf8, int maxChars, int reportedBytes = -1)
    {
        if (reportedBytes < 0)
        {
            reportedBytes = utf8.Length;
        }

        if (utf8.Length <= maxChars)
        {
            // Never more chars than bytes, so the whole value fits.
            AppendDecoded(builder, utf8);
            return;
        }

        // Four bytes per char at most is enough to get maxChars characters; decoding more is wasted work.
        ReadOnlySpan<byte> prefix = utf8[..(int)Math.Min(utf8.Length, 4L * maxChars)];
        int start = builder.Length;
        AppendDecoded(builder, prefix);
        if (builder.Length - start <= maxChars && prefix.Length == utf8.Length)
        {
            return;
        }

        int keep = maxChars;
        if (keep > 0 && char.IsHighSurrogate(builder[start + keep - 1]))
        {
            keep--;
        }

        builder.Length = start + Math.Min(keep, builder.Length - start);
        AppendMarker(builder, reportedBytes);
    }

    private static void AppendDecoded(StringBuilder builder, ReadOnlySpan<byte> utf8)
    {
        const int StackLimit = 512;
        int maxChars = PgText.LenientUtf8.GetMaxCharCount(utf8.Length);
        if (maxChars <= StackLimit)
        {
            Span<char> chars = stackalloc char[StackLimit];
            int n = PgText.LenientUtf8.GetChars(utf8, chars);
            builder.Append(chars[..n]);
            return;
        }

        char[] rented = System.Buffers.ArrayPool<char>.Shared.Rent(maxChars);
        try
        {
            int n = PgText.LenientUtf8.GetChars(utf8, rented);
            builder.Append(rented, 0, n);
        }
        finally
        {
            System.Buffers.ArrayPool<char>.Shared.Return(rented);
        }
    }

    private static void AppendHex(StringBuilder builder, ReadOnlySpan<byte> value, int maxChars)
    {
        builder.Append("\\x");
        int fit = Math.Max(0, (maxChars - 2) / 2);
        ReadOnlySpan<byte> shown = value.Length <= fit ? value : value[..fit];
        Span<char> chunk = stackalloc char[128];
        while (!shown.IsEmpty)
        {
            ReadOnlySpan<byte> part = shown[..Math.Min(shown.Length, chunk.Length / 2)];
            for (int i = 0; i < part.Length; i++)
            {
                chunk[2 * i] = HexDigit(part[i] >> 4);
                chunk[(2 * i) + 1] = HexDigit(part[i] & 0xF);
            }

            builder.Append(chunk[..(2 * part.Length)]);
            shown = shown[part.Length..];
        }

        if (value.Length > fit)
        {
            AppendMarker(builder, value.Length);
        }
    }

    private static char HexDigit(int nibble) => (char)(nibble < 10 ? '0' + nibble : 'a' + nibble - 10);

    private static void AppendMarker(StringBuilder builder, int totalBytes) =>
        builder.Append(CultureInfo.InvariantCulture, $"…({totalBytes} bytes)");

    private static void AppendUuid(StringBuilder builder, ReadOnlySpan<byte> value)
    {
        Span<char> chars = stackalloc char[36];
        int c = 0;
        for (int i = 0; i < 16; i++)
        {
            if (i is 4 or 6 or 8 or 10)
            {
                chars[c++] = '-';
            }

            chars[c++] = HexDigit(value[i] >> 4);
            chars[c++] = HexDigit(value[i] & 0xF);
        }

        builder.Append(chars);
    }

    // ------------------------------------------------------------------ date/time

    private static bool TryAppendDate(StringBuilder builder, int days)
    {
        // DATEVAL_NOBEGIN / DATEVAL_NOEND.
        if (days == int.MinValue)
        {
            builder.Append("-infinity");
            return true;
        }

        if (days == int.MaxValue)
        {
            builder.Append("infinity");
            return true;
        }

        long julian = (long)days + PostgresEpochJulianDay;
        if (julian is < 0 or > MaxJulianDay)
        {
            return false;
        }

        AppendIsoDate(builder, (int)julian);
        return true;
    }

    private static bool TryAppendTime(StringBuilder builder, long microseconds)
    {
        if (microseconds is < 0 or > MicrosecondsPerDay)
        {
            return false;
        }

        AppendClock(builder, microseconds);
        return true;
    }

    private static bool TryAppendTimeTz(StringBuilder builder, long microseconds, int zoneSecondsWest)
    {
        // PostgreSQL stores the zone as seconds WEST of UTC; the printed offset has the opposite sign.
        if (!TryAppendTime(builder, microseconds) || zoneSecondsWest is < -57600 or > 57600)
        {
            return false;
        }

        int east = -zoneSecondsWest;
        builder.Append(east < 0 ? '-' : '+');
        east = Math.Abs(east);
        builder.Append(CultureInfo.InvariantCulture, $"{east / 3600:D2}:{east / 60 % 60:D2}");
        if (east % 60 != 0)
        {
            builder.Append(CultureInfo.InvariantCulture, $":{east % 60:D2}");
        }

        return true;
    }

    private static bool TryAppendTimestamp(StringBuilder builder, long microseconds, bool utc)
    {
        // DT_NOBEGIN / DT_NOEND.
        if (microseconds == long.MinValue)
        {
            builder.Append("-infinity");
            return true;
        }

        if (microseconds == long.MaxValue)
        {
            builder.Append("infinity");
            return true;
        }

        long days = Math.DivRem(microseconds, MicrosecondsPerDay, out long timeOfDay);
        if (timeOfDay < 0)
        {
            // Floor division: times before 2000-01-01 belong to the previous day.
            days--;
            timeOfDay += MicrosecondsPerDay;
        }

        long julian = days + PostgresEpochJulianDay;
        if (julian is < 0 or > MaxJulianDay)
        {
            return false;
        }

        AppendIsoDate(builder, (int)julian);
        builder.Append('T');
        AppendClock(builder, timeOfDay);
        if (utc)
        {
            // Binary timestamptz is always UTC; the session time zone only affects text output.
            builder.Append('Z');
        }

        return true;
    }

    /// <summary>
    /// Appends an ISO 8601 calendar date. Years before 1 AD use astronomical numbering
    /// (1 BC = 0000, 2 BC = -0001) as ISO 8601 does, rather than PostgreSQL's "BC" suffix.
    /// </summary>
    private static void AppendIsoDate(StringBuilder builder, int julianDay)
    {
        JulianToDate(julianDay, out int year, out int month, out int day);
        CultureInfo inv = CultureInfo.InvariantCulture;
        if (year < 0)
        {
            builder.Append(inv, $"-{-year:D4}-{month:D2}-{day:D2}");
        }
        else
        {
            builder.Append(inv, $"{year:D4}-{month:D2}-{day:D2}");
        }
    }

    /// <summary>PostgreSQL's <c>j2date</c> (src/backend/utils/adt/datetime.c), valid for Julian day 0 and later.</summary>
    internal static void JulianToDate(int julianDay, out int year, out int month, out int day)
    {
        uint julian = (uint)julianDay;
        julian += 32044;
        uint quad = julian / 146097;
        uint extra = ((julian - (quad * 146097)) * 4) + 3;
        julian += 60 + (quad * 3) + (extra / 146097);
        quad = julian / 1461;
        julian -= quad * 1461;
        int y = (int)(julian * 4 / 1461);
        julian = (y != 0 ? (julian + 305) % 365 : (julian + 306) % 366) + 123;
        y += (int)(quad * 4);
        year = y - 4800;
        quad = julian * 2141 / 65536;
        day = (int)(julian - (7834 * quad / 256));
        month = (int)((quad + 10) % 12) + 1;
    }

    /// <summary>Appends hh:mm:ss and, when non-zero, the fraction without trailing zeros (as PostgreSQL prints it).</summary>
    private static void AppendClock(StringBuilder builder, long microseconds)
    {
        long hours = microseconds / MicrosecondsPerHour;
        long minutes = microseconds / MicrosecondsPerMinute % 60;
        long seconds = microseconds / MicrosecondsPerSecond % 60;
        long fraction = microseconds % MicrosecondsPerSecond;
        builder.Append(CultureInfo.InvariantCulture, $"{hours:D2}:{minutes:D2}:{seconds:D2}");
        AppendFraction(builder, fraction);
    }

    private static void AppendFraction(StringBuilder builder, long fraction)
    {
        if (fraction == 0)
        {
            return;
        }

        Span<char> digits = stackalloc char[6];
        for (int i = 5; i >= 0; i--)
        {
            digits[i] = (char)('0' + (fraction % 10));
            fraction /= 10;
        }

        int length = 6;
        while (digits[length - 1] == '0')
        {
            length--;
        }

        builder.Append('.');
        builder.Append(digits[..length]);
    }

    /// <summary>PostgreSQL's default ("postgres") IntervalStyle: <c>1 year 2 mons 3 days 04:05:06.5</c>.</summary>
    private static void AppendInterval(StringBuilder builder, long microseconds, int days, int months)
    {
        // PostgreSQL 17 infinite intervals: every field at its extreme.
        if (months == int.MaxValue && days == int.MaxValue && microseconds == long.MaxValue)
        {
            builder.Append("infinity");
            return;
        }

        if (months == int.MinValue && days == int.MinValue && microseconds == long.MinValue)
        {
            builder.Append("-infinity");
            return;
        }

        bool isZero = true;
        bool isBefore = false;
        AppendIntervalPart(builder, months / 12, "year", ref isZero, ref isBefore);
        AppendIntervalPart(builder, months % 12, "mon", ref isZero, ref isBefore);
        AppendIntervalPart(builder, days, "day", ref isZero, ref isBefore);

        if (isZero || microseconds != 0)
        {
            // EncodeInterval: a leading '-' when the time is negative, '+' when an earlier part was negative.
            bool minus = microseconds < 0;
            if (!isZero)
            {
                builder.Append(' ');
            }

            builder.Append(minus ? "-" : isBefore ? "+" : string.Empty);

            // Work on the magnitude; long.MinValue has no positive counterpart, so go through UInt64.
            ulong magnitude = minus ? unchecked((ulong)-(microseconds + 1) + 1UL) : (ulong)microseconds;
            ulong hours = magnitude / MicrosecondsPerHour;
            ulong minutes = magnitude / MicrosecondsPerMinute % 60;
            ulong seconds = magnitude / MicrosecondsPerSecond % 60;
            builder.Append(CultureInfo.InvariantCulture, $"{hours:D2}:{minutes:D2}:{seconds:D2}");
            AppendFraction(builder, (long)(magnitude % MicrosecondsPerSecond));
        }
    }

    private static void AppendIntervalPart(StringBuilder builder, long value, string unit, ref bool isZero, ref bool isBefore)
    {
        if (value == 0)
        {
            return;
        }

        builder.Append(
            CultureInfo.InvariantCulture,
            $"{(isZero ? string.Empty : " ")}{(isBefore && value > 0 ? "+" : string.Empty)}{value} {unit}{(value != 1 ? "s" : string.Empty)}");
        isBefore = value < 0;
        isZero = false;
    }

    // ------------------------------------------------------------------ numeric

    private const ushort NumericPositive = 0x0000;
    private const ushort NumericNegative = 0x4000;
    private const ushort NumericNaN = 0xC000;
    private const ushort NumericPositiveInfinity = 0xD000;
    private const ushort NumericNegativeInfinity = 0xF000;
    private const int NumericMaxDisplayScale = 0x3FFF;

    /// <summary>
    /// Decodes PostgreSQL's binary numeric (numeric_send): <c>Int16 ndigits | Int16 weight |
    /// UInt16 sign | Int16 dscale | Int16[ndigits]</c> base-10000 digits, the first having weight
    /// <c>weight</c>; printed like <c>get_str_from_var</c> with exactly <c>dscale</c> fraction digits.
    /// </summary>
    private static bool TryAppendNumeric(StringBuilder builder, ReadOnlySpan<byte> value, int maxChars)
    {
        if (value.Length < 8)
        {
            return false;
        }

        int ndigits = BinaryPrimitives.ReadInt16BigEndian(value);
        int weight = BinaryPrimitives.ReadInt16BigEndian(value[2..]);
        ushort sign = BinaryPrimitives.ReadUInt16BigEndian(value[4..]);
        int dscale = BinaryPrimitives.ReadInt16BigEndian(value[6..]);
        if (ndigits < 0 || value.Length != 8 + (2 * ndigits) || dscale < 0 || dscale > NumericMaxDisplayScale)
        {
            return false;
        }

        switch (sign)
        {
            case NumericNaN:
                builder.Append("NaN");
                return true;
            case NumericPositiveInfinity:
                builder.Append("Infinity");
                return true;
            case NumericNegativeInfinity:
                builder.Append("-Infinity");
                return true;
            case NumericPositive or NumericNegative:
                break;
            default:
                return false;
        }

        ReadOnlySpan<byte> digits = value[8..];
        for (int i = 0; i < ndigits; i++)
        {
            if (BinaryPrimitives.ReadInt16BigEndian(digits[(2 * i)..]) is < 0 or > 9999)
            {
                return false;
            }
        }

        // Writes at most maxChars characters, then the marker: a weight of 32767 would otherwise print 131 072 digits.
        var output = new NumericWriter(builder, maxChars);
        if (sign == NumericNegative)
        {
            output.Append('-');
        }

        int d;
        if (weight < 0)
        {
            d = weight + 1;
            output.Append('0');
        }
        else
        {
            for (d = 0; d <= weight && !output.Truncated; d++)
            {
                int digit = d < ndigits ? BinaryPrimitives.ReadInt16BigEndian(digits[(2 * d)..]) : 0;
                output.AppendGroup(digit, suppressLeadingZeros: d == 0);
            }

            d = weight + 1;
        }

        if (dscale > 0 && !output.Truncated)
        {
            output.Append('.');
            int remaining = dscale;
            for (; remaining > 0 && !output.Truncated; d++)
            {
                int digit = d >= 0 && d < ndigits ? BinaryPrimitives.ReadInt16BigEndian(digits[(2 * d)..]) : 0;
                output.AppendFractionGroup(digit, Math.Min(remaining, 4));
                remaining -= 4;
            }
        }

        if (output.Truncated)
        {
            AppendMarker(builder, value.Length);
        }

        return true;
    }

    /// <summary>Appends characters until a budget is spent; then reports <see cref="Truncated"/>.</summary>
    private ref struct NumericWriter
    {
        private readonly StringBuilder _builder;
        private int _budget;

        public NumericWriter(StringBuilder builder, int budget)
        {
            _builder = builder;
            _budget = budget;
        }

        /// <summary>True once a character had to be dropped.</summary>
        public bool Truncated { readonly get; private set; }

        public void Append(char c)
        {
            if (_budget > 0)
            {
                _builder.Append(c);
                _budget--;
            }
            else
            {
                Truncated = true;
            }
        }

        public void AppendGroup(int group, bool suppressLeadingZeros)
        {
            int divisor = 1000;
            bool started = !suppressLeadingZeros;
            for (int i = 0; i < 4; i++)
            {
                int digit = group / divisor % 10;
                divisor /= 10;
                if (digit != 0 || started || i == 3)
                {
                    started = true;
                    Append((char)('0' + digit));
                }
            }
        }

        public void AppendFractionGroup(int group, int count)
        {
            int divisor = 1000;
            for (int i = 0; i < count; i++)
            {
                Append((char)('0' + (group / divisor % 10)));
                divisor /= 10;
            }
        }
    }
}
