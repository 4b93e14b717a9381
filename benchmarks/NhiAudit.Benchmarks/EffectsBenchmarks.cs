using BenchmarkDotNet.Attributes;
using NhiAudit.Postgres.Catalog;
using NhiAudit.Postgres.Sql;

namespace NhiAudit.Benchmarks;

/// <summary>
/// The cost policy over effects adds per statement: classification alone vs classification plus effects extraction,
/// against a catalog with ~3000 built-in names, 200 user functions and triggers on other tables (what a real
/// database looks like), for pgbench's statements and for a call of a user function.
/// </summary>
/// <remarks>
/// Latest run: see benchmarks/results/effects-2026-12-08.md.
/// </remarks>
[MemoryDiagnoser]
public class EffectsBenchmarks
{
    private const string Select = "SELECT abalance FROM pgbench_accounts WHERE aid = 48213";
    private const string Update = "UPDATE pgbench_accounts SET abalance = abalance + -1234 WHERE aid = 48213";
    private const string Call = "SELECT purge_17(42)";

    private PgCodeSnapshot _catalog = null!;
    private SqlStatementInfo _select = null!;
    private SqlStatementInfo _update = null!;
    private SqlStatementInfo _call = null!;

    [GlobalSetup]
    public void Setup()
    {
        _catalog = new PgCodeSnapshot();
        for (var i = 0; i < 3000; i++)
        {
            _catalog.AddBuiltin("builtin_" + i);
        }

        _catalog.AddBuiltin("count");
        for (uint i = 0; i < 200; i++)
        {
            _catalog.AddRoutine(new PgRoutine { Schema = "public", Name = "purge_" + i, Language = "plpgsql", Body = "BEGIN DELETE FROM audit WHERE id = $1; RETURN 1; END", Oid = 100000 + i });
            _catalog.AddTrigger(new PgTrigger("trg_" + i, "public", "table_" + i, PgWriteEvents.Insert, "public", "purge_" + i, 100000 + i));
        }

        _select = SqlClassifier.Classify(Select);
        _update = SqlClassifier.Classify(Update);
        _call = SqlClassifier.Classify(Call);
    }

    [Benchmark(Baseline = true, Description = "classify SELECT (today)")]
    public string ClassifySelect() => SqlClassifier.Classify(Select).Kind;

    [Benchmark(Description = "classify SELECT + effects")]
    public int ClassifySelectWithEffects() => SqlEffects.Extract(Select, SqlClassifier.Classify(Select), _catalog, null).Count;

    [Benchmark(Description = "effects only: SELECT")]
    public int EffectsSelect() => SqlEffects.Extract(Select, _select, _catalog, null).Count;

    [Benchmark(Description = "effects only: UPDATE (trigger lookup)")]
    public int EffectsUpdate() => SqlEffects.Extract(Update, _update, _catalog, null).Count;

    [Benchmark(Description = "effects only: call of a plpgsql function")]
    public int EffectsCall() => SqlEffects.Extract(Call, _call, _catalog, null).Count;
}
