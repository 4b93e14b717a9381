using System.Security.Cryptography;
using NSec.Cryptography;

namespace NhiAudit.Audit;

/// <summary>
/// The private key that signs checkpoints: ECDSA P-256 (<c>ES256</c>, .NET's ECDsa) or Ed25519 (NSec), read from PEM.
/// </summary>
public sealed class AuditCheckpointSigner : IDisposable
{
    private readonly ECDsa? _ecdsa;
    private readonly Key? _ed25519;

    private AuditCheckpointSigner(ECDsa? ecdsa, Key? ed25519, byte[] publicKeyInfo)
    {
        _ecdsa = ecdsa;
        _ed25519 = ed25519;
        Algorithm = ecdsa is not null ? AuditCheckpointVerifier.Es256 : AuditCheckpointVerifier.Ed25519Name;
        PublicKey = new AuditCheckpointVerifier(publicKeyInfo);
    }

    /// <summary><c>ES256</c> or <c>Ed25519</c>.</summary>
    public string Algorithm { get; }

    /// <summary>The matching public key, for <c>nhiaudit verify --public-key</c> and for tests.</summary>
    public AuditCheckpointVerifier PublicKey { get; }

    /// <summary>The key id written into every checkpoint.</summary>
    public string KeyId => PublicKey.KeyId;

    /// <summary>Reads a PEM private key: PKCS#8 (<c>PRIVATE KEY</c>) holding P-256 or Ed25519, or SEC1 (<c>EC PRIVATE KEY</c>).</summary>
    /// <param name="pem">The PEM text.</param>
    /// <exception cref="FormatException">The text holds no usable key, or a key of another kind (RSA, P-384, …).</exception>
    public static AuditCheckpointSigner FromPem(string pem)
    {
        ArgumentNullException.ThrowIfNull(pem);
        if (pem.Contains("ENCRYPTED PRIVATE KEY", StringComparison.Ordinal))
        {
            throw new FormatException("the checkpoint signing key is encrypted; give an unencrypted PKCS#8 key (protect the file or use a Key Vault secret)");
        }

        var ecdsa = ECDsa.Create();
        try
        {
            ecdsa.ImportFromPem(pem);
            if (ecdsa.KeySize != 256 || ecdsa.ExportParameters(false).Curve.Oid.Value != "1.2.840.10045.3.1.7")
            {
                throw new FormatException("the checkpoint signing key is an EC key on another curve; only P-256 (prime256v1) and Ed25519 are accepted");
            }

            return new AuditCheckpointSigner(ecdsa, null, ecdsa.ExportSubjectPublicKeyInfo());
        }
        catch (CryptographicException)
        {
            ecdsa.Dispose();
        }
        catch (ArgumentException)
        {
            ecdsa.Dispose();
        }
        catch (FormatException)
        {
            ecdsa.Dispose();
            throw;
        }

        try
        {
            var key = Key.Import(SignatureAlgorithm.Ed25519, System.Text.Encoding.ASCII.GetBytes(pem.Trim()), KeyBlobFormat.PkixPrivateKeyText,
                new KeyCreationParameters { ExportPolicy = KeyExportPolicies.None });
            return new AuditCheckpointSigner(null, key, key.PublicKey.Export(KeyBlobFormat.PkixPublicKey));
        }
        catch (FormatException ex)
        {
            throw new FormatException("the checkpoint signing key is neither an ECDSA P-256 nor an Ed25519 private key in PEM", ex);
        }
    }

    /// <summary>Reads <see cref="FromPem"/> from a file.</summary>
    /// <param name="path">The PEM file.</param>
    public static AuditCheckpointSigner FromFile(string path) => FromPem(File.ReadAllText(path));

    /// <summary>Makes a signed checkpoint.</summary>
    /// <param name="replica">The replica.</param>
    /// <param name="sequence">The covered seq.</param>
    /// <param name="hash">The covered record's hash (64 lowercase hex).</param>
    /// <param name="time">Now.</param>
    public AuditCheckpoint Sign(string replica, long sequence, string hash, DateTimeOffset time)
    {
        var data = AuditCheckpoint.GetSignedBytes(replica, sequence, hash, time);
        var signature = _ecdsa is not null
            ? _ecdsa.SignData(data, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation)
            : SignatureAlgorithm.Ed25519.Sign(_ed25519!, data);
        return new AuditCheckpoint
        {
            Replica = replica,
            Sequence = sequence,
            Hash = hash,
            Time = time,
            Algorithm = Algorithm,
            KeyId = KeyId,
            Signature = Convert.ToBase64String(signature),
        };
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _ecdsa?.Dispose();
        _ed25519?.Dispose();
        PublicKey.Dispose();
    }
}

