using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace NhiAudit.Postgres.Tests.Protocol;

/// <summary>Builds protocol bytes by hand, independently of the writers under test.</summary>
internal sealed class PgTestMessages
{
    private readonly List<byte> _bytes = [];

    public PgTestMessages Byte(byte value)
    {
        _bytes.Add(value);
        return this;
    }

    public PgTestMessages Int16(short value)
    {
        var b = new byte[2];
        BinaryPrimitives.WriteInt16BigEndian(b, value);
        _bytes.AddRange(b);
        return this;
    }

    public PgTestMessages Int32(int value)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(b, value);
        _bytes.AddRange(b);
        return this;
    }

    public PgTestMessages CString(string value)
    {
        _bytes.AddRange(Encoding.UTF8.GetBytes(value));
        _bytes.Add(0);
        return this;
    }

    public PgTestMessages Bytes(params byte[] value)
    {
        _bytes.AddRange(value);
        return this;
    }

    public byte[] ToArray() => [.. _bytes];

    /// <summary>Wraps a body in a typed message: type byte + Int32 length (body + 4).</summary>
    public static byte[] Frame(char type, byte[] body)
    {
        var message = new byte[body.Length + 5];
        message[0] = (byte)type;
        BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(1), body.Length + 4);
        body.CopyTo(message, 5);
        return message;
    }

    /// <summary>Runs a writer and returns its bytes.</summary>
    public static byte[] Written(Func<IBufferWriter<byte>, int> write)
    {
        var buffer = new ArrayBufferWriter<byte>();
        int n = write(buffer);
        Assert.Equal(buffer.WrittenCount, n);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Checks the frame header of a written message and returns its body.</summary>
    public static byte[] Body(byte[] message, char expectedType)
    {
        Assert.Equal((byte)expectedType, message[0]);
        Assert.Equal(message.Length - 1, BinaryPrimitives.ReadInt32BigEndian(message.AsSpan(1)));
        return message[5..];
    }
}
