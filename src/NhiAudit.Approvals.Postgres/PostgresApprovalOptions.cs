namespace NhiAudit.Approvals.Postgres;

/// <summary>
/// Where gateway replicas share their approvals. Bound from the <c>NhiAudit:Approvals:Postgres</c> configuration
/// section; the timeout, grant cap and webhook stay in <c>NhiAudit:Approvals</c> (<see cref="ApprovalOptions"/>).
/// </summary>
public sealed class PostgresApprovalOptions
{
    /// <summary>The configuration section these options bind from.</summary>
    public const string SectionName = "NhiAudit:Approvals:Postgres";

    /// <summary>
    /// The Npgsql connection string of the database every replica shares. Required. It holds a password or names a
    /// passfile: keep it out of logs and source control (environment variable
    /// <c>NhiAudit__Approvals__Postgres__ConnectionString</c> or a secret store).
    /// </summary>
    public string? ConnectionString { get; set; }

    /// <summary>The schema of the <c>approval_tickets</c> and <c>approval_grants</c> tables. Default: <c>nhiaudit</c>.</summary>
    public string Schema { get; set; } = "nhiaudit";

    /// <summary>
    /// Create the schema and tables when missing (needs CREATE on the database). Turn off when a DBA creates them and
    /// the gateway's role may only read and write them. Default: <see langword="true"/>.
    /// </summary>
    public bool CreateSchema { get; set; } = true;
}
