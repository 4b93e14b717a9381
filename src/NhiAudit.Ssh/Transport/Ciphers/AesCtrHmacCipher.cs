using System.Buffers.Binary;
using System.Numerics;
using System.Security.Cryptography;

namespace NhiAudit.Ssh.Transport.Ciphers;

/// <summary>
/// aes128-ctr / aes256-ctr (RFC 4344) with hmac-sha2-256/512 (RFC 6668), either MAC-then-encrypt as in
/// RFC 4253 §6.4 or encrypt-then-MAC (the -etm@openssh.com variants: the length stays in clear, the MAC covers
/// the ciphertext and is checked before anything is decrypted). CTR is built on AES-ECB of counter blocks.
/// </summary>
internal sealed class AesCtrHmacCipher : PacketCipher
{
    private readonly Aes _aes;
    private readonly byte[] _counter;
    private readonly IncrementalHash _mac;
    private readonly int _macLength;
    private readonly bool _encryptThenMac;
    private byte[] _keystream = new byte[1024];
    private byte[] _counterBlocks = new byte[1024];

    public AesCtrHmacCipher(ReadOnlySpan<byte> key, ReadOnlySpan<byte> iv, HashAlgorithmName macHash, ReadOnlySpan<byte> macKey, bool encryptThenMac)
    {
        _aes = Aes.Create();
        _aes.Key = key.ToArray();
        _counter = iv[..16].ToArray();
        _mac = IncrementalHash.CreateHMAC(macHash, macKey);
        _macLength = _mac.HashLengthInBytes;
        _encryptThenMac = encryptThenMac;
    }

    public override int BlockSize => 16;

    public override int TagLength => _macLength;

    public override bool LengthOutsideAlignment => _encryptThenMac;

    public override uint PeekPacketLength(uint sequenceNumber, ReadOnlySpan<byte> head)
    {
        if (_encryptThenMac)
        {
            return BinaryPrimitives.ReadUInt32BigEndian(head);
        }

        // Decrypt a copy of the first block with the current counter; the state advances only in Open.
        Span<byte> block = stackalloc byte[16];
        _aes.EncryptEcb(_counter, block, PaddingMode.None);
        return BinaryPrimitives.ReadUInt32BigEndian(head) ^ BinaryPrimitives.ReadUInt32BigEndian(block);
    }

    public override void Seal(uint sequenceNumber, Span<byte> packet, Span<byte> tag)
    {
        if (_encryptThenMac)
        {
            Transform(packet[4..]);
            ComputeMac(sequenceNumber, packet, tag);
        }
        else
        {
            ComputeMac(sequenceNumber, packet, tag);
            Transform(packet);
        }
    }

    public override bool Open(uint sequenceNumber, Span<byte> packet, ReadOnlySpan<byte> tag)
    {
        Span<byte> expected = stackalloc byte[_macLength];
        if (_encryptThenMac)
        {
            ComputeMac(sequenceNumber, packet, expected);
            if (!CryptographicOperations.FixedTimeEquals(expected, tag))
            {
                return false;
            }

            Transform(packet[4..]);
            return true;
        }

        Transform(packet);
        ComputeMac(sequenceNumber, packet, expected);
        return CryptographicOperations.FixedTimeEquals(expected, tag);
    }

    /// <summary>mac = MAC(key, sequence_number || packet) (RFC 4253 §6.4).</summary>
    private void ComputeMac(uint sequenceNumber, ReadOnlySpan<byte> packet, Span<byte> tag)
    {
        Span<byte> sequence = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(sequence, sequenceNumber);
        _mac.AppendData(sequence);
        _mac.AppendData(packet);
        _mac.GetHashAndReset(tag);
    }

    /// <summary>XORs the data with AES(counter), AES(counter + 1), …; the data is always whole blocks.</summary>
    private void Transform(Span<byte> data)
    {
        if (data.Length % 16 != 0)
        {
            throw new SshProtocolException("CTR data is not a whole number of blocks");
        }

        if (_keystream.Length < data.Length)
        {
            var size = Math.Min(Math.Max(data.Length, _keystream.Length * 2), 64 * 1024);
            _keystream = new byte[size];
            _counterBlocks = new byte[size];
        }

        while (!data.IsEmpty)
        {
            var chunk = Math.Min(data.Length, _keystream.Length);
            for (var offset = 0; offset < chunk; offset += 16)
            {
                _counter.CopyTo(_counterBlocks, offset);
                IncrementCounter();
            }

            _aes.EncryptEcb(_counterBlocks.AsSpan(0, chunk), _keystream.AsSpan(0, chunk), PaddingMode.None);
            var target = data[..chunk];
            var i = 0;
            for (; i <= chunk - Vector<byte>.Count; i += Vector<byte>.Count)
            {
                (new Vector<byte>(target[i..]) ^ new Vector<byte>(_keystream, i)).CopyTo(target[i..]);
            }

            for (; i < chunk; i++)
            {
                target[i] ^= _keystream[i];
            }

            data = data[chunk..];
        }
    }

    private void IncrementCounter()
    {
        var low = BinaryPrimitives.ReadUInt64BigEndian(_counter.AsSpan(8)) + 1;
        BinaryPrimitives.WriteUInt64BigEndian(_counter.AsSpan(8), low);
        if (low == 0)
        {
            var high = BinaryPrimitives.ReadUInt64BigEndian(_counter) + 1;
            BinaryPrimitives.WriteUInt64BigEndian(_counter, high);
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _aes.Dispose();
            _mac.Dispose();
        }

        base.Dispose(disposing);
    }
}
