using NhiAudit.Postgres.Catalog;

namespace NhiAudit.Postgres.Sql;

/// <summary>
/// What a PostgreSQL statement may execute besides its own verb, as <see cref="AccessEffect"/>s the policy decides like
/// the statement itself: the SQL inside a DO block and inside the functions, procedures, triggers and rules it
/// creates; the functions and procedures it calls and the triggers and rules that fire on the tables it writes
/// (resolved against the target's catalog and the code the session created, transitively up to
/// <see cref="MaxDepth"/>); its data-modifying CTEs, its MERGE arms and the statement EXPLAIN ANALYZE runs. What cannot
/// be read (dynamic SQL, another language, a name the catalog does not know, too deep) is an effect with action
/// <see cref="AccessRequest.UnclassifiedAction"/> whose <see cref="AccessEffect.Via"/> says why.
/// </summary>
/// <remarks>
/// A statement that runs no code, calls no user function and writes no table with triggers or rules has no effects and
/// allocates none: the extraction lexes it once into pooled arrays and looks names up in dictionaries by span.
/// Never throws: an internal failure becomes one UNKNOWN effect.
/// </remarks>
internal static partial class SqlEffects
{
    /// <summary>How deep code is followed (a DO block, a function it calls, a trigger that fires …) before the rest is UNKNOWN.</summary>
    public const int MaxDepth = 8;

    /// <summary>At most this many effects per request; the rest is one UNKNOWN effect.</summary>
    public const int MaxEffects = 256;

    private static readonly AccessEffect[] None = [];

    /// <summary>The effects of one statement.</summary>
    /// <param name="text">The statement (one, as split by <see cref="SqlStatementSplitter"/>).</param>
    /// <param name="info">Its classification.</param>
    /// <param name="catalog">The target's code catalog; <see cref="PgCodeSnapshot.NotLoaded"/> when unknown (unknown names are then not judged).</param>
    /// <param name="session">The code the session created, or null.</param>
    public static IReadOnlyList<AccessEffect> Extract(string text, SqlStatementInfo info, PgCodeSnapshot catalog, PgSessionCode? session) =>
        Extract(text, info, catalog, session, out _);

    /// <summary>The effects of one statement; <paramref name="unresolved"/> tells whether it called a name the catalog does not know (read the catalog again).</summary>
    /// <param name="text">The statement.</param>
    /// <param name="info">Its classification.</param>
    /// <param name="catalog">The target's code catalog.</param>
    /// <param name="session">The code the session created, or null.</param>
    /// <param name="unresolved">True when a call named a function neither the catalog nor the session knows.</param>
    public static IReadOnlyList<AccessEffect> Extract(string text, SqlStatementInfo info, PgCodeSnapshot catalog, PgSessionCode? session, out bool unresolved)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(info);
        ArgumentNullException.ThrowIfNull(catalog);
        var collector = new Collector(catalog, session);
        try
        {
            collector.Statement(text, info, via: null, depth: 0, self: false, lenient: false);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            collector.AddUnknown("the gateway could not read the statement's effects (" + ex.GetType().Name + ")", text);
        }

        unresolved = collector.Unresolved;
        return collector.Effects is { } effects ? effects : None;
    }

    /// <summary>
    /// Remembers the code a statement the session is about to run creates (CREATE FUNCTION/PROCEDURE/TRIGGER/RULE,
    /// PREPARE), so that the statements after it see it before the catalog does.
    /// </summary>
    /// <param name="session">The session's code.</param>
    /// <param name="text">The statement.</param>
    /// <param name="info">Its classification.</param>
    public static void Learn(PgSessionCode session, string text, SqlStatementInfo info)
    {
        ArgumentNullException.ThrowIfNull(session);
        try
        {
            switch (info.Kind)
            {
                case SqlKinds.Create when info.ObjectKind is "FUNCTION" or "PROCEDURE":
                    if (Definitions.Routine(text) is { } routine)
                    {
                        session.Created.AddRoutine(routine);
                        session.Touch();
                    }

                    break;
                case SqlKinds.Create when info.ObjectKind is "TRIGGER":
                    if (Definitions.Trigger(text) is { } trigger)
                    {
                        session.Created.AddTrigger(trigger);
                        session.Touch();
                    }

                    break;
                case SqlKinds.Create when info.ObjectKind is "RULE":
                    if (Definitions.Rule(text) is { } rule)
                    {
                        session.Created.AddRule(rule);
                        session.Touch();
                    }

                    break;
                case "PREPARE":
                    if (Definitions.Prepare(text) is { } prepared)
                    {
                        session.Prepared[prepared.Name] = prepared.Statement;
                        session.Touch();
                    }

                    break;
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Unreadable definitions are not remembered; their effects were judged (UNKNOWN) when they were decided.
        }
    }

    private static string Chain(string? via, string own) => via is null ? own : via + " → " + own;
}
