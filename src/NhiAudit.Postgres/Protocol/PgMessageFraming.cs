using System.Buffers;
using System.Buffers.Binary;

namespace NhiAudit.Postgres.Protocol;

/// <summary>
/// Finds message boundaries in a pipe buffer without consuming it, like Bedrock's
/// <c>TryParseMessage</c>: the read loop decides what to advance.
/// </summary>
/// <remarks>
/// Regular message layout (protocol-message-formats):
/// <code>
///  +------+------------------+-------------------------+
///  | type | length (Int32 BE)| body (length - 4 bytes) |
///  +------+------------------+-------------------------+
///    1 B    counts itself, not the type byte
/// </code>
/// Startup-phase packets have no type byte:
/// <code>
///  | length (Int32 BE, counts itself) | code (Int32 BE) | body ... |
/// </code>
/// </remarks>
internal static class PgMessageFraming
{
    /// <summary>Bytes of a regular message header: 1 type byte + Int32 length.</summary>
    public const int HeaderLength = PgWire.HeaderLength;

    /// <summary>Bytes of a startup packet header: Int32 length + Int32 code.</summary>
    public const int StartupHeaderLength = 8;

    /// <summary>
    /// Tries to locate one typed message at the start of <paramref name="buffer"/>.
    /// </summary>
    /// <param name="buffer">Buffered bytes; may span several segments.</param>
    /// <param name="maxLength">Largest accepted value of the length field (body + 4).</param>
    /// <param name="type">The message type byte, once at least 5 bytes are buffered.</param>
    /// <param name="length">The length field (body + 4); the frame occupies <c>1 + length</c> bytes and the body starts at offset 5.</param>
    /// <returns>
    /// <see cref="PgFrameResult.Malformed"/> and <see cref="PgFrameResult.TooLarge"/> are reported
    /// as soon as the header is in, without waiting for the body, so a hostile peer cannot make
    /// the gateway buffer a gigabyte before refusing it.
    /// </returns>
    public static PgFrameResult TryReadFrame(in ReadOnlySequence<byte> buffer, int maxLength, out byte type, out int length)
    {
        type = 0;
        length = 0;
        if (buffer.Length < HeaderLength)
        {
            return PgFrameResult.Incomplete;
        }

        // Fast path: the header sits in the first segment (almost always).
        ReadOnlySpan<byte> first = buffer.FirstSpan;
        Span<byte> copy = stackalloc byte[HeaderLength];
        scoped ReadOnlySpan<byte> header;
        if (first.Length >= HeaderLength)
        {
            header = first;
        }
        else
        {
            buffer.Slice(0, HeaderLength).CopyTo(copy);
            header = copy;
        }

        type = header[0];
        length = BinaryPrimitives.ReadInt32BigEndian(header.Slice(1, 4));
        if (length < 4)
        {
            return PgFrameResult.Malformed;
        }

        if (length > maxLength)
        {
            return PgFrameResult.TooLarge;
        }

        // 1 + length cannot overflow a long; compare in long because Length is long.
        return buffer.Length - 1 < length ? PgFrameResult.Incomplete : PgFrameResult.Complete;
    }

