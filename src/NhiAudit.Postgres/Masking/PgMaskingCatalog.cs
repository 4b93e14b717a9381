using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using Azure.Core;
using Microsoft.Extensions.Logging;
using NhiAudit.Masking;
using NhiAudit.Postgres.Catalog;
using NhiAudit.Postgres.Protocol;
using NhiAudit.Postgres.Relay;

namespace NhiAudit.Postgres.Masking;

/// <summary>
/// What the catalog of one database says about the protected columns: which (table OID, attribute number) pairs the
/// masking rules protect, including the columns of views (and materialized views) that show a protected column or an
/// expression over a protected relation, and which names a statement must mention to touch protected data.
/// Immutable: a refresh builds a new one.
/// </summary>
internal sealed class PgMaskingSnapshot
{
    /// <summary>A snapshot with nothing protected and nothing known: every table column is unknown, so masked whole.</summary>
    public static PgMaskingSnapshot Empty { get; } = new();

    /// <summary>Protected columns by (relation OID, attribute number), with the rule and the column's qualified name.</summary>
    public Dictionary<(uint Relation, short Attribute), (ColumnMaskRule Rule, string Source)> ProtectedColumns { get; } = [];

    /// <summary>Every relation that existed at the refresh, with its highest attribute number: anything newer is unknown.</summary>
    public Dictionary<uint, short> KnownRelations { get; } = [];

    /// <summary>Names of protected tables and of the views that show protected data.</summary>
    public HashSet<string> ProtectedNames { get; } = new(StringComparer.Ordinal);

    /// <summary>Names of the protected columns, of tables and views alike.</summary>
    public HashSet<string> ProtectedColumnNames { get; } = new(StringComparer.Ordinal);

    /// <summary>Functions whose body names a protected relation or that return its rows: calling one touches protected data.</summary>
    public HashSet<string> ProtectedFunctions { get; } = new(StringComparer.Ordinal);

    /// <summary>The OIDs of protected relations (tables and the views that show protected data).</summary>
    public HashSet<uint> ProtectedRelationOids { get; } = [];

    /// <summary>Protected relations as (schema, name), for errors that name their table.</summary>
    public HashSet<(string Schema, string Table)> ProtectedRelations { get; } = [];

    /// <summary>The columns, in order, of every protected relation, by <c>schema.table</c> and by bare table name.</summary>
    public Dictionary<string, List<PgCatalogColumn>> RelationColumns { get; } = new(StringComparer.Ordinal);

    /// <summary>Types whose values are strings (pg_type.typcategory 'S': text, varchar, bpchar, name, citext, domains over them).</summary>
    public HashSet<uint> StringTypes { get; } = [25, 1043, 1042, 19, 18];

    /// <summary>The masking rules this snapshot was read for.</summary>
    public MaskingPolicy? Policy { get; init; }

    /// <summary>When this snapshot was read.</summary>
    public DateTimeOffset LoadedAt { get; init; }

    /// <summary>How a value of <paramref name="typeOid"/> carries a mask.</summary>
    public PgValueShape ShapeOf(uint typeOid) => typeOid switch
    {
        114 => PgValueShape.Json,
        3802 => PgValueShape.Jsonb,
        _ => StringTypes.Contains(typeOid) ? PgValueShape.Text : PgValueShape.Other,
    };
}

/// <summary>One column of a protected relation.</summary>
/// <param name="Name">The column name.</param>
/// <param name="TypeOid">Its type.</param>
/// <param name="Rule">The rule protecting it, if any.</param>
/// <param name="Source">Its qualified name.</param>
internal sealed record PgCatalogColumn(string Name, uint TypeOid, ColumnMaskRule? Rule, string Source);

/// <summary>
/// Reads and caches <see cref="PgMaskingSnapshot"/> for one database of one target over the gateway's own upstream
/// login. A refresh happens before the first session uses it, after a session ran DDL, when a result names a relation
/// the snapshot does not know, and at least every <see cref="PostgresTargetOptions.MaskingCatalogRefresh"/>.
/// </summary>
internal sealed class PgMaskingCatalog : IAsyncDisposable
{
    private readonly PostgresTargetOptions _target;
    private readonly string _database;
    private readonly MaskingPolicySource _source;
    private MaskingPolicy _policy;
    private readonly TokenCredential? _credential;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _refreshLock = new(1, 1);
    private UpstreamConnection? _connection;
    private volatile PgMaskingSnapshot? _snapshot;
    private long _marks = 1;
    private long _loadedMarks;
    private long _generation;

