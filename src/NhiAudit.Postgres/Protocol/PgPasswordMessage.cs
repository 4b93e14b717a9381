namespace NhiAudit.Postgres.Protocol;

/// <summary>
/// PasswordMessage ('p' answering AuthenticationCleartextPassword or MD5): one NUL-terminated
/// string. For NhiAudit the cleartext "password" is the workload's access token. It must never
/// reach the audit log, so this type deliberately has no <c>ToString</c> that shows it.
/// </summary>
internal readonly ref struct PgPasswordMessage
{
    private PgPasswordMessage(ReadOnlySpan<byte> password) => PasswordUtf8 = password;

    /// <summary>The password bytes, without the terminator.</summary>
    public ReadOnlySpan<byte> PasswordUtf8 { get; }

    /// <summary>The password decoded as UTF-8 (tokens are ASCII).</summary>
    public string GetPassword() => PgText.DecodeText(PasswordUtf8);

    /// <summary>Parses the body of a 'p' message sent as a password.</summary>
    /// <exception cref="PgProtocolException">Not terminated, or bytes after the terminator (PostgreSQL: "invalid password packet size").</exception>
    public static PgPasswordMessage Parse(ReadOnlySpan<byte> payload)
    {
        var reader = new PgPayloadReader(payload, "PasswordMessage");
        ReadOnlySpan<byte> password = reader.ReadCString();
        reader.EnsureEnd();
        return new PgPasswordMessage(password);
    }
}
