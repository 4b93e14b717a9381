using System.Security.Cryptography;
using NhiAudit.Ssh.Transport;

namespace NhiAudit.Ssh.HostKeys;

/// <summary>An ecdsa-sha2-nistp256 host key (RFC 5656 §3).</summary>
public sealed class EcdsaHostKey : SshHostKey
{
    private readonly ECDsa _ecdsa;
    private readonly byte[] _publicKeyBlob;

    /// <summary>Wraps a P-256 private key.</summary>
    public EcdsaHostKey(ECDsa ecdsa)
    {
        ArgumentNullException.ThrowIfNull(ecdsa);
        var parameters = ecdsa.ExportParameters(includePrivateParameters: false);
        if (parameters.Curve.Oid?.Value != ECCurve.NamedCurves.nistP256.Oid.Value)
        {
            throw new ArgumentException("only NIST P-256 ECDSA host keys are supported", nameof(ecdsa));
        }

        _ecdsa = ecdsa;
        _publicKeyBlob = new SshWriter().WriteString("ecdsa-sha2-nistp256").WriteString("nistp256")
            .WriteString(EncodePoint(parameters.Q)).ToArray();
    }

    /// <inheritdoc />
    public override string KeyType => "ecdsa-sha2-nistp256";

    /// <inheritdoc />
    public override IReadOnlyList<string> SignatureAlgorithms { get; } = ["ecdsa-sha2-nistp256"];

    /// <inheritdoc />
    public override ReadOnlyMemory<byte> PublicKeyBlob => _publicKeyBlob;

    /// <inheritdoc />
    public override byte[] Sign(string algorithm, ReadOnlySpan<byte> data)
    {
        // The signature is string(mpint r || mpint s) (RFC 5656 §3.1.2).
        var rs = _ecdsa.SignData(data, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        var inner = new SshWriter().WriteMpint(rs.AsSpan(0, 32)).WriteMpint(rs.AsSpan(32, 32)).ToArray();
        return SignatureBlob("ecdsa-sha2-nistp256", inner);
    }

    internal static byte[] EncodePoint(ECPoint q)
    {
        var point = new byte[65];
        point[0] = 0x04;
        q.X!.CopyTo(point, 1);
        q.Y!.CopyTo(point, 33);
        return point;
    }

    internal static bool Verify(ref SshReader keyReader, ReadOnlySpan<byte> data, ReadOnlySpan<byte> signature)
    {
        if (keyReader.ReadUtf8String() != "nistp256")
        {
            return false;
        }

        var q = keyReader.ReadStringBytes();
        if (q.Length != 65 || q[0] != 0x04)
        {
            return false;
        }

        var signatureReader = new SshReader(signature);
        var r = signatureReader.ReadPositiveMpint();
        var s = signatureReader.ReadPositiveMpint();
        if (r.Length > 32 || s.Length > 32)
        {
            return false;
        }

        Span<byte> rs = stackalloc byte[64];
        rs.Clear();
        r.CopyTo(rs[(32 - r.Length)..32]);
        s.CopyTo(rs[(64 - s.Length)..]);
        using var ecdsa = ECDsa.Create(new ECParameters
        {
            Curve = ECCurve.NamedCurves.nistP256,
            Q = new ECPoint { X = q.Slice(1, 32).ToArray(), Y = q.Slice(33, 32).ToArray() },
        });
        return ecdsa.VerifyData(data, rs, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _ecdsa.Dispose();
        }

        base.Dispose(disposing);
    }
}
