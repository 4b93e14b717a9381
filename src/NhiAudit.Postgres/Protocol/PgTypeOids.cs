namespace NhiAudit.Postgres.Protocol;

/// <summary>Built-in type OIDs (pg_type.dat) that the parameter renderer understands in binary format.</summary>
internal static class PgTypeOids
{
    /// <summary>Unspecified: the server infers the type.</summary>
    public const uint Unspecified = 0;

    /// <summary>bool.</summary>
    public const uint Bool = 16;

    /// <summary>bytea.</summary>
    public const uint Bytea = 17;

    /// <summary>"char" (single byte).</summary>
    public const uint Char = 18;

    /// <summary>name.</summary>
    public const uint Name = 19;

    /// <summary>int8 / bigint.</summary>
    public const uint Int8 = 20;

    /// <summary>int2 / smallint.</summary>
    public const uint Int2 = 21;

    /// <summary>int4 / integer.</summary>
    public const uint Int4 = 23;

    /// <summary>text.</summary>
    public const uint Text = 25;

    /// <summary>oid.</summary>
    public const uint Oid = 26;

    /// <summary>json.</summary>
    public const uint Json = 114;

    /// <summary>xml.</summary>
    public const uint Xml = 142;

    /// <summary>float4 / real.</summary>
    public const uint Float4 = 700;

    /// <summary>float8 / double precision.</summary>
    public const uint Float8 = 701;

    /// <summary>unknown (untyped literal).</summary>
    public const uint Unknown = 705;

    /// <summary>bpchar / character(n).</summary>
    public const uint Bpchar = 1042;

    /// <summary>varchar / character varying.</summary>
    public const uint Varchar = 1043;

    /// <summary>date.</summary>
    public const uint Date = 1082;

    /// <summary>time without time zone.</summary>
    public const uint Time = 1083;

    /// <summary>timestamp without time zone.</summary>
    public const uint Timestamp = 1114;

    /// <summary>timestamp with time zone.</summary>
    public const uint TimestampTz = 1184;

    /// <summary>interval.</summary>
    public const uint Interval = 1186;

    /// <summary>time with time zone.</summary>
    public const uint TimeTz = 1266;

    /// <summary>numeric / decimal.</summary>
    public const uint Numeric = 1700;

    /// <summary>uuid.</summary>
    public const uint Uuid = 2950;

    /// <summary>jsonb.</summary>
    public const uint Jsonb = 3802;
}
