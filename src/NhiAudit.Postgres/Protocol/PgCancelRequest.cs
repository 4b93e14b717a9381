using System.Buffers;
using System.Buffers.Binary;

namespace NhiAudit.Postgres.Protocol;

/// <summary>
/// A CancelRequest: <c>Int32 length | Int32 80877102 | Int32 process id | secret key</c>.
/// The key is 4 bytes in protocol 3.0 and up to 256 bytes in 3.2 (PostgreSQL 18).
/// </summary>
/// <remarks>Allocates the key array: cancel requests arrive on their own short-lived connection, so this is off the hot path.</remarks>
internal sealed class PgCancelRequest
{
    private readonly byte[] _secretKey;

    private PgCancelRequest(int processId, byte[] secretKey)
    {
        ProcessId = processId;
        _secretKey = secretKey;
    }

    /// <summary>The backend process id from BackendKeyData.</summary>
    public int ProcessId { get; }

    /// <summary>The secret key bytes from BackendKeyData.</summary>
    public ReadOnlySpan<byte> SecretKey => _secretKey;

    /// <summary>Parses a whole CancelRequest packet held in a sequence.</summary>
    public static PgCancelRequest Parse(in ReadOnlySequence<byte> packet) =>
        packet.IsSingleSegment ? Parse(packet.FirstSpan) : Parse(packet.ToArray());

    /// <summary>Parses a whole CancelRequest packet, starting at its length word.</summary>
    /// <exception cref="PgProtocolException">The length or code is wrong.</exception>
    public static PgCancelRequest Parse(ReadOnlySpan<byte> packet)
    {
        if (packet.Length < PgStartupCodes.CancelRequestFixedLength
            || packet.Length > PgStartupCodes.CancelRequestFixedLength + PgStartupCodes.MaxCancelKeyLength)
        {
            throw new PgProtocolException($"invalid length of cancel request packet: {packet.Length}");
        }

        int length = BinaryPrimitives.ReadInt32BigEndian(packet);
        if (length != packet.Length)
        {
            throw new PgProtocolException($"invalid length of cancel request packet: header says {length}, packet has {packet.Length} bytes");
        }

        if (BinaryPrimitives.ReadInt32BigEndian(packet[4..]) != PgStartupCodes.CancelRequest)
        {
            throw new PgProtocolException("not a cancel request packet");
        }

        int pid = BinaryPrimitives.ReadInt32BigEndian(packet[8..]);
        return new PgCancelRequest(pid, packet[PgStartupCodes.CancelRequestFixedLength..].ToArray());
    }
}
