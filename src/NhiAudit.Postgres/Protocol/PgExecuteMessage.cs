namespace NhiAudit.Postgres.Protocol;

/// <summary>Execute ('E' from the client): <c>String portal | Int32 max rows (0 = all)</c>. A view over the payload.</summary>
internal readonly ref struct PgExecuteMessage
{
    private PgExecuteMessage(ReadOnlySpan<byte> portal, int maxRows)
    {
        PortalNameUtf8 = portal;
        MaxRows = maxRows;
    }

    /// <summary>The portal name bytes; empty for the unnamed portal.</summary>
    public ReadOnlySpan<byte> PortalNameUtf8 { get; }

    /// <summary>Row limit; zero or negative means no limit (PostgreSQL treats both as FETCH_ALL).</summary>
    public int MaxRows { get; }

    /// <summary>The portal name (strict UTF-8).</summary>
    public string PortalName => PgText.DecodeName(PortalNameUtf8, "portal name");

    /// <summary>Parses the body of a client 'E' message.</summary>
    /// <exception cref="PgProtocolException">Layout error.</exception>
    public static PgExecuteMessage Parse(ReadOnlySpan<byte> payload)
    {
        var reader = new PgPayloadReader(payload, "Execute");
        ReadOnlySpan<byte> portal = reader.ReadCString();
        int maxRows = reader.ReadInt32();
        reader.EnsureEnd();
        return new PgExecuteMessage(portal, maxRows);
    }
}
