using NhiAudit.Identity;

namespace NhiAudit.Ssh.Authentication;

/// <summary>How the workload-facing SSH server authenticates clients (RFC 4252).</summary>
public sealed record SshAuthenticationOptions
{
    /// <summary>Public keys registered to identities (<c>publickey</c> with a plain key).</summary>
    public IReadOnlyList<SshAuthorizedKey> AuthorizedKeys { get; init; } = [];

    /// <summary>CAs whose OpenSSH user certificates are accepted (<c>publickey</c> with a certificate).</summary>
    public IReadOnlyList<SshTrustedCertificateAuthority> CertificateAuthorities { get; init; } = [];

    /// <summary>
    /// Validates the workload token answered to the <c>keyboard-interactive</c> prompt; null disables the method.
    /// The token is never logged or recorded.
    /// </summary>
    public IWorkloadAuthenticator? WorkloadAuthenticator { get; init; }

    /// <summary>
    /// Which certificate principal a user name requires. By default a certificate must list the requested user
    /// name itself; a user named here requires the mapped principal instead (e.g. <c>deploy</c> → <c>ci-deployers</c>).
    /// </summary>
    public IReadOnlyDictionary<string, string> PrincipalForUser { get; init; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>The clock certificates' validity windows are checked against.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>How far the client's CA clock and ours may disagree at either end of a certificate's validity. Default 60 s.</summary>
    public TimeSpan CertificateClockSkew { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Failed attempts (other than <c>none</c>) before the connection ends with NO_MORE_AUTH_METHODS_AVAILABLE. Default 6.</summary>
    public int MaxAttempts { get; init; } = 6;

    /// <summary>Text sent as SSH_MSG_USERAUTH_BANNER before authentication; none when null.</summary>
    public string? Banner { get; init; }

    /// <summary>Receives every authentication success and refusal (for <c>ssh.auth</c> / <c>ssh.auth.failed</c> records).</summary>
    public ISshAuthenticationAudit? Audit { get; init; }

    /// <summary>The methods a client may try with these settings, in the order offered.</summary>
    public IReadOnlyList<string> Methods
    {
        get
        {
            var methods = new List<string>();
            if (AuthorizedKeys.Count > 0 || CertificateAuthorities.Count > 0)
            {
                methods.Add("publickey");
            }

            if (WorkloadAuthenticator is not null)
            {
                methods.Add("keyboard-interactive");
            }

            return methods;
        }
    }

    /// <summary>The registered keys of <see cref="IdentityOptions.SshKeys"/> (configuration <c>NhiAudit:Identity:SshKeys</c>).</summary>
    /// <exception cref="FormatException">A key line is not a supported public key.</exception>
    public static IReadOnlyList<SshAuthorizedKey> AuthorizedKeysFrom(IdentityOptions identity)
    {
        ArgumentNullException.ThrowIfNull(identity);
        return [.. identity.SshKeys.Select(k => SshAuthorizedKey.Parse(k.PublicKey, k.Subject, k.Kind))];
    }

    /// <summary>The trusted CAs of <see cref="IdentityOptions.SshCertificateAuthorities"/> (configuration <c>NhiAudit:Identity:SshCertificateAuthorities</c>).</summary>
    /// <exception cref="FormatException">A CA key line is not a supported public key.</exception>
    public static IReadOnlyList<SshTrustedCertificateAuthority> CertificateAuthoritiesFrom(IdentityOptions identity)
    {
        ArgumentNullException.ThrowIfNull(identity);
        return [.. identity.SshCertificateAuthorities.Select(c => SshTrustedCertificateAuthority.Parse(c.PublicKey, c.Name, c.Kind))];
    }
}

/// <summary>A public key registered to a workload identity.</summary>
public sealed record SshAuthorizedKey
{
    private SshAuthorizedKey(byte[] blob, string keyType, WorkloadIdentity identity)
    {
        PublicKeyBlob = blob;
        KeyType = keyType;
        Identity = identity;
    }

    /// <summary>The issuer recorded for identities proven by a registered key.</summary>
    public const string IssuerName = "nhiaudit:ssh-authorized-key";

    /// <summary>The public key blob.</summary>
    public ReadOnlyMemory<byte> PublicKeyBlob { get; }

    /// <summary>The key type (<c>ssh-ed25519</c>, <c>ssh-rsa</c>, <c>ecdsa-sha2-nistp256</c>).</summary>
    public string KeyType { get; }

    /// <summary>The identity a client holding the key is.</summary>
    public WorkloadIdentity Identity { get; }

    /// <summary>The key's OpenSSH fingerprint.</summary>
    public string Fingerprint => SshPublicKeyBlob.Fingerprint(PublicKeyBlob.Span);

    /// <summary>
    /// Parses an <c>authorized_keys</c> line without options (<c>TYPE BASE64 [comment]</c>) and registers it to
    /// <paramref name="subject"/>; the comment becomes the display name.
    /// </summary>
    /// <exception cref="FormatException">The line is not a supported public key.</exception>
    public static SshAuthorizedKey Parse(string authorizedKeyLine, string subject, WorkloadKind kind)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(subject);
        var blob = SshPublicKeyBlob.ParseAuthorizedKeyLine(authorizedKeyLine, out var comment);
        SshPublicKeyBlob.TryGetKeyType(blob, out var keyType, out _);
        return new SshAuthorizedKey(blob, keyType, new WorkloadIdentity
        {
            Kind = kind,
            Subject = subject,
            Issuer = IssuerName,
            DisplayName = comment.Length > 0 ? comment : subject,
            ExpiresAt = DateTimeOffset.MaxValue,
        });
    }
}

/// <summary>A CA whose user certificates are trusted; the certificate's key id becomes the subject.</summary>
public sealed record SshTrustedCertificateAuthority
{
    private SshTrustedCertificateAuthority(byte[] blob, string name, WorkloadKind kind)
    {
        PublicKeyBlob = blob;
        Name = name;
        Kind = kind;
    }

    /// <summary>The CA's public key blob.</summary>
    public ReadOnlyMemory<byte> PublicKeyBlob { get; }

    /// <summary>A name for the CA; identities it vouches for carry the issuer <c>ssh-ca:NAME</c>.</summary>
    public string Name { get; }

    /// <summary>The kind of workload its certificates name.</summary>
    public WorkloadKind Kind { get; }

    /// <summary>The CA key's OpenSSH fingerprint.</summary>
    public string Fingerprint => SshPublicKeyBlob.Fingerprint(PublicKeyBlob.Span);

    /// <summary>Parses the CA's public key (an <c>authorized_keys</c>-style line, e.g. the <c>ca.pub</c> file's content).</summary>
    /// <exception cref="FormatException">The line is not a supported public key.</exception>
    public static SshTrustedCertificateAuthority Parse(string publicKeyLine, string name, WorkloadKind kind = WorkloadKind.FederatedWorkload)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        return new SshTrustedCertificateAuthority(SshPublicKeyBlob.ParseAuthorizedKeyLine(publicKeyLine, out _), name, kind);
    }
}