/// <summary>A public key that checks checkpoint signatures, read from PEM (<c>PUBLIC KEY</c>) or derived from a private key.</summary>
public sealed class AuditCheckpointVerifier : IDisposable
{
    internal const string Es256 = "ES256";
    internal const string Ed25519Name = "Ed25519";

    private readonly ECDsa? _ecdsa;
    private readonly PublicKey? _ed25519;

    internal AuditCheckpointVerifier(byte[] subjectPublicKeyInfo)
    {
        KeyId = Convert.ToHexStringLower(SHA256.HashData(subjectPublicKeyInfo))[..16];
        try
        {
            var ecdsa = ECDsa.Create();
            ecdsa.ImportSubjectPublicKeyInfo(subjectPublicKeyInfo, out _);
            _ecdsa = ecdsa;
            Algorithm = Es256;
        }
        catch (CryptographicException)
        {
            _ed25519 = NSec.Cryptography.PublicKey.Import(SignatureAlgorithm.Ed25519, subjectPublicKeyInfo, KeyBlobFormat.PkixPublicKey);
            Algorithm = Ed25519Name;
        }
    }

    /// <summary><c>ES256</c> or <c>Ed25519</c>.</summary>
    public string Algorithm { get; }

    /// <summary>The first 16 hex digits of the SHA-256 of the key's SubjectPublicKeyInfo.</summary>
    public string KeyId { get; }

    /// <summary>Reads a public key PEM (<c>PUBLIC KEY</c>), or a private key PEM whose public half is used.</summary>
    /// <param name="pem">The PEM text.</param>
    /// <exception cref="FormatException">No usable key.</exception>
    public static AuditCheckpointVerifier FromPem(string pem)
    {
        ArgumentNullException.ThrowIfNull(pem);
        if (pem.Contains("PRIVATE KEY", StringComparison.Ordinal))
        {
            using var signer = AuditCheckpointSigner.FromPem(pem);
            return FromPem(signer.PublicKey.ExportPem());
        }

        try
        {
            var fields = PemEncoding.Find(pem);
            if (pem[fields.Label] != "PUBLIC KEY")
            {
                throw new FormatException($"expected a PUBLIC KEY PEM, found {pem[fields.Label]}");
            }

            return new AuditCheckpointVerifier(Convert.FromBase64String(pem[fields.Base64Data]));
        }
        catch (Exception ex) when (ex is ArgumentException or CryptographicException or FormatException)
        {
            throw new FormatException("not an ECDSA P-256 or Ed25519 public key in PEM: " + ex.Message, ex);
        }
    }

    /// <summary>Reads <see cref="FromPem"/> from a file.</summary>
    /// <param name="path">The PEM file.</param>
    public static AuditCheckpointVerifier FromFile(string path) => FromPem(File.ReadAllText(path));

    /// <summary>The key as a <c>PUBLIC KEY</c> PEM.</summary>
    public string ExportPem() => PemEncoding.WriteString("PUBLIC KEY", ExportSubjectPublicKeyInfo());

    /// <summary>Whether <paramref name="checkpoint"/> was signed by this key and is unchanged since.</summary>
    /// <param name="checkpoint">The checkpoint.</param>
    public bool Verify(AuditCheckpoint checkpoint)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        if (checkpoint.KeyId != KeyId || checkpoint.Algorithm != Algorithm)
        {
            return false;
        }

        var signature = new byte[(checkpoint.Signature.Length * 3 / 4) + 3];
        if (!Convert.TryFromBase64String(checkpoint.Signature, signature, out var length))
        {
            return false;
        }

        var data = checkpoint.GetSignedBytes();
        return _ecdsa is not null
            ? _ecdsa.VerifyData(data, signature.AsSpan(0, length), HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation)
            : SignatureAlgorithm.Ed25519.Verify(_ed25519!, data, signature.AsSpan(0, length));
    }

    /// <inheritdoc />
    public void Dispose() => _ecdsa?.Dispose();

    private byte[] ExportSubjectPublicKeyInfo() =>
        _ecdsa is not null ? _ecdsa.ExportSubjectPublicKeyInfo() : _ed25519!.Export(KeyBlobFormat.PkixPublicKey);
}
