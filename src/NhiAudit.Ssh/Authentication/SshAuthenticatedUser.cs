using System.Net;

namespace NhiAudit.Ssh.Authentication;

/// <summary>Who an SSH connection authenticated as, for the channel, policy and audit layers.</summary>
public sealed record SshAuthenticatedUser
{
    /// <summary>The user name the client asked for (the <c>user</c> of <c>ssh user@gateway</c>).</summary>
    public required string UserName { get; init; }

    /// <summary>The method that succeeded: <c>publickey</c> or <c>keyboard-interactive</c>.</summary>
    public required string Method { get; init; }

    /// <summary>The workload identity proven.</summary>
    public required WorkloadIdentity Identity { get; init; }

    /// <summary>The public key algorithm the client signed with (e.g. <c>rsa-sha2-512</c>, <c>ssh-ed25519-cert-v01@openssh.com</c>); null for a token.</summary>
    public string? PublicKeyAlgorithm { get; init; }

    /// <summary>The fingerprint of the client's key (the certified key for a certificate); null for a token.</summary>
    public string? KeyFingerprint { get; init; }

    /// <summary>The certificate's key id, when a certificate was used.</summary>
    public string? CertificateKeyId { get; init; }

    /// <summary>The certificate's serial, when a certificate was used.</summary>
    public ulong? CertificateSerial { get; init; }

    /// <summary>The certificate's principals (empty without a certificate).</summary>
    public IReadOnlyList<string> CertificatePrincipals { get; init; } = [];

    /// <summary>The fingerprint of the CA that signed the certificate.</summary>
    public string? CertificateAuthorityFingerprint { get; init; }
}

/// <summary>One authentication outcome, as the audit hook receives it. Never holds a token or a signature.</summary>
public sealed record SshAuthenticationAttempt
{
    /// <summary>True for a success (<c>ssh.auth</c>), false for a refusal (<c>ssh.auth.failed</c>).</summary>
    public required bool Succeeded { get; init; }

    /// <summary>The requested user name.</summary>
    public required string UserName { get; init; }

    /// <summary>The method tried.</summary>
    public required string Method { get; init; }

    /// <summary>Why the attempt was refused, in words safe to record; null on success.</summary>
    public string? Reason { get; init; }

    /// <summary>The authenticated user on success.</summary>
    public SshAuthenticatedUser? User { get; init; }

    /// <summary>The client's address, when known.</summary>
    public IPAddress? ClientAddress { get; init; }

    /// <summary>The offered key's fingerprint, when a key was offered.</summary>
    public string? KeyFingerprint { get; init; }

    /// <summary>The number of failed attempts on this connection so far (this one included).</summary>
    public int FailedAttempts { get; init; }

    /// <summary>The id of the connection the attempt was made on (the same id the connection's other records carry).</summary>
    public string? ConnectionId { get; init; }
}

/// <summary>
/// Receives authentication outcomes so the gateway can write <c>ssh.auth</c> and <c>ssh.auth.failed</c> audit
/// records. Called on the connection's own loop: keep it quick; an exception it throws ends only that connection.
/// </summary>
public interface ISshAuthenticationAudit
{
    /// <summary>Records one outcome.</summary>
    ValueTask RecordAsync(SshAuthenticationAttempt attempt, CancellationToken cancellationToken);
}
