using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace NhiAudit.Postgres.Protocol;

/// <summary>
/// Sequential, bounds-checked reader over one message payload (the bytes after the 5-byte
/// type+length header). Every read checks the remaining length first and throws
/// <see cref="PgProtocolException"/> on underflow, so parsers built on it cannot index out of range.
/// </summary>
/// <remarks>
/// Counts in the protocol (number of parameters, formats, columns) are sent as Int16 but
/// PostgreSQL reads them with <c>pq_getmsgint(msg, 2)</c>, i.e. unsigned: use
/// <see cref="ReadUInt16"/> for counts so that 40000 parameters are not mistaken for a negative count.
/// </remarks>
internal ref struct PgPayloadReader
{
    private readonly ReadOnlySpan<byte> _payload;
    private readonly string _messageName;
    private int _position;

    /// <summary>Creates a reader positioned at the start of <paramref name="payload"/>.</summary>
    /// <param name="payload">The message body, without type byte and length.</param>
    /// <param name="messageName">Name used in error messages, e.g. "Bind".</param>
    public PgPayloadReader(ReadOnlySpan<byte> payload, string messageName)
    {
        _payload = payload;
        _messageName = messageName;
        _position = 0;
    }

    /// <summary>Offset of the next byte to read, relative to the payload start.</summary>
    public readonly int Position => _position;

    /// <summary>Bytes left to read.</summary>
    public readonly int Remaining => _payload.Length - _position;

    /// <summary>Reads one byte.</summary>
    public byte ReadByte()
    {
        Ensure(1, "Byte1");
        return _payload[_position++];
    }

    /// <summary>Reads a big-endian Int16 (format codes).</summary>
    public short ReadInt16()
    {
        Ensure(2, "Int16");
        short value = BinaryPrimitives.ReadInt16BigEndian(_payload.Slice(_position, 2));
        _position += 2;
        return value;
    }

    /// <summary>Reads a big-endian Int16 as unsigned, the way PostgreSQL reads counts.</summary>
    public ushort ReadUInt16()
    {
        Ensure(2, "Int16");
        ushort value = BinaryPrimitives.ReadUInt16BigEndian(_payload.Slice(_position, 2));
        _position += 2;
        return value;
    }

    /// <summary>Reads a big-endian Int32.</summary>
    public int ReadInt32()
    {
        Ensure(4, "Int32");
        int value = BinaryPrimitives.ReadInt32BigEndian(_payload.Slice(_position, 4));
        _position += 4;
        return value;
    }

    /// <summary>Reads a big-endian UInt32 (type OIDs).</summary>
    public uint ReadUInt32()
    {
        Ensure(4, "Int32");
        uint value = BinaryPrimitives.ReadUInt32BigEndian(_payload.Slice(_position, 4));
        _position += 4;
        return value;
    }

    /// <summary>Reads a NUL-terminated string and returns its bytes without the terminator.</summary>
    public ReadOnlySpan<byte> ReadCString()
    {
        ReadOnlySpan<byte> rest = _payload[_position..];
        int nul = rest.IndexOf((byte)0);
        if (nul < 0)
        {
            ThrowUnterminated();
        }

        _position += nul + 1;
        return rest[..nul];
    }

    /// <summary>Reads a NUL-terminated string and returns where its bytes start and how many there are.</summary>
    public int ReadCStringRange(out int length)
    {
        int start = _position;
        length = ReadCString().Length;
        return start;
    }

    /// <summary>Reads <paramref name="count"/> raw bytes.</summary>
    public ReadOnlySpan<byte> ReadBytes(int count)
    {
        if (count < 0)
        {
            ThrowNegativeLength(count);
        }

        Ensure(count, "Byten");
        ReadOnlySpan<byte> bytes = _payload.Slice(_position, count);
        _position += count;
        return bytes;
    }

    /// <summary>Advances past <paramref name="count"/> bytes after checking they exist.</summary>
    public void Skip(int count)
    {
        if (count < 0)
        {
            ThrowNegativeLength(count);
        }

        Ensure(count, "Byten");
        _position += count;
    }

    /// <summary>Returns the bytes already read since <paramref name="start"/> (a position obtained earlier).</summary>
    public readonly ReadOnlySpan<byte> Consumed(int start) => _payload[start.._position];

    /// <summary>Returns every byte left and moves to the end.</summary>
    public ReadOnlySpan<byte> ReadRest()
    {
        ReadOnlySpan<byte> rest = _payload[_position..];
        _position = _payload.Length;
        return rest;
    }

    /// <summary>
    /// Fails if bytes are left over. PostgreSQL calls <c>pq_getmsgend</c> after parsing every
    /// message; trailing bytes mean the peer and we disagree on the layout, so we refuse too.
    /// </summary>
    public readonly void EnsureEnd()
    {
        if (_position != _payload.Length)
        {
            ThrowTrailing();
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private readonly void Ensure(int count, string what)
    {
        // Compare as unsigned difference so a huge count cannot overflow the addition.
        if ((uint)count > (uint)(_payload.Length - _position))
        {
            ThrowInsufficient(count, what);
        }
    }

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private readonly void ThrowInsufficient(int count, string what) =>
        throw new PgProtocolException(
            $"invalid {_messageName} message: insufficient data left in message ({what} of {count} bytes at offset {_position}, {Remaining} left)");

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private readonly void ThrowUnterminated() =>
        throw new PgProtocolException(
            $"invalid {_messageName} message: string at offset {_position} is not NUL-terminated");

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private readonly void ThrowNegativeLength(int count) =>
        throw new PgProtocolException(
            $"invalid {_messageName} message: negative length {count} at offset {_position}");

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private readonly void ThrowTrailing() =>
        throw new PgProtocolException(
            $"invalid {_messageName} message: {Remaining} unexpected trailing bytes at offset {_position}");
}
