using System.Buffers.Binary;
using System.Security.Cryptography;
using Org.BouncyCastle.Crypto.Engines;
using Org.BouncyCastle.Crypto.Macs;
using Org.BouncyCastle.Crypto.Parameters;

namespace NhiAudit.Ssh.Transport.Ciphers;

/// <summary>
/// chacha20-poly1305@openssh.com (OpenSSH PROTOCOL.chacha20poly1305): the 64-byte key splits into K_2 (first half,
/// payload) and K_1 (second half, length). The nonce is the sequence number. ChaCha20 here is the original
/// variant with a 64-bit nonce, which .NET and NSec lack, so it comes from BouncyCastle.
/// </summary>
internal sealed class ChaCha20Poly1305Cipher : PacketCipher
{
    private readonly KeyParameter _mainKey;
    private readonly KeyParameter _headerKey;
    private readonly ChaChaEngine _engine = new();
    private readonly Poly1305 _poly = new();
    private readonly byte[] _nonce = new byte[8];

    public ChaCha20Poly1305Cipher(ReadOnlySpan<byte> key)
    {
        _mainKey = new KeyParameter(key[..32]);
        _headerKey = new KeyParameter(key.Slice(32, 32));
    }

    public override int BlockSize => 8;

    public override int TagLength => 16;

    public override bool LengthOutsideAlignment => true;

    public override uint PeekPacketLength(uint sequenceNumber, ReadOnlySpan<byte> head)
    {
        Span<byte> length = stackalloc byte[4];
        StartHeaderStream(sequenceNumber);
        _engine.ProcessBytes(head[..4], length);
        return BinaryPrimitives.ReadUInt32BigEndian(length);
    }

    public override void Seal(uint sequenceNumber, Span<byte> packet, Span<byte> tag)
    {
        StartHeaderStream(sequenceNumber);
        _engine.ProcessBytes(packet[..4], packet[..4]);
        Span<byte> polyKey = stackalloc byte[32];
        StartMainStream(sequenceNumber, polyKey);
        _engine.ProcessBytes(packet[4..], packet[4..]);
        ComputeTag(polyKey, packet, tag);
    }

    public override bool Open(uint sequenceNumber, Span<byte> packet, ReadOnlySpan<byte> tag)
    {
        Span<byte> polyKey = stackalloc byte[32];
        StartMainStream(sequenceNumber, polyKey);
        Span<byte> expected = stackalloc byte[16];
        ComputeTag(polyKey, packet, expected);
        if (!CryptographicOperations.FixedTimeEquals(expected, tag))
        {
            return false;
        }

        // The main stream is now at block 1, where the payload starts.
        _engine.ProcessBytes(packet[4..], packet[4..]);
        StartHeaderStream(sequenceNumber);
        _engine.ProcessBytes(packet[..4], packet[..4]);
        return true;
    }

    private void StartHeaderStream(uint sequenceNumber)
    {
        BinaryPrimitives.WriteUInt64BigEndian(_nonce, sequenceNumber);
        _engine.Init(true, new ParametersWithIV(_headerKey, _nonce));
    }

    /// <summary>Block 0 of the main stream gives the Poly1305 key; the payload uses blocks 1 and on.</summary>
    private void StartMainStream(uint sequenceNumber, Span<byte> polyKey)
    {
        BinaryPrimitives.WriteUInt64BigEndian(_nonce, sequenceNumber);
        _engine.Init(true, new ParametersWithIV(_mainKey, _nonce));
        Span<byte> block0 = stackalloc byte[64];
        block0.Clear();
        _engine.ProcessBytes(block0, block0);
        block0[..32].CopyTo(polyKey);
        CryptographicOperations.ZeroMemory(block0);
    }

    private void ComputeTag(ReadOnlySpan<byte> polyKey, ReadOnlySpan<byte> packet, Span<byte> tag)
    {
        _poly.Init(new KeyParameter(polyKey));
        _poly.BlockUpdate(packet);
        _poly.DoFinal(tag);
    }
}
