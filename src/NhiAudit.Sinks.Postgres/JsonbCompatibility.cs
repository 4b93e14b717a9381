namespace NhiAudit.Sinks.Postgres;

/// <summary>
/// Tells whether PostgreSQL's <c>jsonb</c> accepts a record line. Valid JSON is not always valid <c>jsonb</c>: it refuses
/// the escape <c>\u0000</c> and unpaired surrogate escapes. Such a record is still stored (its exact <c>line</c> is what
/// the chain needs) with a NULL <c>record</c> column, instead of failing its batch over and over.
/// </summary>
internal static class JsonbCompatibility
{
    /// <summary>Whether <c>jsonb</c> accepts <paramref name="line"/>, a record line that is already known to be valid JSON.</summary>
    public static bool CanStoreAsJsonb(ReadOnlySpan<byte> line)
    {
        // Backslashes only occur inside JSON strings, always as the start of an escape, so a linear scan of escapes suffices.
        var expectLowSurrogate = false;
        var i = 0;
        while (i < line.Length)
        {
            var backslash = line[i..].IndexOf((byte)'\\');
            if (backslash < 0)
            {
                break;
            }

            i += backslash;
            if (i + 1 >= line.Length)
            {
                return false;
            }

            if (line[i + 1] != (byte)'u')
            {
                if (expectLowSurrogate)
                {
                    return false;
                }

                i += 2;
                continue;
            }

            if (i + 6 > line.Length || !TryParseHex4(line.Slice(i + 2, 4), out var unit))
            {
                return false;
            }

            var isHigh = unit is >= 0xD800 and <= 0xDBFF;
            var isLow = unit is >= 0xDC00 and <= 0xDFFF;
            if (unit == 0 || (isLow && !expectLowSurrogate) || (expectLowSurrogate && !isLow))
            {
                return false;
            }

            // A low surrogate must follow its high one directly: "\uD83D\uDE00".
            expectLowSurrogate = isHigh;
            i += 6;
            if (expectLowSurrogate && (i >= line.Length || line[i] != (byte)'\\'))
            {
                return false;
            }
        }

        return !expectLowSurrogate;
    }

    private static bool TryParseHex4(ReadOnlySpan<byte> digits, out int value)
    {
        value = 0;
        foreach (var digit in digits)
        {
            int nibble = digit switch
            {
                >= (byte)'0' and <= (byte)'9' => digit - '0',
                >= (byte)'a' and <= (byte)'f' => digit - 'a' + 10,
                >= (byte)'A' and <= (byte)'F' => digit - 'A' + 10,
                _ => -1,
            };
            if (nibble < 0)
            {
                return false;
            }

            value = (value << 4) | nibble;
        }

        return true;
    }
}
