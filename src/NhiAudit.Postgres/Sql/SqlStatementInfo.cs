namespace NhiAudit.Postgres.Sql;

/// <summary>What a statement does, as far as the gateway can tell without a full parser.</summary>
internal sealed class SqlStatementInfo
{
    private static readonly string[] NoTables = [];

    /// <summary>A statement that could not be classified.</summary>
    public static SqlStatementInfo Unknown { get; } = new() { Kind = SqlKinds.Unknown };

    /// <summary>A statement with nothing but whitespace and comments.</summary>
    public static SqlStatementInfo Empty { get; } = new() { Kind = SqlKinds.Empty };

    /// <summary>
    /// Upper-case verb: SELECT, INSERT, UPDATE, DELETE, MERGE, COPY, CREATE, ALTER, DROP, ...; START
    /// TRANSACTION is BEGIN, END is COMMIT, ABORT is ROLLBACK, TABLE is SELECT. A WITH statement, a
    /// <c>COPY (…) TO</c> and <c>EXPLAIN ANALYZE</c> take the kind of the most destructive data-modifying
    /// statement they run (DELETE &gt; UPDATE &gt; MERGE &gt; INSERT). "UNKNOWN" when unrecognized,
    /// "EMPTY" for comments only.
    /// </summary>
    public required string Kind { get; init; }

    /// <summary>For CREATE/ALTER/DROP (and COMMENT ON): the object kind, e.g. TABLE, INDEX, MATERIALIZED VIEW, FUNCTION.</summary>
    public string? ObjectKind { get; init; }

    /// <summary>
    /// Relations named by the statement, best effort and in order of appearance, without
    /// duplicates or CTE names: unquoted parts lower-cased, quoted parts as written (without the
    /// quotes), joined with '.', e.g. <c>public.orders</c>, <c>My Table</c>.
    /// </summary>
    public IReadOnlyList<string> Tables { get; init; } = NoTables;

    /// <summary>
    /// For UPDATE and DELETE (including those inside WITH or COPY): whether every one of them has a
    /// WHERE clause of its own (not one inside a subquery, string or comment). Null for other kinds.
    /// </summary>
    public bool? HasWhere { get; init; }

    /// <summary>True when the text held more than one statement; only the first was classified. Split first.</summary>
    public bool IsMultiStatement { get; init; }

    /// <summary>
    /// The reason stated with <c>SET [SESSION|LOCAL] nhiaudit.reason = '…'</c> (or <c>TO</c>, or
    /// <c>set_config('nhiaudit.reason', '…', …)</c>); an empty string when the statement clears it
    /// (<c>RESET nhiaudit.reason</c>, <c>RESET ALL</c>, <c>DISCARD ALL</c>, <c>SET … TO DEFAULT</c>). Null when untouched.
    /// </summary>
    public string? SessionReason { get; init; }

    /// <summary>
    /// Why the statement would leave <c>standard_conforming_strings</c> off or a <c>client_encoding</c> whose multibyte
    /// characters can hide quotes (SET or set_config to such a value, or to a value the gateway cannot read; UPDATE of
    /// pg_settings), after which the server would read later statements differently from the gateway; null when it
    /// cannot. RESET, RESET ALL, DISCARD ALL and SET … TO DEFAULT return to the login values and are not a problem.
    /// </summary>
    public string? LexicalSettingProblem { get; init; }

    /// <inheritdoc/>
    public override string ToString() =>
        $"{Kind}{(ObjectKind is null ? string.Empty : " " + ObjectKind)} [{string.Join(", ", Tables)}]{(HasWhere is null ? string.Empty : HasWhere.Value ? " where" : " no-where")}";
}
