namespace NhiAudit.Postgres.Protocol;

/// <summary>
/// SASLInitialResponse ('p'): <c>String mechanism | Int32 length (-1 = none) | Byte[length] data</c>.
/// </summary>
internal readonly ref struct PgSaslInitialResponse
{
    private PgSaslInitialResponse(ReadOnlySpan<byte> mechanism, ReadOnlySpan<byte> data, bool hasData)
    {
        MechanismUtf8 = mechanism;
        Data = data;
        HasData = hasData;
    }

    /// <summary>The chosen mechanism name bytes, e.g. "SCRAM-SHA-256".</summary>
    public ReadOnlySpan<byte> MechanismUtf8 { get; }

    /// <summary>The initial response (client-first-message); empty when <see cref="HasData"/> is false.</summary>
    public ReadOnlySpan<byte> Data { get; }

    /// <summary>False when the length was -1 (no initial response).</summary>
    public bool HasData { get; }

    /// <summary>The mechanism name.</summary>
    public string Mechanism => PgText.DecodeText(MechanismUtf8);

    /// <summary>Parses the body of a 'p' message sent as SASLInitialResponse.</summary>
    /// <exception cref="PgProtocolException">Layout errors.</exception>
    public static PgSaslInitialResponse Parse(ReadOnlySpan<byte> payload)
    {
        var reader = new PgPayloadReader(payload, "SASLInitialResponse");
        ReadOnlySpan<byte> mechanism = reader.ReadCString();
        int length = reader.ReadInt32();
        ReadOnlySpan<byte> data = length == -1 ? default : reader.ReadBytes(length);
        reader.EnsureEnd();
        return new PgSaslInitialResponse(mechanism, data, length != -1);
    }
}
