using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace NhiAudit.Postgres.Protocol;

/// <summary>Low-level helpers the message writers share: headers and NUL-terminated strings.</summary>
internal static class PgWire
{
    /// <summary>Bytes of the type+length header of a regular message.</summary>
    public const int HeaderLength = 5;

    /// <summary>Bytes <paramref name="value"/> takes as a NUL-terminated UTF-8 string.</summary>
    public static int CStringLength(string value) => Encoding.UTF8.GetByteCount(value) + 1;

    /// <summary>
    /// Writes <paramref name="value"/> plus NUL and returns the bytes written. A NUL inside the
    /// value would end the string early on the peer and shift every later field, so it is refused.
    /// </summary>
    public static int WriteCString(Span<byte> destination, string value, string parameterName)
    {
        if (value.Contains('\0', StringComparison.Ordinal))
        {
            throw new ArgumentException("PostgreSQL protocol strings cannot contain NUL characters.", parameterName);
        }

        int written = Encoding.UTF8.GetBytes(value, destination);
        destination[written] = 0;
        return written + 1;
    }

    /// <summary>Writes the type byte and the length (which counts itself but not the type byte).</summary>
    public static void WriteHeader(Span<byte> destination, byte type, int bodyLength)
    {
        destination[0] = type;
        BinaryPrimitives.WriteInt32BigEndian(destination[1..], bodyLength + 4);
    }

    /// <summary>Writes a message that has no body (Terminate, Sync, AuthenticationOk-like fixed layouts build on it).</summary>
    public static int WriteEmpty(IBufferWriter<byte> writer, byte type)
    {
        ArgumentNullException.ThrowIfNull(writer);
        Span<byte> span = writer.GetSpan(HeaderLength);
        WriteHeader(span, type, 0);
        writer.Advance(HeaderLength);
        return HeaderLength;
    }

    /// <summary>Writes a message whose body is one NUL-terminated string.</summary>
    public static int WriteSingleString(IBufferWriter<byte> writer, byte type, string value, string parameterName)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(value, parameterName);
        int body = CStringLength(value);
        int total = HeaderLength + body;
        Span<byte> span = writer.GetSpan(total);
        WriteHeader(span, type, body);
        WriteCString(span[HeaderLength..], value, parameterName);
        writer.Advance(total);
        return total;
    }
}
