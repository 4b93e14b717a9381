namespace NhiAudit.Postgres.Sql;

/// <summary>Lexical categories the statement splitter and classifier care about.</summary>
internal enum SqlTokenKind : byte
{
    /// <summary>Unquoted identifier or keyword (letters, digits, '_', '$', any non-ASCII character).</summary>
    Identifier,

    /// <summary>Double-quoted identifier, also <c>U&amp;"..."</c>.</summary>
    QuotedIdentifier,

    /// <summary>Quoted string: <c>'...'</c>, <c>E'...'</c>, <c>B'...'</c>, <c>X'...'</c>, <c>U&amp;'...'</c>, including newline-separated continuations.</summary>
    String,

    /// <summary>Dollar-quoted string <c>$tag$...$tag$</c>.</summary>
    DollarString,

    /// <summary>Numeric literal.</summary>
    Number,

    /// <summary>Positional parameter <c>$1</c>.</summary>
    Parameter,

    /// <summary><c>;</c>.</summary>
    Semicolon,

    /// <summary><c>(</c>.</summary>
    OpenParen,

    /// <summary><c>)</c>.</summary>
    CloseParen,

    /// <summary><c>,</c>.</summary>
    Comma,

    /// <summary><c>.</c> outside a number.</summary>
    Dot,

    /// <summary>Any other single character (operators, brackets, ':' ...). Operators are one token per character: only comment starts inside them matter here.</summary>
    Operator,

    /// <summary><c>-- ...</c> up to the end of the line.</summary>
    LineComment,

    /// <summary><c>/* ... */</c>, nested.</summary>
    BlockComment,
}
