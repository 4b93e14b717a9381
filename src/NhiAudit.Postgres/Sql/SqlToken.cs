namespace NhiAudit.Postgres.Sql;

/// <summary>One token: kind and position in the source text.</summary>
/// <param name="Kind">Lexical category.</param>
/// <param name="Start">Offset of the first character (including any E/B/X/U&amp; prefix).</param>
/// <param name="Length">Characters covered, including quotes and delimiters.</param>
/// <param name="Style">For strings, how the body was scanned; for quoted identifiers, <see cref="SqlStringStyle.Unicode"/> marks <c>U&amp;"..."</c>.</param>
/// <param name="Unterminated">True when the input ended inside the string, identifier or comment.</param>
internal readonly record struct SqlToken(SqlTokenKind Kind, int Start, int Length, SqlStringStyle Style = SqlStringStyle.None, bool Unterminated = false)
{
    /// <summary>Offset just past the token.</summary>
    public int End => Start + Length;

    /// <summary>True for comments, which carry no meaning for classification.</summary>
    public bool IsComment => Kind is SqlTokenKind.LineComment or SqlTokenKind.BlockComment;
}
