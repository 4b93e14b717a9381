namespace NhiAudit.Postgres.Sql;

/// <summary>How the body of a quoted string is scanned, mirroring the states of PostgreSQL's scan.l.</summary>
internal enum SqlStringStyle : byte
{
    /// <summary>Not a string token.</summary>
    None,

    /// <summary><c>'...'</c> with standard_conforming_strings on (xq): '' is a quote, backslash is literal.</summary>
    Standard,

    /// <summary><c>E'...'</c>, or <c>'...'</c> with standard_conforming_strings off (xe): backslash escapes the next character.</summary>
    Escape,

    /// <summary><c>B'...'</c> (xb): no '' doubling, no escapes.</summary>
    Bit,

    /// <summary><c>X'...'</c> (xh): no '' doubling, no escapes.</summary>
    Hex,

    /// <summary><c>U&amp;'...'</c> (xus): like Standard while lexing; <c>\XXXX</c> escapes are decoded later.</summary>
    Unicode,
}
