using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Azure.Core;
using Microsoft.Extensions.Logging;
using NhiAudit.Postgres.Masking;
using NhiAudit.Postgres.Protocol;
using NhiAudit.Postgres.Relay;

namespace NhiAudit.Postgres.Catalog;

/// <summary>
/// Reads and caches the <see cref="PgCodeSnapshot"/> of one database of one target over the gateway's own upstream
/// login, as <see cref="PgMaskingCatalog"/> does for masking: before the first statement, after DDL through the
/// gateway, when a statement calls a name the snapshot does not know, and at least every
/// <see cref="PostgresTargetOptions.CodeCatalogRefresh"/>.
/// </summary>
internal sealed class PgCodeCatalog : IAsyncDisposable
{
    private const string Functions = """
        SELECT p.oid, n.nspname, p.proname, p.prokind, l.lanname,
               BODY,
               EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid = p.oid AND d.deptype = 'e')
        FROM pg_catalog.pg_proc p
        JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
        JOIN pg_catalog.pg_language l ON l.oid = p.prolang
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
        """;

    private const string Builtins = """
        SELECT DISTINCT p.proname FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname IN ('pg_catalog', 'information_schema')
        """;

    private const string Triggers = """
        SELECT t.tgname, n.nspname, c.relname, t.tgtype, t.tgfoid, fn.nspname, f.proname
        FROM pg_catalog.pg_trigger t
        JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_catalog.pg_proc f ON f.oid = t.tgfoid
        JOIN pg_catalog.pg_namespace fn ON fn.oid = f.pronamespace
        WHERE NOT t.tgisinternal AND t.tgenabled <> 'D'
        """;

    private const string Rules = """
        SELECT r.rulename, n.nspname, c.relname, r.ev_type, pg_catalog.pg_get_ruledef(r.oid)
        FROM pg_catalog.pg_rewrite r
        JOIN pg_catalog.pg_class c ON c.oid = r.ev_class
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE r.rulename <> '_RETURN' AND r.ev_enabled <> 'D' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
        """;

    private readonly PostgresTargetOptions _target;
    private readonly string _database;
    private readonly TokenCredential? _credential;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _refreshLock = new(1, 1);
    private UpstreamConnection? _connection;
    private volatile PgCodeSnapshot? _snapshot;
    // Every MarkStale counts up _marks; a refresh records the count it started from once it has loaded. While a
    // refresh is in flight the counts differ, so other sessions wait for it instead of deciding with the old snapshot.
    private long _marks = 1;
    private long _loadedMarks;

    public PgCodeCatalog(PostgresTargetOptions target, string database, TokenCredential? credential, TimeProvider time, ILogger logger)
    {
        _target = target;
        _database = database;
        _credential = credential;
        _time = time;
        _logger = logger;
    }

    /// <summary>The current snapshot; <see cref="PgCodeSnapshot.NotLoaded"/> before the first refresh.</summary>
    public PgCodeSnapshot Current => _snapshot ?? PgCodeSnapshot.NotLoaded;

    /// <summary>True when the snapshot must be read again before the next statement.</summary>
    public bool IsStale =>
        Interlocked.Read(ref _marks) != Interlocked.Read(ref _loadedMarks)
        || _snapshot is null
        || _time.GetUtcNow() - _snapshot.LoadedAt > _target.CodeCatalogRefresh;

    /// <summary>Asks for a refresh before the next statement (after DDL, or a call of a name the snapshot does not know).</summary>
    public void MarkStale() => Interlocked.Increment(ref _marks);

