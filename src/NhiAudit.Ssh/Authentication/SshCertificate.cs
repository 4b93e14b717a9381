using System.Diagnostics.CodeAnalysis;
using NhiAudit.Ssh.Transport;

namespace NhiAudit.Ssh.Authentication;

/// <summary>Whether an OpenSSH certificate certifies a user or a host (PROTOCOL.certkeys).</summary>
public enum SshCertificateKind : uint
{
    /// <summary>SSH2_CERT_TYPE_USER.</summary>
    User = 1,

    /// <summary>SSH2_CERT_TYPE_HOST.</summary>
    Host = 2,
}

/// <summary>
/// An OpenSSH certificate (<c>ssh-ed25519-cert-v01@openssh.com</c>, <c>ecdsa-sha2-nistp256-cert-v01@openssh.com</c>,
/// <c>ssh-rsa-cert-v01@openssh.com</c>), parsed per OpenSSH's PROTOCOL.certkeys. Parsing checks the structure only;
/// whether the CA is trusted, the signature holds and the certificate is valid now is decided by the authenticator.
/// </summary>
public sealed class SshCertificate
{
    private static readonly Dictionary<string, string> KeyTypeOfCertificateType = new(StringComparer.Ordinal)
    {
        ["ssh-ed25519-cert-v01@openssh.com"] = SshPublicKeyBlob.Ed25519,
        ["ecdsa-sha2-nistp256-cert-v01@openssh.com"] = SshPublicKeyBlob.EcdsaP256,
        ["ssh-rsa-cert-v01@openssh.com"] = SshPublicKeyBlob.Rsa,
    };

    private SshCertificate()
    {
    }

    /// <summary>The certificate type, e.g. <c>ssh-ed25519-cert-v01@openssh.com</c>.</summary>
    public string CertificateType { get; private init; } = "";

    /// <summary>The certified key's plain type: <c>ssh-ed25519</c>, <c>ecdsa-sha2-nistp256</c> or <c>ssh-rsa</c>.</summary>
    public string KeyType { get; private init; } = "";

    /// <summary>The certified key as a plain public key blob (what the client's signature is checked against).</summary>
    public ReadOnlyMemory<byte> PublicKeyBlob { get; private init; }

    /// <summary>The CA-assigned serial number.</summary>
    public ulong Serial { get; private init; }

    /// <summary>User or host certificate (other values make parsing fail).</summary>
    public SshCertificateKind Kind { get; private init; }

    /// <summary>The key id the CA gave (<c>ssh-keygen -I</c>).</summary>
    public string KeyId { get; private init; } = "";

    /// <summary>The principals the certificate is valid for (<c>ssh-keygen -n</c>); empty means "any" to OpenSSH, and is refused here.</summary>
    public IReadOnlyList<string> Principals { get; private init; } = [];

    /// <summary>Seconds since the Unix epoch from which the certificate is valid (0: always).</summary>
    public ulong ValidAfter { get; private init; }

    /// <summary>Seconds since the Unix epoch until which the certificate is valid (<see cref="ulong.MaxValue"/>: forever).</summary>
    public ulong ValidBefore { get; private init; }

    /// <summary>Critical options by name with their string value (<c>force-command</c>, <c>source-address</c>, ...).</summary>
    public IReadOnlyDictionary<string, string> CriticalOptions { get; private init; } = new Dictionary<string, string>();

    /// <summary>Extension names (<c>permit-pty</c>, ...).</summary>
    public IReadOnlyList<string> Extensions { get; private init; } = [];

    /// <summary>The CA's public key blob.</summary>
    public ReadOnlyMemory<byte> SignatureKeyBlob { get; private init; }

    /// <summary>The CA's signature blob over <see cref="SignedData"/>.</summary>
    public ReadOnlyMemory<byte> SignatureBlob { get; private init; }

    /// <summary>The bytes the CA signed: the whole certificate up to and including the signature key.</summary>
    public ReadOnlyMemory<byte> SignedData { get; private init; }

    /// <summary>The CA key's OpenSSH fingerprint.</summary>
    public string CertificateAuthorityFingerprint => SshPublicKeyBlob.Fingerprint(SignatureKeyBlob.Span);

    /// <summary>Whether <paramref name="type"/> names a certificate type this parser reads.</summary>
    public static bool IsCertificateType(string type) => type is not null && KeyTypeOfCertificateType.ContainsKey(type);

    /// <summary>
    /// The certificate type a public key algorithm name stands for: <c>rsa-sha2-256-cert-v01@openssh.com</c> and
    /// <c>rsa-sha2-512-cert-v01@openssh.com</c> are <c>ssh-rsa-cert-v01@openssh.com</c> signed with SHA-2; plain
    /// <c>ssh-rsa-cert-v01@openssh.com</c> (SHA-1 signatures) is refused (null).
    /// </summary>
    internal static (string CertificateType, string SignatureAlgorithm)? ForAlgorithm(string algorithm) => algorithm switch
    {
        "ssh-ed25519-cert-v01@openssh.com" => (algorithm, SshPublicKeyBlob.Ed25519),
        "ecdsa-sha2-nistp256-cert-v01@openssh.com" => (algorithm, SshPublicKeyBlob.EcdsaP256),
        "rsa-sha2-256-cert-v01@openssh.com" => ("ssh-rsa-cert-v01@openssh.com", "rsa-sha2-256"),
        "rsa-sha2-512-cert-v01@openssh.com" => ("ssh-rsa-cert-v01@openssh.com", "rsa-sha2-512"),
        _ => null,
    };

