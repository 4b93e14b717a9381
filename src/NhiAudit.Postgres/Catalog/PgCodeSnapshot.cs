namespace NhiAudit.Postgres.Catalog;

/// <summary>The write events a trigger or rule fires on.</summary>
[Flags]
internal enum PgWriteEvents : byte
{
    /// <summary>No write.</summary>
    None = 0,

    /// <summary>INSERT (also COPY FROM, a MERGE insert arm).</summary>
    Insert = 1,

    /// <summary>UPDATE (also INSERT … ON CONFLICT DO UPDATE, a MERGE update arm).</summary>
    Update = 2,

    /// <summary>DELETE (also a MERGE delete arm).</summary>
    Delete = 4,

    /// <summary>TRUNCATE.</summary>
    Truncate = 8,
}

/// <summary>A function or procedure with the code it runs, read from pg_proc or from a CREATE statement in the session.</summary>
internal sealed class PgRoutine
{
    private string? _display;

    /// <summary>Its schema; empty when it was created in the session without one (the server put it first on the search_path).</summary>
    public required string Schema { get; init; }

    /// <summary>Its name (pg_proc.proname).</summary>
    public required string Name { get; init; }

    /// <summary>pg_proc.prokind: <c>f</c> function, <c>p</c> procedure, <c>a</c> aggregate, <c>w</c> window function.</summary>
    public char Kind { get; init; } = 'f';

    /// <summary>Its language, lower-case: <c>sql</c>, <c>plpgsql</c>, <c>c</c>, <c>internal</c>, <c>plperl</c> ….</summary>
    public required string Language { get; init; }

    /// <summary>The code: prosrc, or the SQL-standard body (<c>BEGIN ATOMIC … END</c>, <c>RETURN expr</c>).</summary>
    public required string Body { get; init; }

    /// <summary>True when an extension installed it (its C code came with the extension, installed by a superuser).</summary>
    public bool IsExtensionMember { get; init; }

    /// <summary>The OID, 0 for one created in the session.</summary>
    public uint Oid { get; init; }

    /// <summary>True when it comes from a CREATE statement the session ran (the catalog may not have it yet).</summary>
    public bool CreatedInSession { get; init; }

    /// <summary>How effects name it: <c>function public.purge()</c>, <c>procedure p()</c>.</summary>
    public string Display => _display ??= $"{(Kind == 'p' ? "procedure" : "function")} {(Schema.Length == 0 ? "" : Schema + ".")}{Name}()";

    /// <summary>The parsed body, cached by <see cref="Sql.SqlEffects"/> (benign race: every parse gives the same result).</summary>
    internal object? ParsedBody { get; set; }
}

/// <summary>A trigger (pg_trigger, not internal, not disabled) and the function it runs.</summary>
/// <param name="Name">The trigger's name.</param>
/// <param name="Schema">The table's schema; empty when created in the session on an unqualified table.</param>
/// <param name="Table">The table.</param>
/// <param name="Events">What fires it.</param>
/// <param name="FunctionSchema">The function's schema, null when unqualified.</param>
/// <param name="FunctionName">The function's name.</param>
/// <param name="FunctionOid">The function's OID, 0 when only its name is known.</param>
internal sealed record PgTrigger(string Name, string Schema, string Table, PgWriteEvents Events, string? FunctionSchema, string FunctionName, uint FunctionOid);

/// <summary>A rewrite rule (pg_rewrite, not a view's <c>_RETURN</c>) and its definition.</summary>
/// <param name="Name">The rule's name.</param>
/// <param name="Schema">The table's schema; empty when created in the session on an unqualified table.</param>
/// <param name="Table">The table.</param>
/// <param name="Events">What fires it.</param>
/// <param name="Definition">The <c>CREATE RULE</c> statement (pg_get_ruledef).</param>
internal sealed record PgRule(string Name, string Schema, string Table, PgWriteEvents Events, string Definition);

/// <summary>
/// What one database's catalog says about code: user functions and procedures with their bodies, the names of the
/// built-in functions (pg_catalog, information_schema), and the triggers and rules on each table. Immutable once
/// built; a refresh builds a new one. Every lookup is a dictionary hit keyed by the bare name.
/// </summary>
internal sealed class PgCodeSnapshot
{
    private readonly Dictionary<string, List<PgRoutine>> _routines = new(StringComparer.Ordinal);
    private readonly Dictionary<uint, PgRoutine> _routinesByOid = [];
    private readonly HashSet<string> _builtins = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<PgTrigger>> _triggers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<PgRule>> _rules = new(StringComparer.Ordinal);
    private Dictionary<string, List<PgRoutine>>.AlternateLookup<ReadOnlySpan<char>> _routineLookup;
    private HashSet<string>.AlternateLookup<ReadOnlySpan<char>> _builtinLookup;
    private Dictionary<string, List<PgTrigger>>.AlternateLookup<ReadOnlySpan<char>> _triggerLookup;
    private Dictionary<string, List<PgRule>>.AlternateLookup<ReadOnlySpan<char>> _ruleLookup;

