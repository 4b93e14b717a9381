namespace NhiAudit.Postgres.Protocol;

/// <summary>Close ('C' from the client): <c>Byte1 'S'|'P' | String name</c>. A view over the payload.</summary>
internal readonly ref struct PgCloseMessage
{
    private PgCloseMessage(PgTargetKind target, ReadOnlySpan<byte> name)
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

    /// <summary>Parses the body of a client 'C' message.</summary>
    /// <exception cref="PgProtocolException">Unknown subtype or layout error.</exception>
    public static PgCloseMessage Parse(ReadOnlySpan<byte> payload)
    {
        var reader = new PgPayloadReader(payload, "Close");
        PgTargetKind target = ReadTarget(ref reader, "CLOSE");
        ReadOnlySpan<byte> name = reader.ReadCString();
        reader.EnsureEnd();
        return new PgCloseMessage(target, name);
    }

    /// <summary>Reads the 'S'/'P' subtype byte shared by Close and Describe.</summary>
    internal static PgTargetKind ReadTarget(ref PgPayloadReader reader, string what)
    {
        byte kind = reader.ReadByte();
        return kind switch
        {
            (byte)'S' => PgTargetKind.Statement,
            (byte)'P' => PgTargetKind.Portal,
            _ => throw new PgProtocolException($"invalid {what} message subtype {kind}"),
        };
    }
}