    /// <summary>
    /// Tries to locate one untyped startup-phase packet (SSLRequest, GSSENCRequest, CancelRequest, StartupMessage).
    /// </summary>
    /// <param name="buffer">Buffered bytes from the start of the connection (or after the TLS handshake).</param>
    /// <param name="frame">Kind, total length and code; meaningful for every result except <see cref="PgFrameResult.Incomplete"/>.</param>
    /// <returns>
    /// <see cref="PgFrameResult.TooLarge"/> above <see cref="PgStartupCodes.MaxStartupPacketLength"/>;
    /// <see cref="PgFrameResult.Malformed"/> below 8 bytes, for an SSL/GSS request not exactly 8 bytes
    /// long, or for a cancel request outside 12..268 bytes. An unknown code is <see cref="PgFrameResult.Complete"/>
    /// with <see cref="PgStartupPacketKind.UnsupportedProtocol"/>, after the whole packet is buffered,
    /// because PostgreSQL reads the packet before it complains about the version.
    /// </returns>
    public static PgFrameResult TryReadStartupFrame(in ReadOnlySequence<byte> buffer, out PgStartupFrame frame)
    {
        frame = default;
        if (buffer.Length < 4)
        {
            return PgFrameResult.Incomplete;
        }

        Span<byte> copy = stackalloc byte[StartupHeaderLength];
        int available = (int)Math.Min(buffer.Length, StartupHeaderLength);
        ReadOnlySpan<byte> first = buffer.FirstSpan;
        scoped ReadOnlySpan<byte> header;
        if (first.Length >= available)
        {
            header = first[..available];
        }
        else
        {
            buffer.Slice(0, available).CopyTo(copy);
            header = copy[..available];
        }

        int length = BinaryPrimitives.ReadInt32BigEndian(header);
        if (length < StartupHeaderLength)
        {
            frame = new PgStartupFrame(PgStartupPacketKind.None, length, 0);
            return PgFrameResult.Malformed;
        }

        if (length > PgStartupCodes.MaxStartupPacketLength)
        {
            frame = new PgStartupFrame(PgStartupPacketKind.None, length, 0);
            return PgFrameResult.TooLarge;
        }

        if (available < StartupHeaderLength)
        {
            return PgFrameResult.Incomplete;
        }

        int code = BinaryPrimitives.ReadInt32BigEndian(header[4..]);
        PgStartupPacketKind kind = code switch
        {
            PgStartupCodes.SslRequest => PgStartupPacketKind.SslRequest,
            PgStartupCodes.GssEncRequest => PgStartupPacketKind.GssEncRequest,
            PgStartupCodes.CancelRequest => PgStartupPacketKind.CancelRequest,
            PgStartupCodes.Protocol30 or PgStartupCodes.Protocol32 => PgStartupPacketKind.StartupMessage,
            _ => PgStartupPacketKind.UnsupportedProtocol,
        };
        frame = new PgStartupFrame(kind, length, code);

        bool lengthOk = kind switch
        {
            // Both requests are exactly length + code; anything more would be read as the next packet.
            PgStartupPacketKind.SslRequest or PgStartupPacketKind.GssEncRequest => length == StartupHeaderLength,

            // 3.0 keys are 4 bytes (16 total); 3.2 allows up to 256 (268 total).
            PgStartupPacketKind.CancelRequest => length >= PgStartupCodes.CancelRequestFixedLength
                && length <= PgStartupCodes.CancelRequestFixedLength + PgStartupCodes.MaxCancelKeyLength,
            _ => true,
        };
        if (!lengthOk)
        {
            return PgFrameResult.Malformed;
        }

        return buffer.Length < length ? PgFrameResult.Incomplete : PgFrameResult.Complete;
    }

    /// <summary>
    /// Returns the body of a complete typed frame as one contiguous span: a slice of the first
    /// segment when it holds the whole frame (no copy), otherwise a copy into <paramref name="scratch"/>,
    /// which is grown (and kept for the connection's next message) when too small.
    /// </summary>
    /// <param name="buffer">Buffer starting at the frame, as passed to <see cref="TryReadFrame"/>.</param>
    /// <param name="length">The length returned by <see cref="TryReadFrame"/>.</param>
    /// <param name="scratch">A per-connection scratch array; may be null on the first call.</param>
    public static ReadOnlySpan<byte> GetBody(in ReadOnlySequence<byte> buffer, int length, ref byte[]? scratch)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 4);
        int bodyLength = length - 4;
        ReadOnlySpan<byte> first = buffer.FirstSpan;
        if (first.Length >= HeaderLength + bodyLength)
        {
            return first.Slice(HeaderLength, bodyLength);
        }

        if (scratch is null || scratch.Length < bodyLength)
        {
            // Grow geometrically (at least 256 bytes) so a run of growing messages does not reallocate each time.
            long doubled = Math.Max(scratch?.Length ?? 0, 128) * 2L;
            scratch = new byte[(int)Math.Max(bodyLength, Math.Min(doubled, Array.MaxLength))];
        }

        buffer.Slice(HeaderLength, bodyLength).CopyTo(scratch);
        return scratch.AsSpan(0, bodyLength);
    }
}
