using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Npgsql;

namespace NhiAudit.IntegrationTests.Infrastructure;

/// <summary>Options for <see cref="PostgresServer.StartAsync"/>.</summary>
public sealed class PostgresServerOptions
{
    /// <summary>log_statement = all (with log_connections), so the server's own log shows every statement.</summary>
    public bool LogAllStatements { get; init; }

    /// <summary>ssl = on with a self-signed certificate for CN=localhost (SAN localhost, 127.0.0.1).</summary>
    public bool Tls { get; init; } = true;

    /// <summary>Extra postgresql.conf lines, written last (so they override the defaults).</summary>
    public IReadOnlyList<string> ExtraConfiguration { get; init; } = [];

    /// <summary>How long pg_ctl may wait for the server to accept connections.</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(60);
}

/// <summary>Paths of the PostgreSQL 15 programs (Debian layout; override the folder with NHIAUDIT_PG_BIN).</summary>
public static class PostgresBinaries
{
    /// <summary>The bin folder, /usr/lib/postgresql/15/bin by default.</summary>
    public static string BinDirectory { get; } =
        Environment.GetEnvironmentVariable("NHIAUDIT_PG_BIN") is { Length: > 0 } dir ? dir : "/usr/lib/postgresql/15/bin";

    public static string Initdb => Path.Combine(BinDirectory, "initdb");
    public static string PgCtl => Path.Combine(BinDirectory, "pg_ctl");
    public static string Psql => Path.Combine(BinDirectory, "psql");
    public static string Pgbench => Path.Combine(BinDirectory, "pgbench");
    public static string PgIsReady => Path.Combine(BinDirectory, "pg_isready");

    /// <summary>Throws a helpful message when PostgreSQL 15 is not installed.</summary>
    public static void EnsureInstalled()
    {
        foreach (var p in new[] { Initdb, PgCtl, Psql, Pgbench })
        {
            if (!File.Exists(p))
            {
                throw new InvalidOperationException($"{p} not found: PostgreSQL 15 is not installed (run eng/prereqs.sh as root).");
            }
        }
    }
}

/// <summary>
/// A throwaway PostgreSQL 15 server on 127.0.0.1 and a free port, in its own folder under <see cref="TempRoot"/> (/dev/shm or /tmp), for one test class or
/// collection. The first start on a machine runs initdb once into a template beside them (roles, database, TLS certificate);
/// each server copies it (~0.3 s instead of ~2 s). As root the server runs as 'postgres' through runuser (PostgreSQL refuses
/// root); as any other user it runs as that user. Mirrors eng/pg.sh:
/// <list type="table">
/// <item><term>postgres / postgres-secret</term><description>superuser, scram-sha-256</description></item>
/// <item><term>app / app-secret</term><description>LOGIN CREATEDB, scram-sha-256, owns database app</description></item>
/// <item><term>md5user / md5-secret</term><description>MD5-stored password, hba method md5</description></item>
/// <item><term>clearuser / clear-secret</term><description>hba method password (cleartext)</description></item>
/// </list>
/// </summary>
public sealed class PostgresServer : IAsyncDisposable
{
    public const string AdminUser = "postgres";
    public const string AdminPassword = "postgres-secret";
    public const string AppUser = "app";
    public const string AppPassword = "app-secret";
    public const string AppDatabase = "app";
    public const string Md5User = "md5user";
    public const string Md5Password = "md5-secret";
    public const string ClearUser = "clearuser";
    public const string ClearPassword = "clear-secret";

    /// <summary>
    /// Where server folders go: NHIAUDIT_PG_TMP if set; else /dev/shm (tmpfs: copying a cluster there takes ~0.1 s
    /// against ~1.5 s on this machine's /tmp disk); else /tmp. Never under /root (postgres could not reach it).
    /// </summary>
    public static string TempRoot { get; } = ChooseTempRoot();
    private static readonly SemaphoreSlim TemplateLock = new(1, 1);
    private static readonly ConcurrentDictionary<PostgresServer, byte> Live = new();
    private static string? _templateDirectory;
    private static int _exitHookInstalled;

    private readonly PostgresServerOptions _options;
    private int _disposed;

    private PostgresServer(string directory, int port, PostgresServerOptions options)
    {
        Directory = directory;
        Port = port;
        _options = options;
    }

