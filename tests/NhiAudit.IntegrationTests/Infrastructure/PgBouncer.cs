using System.Collections.Concurrent;
using System.Globalization;
using Npgsql;

namespace NhiAudit.IntegrationTests.Infrastructure;

/// <summary>
/// pgbouncer in session mode on 127.0.0.1 and a free port in front of a <see cref="PostgresServer"/>: SCRAM client auth
/// with a plain-text userlist (app, postgres), client TLS allowed (the server's certificate), plain TCP to the server,
/// max_client_conn 100, default_pool_size 20. The peer the gateway's throughput is compared with. Mirrors eng/pg.sh.
/// </summary>
public sealed class PgBouncer : IAsyncDisposable
{
    private static readonly ConcurrentDictionary<PgBouncer, byte> Live = new();
    private readonly PostgresServer _server;
    private int _disposed;

    private PgBouncer(string directory, int port, PostgresServer server)
    {
        Directory = directory;
        Port = port;
        _server = server;
    }

    public string Host => "127.0.0.1";

    public int Port { get; private set; }

    public string Directory { get; }

    public string LogFile => Path.Combine(Directory, "pgbouncer.log");

    public string PidFile => Path.Combine(Directory, "pgbouncer.pid");

    public string ConfigFile => Path.Combine(Directory, "pgbouncer.ini");

    /// <summary>The pgbouncer executable, or null when it is not installed.</summary>
    public static string? Executable => ProcessRunner.FindOnPath("pgbouncer");

