using System.Buffers.Binary;
using System.Text;

namespace NhiAudit.Ssh.Transport;

/// <summary>
/// Reads the SSH data types of RFC 4251 §5 from one message. Every length is checked against what is left before it
/// is used, so a lying length field ends the connection with a protocol error instead of reading past the message.
/// </summary>
internal ref struct SshReader
{
    private readonly ReadOnlySpan<byte> _data;
    private int _position;

    public SshReader(ReadOnlySpan<byte> data)
    {
        _data = data;
        _position = 0;
    }

    public readonly int Remaining => _data.Length - _position;

    public readonly bool IsAtEnd => _position == _data.Length;

    public byte ReadByte()
    {
        if (Remaining < 1)
        {
            throw Truncated("byte");
        }

        return _data[_position++];
    }

    public bool ReadBoolean() => ReadByte() != 0;

    public uint ReadUInt32()
    {
        if (Remaining < 4)
        {
            throw Truncated("uint32");
        }

        var value = BinaryPrimitives.ReadUInt32BigEndian(_data.Slice(_position, 4));
        _position += 4;
        return value;
    }

    public ulong ReadUInt64()
    {
        if (Remaining < 8)
        {
            throw Truncated("uint64");
        }

        var value = BinaryPrimitives.ReadUInt64BigEndian(_data.Slice(_position, 8));
        _position += 8;
        return value;
    }

    /// <summary>Reads a string (uint32 length + bytes) without copying.</summary>
    public ReadOnlySpan<byte> ReadStringBytes()
    {
        var length = ReadUInt32();
        if (length > (uint)Remaining)
        {
            throw new SshProtocolException($"string length {length} exceeds the {Remaining} bytes left in the message");
        }

        var value = _data.Slice(_position, (int)length);
        _position += (int)length;
        return value;
    }

    /// <summary>Reads a string that must be UTF-8 text (RFC 4251 §5 "ISO-10646 UTF-8").</summary>
    public string ReadUtf8String()
    {
        var bytes = ReadStringBytes();
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException ex)
        {
            throw new SshProtocolException("string is not valid UTF-8", ex);
        }
    }

    /// <summary>Reads a name-list: comma-separated US-ASCII names, none empty (RFC 4251 §5).</summary>
    public string[] ReadNameList()
    {
        var bytes = ReadStringBytes();
        if (bytes.Length == 0)
        {
            return [];
        }

        foreach (var b in bytes)
        {
            // Names are printable US-ASCII without comma inside a name; control characters and DEL are refused.
            if (b is < 0x21 or > 0x7E)
            {
                throw new SshProtocolException("name-list holds a byte outside printable US-ASCII");
            }
        }

        var names = Encoding.ASCII.GetString(bytes).Split(',');
        if (Array.Exists(names, n => n.Length == 0))
        {
            throw new SshProtocolException("name-list holds an empty name");
        }

        return names;
    }

    /// <summary>
    /// Reads an mpint (two's complement, big-endian, RFC 4251 §5). Returns the magnitude without the sign byte;
    /// negative values are refused because SSH never uses them for keys.
    /// </summary>
    public ReadOnlySpan<byte> ReadPositiveMpint()
    {
        var bytes = ReadStringBytes();
        if (bytes.Length == 0)
        {
            return bytes;
        }

        if ((bytes[0] & 0x80) != 0)
        {
            throw new SshProtocolException("negative mpint");
        }

        return bytes[0] == 0 ? bytes[1..] : bytes;
    }

    public ReadOnlySpan<byte> ReadBytes(int count)
    {
        if (count < 0 || count > Remaining)
        {
            throw Truncated($"{count} bytes");
        }

        var value = _data.Slice(_position, count);
        _position += count;
        return value;
    }

    public readonly ReadOnlySpan<byte> RemainingBytes => _data[_position..];

    /// <summary>Refuses trailing bytes where the message must end.</summary>
    public readonly void EnsureEnd()
    {
        if (!IsAtEnd)
        {
            throw new SshProtocolException($"{Remaining} unexpected bytes at the end of the message");
        }
    }

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly SshProtocolException Truncated(string what) =>
        new($"message ends before its {what} (position {_position} of {_data.Length})");
}
