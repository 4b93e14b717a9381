using System.Buffers.Binary;

namespace NhiAudit.Postgres.Protocol;

/// <summary>
/// Parse ('P'): <c>String statement | String query | Int16 n | Int32[n] parameter type OIDs</c>.
/// A zero-copy view over the payload; validated completely by <see cref="Parse"/>.
/// </summary>
internal readonly ref struct PgParseMessage
{
    private readonly ReadOnlySpan<byte> _parameterTypes;

    private PgParseMessage(ReadOnlySpan<byte> statementName, ReadOnlySpan<byte> query, ReadOnlySpan<byte> parameterTypes)
    {
        StatementNameUtf8 = statementName;
        QueryUtf8 = query;
        _parameterTypes = parameterTypes;
    }

    /// <summary>Prepared statement name bytes; empty for the unnamed statement.</summary>
    public ReadOnlySpan<byte> StatementNameUtf8 { get; }

    /// <summary>Query text bytes (client encoding; UTF-8 is assumed, see <see cref="PgClientEncoding"/>).</summary>
    public ReadOnlySpan<byte> QueryUtf8 { get; }

    /// <summary>Number of parameter types the client specified (may be fewer than the query uses).</summary>
    public int ParameterTypeCount => _parameterTypes.Length / 4;

    /// <summary>The statement name (strict UTF-8: it is a key the relay looks Bind/Describe up by).</summary>
    public string StatementName => PgText.DecodeName(StatementNameUtf8, "statement name");

    /// <summary>The query text.</summary>
    public string Query => PgText.DecodeText(QueryUtf8);

    /// <summary>The type OID of parameter <paramref name="index"/>; 0 means "let the server infer".</summary>
    public uint GetParameterType(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, ParameterTypeCount);
        return BinaryPrimitives.ReadUInt32BigEndian(_parameterTypes.Slice(index * 4, 4));
    }

    /// <summary>Parses and validates the body of a 'P' message.</summary>
    /// <exception cref="PgProtocolException">Layout errors.</exception>
    public static PgParseMessage Parse(ReadOnlySpan<byte> payload)
    {
        var reader = new PgPayloadReader(payload, "Parse");
        ReadOnlySpan<byte> name = reader.ReadCString();
        ReadOnlySpan<byte> query = reader.ReadCString();
        int count = reader.ReadUInt16();
        ReadOnlySpan<byte> types = reader.ReadBytes(count * 4);
        reader.EnsureEnd();
        return new PgParseMessage(name, query, types);
    }
}
