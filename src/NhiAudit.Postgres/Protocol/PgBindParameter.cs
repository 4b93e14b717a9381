using System.Buffers.Binary;

namespace NhiAudit.Postgres.Protocol;

/// <summary>One parameter value of a Bind or FunctionCall message, located inside the payload.</summary>
internal readonly ref struct PgBindParameter
{
    internal PgBindParameter(int index, short formatCode, int offset, int length, ReadOnlySpan<byte> value)
    {
        Index = index;
        FormatCode = formatCode;
        Offset = offset;
        Length = length;
        Value = value;
    }

    /// <summary>Zero-based parameter position ($1 is 0).</summary>
    public int Index { get; }

    /// <summary>0 = text, 1 = binary, after applying the "zero, one or n format codes" rule.</summary>
    public short FormatCode { get; }

    /// <summary>Offset of the value bytes relative to the payload start (just after the Int32 length).</summary>
    public int Offset { get; }

    /// <summary>Value length in bytes, or -1 for SQL NULL.</summary>
    public int Length { get; }

    /// <summary>True for SQL NULL.</summary>
    public bool IsNull => Length < 0;

    /// <summary>The value bytes (empty for NULL).</summary>
    public ReadOnlySpan<byte> Value { get; }
}

/// <summary>
/// Walks the length-prefixed values of a Bind or FunctionCall message without allocating:
/// <c>foreach (var p in bind.Parameters) { ... }</c>. The layout was validated when the message was parsed.
/// </summary>
internal ref struct PgBindParameterEnumerator
{
    private readonly ReadOnlySpan<byte> _payload;
    private readonly ReadOnlySpan<byte> _formats;
    private readonly int _count;
    private int _offset;
    private int _index;
    private PgBindParameter _current;

    internal PgBindParameterEnumerator(ReadOnlySpan<byte> payload, ReadOnlySpan<byte> formats, int valuesOffset, int count)
    {
        _payload = payload;
        _formats = formats;
        _offset = valuesOffset;
        _count = count;
        _index = -1;
        _current = default;
    }

    /// <summary>The parameter at the current position.</summary>
    public readonly PgBindParameter Current => _current;

    /// <summary>Returns this enumerator, so it can be used directly in <c>foreach</c>.</summary>
    public readonly PgBindParameterEnumerator GetEnumerator() => this;

    /// <summary>Moves to the next parameter.</summary>
    public bool MoveNext()
    {
        int next = _index + 1;
        if (next >= _count)
        {
            return false;
        }

        _index = next;
        int length = BinaryPrimitives.ReadInt32BigEndian(_payload.Slice(_offset, 4));
        int valueOffset = _offset + 4;
        ReadOnlySpan<byte> value = length < 0 ? default : _payload.Slice(valueOffset, length);
        _offset = valueOffset + Math.Max(length, 0);
        _current = new PgBindParameter(next, FormatFor(_formats, next), valueOffset, length, value);
        return true;
    }

    /// <summary>
    /// Applies the protocol rule: no codes = all text, one code = applies to all, otherwise one per parameter.
    /// </summary>
    internal static short FormatFor(ReadOnlySpan<byte> formats, int index) => (formats.Length / 2) switch
    {
        0 => 0,
        1 => BinaryPrimitives.ReadInt16BigEndian(formats),
        _ => BinaryPrimitives.ReadInt16BigEndian(formats.Slice(index * 2, 2)),
    };
}
