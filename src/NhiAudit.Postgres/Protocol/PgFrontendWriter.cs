using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace NhiAudit.Postgres.Protocol;

/// <summary>
/// Writes client ("frontend") messages that the gateway itself originates towards the upstream
/// server: its own authentication, cancel requests and termination. Each method returns the
/// number of bytes written.
/// </summary>
internal static class PgFrontendWriter
{
    /// <summary>Writes PasswordMessage ('p') with a cleartext password or an MD5 response.</summary>
    public static int WritePasswordMessage(IBufferWriter<byte> writer, string password) =>
        PgWire.WriteSingleString(writer, (byte)PgFrontendMessageCode.Password, password, nameof(password));

    /// <summary>Writes SASLInitialResponse ('p'): mechanism name, then the client-first-message.</summary>
    public static int WriteSaslInitialResponse(IBufferWriter<byte> writer, string mechanism, ReadOnlySpan<byte> data)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentException.ThrowIfNullOrEmpty(mechanism);
        int body = PgWire.CStringLength(mechanism) + 4 + data.Length;
        int total = PgWire.HeaderLength + body;
        Span<byte> span = writer.GetSpan(total);
        PgWire.WriteHeader(span, (byte)PgFrontendMessageCode.Password, body);
        int offset = PgWire.HeaderLength + PgWire.WriteCString(span[PgWire.HeaderLength..], mechanism, nameof(mechanism));
        BinaryPrimitives.WriteInt32BigEndian(span[offset..], data.Length);
        data.CopyTo(span[(offset + 4)..]);
        writer.Advance(total);
        return total;
    }

    /// <summary>Writes SASLInitialResponse with a string client-first-message (SCRAM messages are ASCII/UTF-8).</summary>
    public static int WriteSaslInitialResponse(IBufferWriter<byte> writer, string mechanism, string data)
    {
        ArgumentNullException.ThrowIfNull(data);
        return WriteSaslInitialResponse(writer, mechanism, Encoding.UTF8.GetBytes(data));
    }

    /// <summary>Writes SASLResponse ('p'): the raw mechanism data, e.g. the client-final-message.</summary>
    public static int WriteSaslResponse(IBufferWriter<byte> writer, ReadOnlySpan<byte> data)
    {
        ArgumentNullException.ThrowIfNull(writer);
        int total = PgWire.HeaderLength + data.Length;
        Span<byte> span = writer.GetSpan(total);
        PgWire.WriteHeader(span, (byte)PgFrontendMessageCode.Password, data.Length);
        data.CopyTo(span[PgWire.HeaderLength..]);
        writer.Advance(total);
        return total;
    }

    /// <summary>Writes SASLResponse with a string payload.</summary>
    public static int WriteSaslResponse(IBufferWriter<byte> writer, string data)
    {
        ArgumentNullException.ThrowIfNull(data);
        return WriteSaslResponse(writer, Encoding.UTF8.GetBytes(data));
    }

    /// <summary>Writes Terminate ('X').</summary>
    public static int WriteTerminate(IBufferWriter<byte> writer) =>
        PgWire.WriteEmpty(writer, (byte)PgFrontendMessageCode.Terminate);

    /// <summary>Writes Sync ('S').</summary>
    public static int WriteSync(IBufferWriter<byte> writer) =>
        PgWire.WriteEmpty(writer, (byte)PgFrontendMessageCode.Sync);

    /// <summary>Writes Describe ('D') of a portal or prepared statement.</summary>
    public static int WriteDescribe(IBufferWriter<byte> writer, PgTargetKind target, string name)
    {
        var nameLength = System.Text.Encoding.UTF8.GetByteCount(name);
        var total = 1 + 4 + 1 + nameLength + 1;
        var span = writer.GetSpan(total);
        span[0] = (byte)'D';
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(span[1..], total - 1);
        span[5] = target == PgTargetKind.Statement ? (byte)'S' : (byte)'P';
        System.Text.Encoding.UTF8.GetBytes(name, span[6..]);
        span[6 + nameLength] = 0;
        writer.Advance(total);
        return total;
    }

    /// <summary>Writes a simple Query ('Q').</summary>
    public static int WriteQuery(IBufferWriter<byte> writer, string sql) =>
        PgWire.WriteSingleString(writer, (byte)PgFrontendMessageCode.Query, sql, nameof(sql));

    /// <summary>Writes an untyped CancelRequest packet (on a new upstream connection).</summary>
    public static int WriteCancelRequest(IBufferWriter<byte> writer, int processId, ReadOnlySpan<byte> secretKey)
    {
        ArgumentNullException.ThrowIfNull(writer);
        if (secretKey.Length > PgStartupCodes.MaxCancelKeyLength)
        {
            throw new ArgumentException("The cancel key is at most 256 bytes.", nameof(secretKey));
        }

        int total = PgStartupCodes.CancelRequestFixedLength + secretKey.Length;
        Span<byte> span = writer.GetSpan(total);
        BinaryPrimitives.WriteInt32BigEndian(span, total);
        BinaryPrimitives.WriteInt32BigEndian(span[4..], PgStartupCodes.CancelRequest);
        BinaryPrimitives.WriteInt32BigEndian(span[8..], processId);
        secretKey.CopyTo(span[12..]);
        writer.Advance(total);
        return total;
    }

    /// <summary>Writes an untyped SSLRequest packet.</summary>
    public static int WriteSslRequest(IBufferWriter<byte> writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        Span<byte> span = writer.GetSpan(8);
        BinaryPrimitives.WriteInt32BigEndian(span, 8);
        BinaryPrimitives.WriteInt32BigEndian(span[4..], PgStartupCodes.SslRequest);
        writer.Advance(8);
        return 8;
    }
}
