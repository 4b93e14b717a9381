namespace NhiAudit.Postgres.Protocol;

/// <summary>
/// ParameterStatus ('S'): a reported run-time parameter such as <c>client_encoding</c>,
/// <c>standard_conforming_strings</c> or <c>server_version</c>. The relay tracks the first two
/// because the SQL lexer depends on them.
/// </summary>
/// <param name="Name">Parameter name.</param>
/// <param name="Value">Current value.</param>
internal readonly record struct PgParameterStatus(string Name, string Value)
{
    /// <summary>Parses the body of an 'S' message (allocates two strings: these messages are rare).</summary>
    /// <exception cref="PgProtocolException">A string is not terminated or bytes trail the value.</exception>
    public static PgParameterStatus Parse(ReadOnlySpan<byte> payload)
    {
        var reader = new PgPayloadReader(payload, "ParameterStatus");
        ReadOnlySpan<byte> name = reader.ReadCString();
        ReadOnlySpan<byte> value = reader.ReadCString();
        reader.EnsureEnd();
        return new PgParameterStatus(PgText.DecodeText(name), PgText.DecodeText(value));
    }
}
