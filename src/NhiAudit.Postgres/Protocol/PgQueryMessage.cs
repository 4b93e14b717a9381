namespace NhiAudit.Postgres.Protocol;

/// <summary>
/// Query ('Q'): one NUL-terminated string. Bytes after the first NUL are refused, as PostgreSQL
/// refuses them (<c>pq_getmsgend</c>) — otherwise the gateway and the server could read different text.
/// </summary>
internal readonly ref struct PgQueryMessage
{
    private PgQueryMessage(ReadOnlySpan<byte> query) => QueryUtf8 = query;

    /// <summary>The query text bytes.</summary>
    public ReadOnlySpan<byte> QueryUtf8 { get; }

    /// <summary>The query text (invalid UTF-8 becomes U+FFFD; see <see cref="PgClientEncoding"/>).</summary>
    public string Query => PgText.DecodeText(QueryUtf8);

    /// <summary>Parses the body of a 'Q' message.</summary>
    /// <exception cref="PgProtocolException">Not terminated, or bytes after the terminator.</exception>
    public static PgQueryMessage Parse(ReadOnlySpan<byte> payload)
    {
        var reader = new PgPayloadReader(payload, "Query");
        ReadOnlySpan<byte> query = reader.ReadCString();
        reader.EnsureEnd();
        return new PgQueryMessage(query);
    }
}
