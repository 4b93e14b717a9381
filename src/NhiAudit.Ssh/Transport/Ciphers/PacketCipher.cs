using System.Buffers.Binary;

namespace NhiAudit.Ssh.Transport.Ciphers;

/// <summary>
/// Protects packets in one direction: encryption plus integrity (a MAC or an AEAD tag). A packet here is the
/// whole <c>uint32 packet_length || byte padding_length || payload || padding</c> of RFC 4253 §6; implementations
/// encrypt and decrypt it in place and produce or check the tag that follows it on the wire.
/// </summary>
internal abstract class PacketCipher : IDisposable
{
    /// <summary>Cipher block size; padding aligns to max(8, this) (RFC 4253 §6).</summary>
    public abstract int BlockSize { get; }

    /// <summary>Bytes of MAC or AEAD tag after the packet.</summary>
    public abstract int TagLength { get; }

    /// <summary>
    /// Whether <c>packet_length</c> is left out of the padding alignment: true for AEAD and encrypt-then-MAC modes,
    /// where the length travels outside the encrypted body (OpenSSH PROTOCOL, RFC 5647 §7.2).
    /// </summary>
    public abstract bool LengthOutsideAlignment { get; }

    /// <summary>Bytes needed from the head of a packet before its length is known (4, or a block for CTR/no MAC-first).</summary>
    public virtual int LengthHeaderSize => LengthOutsideAlignment ? 4 : Math.Max(BlockSize, 4);

    /// <summary>Reads <c>packet_length</c> from the head of a packet without changing any state.</summary>
    public virtual uint PeekPacketLength(uint sequenceNumber, ReadOnlySpan<byte> head) =>
        BinaryPrimitives.ReadUInt32BigEndian(head);

    /// <summary>Encrypts <paramref name="packet"/> in place and writes the tag.</summary>
    public abstract void Seal(uint sequenceNumber, Span<byte> packet, Span<byte> tag);

    /// <summary>Checks the tag and decrypts <paramref name="packet"/> in place; false when the tag does not match.</summary>
    public abstract bool Open(uint sequenceNumber, Span<byte> packet, ReadOnlySpan<byte> tag);

    /// <inheritdoc />
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases keys.</summary>
    protected virtual void Dispose(bool disposing)
    {
    }
}

/// <summary>The "none" cipher and MAC of the first key exchange.</summary>
internal sealed class NoneCipher : PacketCipher
{
    public static readonly NoneCipher Instance = new();

    public override int BlockSize => 8;

    public override int TagLength => 0;

    public override bool LengthOutsideAlignment => false;

    public override int LengthHeaderSize => 4;

    public override void Seal(uint sequenceNumber, Span<byte> packet, Span<byte> tag)
    {
    }

    public override bool Open(uint sequenceNumber, Span<byte> packet, ReadOnlySpan<byte> tag) => true;
}
