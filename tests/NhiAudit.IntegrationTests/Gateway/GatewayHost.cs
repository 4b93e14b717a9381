using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NhiAudit.Identity;
using NhiAudit.IntegrationTests.Infrastructure;
using NhiAudit.Postgres.Gateway;
using Npgsql;

namespace NhiAudit.IntegrationTests.Gateway;

/// <summary>Settings of one in-process gateway under test, as a user would write them in the NhiAudit section.</summary>
public sealed class GatewayHostOptions
{
    public string Durability { get; set; } = "WriteAhead";

    public bool ClientTlsRequired { get; set; } = true;

    public string UpstreamUser { get; set; } = PostgresServer.AppUser;

    public string UpstreamPassword { get; set; } = PostgresServer.AppPassword;

    public string UpstreamHost { get; set; } = "127.0.0.1";

    public string SslMode { get; set; } = "Require";

    public string? CaFile { get; set; }

    public int MaxInspectedMessageBytes { get; set; } = 16 * 1024 * 1024;

    public TimeSpan ClockSkew { get; set; } = TimeSpan.FromSeconds(30);

    public TimeSpan SessionGrace { get; set; } = TimeSpan.Zero;

    public Dictionary<string, string?> Extra { get; } = [];

    /// <summary>Registrations after <c>AddNhiAuditing().AddPostgres()</c>, e.g. a TokenCredential or a log decorator.</summary>
    public Action<IServiceCollection>? ConfigureServices { get; set; }
}

/// <summary>
/// The gateway composed the way a library user composes it (<c>AddNhiAuditing().AddPostgres()</c> over configuration),
/// in front of a real PostgreSQL, with its own audit directory and development issuer.
/// </summary>
public sealed class GatewayHost : IAsyncDisposable
{
    private readonly IHost _host;

    private GatewayHost(IHost host, string directory, DevelopmentIssuer issuer, int port, PostgresServer server)
    {
        _host = host;
        Directory = directory;
        Issuer = issuer;
        Port = port;
        Server = server;
    }

    public string Directory { get; }

    public string AuditDirectory => Path.Combine(Directory, "audit");

    public DevelopmentIssuer Issuer { get; }

    public int Port { get; }

    public PostgresServer Server { get; }

    public PostgresGateway Gateway => _host.Services.GetRequiredService<PostgresGateway>();

    public static async Task<GatewayHost> StartAsync(PostgresServer server, Action<GatewayHostOptions>? configure = null)
    {
        var options = new GatewayHostOptions();
        configure?.Invoke(options);
        var directory = Path.Combine(PostgresServer.TempRoot, "gw-" + Guid.NewGuid().ToString("N")[..10]);
        System.IO.Directory.CreateDirectory(directory);
        var issuer = DevelopmentIssuer.LoadOrCreate(Path.Combine(directory, "issuer"), "https://issuer.test");

        var settings = new Dictionary<string, string?>
        {
            ["NhiAudit:Identity:Issuers:0:Name"] = "test",
            ["NhiAudit:Identity:Issuers:0:Issuer"] = "https://issuer.test",
            ["NhiAudit:Identity:Issuers:0:JwksFile"] = issuer.JwksPath,
            ["NhiAudit:Identity:Issuers:0:Audiences:0"] = "nhiaudit",
            ["NhiAudit:Identity:ClockSkew"] = options.ClockSkew.ToString("c", CultureInfo.InvariantCulture),
            ["NhiAudit:Identity:SessionGrace"] = options.SessionGrace.ToString("c", CultureInfo.InvariantCulture),
            ["NhiAudit:Audit:Directory"] = Path.Combine(directory, "audit"),
            ["NhiAudit:Audit:Durability"] = options.Durability,
            ["NhiAudit:Postgres:Targets:0:Name"] = "orders",
            ["NhiAudit:Postgres:Targets:0:Listen"] = "127.0.0.1:0",
            ["NhiAudit:Postgres:Targets:0:MaxInspectedMessageBytes"] = options.MaxInspectedMessageBytes.ToString(CultureInfo.InvariantCulture),
            ["NhiAudit:Postgres:Targets:0:Upstream:Host"] = options.UpstreamHost,
            ["NhiAudit:Postgres:Targets:0:Upstream:Port"] = server.Port.ToString(CultureInfo.InvariantCulture),
            ["NhiAudit:Postgres:Targets:0:Upstream:Username"] = options.UpstreamUser,
            ["NhiAudit:Postgres:Targets:0:Upstream:Password"] = options.UpstreamPassword,
            ["NhiAudit:Postgres:Targets:0:Upstream:SslMode"] = options.SslMode,
            ["NhiAudit:Postgres:Targets:0:Upstream:CaFile"] = options.CaFile,
            ["NhiAudit:Postgres:Targets:0:Tls:Required"] = options.ClientTlsRequired ? "true" : "false",
            ["NhiAudit:Postgres:Targets:0:Tls:StateDirectory"] = Path.Combine(directory, "state"),
        };
        if (Environment.GetEnvironmentVariable("NHIAUDIT_TEST_FORCE_MASKING") == "1")
        {
            // Runs every gateway test with masking on (a column rule that matches nothing, and detectors that inspect
            // every string value): the protocol flows must not change when the gateway inspects results.
            settings["NhiAudit:Policy:Masking:0:Name"] = "forced";
            settings["NhiAudit:Policy:Masking:0:Columns:0"] = "*.*.nhiaudit_forced_nothing";
            settings["NhiAudit:Policy:Masking:0:Detectors:0"] = "credit-card";
        }

        foreach (var (key, value) in options.Extra)
        {
            settings[key] = value;
        }

        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.AddSimpleConsole().SetMinimumLevel(LogLevel.Warning);
        builder.Services
            .AddNhiAuditing(configuration.GetSection("NhiAudit"))
            .AddPostgres(configuration.GetSection("NhiAudit:Postgres"));
        options.ConfigureServices?.Invoke(builder.Services);
        var host = builder.Build();
        await host.StartAsync().ConfigureAwait(false);
        var gateway = host.Services.GetRequiredService<PostgresGateway>();
        await gateway.Listening.WaitAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
        return new GatewayHost(host, directory, issuer, gateway.Endpoints["orders"].Port, server);
    }

