using System.Globalization;
using NhiAudit.IntegrationTests.Infrastructure;
using Npgsql;

namespace NhiAudit.IntegrationTests.Gateway.ClientMatrix;

/// <summary>
/// Where one run of a matrix case connects: straight to the real PostgreSQL as <c>app</c>, or through the in-process
/// gateway (whose upstream user is <c>app</c> too) with a workload token as the password. Both use TLS (sslmode require).
/// </summary>
public sealed class MatrixSide
{
    private readonly GatewayHost? _gateway;
    private readonly string _token;

    private MatrixSide(string name, PostgresServer server, GatewayHost? gateway, string suffix, string database)
    {
        Name = name;
        Server = server;
        _gateway = gateway;
        Suffix = suffix;
        Database = database;
        _token = gateway?.MintToken("matrix-" + suffix) ?? "";
    }

    public static MatrixSide Direct(PostgresServer server, string database = PostgresServer.AppDatabase) =>
        new("direct", server, null, "d" + Guid.NewGuid().ToString("N")[..8], database);

    public static MatrixSide ThroughGateway(PostgresServer server, GatewayHost gateway, string database = PostgresServer.AppDatabase) =>
        new("gateway", server, gateway, "g" + Guid.NewGuid().ToString("N")[..8], database);

    /// <summary>"direct" or "gateway".</summary>
    public string Name { get; }

    public bool IsGateway => _gateway is not null;

    /// <summary>Unique per run (a letter and 8 hex digits): name tables, channels, transactions with it.</summary>
    public string Suffix { get; }

    public string Database { get; }

    /// <summary>The real server, for out-of-band work a case does as the superuser, straight to the server (never through the gateway).</summary>
    public PostgresServer Server { get; }

    public GatewayHost? Gateway => _gateway;

    public string Host => "127.0.0.1";

    public int Port => _gateway?.Port ?? Server.Port;

    public string User => IsGateway ? "ci-job" : PostgresServer.AppUser;

    /// <summary>The password the client sends: the app password direct, the workload token through the gateway.</summary>
    public string Password => IsGateway ? _token : PostgresServer.AppPassword;

    /// <summary>An Npgsql connection string (no pooling unless <paramref name="configure"/> turns it on).</summary>
    public string NpgsqlConnectionString(Action<NpgsqlConnectionStringBuilder>? configure = null)
    {
        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = Host,
            Port = Port,
            Username = User,
            Password = Password,
            Database = Database,
            SslMode = SslMode.Require,
            Pooling = false,
            Timeout = 30,
            CommandTimeout = 60,
            IncludeErrorDetail = true,
        };
        configure?.Invoke(builder);
        return builder.ConnectionString;
    }

    public async Task<NpgsqlConnection> OpenAsync(Action<NpgsqlConnectionStringBuilder>? configure = null, CancellationToken cancellationToken = default)
    {
        var connection = new NpgsqlConnection(NpgsqlConnectionString(configure));
        try
        {
            await connection.OpenAsync(cancellationToken);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    /// <summary>A superuser connection straight to the server (not pooled), for watching and terminating sessions.</summary>
    public async Task<NpgsqlConnection> OpenAdminAsync(CancellationToken cancellationToken = default)
    {
        var builder = new NpgsqlConnectionStringBuilder(Server.ConnectionString(PostgresServer.AdminUser, PostgresServer.AdminPassword, Database)) { Pooling = false };
        var connection = new NpgsqlConnection(builder.ConnectionString);
        await connection.OpenAsync(cancellationToken);
        return connection;
    }

    /// <summary>A libpq connection string without the password (it travels in PGPASSWORD, see <see cref="LibpqEnvironment"/>).</summary>
    public string LibpqConnectionString =>
        $"host={Host} port={Port.ToString(CultureInfo.InvariantCulture)} user={User} dbname={Database} sslmode=require connect_timeout=15";

    public IDictionary<string, string> LibpqEnvironment()
    {
        var env = PostgresServer.ClientEnvironment;
        env["PGPASSWORD"] = Password;
        return env;
    }

    /// <summary>
    /// Waits (up to 15 s) until the server runs a statement containing <paramref name="marker"/>, so a cancel or a
    /// termination does not race the statement's arrival. Returns the backend's pid.
    /// </summary>
    public async Task<int> WaitUntilRunningAsync(string marker, CancellationToken cancellationToken)
    {
        await using var admin = await OpenAdminAsync(cancellationToken);
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (true)
        {
            await using var probe = new NpgsqlCommand("SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()", admin);
            probe.Parameters.Add(new NpgsqlParameter { Value = marker });
            if (await probe.ExecuteScalarAsync(cancellationToken) is int pid)
            {
                return pid;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"the server never ran the statement marked {marker}");
            }

            await Task.Delay(25, cancellationToken);
        }
    }
}
