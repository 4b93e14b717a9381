using System.Text;

namespace NhiAudit.Postgres.Protocol;

/// <summary>
/// An 'R' message from the server: <c>Int32 code</c> followed by code-specific data
/// (4-byte salt for MD5, mechanism list for SASL, mechanism data for SASL continue/final).
/// A view over the payload: copy what must outlive it.
/// </summary>
internal readonly ref struct PgAuthenticationRequest
{
    private PgAuthenticationRequest(PgAuthenticationCode code, ReadOnlySpan<byte> data)
    {
        Code = code;
        Data = data;
    }

    /// <summary>The request subcode.</summary>
    public PgAuthenticationCode Code { get; }

    /// <summary>Everything after the code: the salt, mechanism list, or SASL/GSS data.</summary>
    public ReadOnlySpan<byte> Data { get; }

    /// <summary>The 4-byte salt of an MD5 request (validated by <see cref="Parse"/>).</summary>
    public ReadOnlySpan<byte> Md5Salt => Code == PgAuthenticationCode.Md5Password ? Data : throw new InvalidOperationException("Not an MD5 request.");

    /// <summary>Parses the body of an 'R' message and validates its layout for the known codes.</summary>
    /// <exception cref="PgProtocolException">The body is too short or has the wrong shape for its code.</exception>
    public static PgAuthenticationRequest Parse(ReadOnlySpan<byte> payload)
    {
        var reader = new PgPayloadReader(payload, "Authentication");
        var code = (PgAuthenticationCode)reader.ReadInt32();
        ReadOnlySpan<byte> data = payload[reader.Position..];
        switch (code)
        {
            case PgAuthenticationCode.Ok:
            case PgAuthenticationCode.CleartextPassword:
            case PgAuthenticationCode.KerberosV5:
            case PgAuthenticationCode.Gss:
            case PgAuthenticationCode.Sspi:
                reader.EnsureEnd();
                break;
            case PgAuthenticationCode.Md5Password:
                reader.Skip(4);
                reader.EnsureEnd();
                break;
            case PgAuthenticationCode.Sasl:
                // One or more mechanism names, then an empty string.
                while (!reader.ReadCString().IsEmpty)
                {
                }

                reader.EnsureEnd();
                break;
            case PgAuthenticationCode.SaslContinue:
            case PgAuthenticationCode.SaslFinal:
            case PgAuthenticationCode.GssContinue:
                break;
            default:
                throw new PgProtocolException(PgSqlState.FeatureNotSupported, $"authentication method {(int)code} not supported");
        }

        return new PgAuthenticationRequest(code, data);
    }

    /// <summary>The SASL mechanisms offered (e.g. SCRAM-SHA-256, SCRAM-SHA-256-PLUS).</summary>
    public IReadOnlyList<string> GetSaslMechanisms()
    {
        if (Code != PgAuthenticationCode.Sasl)
        {
            throw new InvalidOperationException("Not a SASL request.");
        }

        var mechanisms = new List<string>(2);
        var reader = new PgPayloadReader(Data, "AuthenticationSASL");
        while (true)
        {
            ReadOnlySpan<byte> name = reader.ReadCString();
            if (name.IsEmpty)
            {
                return mechanisms;
            }

            mechanisms.Add(PgText.DecodeText(name));
        }
    }

    /// <summary>The SASL data as a string (SCRAM messages are printable UTF-8).</summary>
    public string GetSaslDataString() => Encoding.UTF8.GetString(Data);
}