    /// <summary>True when this process is root, so the server runs as 'postgres' via runuser.</summary>
    public static bool RunningAsRoot => Environment.IsPrivilegedProcess;

    public string Host => "127.0.0.1";

    public int Port { get; private set; }

    /// <summary>The server's folder: data/, postgres.log, server.crt, the unix socket.</summary>
    public string Directory { get; }

    public string DataDirectory => Path.Combine(Directory, "data");

    /// <summary>The server's stderr log (pg_ctl -l), with log_line_prefix '%m [%p] app=%a user=%u db=%d '.</summary>
    public string LogFile => Path.Combine(Directory, "postgres.log");

    /// <summary>The server's self-signed certificate (PEM), usable as a root certificate for verify-full.</summary>
    public string CertificateFile => Path.Combine(Directory, "server.crt");

    /// <summary>The server's private key (PEM).</summary>
    public string KeyFile => Path.Combine(DataDirectory, "server.key");

    public bool Tls => _options.Tls;

    /// <summary>Superuser on database app (Npgsql format).</summary>
    public string AdminConnectionString => ConnectionString(AdminUser, AdminPassword, AppDatabase);

    /// <summary>How long the last start took (copy + pg_ctl start).</summary>
    public TimeSpan StartDuration { get; private set; }

    /// <summary>Starts a new server; dispose it to stop it and delete its folder.</summary>
    public static async Task<PostgresServer> StartAsync(PostgresServerOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new PostgresServerOptions();
        PostgresBinaries.EnsureInstalled();
        InstallExitHook();
        var stopwatch = Stopwatch.StartNew();
        var template = await EnsureTemplateAsync(cancellationToken).ConfigureAwait(false);

        var dir = Path.Combine(TempRoot, "nhiaudit-pg-" + Guid.NewGuid().ToString("N")[..12]);
        try
        {
            await RunCheckedAsync("cp", ["-a", template, dir], cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            TryDeleteDirectory(dir);
            throw;
        }

        SetMode(dir, Mode755);
        var server = new PostgresServer(dir, FreePort.Get(), options);
        Live.TryAdd(server, 0);
        try
        {
            await server.StartServerAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        server.StartDuration = stopwatch.Elapsed;
        return server;
    }

    /// <summary>An Npgsql connection string (SSL Mode=Require with TLS, which does not verify the self-signed cert; Disable without).</summary>
    public string ConnectionString(string user = AppUser, string password = AppPassword, string database = AppDatabase)
    {
        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = Host,
            Port = Port,
            Username = user,
            Password = password,
            Database = database,
            SslMode = Tls ? SslMode.Require : SslMode.Disable,
            IncludeErrorDetail = true,
            Timeout = 15,
        };
        return builder.ConnectionString;
    }

    /// <summary>A libpq key=value connection string for psql/pgbench (sslmode defaults to require with TLS, else disable).</summary>
    public string LibpqConnectionString(string user = AppUser, string password = AppPassword, string database = AppDatabase, string? sslMode = null) =>
        $"host={Host} port={Port.ToString(CultureInfo.InvariantCulture)} user={user} password={password} dbname={database} sslmode={sslMode ?? (Tls ? "require" : "disable")} connect_timeout=15";

    /// <summary>Reads the whole server log (the server keeps writing it).</summary>
    public async Task<string> ReadLogAsync(CancellationToken cancellationToken = default)
    {
        if (!File.Exists(LogFile))
        {
            return "";
        }

        using var stream = new FileStream(LogFile, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return await reader.ReadToEndAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Waits until the log contains <paramref name="text"/>; returns the log, or throws TimeoutException with its tail.</summary>
    public async Task<string> WaitForLogAsync(string text, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(10));
        while (true)
        {
            var log = await ReadLogAsync(cancellationToken).ConfigureAwait(false);
            if (log.Contains(text, StringComparison.Ordinal))
            {
                return log;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"'{text}' not in {LogFile}; last lines:\n{string.Join('\n', log.Split('\n').TakeLast(20))}");
            }

            await Task.Delay(50, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Runs <paramref name="sql"/> as the superuser on <paramref name="database"/> and returns the first column as int.</summary>
    public async Task<int> ExecuteScalarIntAsync(string sql, string database = AppDatabase, CancellationToken cancellationToken = default)
    {
        var value = await ExecuteScalarAsync(sql, database, cancellationToken).ConfigureAwait(false);
        return Convert.ToInt32(value, CultureInfo.InvariantCulture);
    }

    /// <summary>Runs <paramref name="sql"/> as the superuser on <paramref name="database"/> and returns the first value.</summary>
    public async Task<object?> ExecuteScalarAsync(string sql, string database = AppDatabase, CancellationToken cancellationToken = default)
    {
        await using var conn = new NpgsqlConnection(AdminNoPool(database));
        await conn.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var cmd = new NpgsqlCommand(sql, conn);
        var value = await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
        return value is DBNull ? null : value;
    }

    /// <summary>Runs <paramref name="sql"/> (one or more statements) as the superuser on <paramref name="database"/>.</summary>
    public async Task ExecuteAsync(string sql, string database = AppDatabase, CancellationToken cancellationToken = default)
    {
        await using var conn = new NpgsqlConnection(AdminNoPool(database));
        await conn.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var cmd = new NpgsqlCommand(sql, conn);
        await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Creates a fresh database owned by app (for tests that must not share tables) and returns its name.</summary>
    public async Task<string> CreateDatabaseAsync(string? name = null, CancellationToken cancellationToken = default)
    {
        name ??= "db_" + Guid.NewGuid().ToString("N")[..10];
        await ExecuteAsync($"CREATE DATABASE \"{name}\" OWNER app STRATEGY FILE_COPY", "postgres", cancellationToken).ConfigureAwait(false);
        return name;
    }

    /// <summary>Runs psql with -X -v ON_ERROR_STOP=1 against this server; extra arguments follow the connection string.</summary>
    public Task<ProcessResult> RunPsqlAsync(IEnumerable<string> args, string? stdin = null, string user = AppUser, string password = AppPassword,
        string database = AppDatabase, TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        ProcessRunner.RunAsync(PostgresBinaries.Psql,
            ["-X", "-v", "ON_ERROR_STOP=1", LibpqConnectionString(user, password, database), .. args],
            stdin, timeout ?? TimeSpan.FromSeconds(60), ClientEnvironment, cancellationToken: cancellationToken);

    /// <summary>Environment for libpq clients (a new dictionary each time): no inherited PG* variables that could redirect them.</summary>
    public static IDictionary<string, string> ClientEnvironment => new Dictionary<string, string>
    {
        ["PGHOST"] = "",
        ["PGPORT"] = "",
        ["PGUSER"] = "",
        ["PGPASSWORD"] = "",
        ["PGDATABASE"] = "",
        ["PGSSLMODE"] = "",
        ["PGSERVICE"] = "",
        ["PGPASSFILE"] = "/dev/null",
        ["PGSSLROOTCERT"] = "",
        ["PGOPTIONS"] = "",
        ["PGSSLCERT"] = "",
        ["PGSSLKEY"] = "",
        ["PGAPPNAME"] = "",
    };

    /// <summary>Stops the server (fast shutdown, or immediate); <see cref="RestartAsync"/> starts it again on the same port.</summary>
    public async Task StopAsync(bool immediate = false, CancellationToken cancellationToken = default)
    {
        var result = await RunAsPostgresAsync(PostgresBinaries.PgCtl,
            ["-D", DataDirectory, "-m", immediate ? "immediate" : "fast", "-w", "-t", "30", "stop"], TimeSpan.FromSeconds(40), cancellationToken).ConfigureAwait(false);
        if (!result.Succeeded && File.Exists(Path.Combine(DataDirectory, "postmaster.pid")))
        {
            result.EnsureSuccess("pg_ctl stop");
        }
    }

    /// <summary>Starts a stopped server again (same folder, same port).</summary>
    public Task RestartAsync(CancellationToken cancellationToken = default) => StartServerAsync(cancellationToken, samePort: true);

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        Live.TryRemove(this, out _);
        try
        {
            if (File.Exists(Path.Combine(DataDirectory, "postmaster.pid")))
            {
                await RunAsPostgresAsync(PostgresBinaries.PgCtl, ["-D", DataDirectory, "-m", "immediate", "-w", "-t", "20", "stop"],
                    TimeSpan.FromSeconds(30), CancellationToken.None).ConfigureAwait(false);
            }
        }
        finally
        {
            TryDeleteDirectory(Directory);
        }
    }

    public override string ToString() => $"PostgreSQL 15 on {Host}:{Port} ({Directory})";

    private async Task StartServerAsync(CancellationToken cancellationToken, bool samePort = false)
    {
        for (var attempt = 1; ; attempt++)
        {
            await File.WriteAllTextAsync(Path.Combine(DataDirectory, "nhiaudit.conf"), BuildConfiguration(Directory, Port, _options), cancellationToken).ConfigureAwait(false);
            var result = await RunAsPostgresAsync(PostgresBinaries.PgCtl,
                ["-D", DataDirectory, "-l", LogFile, "-w", "-t", ((int)_options.StartTimeout.TotalSeconds).ToString(CultureInfo.InvariantCulture), "start"],
                _options.StartTimeout + TimeSpan.FromSeconds(10), cancellationToken).ConfigureAwait(false);
            if (result.Succeeded)
            {
                return;
            }

            var log = await ReadLogAsync(cancellationToken).ConfigureAwait(false);
            if (!samePort && attempt < 5 && log.Contains("could not bind", StringComparison.Ordinal))
            {
                Port = FreePort.Get(); // someone took the port between FreePort.Get and bind
                continue;
            }

            throw new InvalidOperationException(result.Describe("pg_ctl start") + "\n--- postgres.log ---\n" +
                string.Join('\n', log.Split('\n').TakeLast(30)));
        }
    }

    private static string BuildConfiguration(string directory, int port, PostgresServerOptions options)
    {
        var sb = new StringBuilder();
        sb.AppendLine("# written by NhiAudit.IntegrationTests PostgresServer");
        sb.AppendLine("listen_addresses = '127.0.0.1'");
        sb.AppendLine(CultureInfo.InvariantCulture, $"port = {port}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"unix_socket_directories = '{directory}'");
        sb.AppendLine("max_connections = 200");
        sb.AppendLine(CultureInfo.InvariantCulture, $"ssl = {(options.Tls ? "on" : "off")}");
        sb.AppendLine("ssl_cert_file = 'server.crt'");
        sb.AppendLine("ssl_key_file = 'server.key'");
        sb.AppendLine("password_encryption = 'scram-sha-256'");
        sb.AppendLine("fsync = off");
        sb.AppendLine("synchronous_commit = off");
        sb.AppendLine("full_page_writes = off");
        sb.AppendLine("logging_collector = off");
        sb.AppendLine("log_destination = 'stderr'");
        sb.AppendLine("log_line_prefix = '%m [%p] app=%a user=%u db=%d '");
        if (options.LogAllStatements)
        {
            sb.AppendLine("log_statement = 'all'");
            sb.AppendLine("log_connections = on");
            sb.AppendLine("log_disconnections = on");
        }

        foreach (var line in options.ExtraConfiguration)
        {
            sb.AppendLine(line);
        }

        return sb.ToString();
    }

    /// <summary>
    /// The template (initdb, roles, database app, certificate, hba) in /tmp, shared by every test process and run of this
    /// machine: built once in a scratch folder and renamed into place (atomic), so a present template is a complete one.
    /// Its name hashes the format version and the PostgreSQL build, so a change of either makes a new one.
    /// </summary>
    private static async Task<string> EnsureTemplateAsync(CancellationToken cancellationToken)
    {
        if (_templateDirectory is { } ready)
        {
            return ready;
        }

        await TemplateLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_templateDirectory is { } raced)
            {
                return raced;
            }

            var final = TemplatePath();
            if (!File.Exists(Path.Combine(final, ReadyMarker)))
            {
                var scratch = $"{final}.tmp-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}";
                try
                {
                    await CreateTemplateAsync(scratch, cancellationToken).ConfigureAwait(false);
                    await File.WriteAllTextAsync(Path.Combine(scratch, ReadyMarker), DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture), cancellationToken).ConfigureAwait(false);
                    if (System.IO.Directory.Exists(final) && !File.Exists(Path.Combine(final, ReadyMarker)))
                    {
                        TryDeleteDirectory(final); // an incomplete leftover
                    }

                    try
                    {
                        System.IO.Directory.Move(scratch, final);
                    }
                    catch (IOException) when (File.Exists(Path.Combine(final, ReadyMarker)))
                    {
                        // Another process made it first: use theirs.
                    }
                }
                finally
                {
                    TryDeleteDirectory(scratch);
                }
            }

            _templateDirectory = final;
            return final;
        }
        finally
        {
            TemplateLock.Release();
        }
    }

    private const string TemplateFormat = "nhiaudit-pg-template-v1"; // bump when CreateTemplateAsync changes
    private const string ReadyMarker = "template-ready";

    private static string ChooseTempRoot()
    {
        if (Environment.GetEnvironmentVariable("NHIAUDIT_PG_TMP") is { Length: > 0 } configured)
        {
            return configured;
        }

        try
        {
            if (!OperatingSystem.IsWindows() && System.IO.Directory.Exists("/dev/shm"))
            {
                var probe = Path.Combine("/dev/shm", "nhiaudit-probe-" + Guid.NewGuid().ToString("N")[..8]);
                System.IO.Directory.CreateDirectory(probe);
                System.IO.Directory.Delete(probe);
                var free = new DriveInfo("/dev/shm").AvailableFreeSpace;
                if (free > 2L * 1024 * 1024 * 1024)
                {
                    return "/dev/shm";
                }
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }

        return "/tmp";
    }

    private static string TemplatePath()
    {
        var initdb = new FileInfo(PostgresBinaries.Initdb);
        var key = string.Join('|', TemplateFormat, PostgresBinaries.BinDirectory, initdb.Length, initdb.LastWriteTimeUtc.Ticks,
            AppPassword, Md5Password, ClearPassword, AdminPassword);
        var hash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(key)))[..12];
        var owner = RunningAsRoot ? "root" : Environment.UserName;
        return Path.Combine(TempRoot, $"nhiaudit-pgtemplate-{owner}-{hash}");
    }

    private static async Task CreateTemplateAsync(string dir, CancellationToken cancellationToken)
    {
        CreateDirectory(dir);
        await ChownToPostgresAsync(dir, cancellationToken).ConfigureAwait(false);
        var data = Path.Combine(dir, "data");

        var pwfile = Path.Combine(dir, "pwfile");
        await File.WriteAllTextAsync(pwfile, AdminPassword + "\n", cancellationToken).ConfigureAwait(false);
        SetMode(pwfile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        await ChownToPostgresAsync(pwfile, cancellationToken).ConfigureAwait(false);
        (await RunAsPostgresAsync(PostgresBinaries.Initdb,
            ["-D", data, "-U", AdminUser, "-A", "scram-sha-256", "--pwfile=" + pwfile, "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"],
            TimeSpan.FromSeconds(120), cancellationToken).ConfigureAwait(false)).EnsureSuccess("initdb");
        File.Delete(pwfile);

        // Self-signed certificate, written by the server's user; key mode 600 as PostgreSQL demands.
        (await RunAsPostgresAsync("openssl",
            ["req", "-new", "-x509", "-days", "2", "-nodes", "-newkey", "rsa:2048", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
             "-keyout", Path.Combine(data, "server.key"), "-out", Path.Combine(data, "server.crt")],
            TimeSpan.FromSeconds(60), cancellationToken).ConfigureAwait(false)).EnsureSuccess("openssl req");
        SetMode(Path.Combine(data, "server.key"), UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.Copy(Path.Combine(data, "server.crt"), Path.Combine(dir, "server.crt"));
        SetMode(Path.Combine(dir, "server.crt"), Mode644);

        await File.WriteAllTextAsync(Path.Combine(data, "pg_hba.conf"), """
            # TYPE  DATABASE USER       ADDRESS        METHOD
            local   all      all                       scram-sha-256
            host    all      md5user    127.0.0.1/32   md5
            host    all      clearuser  127.0.0.1/32   password
            hostssl all      all        127.0.0.1/32   scram-sha-256
            host    all      all        127.0.0.1/32   scram-sha-256

            """, cancellationToken).ConfigureAwait(false);
        await File.AppendAllTextAsync(Path.Combine(data, "postgresql.conf"), "\ninclude_if_exists = 'nhiaudit.conf'\n", cancellationToken).ConfigureAwait(false);

        // Start it once to create the roles and the database, then stop it cleanly so copies start without recovery.
        var template = new PostgresServer(dir, FreePort.Get(), new PostgresServerOptions());
        await template.StartServerAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var admin = new NpgsqlConnectionStringBuilder(template.ConnectionString(AdminUser, AdminPassword, "postgres")) { Pooling = false };
            await using (var conn = new NpgsqlConnection(admin.ConnectionString))
            {
                await conn.OpenAsync(cancellationToken).ConfigureAwait(false);
                await using var cmd = new NpgsqlCommand($"""
                    SET password_encryption = 'scram-sha-256';
                    CREATE ROLE app LOGIN CREATEDB PASSWORD '{AppPassword}';
                    CREATE ROLE clearuser LOGIN PASSWORD '{ClearPassword}';
                    SET password_encryption = 'md5';
                    CREATE ROLE md5user LOGIN PASSWORD '{Md5Password}';
                    RESET password_encryption;
                    """, conn);
                await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                await using var create = new NpgsqlCommand("CREATE DATABASE app OWNER app STRATEGY FILE_COPY", conn);
                await create.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                await using var grant = new NpgsqlCommand("GRANT ALL ON DATABASE app TO md5user, clearuser", conn);
                await grant.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }

            admin.Database = AppDatabase;
            await using (var conn = new NpgsqlConnection(admin.ConnectionString))
            {
                await conn.OpenAsync(cancellationToken).ConfigureAwait(false);
                await using var cmd = new NpgsqlCommand("GRANT ALL ON SCHEMA public TO md5user, clearuser", conn);
                await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            await template.StopAsync(cancellationToken: CancellationToken.None).ConfigureAwait(false);
        }

        File.Delete(template.LogFile);
    }

    private string AdminNoPool(string database) =>
        new NpgsqlConnectionStringBuilder(ConnectionString(AdminUser, AdminPassword, database)) { Pooling = false }.ConnectionString;

    /// <summary>Runs a program as the 'postgres' user when root (runuser), else as the current user.</summary>
    internal static Task<ProcessResult> RunAsPostgresAsync(string file, IReadOnlyList<string> args, TimeSpan timeout, CancellationToken cancellationToken) =>
        RunningAsRoot
            ? ProcessRunner.RunAsync(Runuser, ["-u", "postgres", "--", file, .. args], null, timeout, ServerEnvironment, cancellationToken: cancellationToken)
            : ProcessRunner.RunAsync(file, args, null, timeout, ServerEnvironment, cancellationToken: cancellationToken);

    private static string Runuser => ProcessRunner.FindOnPath("runuser") ?? "/usr/sbin/runuser";

    internal static async Task ChownToPostgresAsync(string path, CancellationToken cancellationToken)
    {
        if (RunningAsRoot)
        {
            await RunCheckedAsync("chown", ["postgres:postgres", path], cancellationToken).ConfigureAwait(false);
        }
    }

    internal static Task RunCheckedAsync(string file, IReadOnlyList<string> args, CancellationToken cancellationToken) =>
        ProcessRunner.RunCheckedAsync(file, args, null, TimeSpan.FromSeconds(60), cancellationToken: cancellationToken);

    internal static void TryDeleteDirectory(string dir)
    {
        try
        {
            if (System.IO.Directory.Exists(dir))
            {
                System.IO.Directory.Delete(dir, recursive: true);
            }
        }
        catch (IOException)
        {
            // Best effort: a throwaway folder under /tmp.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    internal static void InstallExitHook()
    {
        if (Interlocked.Exchange(ref _exitHookInstalled, 1) != 0)
        {
            return;
        }

        // Servers a test forgot to dispose, and the template, don't outlive the test process.
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            foreach (var server in Live.Keys)
            {
                try
                {
                    server.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(15));
                }
                catch (AggregateException)
                {
                }
            }

            PgBouncer.StopAllForExit();
        };
    }

    /// <summary>Creates <paramref name="path"/> with mode 755 (reachable by the postgres user).</summary>
    internal static void CreateDirectory(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            System.IO.Directory.CreateDirectory(path);
            return;
        }

        System.IO.Directory.CreateDirectory(path, Mode755);
        File.SetUnixFileMode(path, Mode755); // not subject to the umask
    }

    internal static void SetMode(string path, UnixFileMode mode)
    {
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, mode);
        }
    }

    internal static readonly UnixFileMode Mode755 = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
        UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;

    internal static readonly UnixFileMode Mode644 = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;

    // The server must not inherit the test process's PG* variables or locale surprises.
    private static readonly Dictionary<string, string> ServerEnvironment = new()
    {
        ["PGDATA"] = "",
        ["PGHOST"] = "",
        ["PGPORT"] = "",
        ["PGOPTIONS"] = "",
        ["LC_ALL"] = "C.UTF-8",
    };
}
