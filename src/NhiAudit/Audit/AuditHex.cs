namespace NhiAudit.Audit;

/// <summary>Lowercase hex in UTF-8, the spelling of <c>prev</c> in every record.</summary>
internal static class AuditHex
{
    private static ReadOnlySpan<byte> Digits => "0123456789abcdef"u8;

    /// <summary>Writes <paramref name="source"/> as lowercase hex; <paramref name="destination"/> holds twice its length.</summary>
    public static void Write(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        var digits = Digits;
        destination = destination[..(source.Length * 2)];
        for (var i = 0; i < source.Length; i++)
        {
            var b = source[i];
            destination[2 * i] = digits[b >> 4];
            destination[(2 * i) + 1] = digits[b & 0xF];
        }
    }

    /// <summary>Decodes lowercase hex only: an uppercase digit is not how the log spells a hash, so it is not one.</summary>
    public static bool TryDecodeLower(ReadOnlySpan<byte> hex, Span<byte> destination)
    {
        if (hex.Length != destination.Length * 2)
        {
            return false;
        }

        for (var i = 0; i < destination.Length; i++)
        {
            var hi = Value(hex[2 * i]);
            var lo = Value(hex[(2 * i) + 1]);
            if ((hi | lo) < 0)
            {
                return false;
            }

            destination[i] = (byte)((hi << 4) | lo);
        }

        return true;
    }

    private static int Value(byte c) => c switch
    {
        >= (byte)'0' and <= (byte)'9' => c - '0',
        >= (byte)'a' and <= (byte)'f' => c - 'a' + 10,
        _ => -1,
    };
}
