namespace NhiAudit.Postgres.Protocol;

/// <summary>SASLResponse ('p'): the whole body is mechanism data (e.g. client-final-message).</summary>
internal static class PgSaslResponse
{
    /// <summary>Returns the SASL data of a 'p' message sent as SASLResponse (the body itself; never fails).</summary>
    public static ReadOnlySpan<byte> Parse(ReadOnlySpan<byte> payload) => payload;
}