    /// <summary>Starts pgbouncer for <paramref name="server"/>; pool_mode defaults to session.</summary>
    public static async Task<PgBouncer> StartAsync(PostgresServer server, string poolMode = "session", IReadOnlyList<string>? extraSettings = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(server);
        var exe = Executable ?? throw new InvalidOperationException("pgbouncer is not installed (run eng/prereqs.sh as root).");
        PostgresServer.InstallExitHook();

        var dir = Path.Combine(PostgresServer.TempRoot, "nhiaudit-pgbouncer-" + Guid.NewGuid().ToString("N")[..12]);
        PostgresServer.CreateDirectory(dir);
        var bouncer = new PgBouncer(dir, FreePort.Get(), server);
        Live.TryAdd(bouncer, 0);
        try
        {
            File.Copy(server.CertificateFile, Path.Combine(dir, "server.crt"));
            File.Copy(server.KeyFile, Path.Combine(dir, "server.key"));
            PostgresServer.SetMode(Path.Combine(dir, "server.key"), UnixFileMode.UserRead | UnixFileMode.UserWrite);
            await File.WriteAllTextAsync(Path.Combine(dir, "userlist.txt"),
                $"\"{PostgresServer.AppUser}\" \"{PostgresServer.AppPassword}\"\n\"{PostgresServer.AdminUser}\" \"{PostgresServer.AdminPassword}\"\n",
                cancellationToken).ConfigureAwait(false);
            PostgresServer.SetMode(Path.Combine(dir, "userlist.txt"), UnixFileMode.UserRead | UnixFileMode.UserWrite);
            await PostgresServer.RunCheckedAsync("chown", ["-R", "postgres:postgres", dir], cancellationToken).ConfigureAwait(false);

            for (var attempt = 1; ; attempt++)
            {
                await File.WriteAllTextAsync(bouncer.ConfigFile, bouncer.BuildConfiguration(poolMode, extraSettings ?? []), cancellationToken).ConfigureAwait(false);
                var result = await PostgresServer.RunAsPostgresAsync(exe, ["-d", bouncer.ConfigFile], TimeSpan.FromSeconds(30), cancellationToken).ConfigureAwait(false);
                if (result.Succeeded && await FreePort.WaitForListeningAsync(bouncer.Port, TimeSpan.FromSeconds(10), cancellationToken).ConfigureAwait(false))
                {
                    return bouncer;
                }

                var log = File.Exists(bouncer.LogFile) ? await File.ReadAllTextAsync(bouncer.LogFile, cancellationToken).ConfigureAwait(false) : "";
                if (attempt < 5 && log.Contains("Address already in use", StringComparison.Ordinal))
                {
                    await bouncer.KillAsync().ConfigureAwait(false);
                    bouncer.Port = FreePort.Get();
                    continue;
                }

                throw new InvalidOperationException(result.Describe("pgbouncer start") + "\n--- pgbouncer.log ---\n" + string.Join('\n', log.Split('\n').TakeLast(30)));
            }
        }
        catch
        {
            await bouncer.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Npgsql connection string through pgbouncer (SSL Mode=Disable unless given).</summary>
    public string ConnectionString(string user = PostgresServer.AppUser, string password = PostgresServer.AppPassword,
        string database = PostgresServer.AppDatabase, SslMode sslMode = SslMode.Disable) =>
        new NpgsqlConnectionStringBuilder
        {
            Host = Host,
            Port = Port,
            Username = user,
            Password = password,
            Database = database,
            SslMode = sslMode,
            Timeout = 15,
        }.ConnectionString;

    /// <summary>libpq connection string through pgbouncer, for psql/pgbench.</summary>
    public string LibpqConnectionString(string user = PostgresServer.AppUser, string password = PostgresServer.AppPassword,
        string database = PostgresServer.AppDatabase, string sslMode = "disable") =>
        $"host={Host} port={Port.ToString(CultureInfo.InvariantCulture)} user={user} password={password} dbname={database} sslmode={sslMode} connect_timeout=15";

    public async Task<string> ReadLogAsync(CancellationToken cancellationToken = default)
    {
        if (!File.Exists(LogFile))
        {
            return "";
        }

        using var stream = new FileStream(LogFile, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var reader = new StreamReader(stream);
        return await reader.ReadToEndAsync(cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        Live.TryRemove(this, out _);
        try
        {
            await KillAsync().ConfigureAwait(false);
        }
        finally
        {
            PostgresServer.TryDeleteDirectory(Directory);
        }
    }

    public override string ToString() => $"pgbouncer on {Host}:{Port} -> {_server.Host}:{_server.Port}";

    internal static void StopAllForExit()
    {
        foreach (var bouncer in Live.Keys)
        {
            try
            {
                bouncer.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(10));
            }
            catch (AggregateException)
            {
            }
        }
    }

    private string BuildConfiguration(string poolMode, IReadOnlyList<string> extra)
    {
        var lines = new List<string>
        {
            "[databases]",
            $"* = host={_server.Host} port={_server.Port.ToString(CultureInfo.InvariantCulture)}",
            "",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            $"listen_port = {Port.ToString(CultureInfo.InvariantCulture)}",
            "unix_socket_dir =",
            "auth_type = scram-sha-256",
            $"auth_file = {Path.Combine(Directory, "userlist.txt")}",
            $"pool_mode = {poolMode}",
            "max_client_conn = 100",
            "default_pool_size = 20",
            "admin_users = postgres",
            "stats_users = postgres",
            "ignore_startup_parameters = extra_float_digits,search_path",
            $"logfile = {LogFile}",
            $"pidfile = {PidFile}",
            "client_tls_sslmode = allow",
            $"client_tls_cert_file = {Path.Combine(Directory, "server.crt")}",
            $"client_tls_key_file = {Path.Combine(Directory, "server.key")}",
            "server_tls_sslmode = disable",
        };
        lines.AddRange(extra);
        return string.Join('\n', lines) + "\n";
    }

    private async Task KillAsync()
    {
        if (!File.Exists(PidFile))
        {
            return;
        }

        if (!int.TryParse((await File.ReadAllTextAsync(PidFile).ConfigureAwait(false)).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
        {
            return;
        }

        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(pid);
            process.Kill();
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        }
        catch (ArgumentException)
        {
            // Not running.
        }
        catch (InvalidOperationException)
        {
        }

        File.Delete(PidFile);
    }
}