    /// <summary>Reads the catalog again unless another caller just did. Throws when it cannot: the policy over effects fails closed.</summary>
    public async Task RefreshAsync(CancellationToken ct)
    {
        await _refreshLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (!IsStale)
            {
                return; // another session just read it
            }

            var marks = Interlocked.Read(ref _marks);
            _snapshot = await BoundedCatalogRead.RunAsync(LoadAsync, _target.Upstream.ConnectTimeout * 2, "the code catalog", DropConnectionAsync, ct).ConfigureAwait(false);
            Interlocked.Exchange(ref _loadedMarks, marks);
        }
        finally
        {
            _refreshLock.Release();
        }
    }

    private async ValueTask DropConnectionAsync()
    {
        if (_connection is not null)
        {
            await _connection.DisposeAsync().ConfigureAwait(false);
            _connection = null;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_connection is not null)
        {
            await _connection.DisposeAsync().ConfigureAwait(false);
        }

        _refreshLock.Dispose();
    }

    private async Task<PgCodeSnapshot> LoadAsync(CancellationToken ct)
    {
        _connection ??= await UpstreamConnector.ConnectAsync(_target.Upstream, _target.Upstream.Database ?? _database, "nhiaudit:code-catalog", [], _credential, ct).ConfigureAwait(false);
        var snapshot = new PgCodeSnapshot { LoadedAt = _time.GetUtcNow() };
        var version = int.Parse((await QueryAsync("SELECT pg_catalog.current_setting('server_version_num')", ct).ConfigureAwait(false))[0][0]!, CultureInfo.InvariantCulture);

        // SQL-standard bodies (BEGIN ATOMIC, RETURN expr; PostgreSQL 14+) live in prosqlbody, not prosrc.
        var body = version >= 140000 ? "CASE WHEN p.prosqlbody IS NOT NULL THEN pg_catalog.pg_get_function_sqlbody(p.oid) ELSE p.prosrc END" : "p.prosrc";
        foreach (var row in await QueryAsync(Functions.Replace("BODY", body, StringComparison.Ordinal), ct).ConfigureAwait(false))
        {
            snapshot.AddRoutine(new PgRoutine
            {
                Oid = uint.Parse(row[0]!, CultureInfo.InvariantCulture),
                Schema = row[1]!,
                Name = row[2]!,
                Kind = row[3] is { Length: > 0 } kind ? kind[0] : 'f',
                Language = row[4]!,
                Body = row[5] ?? "",
                IsExtensionMember = row[6] == "t",
            });
        }

        foreach (var row in await QueryAsync(Builtins, ct).ConfigureAwait(false))
        {
            snapshot.AddBuiltin(row[0]!);
        }

        foreach (var row in await QueryAsync(Triggers, ct).ConfigureAwait(false))
        {
            var type = int.Parse(row[3]!, CultureInfo.InvariantCulture);
            var events = ((type & 4) != 0 ? PgWriteEvents.Insert : 0) | ((type & 8) != 0 ? PgWriteEvents.Delete : 0)
                | ((type & 16) != 0 ? PgWriteEvents.Update : 0) | ((type & 32) != 0 ? PgWriteEvents.Truncate : 0);
            snapshot.AddTrigger(new PgTrigger(row[0]!, row[1]!, row[2]!, events, row[5], row[6]!, uint.Parse(row[4]!, CultureInfo.InvariantCulture)));
        }

        foreach (var row in await QueryAsync(Rules, ct).ConfigureAwait(false))
        {
            var events = row[3] switch
            {
                "2" => PgWriteEvents.Update,
                "3" => PgWriteEvents.Insert,
                "4" => PgWriteEvents.Delete,
                _ => PgWriteEvents.None,
            };
            snapshot.AddRule(new PgRule(row[0]!, row[1]!, row[2]!, events, row[4] ?? ""));
        }

        var (routines, triggers, rules) = snapshot.Counts;
        _logger.LogDebug("Code catalog of {Database}: {Routines} routines, {Triggers} triggers, {Rules} rules", _database, routines, triggers, rules);
        return snapshot;
    }

    /// <summary>Runs one simple query on the catalog connection and returns its text rows.</summary>
    private async Task<List<string?[]>> QueryAsync(string sql, CancellationToken ct) =>
        (await PgCatalogQuery.RunAsync(_connection!.Stream, sql, "the code catalog", ct).ConfigureAwait(false)).Rows;
}

/// <summary>The code catalogs of one target, one per database its sessions use; shared by those sessions.</summary>
internal sealed class PgCodeCatalogs(PostgresTargetOptions target, TokenCredential? credential, TimeProvider time, ILogger logger) : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, PgCodeCatalog> _catalogs = new(StringComparer.Ordinal);

    /// <summary>The catalog of <paramref name="database"/>, created on first use (and read by its first refresh).</summary>
    public PgCodeCatalog Get(string database) =>
        _catalogs.GetOrAdd(database, static (name, state) => new PgCodeCatalog(state.target, name, state.credential, state.time, state.logger), (target, credential, time, logger));

    public async ValueTask DisposeAsync()
    {
        foreach (var catalog in _catalogs.Values)
        {
            await catalog.DisposeAsync().ConfigureAwait(false);
        }
    }
}
