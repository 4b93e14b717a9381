namespace NhiAudit.Postgres.Sql;

/// <summary>The <see cref="SqlStatementInfo.Kind"/> values the classifier produces, as constants.</summary>
internal static class SqlKinds
{
    /// <summary>Unrecognized statement.</summary>
    public const string Unknown = "UNKNOWN";

    /// <summary>Only whitespace and comments.</summary>
    public const string Empty = "EMPTY";

    /// <summary>SELECT, TABLE, and WITH … SELECT without data-modifying CTEs.</summary>
    public const string Select = "SELECT";

    /// <summary>INSERT.</summary>
    public const string Insert = "INSERT";

    /// <summary>UPDATE.</summary>
    public const string Update = "UPDATE";

    /// <summary>DELETE.</summary>
    public const string Delete = "DELETE";

    /// <summary>MERGE.</summary>
    public const string Merge = "MERGE";

    /// <summary>COPY.</summary>
    public const string Copy = "COPY";

    /// <summary>VALUES.</summary>
    public const string Values = "VALUES";

    /// <summary>EXPLAIN (without ANALYZE).</summary>
    public const string Explain = "EXPLAIN";

    /// <summary>CREATE.</summary>
    public const string Create = "CREATE";

    /// <summary>ALTER.</summary>
    public const string Alter = "ALTER";

    /// <summary>DROP.</summary>
    public const string Drop = "DROP";

    /// <summary>SET.</summary>
    public const string Set = "SET";
}