    public PgMaskingCatalog(PostgresTargetOptions target, string database, MaskingPolicySource policy, TokenCredential? credential, TimeProvider time, ILogger logger)
    {
        _target = target;
        _database = database;
        _source = policy;
        _policy = policy.Current;
        _credential = credential;
        _time = time;
        _logger = logger;
    }

    /// <summary>The current snapshot; <see cref="PgMaskingSnapshot.Empty"/> (every table column masked) before the first refresh.</summary>
    public PgMaskingSnapshot Current => _snapshot ?? PgMaskingSnapshot.Empty;

    /// <summary>True when the snapshot must be read again before the next statement.</summary>
    public bool IsStale =>
        Volatile.Read(ref _marks) != Volatile.Read(ref _loadedMarks)
        || _snapshot is null
        || !ReferenceEquals(_snapshot.Policy, _source.Current)
        || _time.GetUtcNow() - _snapshot.LoadedAt > _target.MaskingCatalogRefresh;

    /// <summary>Asks for a refresh before the next statement (after DDL, or a result naming an unknown relation).</summary>
    public void MarkStale() => Interlocked.Increment(ref _marks);

    private async ValueTask DropConnectionAsync()
    {
        if (_connection is not null)
        {
            await _connection.DisposeAsync().ConfigureAwait(false);
            _connection = null;
        }
    }

