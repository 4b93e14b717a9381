namespace NhiAudit.Postgres;

/// <summary>The PostgreSQL section of the gateway configuration (<c>NhiAudit:Postgres</c>).</summary>
public sealed class PostgresOptions
{
    /// <summary>One listener per upstream database server.</summary>
    public List<PostgresTargetOptions> Targets { get; init; } = [];
}

/// <summary>One PostgreSQL target: where the gateway listens and which server it guards.</summary>
public sealed class PostgresTargetOptions
{
    /// <summary>The target's name, written in every record (e.g. <c>orders</c>).</summary>
    public string Name { get; set; } = "postgres";

    /// <summary>The listen endpoint, <c>host:port</c>. Default <c>127.0.0.1:6432</c>.</summary>
    public string Listen { get; set; } = "127.0.0.1:6432";

    /// <summary>The upstream server and the gateway's own credential for it.</summary>
    public PostgresUpstreamOptions Upstream { get; set; } = new();

    /// <summary>TLS towards clients.</summary>
    public PostgresClientTlsOptions Tls { get; set; } = new();

    /// <summary>
    /// The largest message the gateway inspects whole (Query, Parse, Bind, FunctionCall). Larger ones end the
    /// connection with SQLSTATE 54000. Messages the gateway need not inspect stream through in pieces whatever their size.
    /// Default 16 MiB.
    /// </summary>
    public int MaxInspectedMessageBytes { get; set; } = 16 * 1024 * 1024;

    /// <summary>How many characters of statement text and of each parameter value go into a record. Default 16384 and 1024.</summary>
    public int MaxLoggedTextChars { get; set; } = 16384;

    /// <summary>How many characters of each parameter value go into a record. Default 1024.</summary>
    public int MaxLoggedParameterChars { get; set; } = 1024;

    /// <summary>
    /// How old the masking catalog (which table columns the masking rules protect) may get before the next statement
    /// reads it again. It is also read again after every DDL statement through the gateway and whenever a result
    /// names a relation it does not know (whose columns are masked whole until then). Default 60 s.
    /// </summary>
    public TimeSpan MaskingCatalogRefresh { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// How old the code catalog (functions, procedures, triggers and rules, whose SQL the policy decides as effects of
    /// the statements that run them) may get before the next statement reads it again. It is also read again after DDL
    /// through the gateway and whenever a statement calls a function it does not know. Default 60 s.
    /// </summary>
    public TimeSpan CodeCatalogRefresh { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// How many rows of each result go into its response record, masked as the client saw them (0, the default, records
    /// none). Each value is cut to <see cref="MaxLoggedParameterChars"/> characters.
    /// </summary>
    public int CaptureRows { get; set; }

    /// <summary>How long a client may take from connecting to sending its token. Default 30 s.</summary>
    public TimeSpan StartupTimeout { get; set; } = TimeSpan.FromSeconds(30);
}

/// <summary>The upstream PostgreSQL server.</summary>
public sealed class PostgresUpstreamOptions
{
    /// <summary>Host name or address. Default <c>127.0.0.1</c>.</summary>
    public string Host { get; set; } = "127.0.0.1";

    /// <summary>Port. Default 5432.</summary>
    public int Port { get; set; } = 5432;

    /// <summary>The role the gateway logs in as. Workloads never learn its credential.</summary>
    public string Username { get; set; } = "postgres";

    /// <summary>The password for SCRAM-SHA-256, MD5 or cleartext authentication. Unused with <see cref="UseAzureIdentity"/>.</summary>
    public string? Password { get; set; }

    /// <summary>The database to connect to; by default the one the client asked for.</summary>
    public string? Database { get; set; }

    /// <summary>TLS towards the server. Default <see cref="PgSslMode.Prefer"/>.</summary>
    public PgSslMode SslMode { get; set; } = PgSslMode.Prefer;

    /// <summary>A PEM file of CA certificates for <see cref="PgSslMode.VerifyFull"/>; the system store when unset.</summary>
    public string? CaFile { get; set; }

    /// <summary>
    /// Authenticate with an Azure.Identity <c>TokenCredential</c> registered in the container
    /// (Azure Database for PostgreSQL flexible server with Entra authentication).
    /// </summary>
    public bool UseAzureIdentity { get; set; }

    /// <summary>The token scope for <see cref="UseAzureIdentity"/>. Default the Azure Database for PostgreSQL scope.</summary>
    public string AzureScope { get; set; } = "https://ossrdbms-aad.database.windows.net/.default";

    /// <summary>How long to wait for the upstream connection and login. Default 15 s.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(15);
}

/// <summary>libpq's sslmode values, with their meaning for the gateway's upstream connection.</summary>
public enum PgSslMode
{
    /// <summary>Never use TLS.</summary>
    Disable,

    /// <summary>Use TLS when the server offers it, without verifying the certificate.</summary>
    Prefer,

    /// <summary>Require TLS, without verifying the certificate.</summary>
    Require,

    /// <summary>Require TLS and verify the certificate chain and host name.</summary>
    VerifyFull,
}

/// <summary>TLS towards clients.</summary>
public sealed class PostgresClientTlsOptions
{
    /// <summary>A PEM certificate (chain) file. When unset, a self-signed certificate is generated on first run and reused.</summary>
    public string? CertificateFile { get; set; }

    /// <summary>The PEM private key file of <see cref="CertificateFile"/>.</summary>
    public string? KeyFile { get; set; }

    /// <summary>
    /// Refuse clients that do not negotiate TLS. Default true: the password is a bearer token and must not cross the
    /// network in clear. Turn off only on loopback (e.g. for benchmarks).
    /// </summary>
    public bool Required { get; set; } = true;

    /// <summary>Where a generated certificate is kept. Default <c>.nhiaudit</c> under the working directory.</summary>
    public string StateDirectory { get; set; } = ".nhiaudit";
}
