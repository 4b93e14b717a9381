namespace NhiAudit.Postgres.Protocol;

/// <summary>
/// Bind ('B'), a zero-copy view over the payload:
/// <code>
/// String portal | String statement
/// Int16 nf | Int16[nf] parameter format codes   (0, 1 or n codes)
/// Int16 n  | n x (Int32 len (-1 = NULL) | Byte[len] value)
/// Int16 nr | Int16[nr] result column format codes
/// </code>
/// <see cref="Parse"/> validates every length against the remaining payload once, so walking
/// <see cref="Parameters"/> afterwards needs no further checks.
/// </summary>
internal readonly ref struct PgBindMessage
{
    private readonly ReadOnlySpan<byte> _payload;
    private readonly ReadOnlySpan<byte> _parameterFormats;
    private readonly ReadOnlySpan<byte> _resultFormats;
    private readonly int _valuesOffset;

    private PgBindMessage(
        ReadOnlySpan<byte> payload,
        ReadOnlySpan<byte> portal,
        ReadOnlySpan<byte> statement,
        ReadOnlySpan<byte> parameterFormats,
        int parameterCount,
        int valuesOffset,
        ReadOnlySpan<byte> resultFormats)
    {
        _payload = payload;
        PortalNameUtf8 = portal;
        StatementNameUtf8 = statement;
        _parameterFormats = parameterFormats;
        ParameterCount = parameterCount;
        _valuesOffset = valuesOffset;
        _resultFormats = resultFormats;
    }

    /// <summary>Destination portal name bytes; empty for the unnamed portal.</summary>
    public ReadOnlySpan<byte> PortalNameUtf8 { get; }

    /// <summary>Source prepared statement name bytes; empty for the unnamed statement.</summary>
    public ReadOnlySpan<byte> StatementNameUtf8 { get; }

    /// <summary>The portal name (strict UTF-8).</summary>
    public string PortalName => PgText.DecodeName(PortalNameUtf8, "portal name");

    /// <summary>The statement name (strict UTF-8).</summary>
    public string StatementName => PgText.DecodeName(StatementNameUtf8, "statement name");

    /// <summary>Number of parameter format codes sent (0, 1 or <see cref="ParameterCount"/>).</summary>
    public int ParameterFormatCount => _parameterFormats.Length / 2;

    /// <summary>Number of parameter values.</summary>
    public int ParameterCount { get; }

    /// <summary>Number of result-column format codes (0 = all text, 1 = applies to all, otherwise one per column).</summary>
    public int ResultFormatCount => _resultFormats.Length / 2;

    /// <summary>The parameter values, in order, with offsets into the payload.</summary>
    public PgBindParameterEnumerator Parameters => new(_payload, _parameterFormats, _valuesOffset, ParameterCount);

    /// <summary>The effective format code (0 text, 1 binary) of parameter <paramref name="index"/>.</summary>
    public short GetParameterFormat(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, ParameterCount);
        return PgBindParameterEnumerator.FormatFor(_parameterFormats, index);
    }

    /// <summary>The effective format code of result column <paramref name="column"/>.</summary>
    public short GetResultFormat(int column)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(column);
        if (ResultFormatCount > 1)
        {
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(column, ResultFormatCount);
        }

        return PgBindParameterEnumerator.FormatFor(_resultFormats, column);
    }

    /// <summary>Parses and validates the body of a 'B' message.</summary>
    /// <exception cref="PgProtocolException">Any length past the payload, a format code other than 0/1, a format-count mismatch, or trailing bytes.</exception>
    public static PgBindMessage Parse(ReadOnlySpan<byte> payload)
    {
        var reader = new PgPayloadReader(payload, "Bind");
        ReadOnlySpan<byte> portal = reader.ReadCString();
        ReadOnlySpan<byte> statement = reader.ReadCString();
        ReadOnlySpan<byte> formats = ReadFormatCodes(ref reader, "parameter");

        int count = reader.ReadUInt16();
        int formatCount = formats.Length / 2;
        if (formatCount > 1 && formatCount != count)
        {
            throw new PgProtocolException($"bind message has {formatCount} parameter formats but {count} parameters");
        }

        int valuesOffset = reader.Position;
        SkipValues(ref reader, count);
        ReadOnlySpan<byte> resultFormats = ReadFormatCodes(ref reader, "result");
        reader.EnsureEnd();
        return new PgBindMessage(payload, portal, statement, formats, count, valuesOffset, resultFormats);
    }

    /// <summary>Reads <c>Int16 n | Int16[n]</c> format codes and checks each is 0 (text) or 1 (binary).</summary>
    internal static ReadOnlySpan<byte> ReadFormatCodes(scoped ref PgPayloadReader reader, string what)
    {
        int count = reader.ReadUInt16();
        int start = reader.Position;
        for (int i = 0; i < count; i++)
        {
            short code = reader.ReadInt16();
            if (code is not (0 or 1))
            {
                throw new PgProtocolException($"unsupported {what} format code: {code}");
            }
        }

        return reader.Consumed(start);
    }

    /// <summary>Walks <c>n x (Int32 len | Byte[len])</c>, checking each length against the remaining bytes.</summary>
    internal static void SkipValues(scoped ref PgPayloadReader reader, int count)
    {
        for (int i = 0; i < count; i++)
        {
            int length = reader.ReadInt32();
            if (length == -1)
            {
                continue;
            }

            if (length < 0)
            {
                throw new PgProtocolException($"invalid value length {length} for parameter {i + 1}");
            }

            reader.Skip(length);
        }
    }
}
