using NhiAudit.Audit;
using NhiAudit.Ssh.Authentication;
using NhiAudit.Ssh.Transport;

namespace NhiAudit.Ssh.Gateway;

/// <summary>
/// Writes <c>ssh.auth</c> and <c>ssh.auth.failed</c> records. The key's fingerprint and the certificate's id and
/// serial are recorded; no signature, token or other credential is.
/// </summary>
internal sealed class SshAuthenticationAuditLog(IAuditLog auditLog, string target) : ISshAuthenticationAudit
{
    /// <inheritdoc />
    public async ValueTask RecordAsync(SshAuthenticationAttempt attempt, CancellationToken cancellationToken)
    {
        try
        {
            await auditLog.AppendRecordAsync(attempt.Succeeded ? "ssh.auth" : "ssh.auth.failed", w => WriteAttempt(w, attempt), AuditAppendMode.Request, cancellationToken).ConfigureAwait(false);
        }
        catch (AuditLogUnavailableException ex)
        {
            // Fail closed: a login the log cannot hold does not happen.
            throw new SshProtocolException(SshDisconnectReason.ByApplication, "the audit log cannot be written: " + ex.Message);
        }
    }

    private void WriteAttempt(System.Text.Json.Utf8JsonWriter w, SshAuthenticationAttempt attempt)
    {
        if (attempt.User is { } user)
        {
            AuditRecordWriter.WriteIdentity(w, user.Identity);
        }

        w.WriteString("target"u8, target);
        w.WriteString("connection"u8, attempt.ConnectionId);
        w.WriteString("client"u8, attempt.ClientAddress?.ToString());
        w.WriteString("user"u8, attempt.UserName);
        w.WriteString("method"u8, attempt.Method);
        if (attempt.KeyFingerprint is { } fingerprint)
        {
            w.WriteString("key"u8, fingerprint);
        }

        if (attempt.User is { CertificateKeyId: { } keyId } certified)
        {
            w.WriteStartObject("certificate"u8);
            w.WriteString("keyId"u8, keyId);
            if (certified.CertificateSerial is { } serial)
            {
                w.WriteNumber("serial"u8, serial);
            }

            w.WriteString("ca"u8, certified.CertificateAuthorityFingerprint);
            w.WriteEndObject();
        }

        if (attempt.Reason is { } reason)
        {
            w.WriteString("error"u8, reason);
        }

        w.WriteNumber("failedAttempts"u8, attempt.FailedAttempts);
    }
}
