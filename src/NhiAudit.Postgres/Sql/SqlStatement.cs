namespace NhiAudit.Postgres.Sql;

/// <summary>One statement cut out of a multi-statement SQL string.</summary>
/// <param name="Offset">Offset of <see cref="Text"/> in the original string.</param>
/// <param name="Length">Length of <see cref="Text"/>.</param>
/// <param name="Text">The statement without its terminating ';' and without surrounding whitespace (comments inside are kept).</param>
internal readonly record struct SqlStatement(int Offset, int Length, string Text);
