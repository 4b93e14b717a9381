using System.Buffers;

namespace NhiAudit.Postgres.Masking;

/// <summary>How a masked value is written so that it stays a valid value of the column's type.</summary>
internal enum PgValueShape : byte
{
    /// <summary>A string type (text, varchar, bpchar, name, citext, a domain over one): the mask text itself.</summary>
    Text,

    /// <summary>json: the mask as a JSON string (<c>"****"</c>).</summary>
    Json,

    /// <summary>jsonb: as json; in binary format after jsonb's version byte 1.</summary>
    Jsonb,

    /// <summary>Any other type (numbers, dates, bytea, arrays, records …): no mask text is a valid value, so NULL.</summary>
    Other,
}

/// <summary>What happens to one result column.</summary>
/// <param name="Mask">The column is protected (a column rule, or an expression over a protected column): the whole value is replaced.</param>
/// <param name="Strategy">The strategy when <paramref name="Mask"/>.</param>
/// <param name="Detect">Run the value detectors over the value (string, json and jsonb columns when detectors are configured).</param>
/// <param name="Shape">How the column's type carries a mask.</param>
/// <param name="Binary">The value is in binary format (matters for jsonb's version byte).</param>
internal readonly record struct PgColumnMask(bool Mask, MaskingStrategy Strategy, bool Detect, PgValueShape Shape, bool Binary)
{
    /// <summary>True when the column is left alone.</summary>
    public bool IsNone => !Mask && !Detect;
}

/// <summary>What masking did while one response passed, for its record.</summary>
internal struct PgMaskCounters
{
    /// <summary>Whole values replaced (protected columns).</summary>
    public long MaskedValues;

    /// <summary>Values in which a detector found something.</summary>
    public long DetectedValues;

    /// <summary>The detector kinds that found something.</summary>
    public SensitiveValueKinds Found;
}

/// <summary>The format of a COPY … TO STDOUT.</summary>
internal enum PgCopyFormat : byte
{
    /// <summary>PostgreSQL's text format (tab-separated, backslash escapes, <c>\N</c> for NULL by default).</summary>
    Text,

    /// <summary>CSV.</summary>
    Csv,

    /// <summary>The binary format (PGCOPY signature, tuples of length-prefixed values, -1 trailer).</summary>
    Binary,
}
