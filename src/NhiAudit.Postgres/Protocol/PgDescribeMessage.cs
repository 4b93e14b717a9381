namespace NhiAudit.Postgres.Protocol;

/// <summary>Describe ('D' from the client): <c>Byte1 'S'|'P' | String name</c>. A view over the payload.</summary>
internal readonly ref struct PgDescribeMessage
{
    private PgDescribeMessage(PgTargetKind target, ReadOnlySpan<byte> name)
    {
        Target = target;
        NameUtf8 = name;
    }

    /// <summary>Statement or portal.</summary>
    public PgTargetKind Target { get; }

    /// <summary>The name bytes; empty for the unnamed statement/portal.</summary>
    public ReadOnlySpan<byte> NameUtf8 { get; }

    /// <summary>The name (strict UTF-8).</summary>
    public string Name => PgText.DecodeName(NameUtf8, Target == PgTargetKind.Statement ? "statement name" : "portal name");

    /// <summary>Parses the body of a client 'D' message.</summary>
    /// <exception cref="PgProtocolException">Unknown subtype or layout error.</exception>
    public static PgDescribeMessage Parse(ReadOnlySpan<byte> payload)
    {
        var reader = new PgPayloadReader(payload, "Describe");
        PgTargetKind target = PgCloseMessage.ReadTarget(ref reader, "DESCRIBE");
        ReadOnlySpan<byte> name = reader.ReadCString();
        reader.EnsureEnd();
        return new PgDescribeMessage(target, name);
    }
}