    public string MintToken(string subject = "ci-job", TimeSpan? lifetime = null, WorkloadKind kind = WorkloadKind.FederatedWorkload, string? runId = null) =>
        Issuer.MintToken(new TokenRequest
        {
            Subject = subject,
            Audience = "nhiaudit",
            Lifetime = lifetime ?? TimeSpan.FromHours(1),
            Kind = kind,
            Repository = kind == WorkloadKind.FederatedWorkload ? "contoso/orders" : null,
            Workflow = kind == WorkloadKind.FederatedWorkload ? "deploy.yml" : null,
            RunId = kind == WorkloadKind.FederatedWorkload ? runId ?? "4242" : null,
            Sha = kind == WorkloadKind.FederatedWorkload ? "0123abcd" : null,
            ManagedIdentityResourceId = kind == WorkloadKind.ManagedIdentity ? $"/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{subject}" : null,
            ApplicationId = kind == WorkloadKind.ServicePrincipal ? "11111111-2222-3333-4444-555555555555" : null,
        });

    /// <summary>An Npgsql connection string whose password is the workload token, TLS required (the gateway's certificate is self-signed).</summary>
    public string ConnectionString(string token, Action<NpgsqlConnectionStringBuilder>? configure = null)
    {
        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = "127.0.0.1",
            Port = Port,
            Username = "ci-job",
            Password = token,
            Database = PostgresServer.AppDatabase,
            SslMode = SslMode.Require,
            Pooling = false,
            Timeout = 30,
            CommandTimeout = 60,
        };
        configure?.Invoke(builder);
        return builder.ConnectionString;
    }

    /// <summary>A libpq connection string (password via PGPASSWORD, see <see cref="LibpqEnvironment"/>).</summary>
    public string LibpqConnectionString(string sslMode = "require") =>
        $"host=127.0.0.1 port={Port.ToString(CultureInfo.InvariantCulture)} user=ci-job dbname={PostgresServer.AppDatabase} sslmode={sslMode} connect_timeout=15";

    public static IDictionary<string, string> LibpqEnvironment(string token)
    {
        var env = PostgresServer.ClientEnvironment;
        env["PGPASSWORD"] = token;
        return env;
    }

    /// <summary>Every record in the audit log, in chain order (the log is flushed first).</summary>
    public async Task<List<JsonElement>> ReadRecordsAsync()
    {
        await _host.Services.GetRequiredService<IAuditLog>().FlushAsync().ConfigureAwait(false);
        return ReadRecords(AuditDirectory);
    }

    /// <summary>
    /// The records of an in-process gateway once <paramref name="ready"/> holds (up to 10 s; the log is flushed before
    /// each read): a stream's or channel's response record is written when both of its sides have closed, a moment
    /// after the client has already returned.
    /// </summary>
    public static async Task<List<JsonElement>> WaitForRecordsAsync(IServiceProvider services, string auditDirectory, Func<List<JsonElement>, bool> ready)
    {
        var log = services.GetRequiredService<IAuditLog>();
        await log.FlushAsync().ConfigureAwait(false);
        var records = ReadRecords(auditDirectory);
        for (var i = 0; i < 100 && !ready(records); i++)
        {
            await Task.Delay(100).ConfigureAwait(false);
            await log.FlushAsync().ConfigureAwait(false);
            records = ReadRecords(auditDirectory);
        }

        return records;
    }

    public static List<JsonElement> ReadRecords(string auditDirectory)
    {
        var records = new List<JsonElement>();
        foreach (var file in System.IO.Directory.GetFiles(auditDirectory, "audit-*.jsonl").Order(StringComparer.Ordinal))
        {
            using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var reader = new StreamReader(stream);
            while (reader.ReadLine() is { } line)
            {
                if (line.Length > 0)
                {
                    records.Add(JsonDocument.Parse(line).RootElement.Clone());
                }
            }
        }

        return records;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _host.StopAsync(TimeSpan.FromSeconds(15)).ConfigureAwait(false);
        }
        finally
        {
            _host.Dispose();
        }

        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a leftover temp folder is harmless.
        }
    }
}

/// <summary>Reading audit records the way a reviewer does.</summary>
public static class AuditRecordExtensions
{
    public static string? Str(this JsonElement record, string name) =>
        record.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    public static string? Type(this JsonElement record) => record.Str("type");

    public static string? SessionId(this JsonElement record) =>
        record.TryGetProperty("session", out var s) && s.ValueKind == JsonValueKind.Object && s.TryGetProperty("id", out var id) ? id.GetString() : null;

    public static string? Subject(this JsonElement record) =>
        record.TryGetProperty("identity", out var id) && id.TryGetProperty("subject", out var sub) ? sub.GetString() : null;

    public static IEnumerable<JsonElement> OfType(this IEnumerable<JsonElement> records, string type) =>
        records.Where(r => r.Type() == type);
}