    /// <summary>Creates an empty snapshot; fill it with the Add methods before sharing it.</summary>
    /// <param name="isLoaded">False for the placeholder used before the catalog was read: unknown names are then not judged.</param>
    public PgCodeSnapshot(bool isLoaded = true)
    {
        IsLoaded = isLoaded;
        _routineLookup = _routines.GetAlternateLookup<ReadOnlySpan<char>>();
        _builtinLookup = _builtins.GetAlternateLookup<ReadOnlySpan<char>>();
        _triggerLookup = _triggers.GetAlternateLookup<ReadOnlySpan<char>>();
        _ruleLookup = _rules.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <summary>Nothing known, not read: calls of names the statement does not define are not judged unknown.</summary>
    public static PgCodeSnapshot NotLoaded { get; } = new(isLoaded: false);

    /// <summary>False for <see cref="NotLoaded"/>.</summary>
    public bool IsLoaded { get; }

    /// <summary>When it was read.</summary>
    public DateTimeOffset LoadedAt { get; init; }

    /// <summary>How many user routines, triggers and rules it holds (for logs).</summary>
    public (int Routines, int Triggers, int Rules) Counts => (_routinesByOid.Count + _routines.Values.Sum(l => l.Count(r => r.Oid == 0)), _triggers.Values.Sum(l => l.Count), _rules.Values.Sum(l => l.Count));

    /// <summary>Adds a user routine.</summary>
    public void AddRoutine(PgRoutine routine)
    {
        if (!_routines.TryGetValue(routine.Name, out var list))
        {
            _routines[routine.Name] = list = [];
        }

        list.Add(routine);
        if (routine.Oid != 0)
        {
            _routinesByOid[routine.Oid] = routine;
        }
    }

    /// <summary>Adds the name of a built-in function.</summary>
    public void AddBuiltin(string name) => _builtins.Add(name);

    /// <summary>Adds a trigger.</summary>
    public void AddTrigger(PgTrigger trigger)
    {
        if (!_triggers.TryGetValue(trigger.Table, out var list))
        {
            _triggers[trigger.Table] = list = [];
        }

        list.Add(trigger);
    }

    /// <summary>Adds a rule.</summary>
    public void AddRule(PgRule rule)
    {
        if (!_rules.TryGetValue(rule.Table, out var list))
        {
            _rules[rule.Table] = list = [];
        }

        list.Add(rule);
    }

    /// <summary>True when <paramref name="name"/> (folded as the server folds it) is a function of pg_catalog or information_schema.</summary>
    public bool IsBuiltin(ReadOnlySpan<char> name) => _builtinLookup.Contains(name);

    /// <summary>The user routines named <paramref name="name"/> in any schema, or null.</summary>
    public List<PgRoutine>? Routines(ReadOnlySpan<char> name) => _routineLookup.TryGetValue(name, out var list) ? list : null;

    /// <summary>The user routine with this OID, or null.</summary>
    public PgRoutine? Routine(uint oid) => _routinesByOid.GetValueOrDefault(oid);

    /// <summary>The triggers on tables named <paramref name="table"/> in any schema, or null.</summary>
    public List<PgTrigger>? Triggers(ReadOnlySpan<char> table) => _triggerLookup.TryGetValue(table, out var list) ? list : null;

    /// <summary>The rules on tables named <paramref name="table"/> in any schema, or null.</summary>
    public List<PgRule>? Rules(ReadOnlySpan<char> table) => _ruleLookup.TryGetValue(table, out var list) ? list : null;
}

/// <summary>
/// The code one session created through the gateway (functions, procedures, triggers, rules, SQL prepared statements),
/// remembered from the statements themselves: a CREATE FUNCTION is visible to the next statement of the same
/// simple-query string, before any catalog refresh could show it. Kept for the whole session (an extra, stale entry
/// only adds effects, it never hides one).
/// </summary>
internal sealed class PgSessionCode
{
    /// <summary>The routines, triggers and rules created in the session, as a snapshot of their own.</summary>
    public PgCodeSnapshot Created { get; } = new();

    /// <summary>SQL <c>PREPARE name AS statement</c>: the statement by name.</summary>
    public Dictionary<string, string> Prepared { get; } = new(StringComparer.Ordinal);

    /// <summary>Incremented by every change, so cached effects know when to be computed again.</summary>
    public int Version { get; private set; }

    /// <summary>True when the session created nothing yet.</summary>
    public bool IsEmpty => Version == 0;

    /// <summary>Records that something changed.</summary>
    public void Touch() => Version++;
}
