using System.Buffers.Binary;
using System.Security.Cryptography;

namespace NhiAudit.Ssh.Transport.Ciphers;

/// <summary>
/// aes128-gcm@openssh.com and aes256-gcm@openssh.com (RFC 5647 as OpenSSH uses it): the packet length is the
/// additional authenticated data, the rest is encrypted; the 12-byte nonce is a 4-byte fixed field and an 8-byte
/// invocation counter incremented after every packet (RFC 5647 §7.1).
/// </summary>
internal sealed class AesGcmCipher : PacketCipher
{
    private readonly AesGcm _aes;
    private readonly byte[] _nonce;

    public AesGcmCipher(ReadOnlySpan<byte> key, ReadOnlySpan<byte> iv)
    {
        _aes = new AesGcm(key, 16);
        _nonce = iv[..12].ToArray();
    }

    public override int BlockSize => 16;

    public override int TagLength => 16;

    public override bool LengthOutsideAlignment => true;

    public override void Seal(uint sequenceNumber, Span<byte> packet, Span<byte> tag)
    {
        var body = packet[4..];
        _aes.Encrypt(_nonce, body, body, tag, packet[..4]);
        IncrementInvocationCounter();
    }

    public override bool Open(uint sequenceNumber, Span<byte> packet, ReadOnlySpan<byte> tag)
    {
        var body = packet[4..];
        try
        {
            _aes.Decrypt(_nonce, body, tag, body, packet[..4]);
        }
        catch (AuthenticationTagMismatchException)
        {
            return false;
        }

        IncrementInvocationCounter();
        return true;
    }

    private void IncrementInvocationCounter()
    {
        var counter = _nonce.AsSpan(4, 8);
        BinaryPrimitives.WriteUInt64BigEndian(counter, BinaryPrimitives.ReadUInt64BigEndian(counter) + 1);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _aes.Dispose();
        }

        base.Dispose(disposing);
    }
}
