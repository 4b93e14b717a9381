namespace NhiAudit.Sinks.Postgres;

/// <summary>
/// Where the PostgreSQL sink keeps the primary log's records and checkpoints, bound from a configuration section such
/// as <c>NhiAudit:Sinks:Postgres</c>.
/// </summary>
public sealed class PostgresSinkOptions
{
    /// <summary>
    /// The Npgsql connection string of the database that receives the records. Required. It holds a credential, so
    /// it is never written to a log message.
    /// </summary>
    public string? ConnectionString { get; set; }

    /// <summary>The schema holding both tables. Letters, digits and underscores only. Default: <c>nhiaudit</c>.</summary>
    public string Schema { get; set; } = "nhiaudit";

    /// <summary>The table of records, one row per record line. Letters, digits and underscores only. Default: <c>audit_records</c>.</summary>
    public string Table { get; set; } = "audit_records";

    /// <summary>The table of signed checkpoints. Letters, digits and underscores only. Default: <c>audit_checkpoints</c>.</summary>
    public string CheckpointTable { get; set; } = "audit_checkpoints";

    /// <summary>
    /// Whether the sink creates the schema and tables (if missing) on first use. Turn it off when a DBA creates them
    /// and the sink's role may only insert and select. Default: <see langword="true"/>.
    /// </summary>
    public bool CreateSchema { get; set; } = true;
}
