namespace NhiAudit.Postgres.Protocol;

/// <summary>
/// FunctionCall ('F'), the legacy fast-path interface (large objects use it):
/// <c>Int32 function OID | Int16 nf | Int16[nf] arg formats | Int16 n | n x (Int32 len | Byte[len]) | Int16 result format</c>.
/// It runs a function without SQL text, so the relay must audit it by OID.
/// </summary>
internal readonly ref struct PgFunctionCallMessage
{
    private readonly ReadOnlySpan<byte> _payload;
    private readonly ReadOnlySpan<byte> _argumentFormats;
    private readonly int _valuesOffset;

    private PgFunctionCallMessage(ReadOnlySpan<byte> payload, uint functionOid, ReadOnlySpan<byte> argumentFormats, int argumentCount, int valuesOffset, short resultFormat)
    {
        _payload = payload;
        FunctionOid = functionOid;
        _argumentFormats = argumentFormats;
        ArgumentCount = argumentCount;
        _valuesOffset = valuesOffset;
        ResultFormat = resultFormat;
    }

    /// <summary>OID of the function to call.</summary>
    public uint FunctionOid { get; }

    /// <summary>Number of arguments.</summary>
    public int ArgumentCount { get; }

    /// <summary>Result format code (0 text, 1 binary).</summary>
    public short ResultFormat { get; }

    /// <summary>The argument values with their effective format codes.</summary>
    public PgBindParameterEnumerator Arguments => new(_payload, _argumentFormats, _valuesOffset, ArgumentCount);

    /// <summary>Parses and validates the body of an 'F' message.</summary>
    /// <exception cref="PgProtocolException">Layout errors.</exception>
    public static PgFunctionCallMessage Parse(ReadOnlySpan<byte> payload)
    {
        var reader = new PgPayloadReader(payload, "FunctionCall");
        uint oid = reader.ReadUInt32();
        ReadOnlySpan<byte> formats = PgBindMessage.ReadFormatCodes(ref reader, "argument");
        int count = reader.ReadUInt16();
        int formatCount = formats.Length / 2;
        if (formatCount > 1 && formatCount != count)
        {
            throw new PgProtocolException($"function call message has {formatCount} argument formats but {count} arguments");
        }

        int valuesOffset = reader.Position;
        PgBindMessage.SkipValues(ref reader, count);
        short resultFormat = reader.ReadInt16();
        if (resultFormat is not (0 or 1))
        {
            throw new PgProtocolException($"unsupported result format code: {resultFormat}");
        }

        reader.EnsureEnd();
        return new PgFunctionCallMessage(payload, oid, formats, count, valuesOffset, resultFormat);
    }
}
