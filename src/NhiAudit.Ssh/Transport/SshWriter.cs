using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace NhiAudit.Ssh.Transport;

/// <summary>Builds one SSH message payload with the data types of RFC 4251 §5.</summary>
internal sealed class SshWriter
{
    private readonly ArrayBufferWriter<byte> _buffer;

    public SshWriter(int initialCapacity = 256) => _buffer = new ArrayBufferWriter<byte>(initialCapacity);

    public SshWriter(SshMessageNumber message, int initialCapacity = 256)
        : this(initialCapacity) => WriteByte((byte)message);

    public ReadOnlyMemory<byte> WrittenMemory => _buffer.WrittenMemory;

    public ReadOnlySpan<byte> WrittenSpan => _buffer.WrittenSpan;

    public byte[] ToArray() => _buffer.WrittenSpan.ToArray();

    public SshWriter WriteByte(byte value)
    {
        _buffer.GetSpan(1)[0] = value;
        _buffer.Advance(1);
        return this;
    }

    public SshWriter WriteBoolean(bool value) => WriteByte(value ? (byte)1 : (byte)0);

    public SshWriter WriteUInt32(uint value)
    {
        BinaryPrimitives.WriteUInt32BigEndian(_buffer.GetSpan(4), value);
        _buffer.Advance(4);
        return this;
    }

    public SshWriter WriteUInt64(ulong value)
    {
        BinaryPrimitives.WriteUInt64BigEndian(_buffer.GetSpan(8), value);
        _buffer.Advance(8);
        return this;
    }

    public SshWriter WriteRaw(ReadOnlySpan<byte> bytes)
    {
        _buffer.Write(bytes);
        return this;
    }

    public SshWriter WriteString(ReadOnlySpan<byte> bytes)
    {
        WriteUInt32((uint)bytes.Length);
        return WriteRaw(bytes);
    }

    public SshWriter WriteString(string text)
    {
        var length = Encoding.UTF8.GetByteCount(text);
        WriteUInt32((uint)length);
        Encoding.UTF8.GetBytes(text, _buffer.GetSpan(length));
        _buffer.Advance(length);
        return this;
    }

    public SshWriter WriteNameList(IEnumerable<string> names) => WriteString(string.Join(',', names));

    /// <summary>
    /// Writes an unsigned big-endian magnitude as an mpint: leading zeros dropped, a zero byte added when the top
    /// bit is set so the value stays positive (RFC 4251 §5).
    /// </summary>
    public SshWriter WriteMpint(ReadOnlySpan<byte> unsignedBigEndian)
    {
        var start = 0;
        while (start < unsignedBigEndian.Length && unsignedBigEndian[start] == 0)
        {
            start++;
        }

        var magnitude = unsignedBigEndian[start..];
        if (magnitude.Length > 0 && (magnitude[0] & 0x80) != 0)
        {
            WriteUInt32((uint)magnitude.Length + 1);
            WriteByte(0);
            return WriteRaw(magnitude);
        }

        return WriteString(magnitude);
    }
}