    /// <summary>Reads the catalog again unless another caller just did. Throws when it cannot: masking fails closed.</summary>
    public async Task RefreshAsync(CancellationToken ct)
    {
        var generation = Interlocked.Read(ref _generation);
        await _refreshLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (Interlocked.Read(ref _generation) != generation && !IsStale)
            {
                return;
            }

            // What marks the snapshot stale from here on asks for another read: the flag is cleared only for the marks
            // this read covers, and only once it succeeded, so no session decides with the old snapshot meanwhile.
            var marks = Volatile.Read(ref _marks);
            _snapshot = await BoundedCatalogRead.RunAsync(LoadAsync, _target.Upstream.ConnectTimeout * 2, "the masking catalog", DropConnectionAsync, ct).ConfigureAwait(false);
            Interlocked.Exchange(ref _loadedMarks, marks);
            Interlocked.Increment(ref _generation);
        }
        finally
        {
            _refreshLock.Release();
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

    private async Task<PgMaskingSnapshot> LoadAsync(CancellationToken ct)
    {
        _connection ??= await UpstreamConnector.ConnectAsync(_target.Upstream, _target.Upstream.Database ?? _database, "nhiaudit:masking-catalog", [], _credential, ct).ConfigureAwait(false);
        _policy = _source.Current;
        var snapshot = new PgMaskingSnapshot { LoadedAt = _time.GetUtcNow(), Policy = _policy };

        foreach (var row in (await QueryAsync("SELECT oid FROM pg_catalog.pg_type WHERE typcategory = 'S'", ct).ConfigureAwait(false)).Rows)
        {
            snapshot.StringTypes.Add(uint.Parse(row[0]!, CultureInfo.InvariantCulture));
        }

        foreach (var row in (await QueryAsync("SELECT a.attrelid, max(a.attnum) FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid WHERE c.relkind IN ('r','p','v','m','f') GROUP BY a.attrelid", ct).ConfigureAwait(false)).Rows)
        {
            snapshot.KnownRelations[uint.Parse(row[0]!, CultureInfo.InvariantCulture)] = short.Parse(row[1]!, CultureInfo.InvariantCulture);
        }

        if (_policy.ColumnRules.Count == 0)
        {
            return snapshot;
        }

        // The protected base columns: every rule's pattern, matched by the server (ILIKE, '*' as '%').
        var conditions = string.Join(" OR ", _policy.ColumnRules.Select(r => $"(n.nspname ILIKE {Pattern(r.Schema)} ESCAPE '!' AND c.relname ILIKE {Pattern(r.Table)} ESCAPE '!' AND a.attname ILIKE {Pattern(r.Column)} ESCAPE '!')"));
        var relationNames = new Dictionary<uint, (string Schema, string Table)>();
        foreach (var row in (await QueryAsync($"SELECT c.oid, a.attnum, n.nspname, c.relname, a.attname FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r','p','v','m','f') AND ({conditions})", ct).ConfigureAwait(false)).Rows)
        {
            var rule = _policy.FindColumnRule(row[2]!, row[3]!, row[4]!);
            if (rule is null)
            {
                continue;
            }

            var relation = uint.Parse(row[0]!, CultureInfo.InvariantCulture);
            snapshot.ProtectedColumns[(relation, short.Parse(row[1]!, CultureInfo.InvariantCulture))] = (rule, $"{row[2]}.{row[3]}.{row[4]}");
            snapshot.ProtectedColumnNames.Add(row[4]!);
            relationNames[relation] = (row[2]!, row[3]!);
        }

        // Views over protected relations, transitively: each is described through its own definition, so a view column
        // that shows a protected column stays protected, and one computed over a protected relation is masked whole.
        var dependencies = (await QueryAsync("SELECT DISTINCT r.ev_class, d.refobjid, n.nspname, c.relname FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_rewrite r ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND r.oid = d.objid JOIN pg_catalog.pg_class c ON c.oid = r.ev_class JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND r.ev_class <> d.refobjid AND c.relkind IN ('v','m')", ct).ConfigureAwait(false)).Rows
            .Select(r => (View: uint.Parse(r[0]!, CultureInfo.InvariantCulture), Referenced: uint.Parse(r[1]!, CultureInfo.InvariantCulture), Schema: r[2]!, Name: r[3]!))
            .ToList();
        var protectedRelations = new HashSet<uint>(relationNames.Keys);
        var described = new Dictionary<uint, PgFieldDescription[]?>();
        var redact = new ColumnMaskRule("*", "*", "*", MaskingStrategy.Redact, "(expression over protected data)");
        for (var changed = true; changed;)
        {
            changed = false;
            foreach (var dependency in dependencies)
            {
                if (!protectedRelations.Contains(dependency.Referenced) || described.ContainsKey(dependency.View))
                {
                    continue;
                }

                described[dependency.View] = await DescribeViewAsync(dependency.View, ct).ConfigureAwait(false);
            }

            foreach (var (view, fields) in described)
            {
                var dependency = dependencies.First(d => d.View == view);
                for (short i = 0; fields is null || i < fields.Length; i++)
                {
                    var attribute = (short)(i + 1);
                    if (fields is null)
                    {
                        // The definition could not be described: every column of the view is protected.
                        if (!snapshot.KnownRelations.TryGetValue(view, out var max) || i >= max)
                        {
                            break;
                        }
                    }

                    if (snapshot.ProtectedColumns.ContainsKey((view, attribute)))
                    {
                        continue;
                    }

                    var field = fields?[i];
                    (ColumnMaskRule Rule, string Source)? protection = null;
                    if (field is null || field.Value.TableOid == 0)
                    {
                        protection = (redact, $"{dependency.Schema}.{dependency.Name}.{field?.Name ?? attribute.ToString(CultureInfo.InvariantCulture)} (computed)");
                    }
                    else if (snapshot.ProtectedColumns.TryGetValue((field.Value.TableOid, field.Value.AttributeNumber), out var origin))
                    {
                        protection = (origin.Rule, origin.Source);
                    }

                    if (protection is { } p)
                    {
                        snapshot.ProtectedColumns[(view, attribute)] = p;
                        if (field?.Name is { } columnName)
                        {
                            snapshot.ProtectedColumnNames.Add(columnName);
                        }

                        relationNames[view] = (dependency.Schema, dependency.Name);
                        changed |= protectedRelations.Add(view);
                    }
                }
            }
        }

        foreach (var (oid, (schema, table)) in relationNames)
        {
            snapshot.ProtectedRelationOids.Add(oid);
            snapshot.ProtectedNames.Add(table);
            snapshot.ProtectedRelations.Add((schema, table));
        }

        if (relationNames.Count > 0)
        {
            var oids = string.Join(",", relationNames.Keys);
            var columns = await QueryAsync($"SELECT a.attrelid, a.attnum, a.attname, a.atttypid FROM pg_catalog.pg_attribute a WHERE a.attrelid IN ({oids}) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attrelid, a.attnum", ct).ConfigureAwait(false);
            var byRelation = new Dictionary<uint, List<PgCatalogColumn>>();
            foreach (var row in columns.Rows)
            {
                var relation = uint.Parse(row[0]!, CultureInfo.InvariantCulture);
                var attribute = short.Parse(row[1]!, CultureInfo.InvariantCulture);
                var (schema, table) = relationNames[relation];
                snapshot.ProtectedColumns.TryGetValue((relation, attribute), out var protection);
                if (!byRelation.TryGetValue(relation, out var list))
                {
                    byRelation[relation] = list = [];
                }

                list.Add(new PgCatalogColumn(row[2]!, uint.Parse(row[3]!, CultureInfo.InvariantCulture), protection.Rule, protection.Source ?? $"{schema}.{table}.{row[2]}"));
            }

            foreach (var (relation, list) in byRelation)
            {
                var (schema, table) = relationNames[relation];
                snapshot.RelationColumns[$"{schema}.{table}"] = list;

                // An unqualified name could mean any schema on the search path: the first protected one answers for it.
                snapshot.RelationColumns.TryAdd(table, list);
            }

            // Functions that can hand out protected rows or values: their body names a protected relation, or they return its row type.
            var names = string.Join("|", relationNames.Values.Select(v => EscapeRegex(v.Table)).Distinct());
            var functions = await QueryAsync($"SELECT DISTINCT p.proname FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND (p.prosrc ~* {Literal($"(^|[^a-z0-9_$])({names})([^a-z0-9_$]|$)")} OR p.prorettype IN (SELECT reltype FROM pg_catalog.pg_class WHERE oid IN ({oids})))", ct).ConfigureAwait(false);
            foreach (var row in functions.Rows)
            {
                snapshot.ProtectedFunctions.Add(row[0]!);
            }
        }

        return snapshot;
    }

    /// <summary>The origins of a view's columns, read by describing its definition as a subquery; null when that fails.</summary>
    private async Task<PgFieldDescription[]?> DescribeViewAsync(uint view, CancellationToken ct)
    {
        var definition = (await QueryAsync($"SELECT pg_catalog.pg_get_viewdef({view}::pg_catalog.oid)", ct).ConfigureAwait(false)).Rows;
        if (definition.Count != 1 || definition[0][0] is not { } text)
        {
            return null;
        }

        text = text.TrimEnd().TrimEnd(';');
        try
        {
            return (await QueryAsync($"SELECT * FROM ({text}) AS nhiaudit_view LIMIT 0", ct).ConfigureAwait(false)).Fields;
        }
        catch (PgCatalogQueryException ex)
        {
            _logger.LogWarning("Masking catalog: could not describe view {View} ({Error}); all its columns are masked", view, ex.Message);
            return null;
        }
    }

    private static string Pattern(string part) =>
        part == "*" ? "'%'" : Literal(part.Replace("!", "!!", StringComparison.Ordinal).Replace("%", "!%", StringComparison.Ordinal).Replace("_", "!_", StringComparison.Ordinal));

    /// <summary>A string literal; the catalog connection runs with standard_conforming_strings on, so only quotes double.</summary>
    private static string Literal(string value) => "'" + value.Replace("'", "''", StringComparison.Ordinal) + "'";

    private static string EscapeRegex(string name)
    {
        var builder = new StringBuilder(name.Length);
        foreach (var c in name)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c != '_')
            {
                builder.Append('\\');
            }

            builder.Append(c);
        }

        return builder.ToString();
    }

    /// <summary>Runs one simple query on the catalog connection and returns its text rows.</summary>
    private Task<PgCatalogQueryResult> QueryAsync(string sql, CancellationToken ct) =>
        PgCatalogQuery.RunAsync(_connection!.Stream, sql, "the masking catalog", ct);
}
