namespace NhiAudit.Postgres.Protocol;

/// <summary>The Int32 that follows the 'R' (Authentication*) message type.</summary>
internal enum PgAuthenticationCode
{
    /// <summary>AuthenticationOk.</summary>
    Ok = 0,

    /// <summary>AuthenticationKerberosV5 (no longer supported by servers).</summary>
    KerberosV5 = 2,

    /// <summary>AuthenticationCleartextPassword.</summary>
    CleartextPassword = 3,

    /// <summary>AuthenticationMD5Password, followed by a 4-byte salt.</summary>
    Md5Password = 5,

    /// <summary>AuthenticationGSS.</summary>
    Gss = 7,

    /// <summary>AuthenticationGSSContinue, followed by GSSAPI data.</summary>
    GssContinue = 8,

    /// <summary>AuthenticationSSPI.</summary>
    Sspi = 9,

    /// <summary>AuthenticationSASL, followed by the mechanism names.</summary>
    Sasl = 10,

    /// <summary>AuthenticationSASLContinue, followed by the server-first-message.</summary>
    SaslContinue = 11,

    /// <summary>AuthenticationSASLFinal, followed by the server-final-message.</summary>
    SaslFinal = 12,
}
