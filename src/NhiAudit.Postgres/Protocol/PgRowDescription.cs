namespace NhiAudit.Postgres.Protocol;

/// <summary>One field of a RowDescription ('T') message.</summary>
/// <param name="Name">The column label.</param>
/// <param name="TableOid">The source table's OID, 0 when the field is not a plain table column.</param>
/// <param name="AttributeNumber">The column's attribute number in that table, 0 when none.</param>
/// <param name="TypeOid">The data type's OID.</param>
/// <param name="TypeSize">pg_type.typlen (negative for variable width).</param>
/// <param name="TypeModifier">pg_attribute.atttypmod.</param>
/// <param name="FormatCode">0 text, 1 binary (unknown in a Describe answer: always 0 there).</param>
internal readonly record struct PgFieldDescription(
    string Name,
    uint TableOid,
    short AttributeNumber,
    uint TypeOid,
    short TypeSize,
    int TypeModifier,
    short FormatCode);

/// <summary>Parses RowDescription ('T'): <c>Int16 count, (String name, Int32 table, Int16 attnum, Int32 type, Int16 size, Int32 typmod, Int16 format)*</c>.</summary>
internal static class PgRowDescription
{
    /// <summary>Parses the body of a RowDescription (after type byte and length).</summary>
    /// <exception cref="PgProtocolException">The payload is truncated, has trailing bytes or a format code other than 0 and 1.</exception>
    public static PgFieldDescription[] Parse(ReadOnlySpan<byte> payload)
    {
        var reader = new PgPayloadReader(payload, "RowDescription");
        int count = reader.ReadUInt16();

        // Each field takes at least 19 bytes: refuse a count the payload cannot hold before allocating for it.
        if (count > reader.Remaining / 19)
        {
            throw new PgProtocolException($"invalid RowDescription message: {count} fields do not fit in {reader.Remaining} bytes");
        }

        PgFieldDescription[] fields = count == 0 ? [] : new PgFieldDescription[count];
        for (int i = 0; i < count; i++)
        {
            string name = PgText.DecodeText(reader.ReadCString());
            uint table = reader.ReadUInt32();
            short attribute = reader.ReadInt16();
            uint type = reader.ReadUInt32();
            short size = reader.ReadInt16();
            int modifier = reader.ReadInt32();
            short format = reader.ReadInt16();
            if (format is not (0 or 1))
            {
                throw new PgProtocolException($"invalid RowDescription message: format code {format} of field {i}");
            }

            fields[i] = new PgFieldDescription(name, table, attribute, type, size, modifier, format);
        }

        reader.EnsureEnd();
        return fields;
    }
}