    /// <summary>
    /// Parses a certificate blob. Never throws for malformed input: returns false with <paramref name="error"/>.
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> blob, [NotNullWhen(true)] out SshCertificate? certificate, out string error)
    {
        certificate = null;
        try
        {
            return TryParseCore(blob, out certificate, out error);
        }
        catch (SshProtocolException ex)
        {
            error = "malformed certificate: " + ex.Message;
            return false;
        }
    }

    private static bool TryParseCore(ReadOnlySpan<byte> blob, out SshCertificate? certificate, out string error)
    {
        certificate = null;
        var reader = new SshReader(blob);
        var type = reader.ReadUtf8String();
        if (!KeyTypeOfCertificateType.TryGetValue(type, out var keyType))
        {
            error = $"certificate type {type} is not accepted";
            return false;
        }

        reader.ReadStringBytes(); // nonce
        var key = new SshWriter().WriteString(keyType);
        switch (keyType)
        {
            case SshPublicKeyBlob.Ed25519:
                key.WriteString(reader.ReadStringBytes());
                break;
            case SshPublicKeyBlob.EcdsaP256:
                key.WriteString(reader.ReadStringBytes()).WriteString(reader.ReadStringBytes());
                break;
            default:
                key.WriteString(reader.ReadStringBytes()).WriteString(reader.ReadStringBytes());
                break;
        }

        var publicKey = key.ToArray();
        if (!SshPublicKeyBlob.TryGetKeyType(publicKey, out _, out error))
        {
            error = "certified key: " + error;
            return false;
        }

        var serial = reader.ReadUInt64();
        var kind = reader.ReadUInt32();
        if (kind is not (1 or 2))
        {
            error = $"certificate kind {kind} is neither user nor host";
            return false;
        }

        var keyId = reader.ReadUtf8String();
        var principals = ReadStrings(reader.ReadStringBytes());
        var validAfter = reader.ReadUInt64();
        var validBefore = reader.ReadUInt64();
        var criticalOptions = ReadOptions(reader.ReadStringBytes(), out var optionsError);
        if (criticalOptions is null)
        {
            error = "critical options: " + optionsError;
            return false;
        }

        var extensions = ReadOptions(reader.ReadStringBytes(), out var extensionsError);
        if (extensions is null)
        {
            error = "extensions: " + extensionsError;
            return false;
        }

        reader.ReadStringBytes(); // reserved
        var signatureKey = reader.ReadStringBytes();
        if (!SshPublicKeyBlob.TryGetKeyType(signatureKey, out _, out error))
        {
            error = "CA key: " + error;
            return false;
        }

        var signedLength = blob.Length - reader.Remaining;
        var signature = reader.ReadStringBytes();
        if (!reader.IsAtEnd)
        {
            error = "trailing bytes after the certificate signature";
            return false;
        }

        certificate = new SshCertificate
        {
            CertificateType = type,
            KeyType = keyType,
            PublicKeyBlob = publicKey,
            Serial = serial,
            Kind = (SshCertificateKind)kind,
            KeyId = keyId,
            Principals = principals,
            ValidAfter = validAfter,
            ValidBefore = validBefore,
            CriticalOptions = criticalOptions,
            Extensions = [.. extensions.Keys],
            SignatureKeyBlob = signatureKey.ToArray(),
            SignatureBlob = signature.ToArray(),
            SignedData = blob[..signedLength].ToArray(),
        };
        error = "";
        return true;
    }

    /// <summary>
    /// Checks the CA signature over the certificate with the CA key it names. The algorithm must fit the CA key type
    /// (rsa-sha2-256/512 for RSA, never ssh-rsa). Never throws.
    /// </summary>
    public bool VerifyCertificateAuthoritySignature()
    {
        if (!SshPublicKeyBlob.TryGetKeyType(SignatureKeyBlob.Span, out var caType, out _))
        {
            return false;
        }

        string algorithm;
        try
        {
            var reader = new SshReader(SignatureBlob.Span);
            algorithm = reader.ReadUtf8String();
        }
        catch (SshProtocolException)
        {
            return false;
        }

        return SshPublicKeyBlob.AlgorithmMatchesKeyType(algorithm, caType)
            && SshPublicKeyBlob.Verify(SignatureKeyBlob.Span, algorithm, SignedData.Span, SignatureBlob.Span);
    }

    private static List<string> ReadStrings(ReadOnlySpan<byte> data)
    {
        var reader = new SshReader(data);
        var values = new List<string>();
        while (!reader.IsAtEnd)
        {
            values.Add(reader.ReadUtf8String());
        }

        return values;
    }

    /// <summary>Reads name/data pairs; data is empty or one string. Names must be unique.</summary>
    private static Dictionary<string, string>? ReadOptions(ReadOnlySpan<byte> data, out string error)
    {
        var reader = new SshReader(data);
        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        while (!reader.IsAtEnd)
        {
            var name = reader.ReadUtf8String();
            var value = reader.ReadStringBytes();
            var text = "";
            if (value.Length > 0)
            {
                var valueReader = new SshReader(value);
                text = valueReader.ReadUtf8String();
                if (!valueReader.IsAtEnd)
                {
                    error = $"option {name} has trailing data";
                    return null;
                }
            }

            if (!options.TryAdd(name, text))
            {
                error = $"option {name} appears twice";
                return null;
            }
        }

        error = "";
        return options;
    }
}
