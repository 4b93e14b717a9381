using System.Text;
using NhiAudit.Postgres.Catalog;
using NhiAudit.Postgres.Protocol;
using NhiAudit.Postgres.Sql;

namespace NhiAudit.Postgres.Relay;

/// <summary>
/// Policy over effects: each statement is described to the policy with what it may execute besides its verb (the SQL
/// in DO blocks and in the functions, procedures, triggers and rules it creates, calls or fires), read from the
/// statement, from the code the session created and from the target's code catalog.
/// </summary>
internal sealed partial class PgRelaySession
{
    private const int MaxEffectTextInMessage = 120;

    private readonly PgSessionCode _sessionCode = new();
    private PgCodeCatalog? _code;

    /// <summary>The effects computed for a prepared statement, valid while the catalog snapshot and the session's code stay the same.</summary>
    private sealed record CachedEffects(PgCodeSnapshot Catalog, int SessionVersion, IReadOnlyList<AccessEffect> Effects);

    /// <summary>Before each batch of client messages: reads the code catalog when it is stale, before the statements that follow are decided.</summary>
    private async ValueTask FollowCodeCatalogAsync(CancellationToken ct)
    {
        if (_services.CodeCatalogs is not { } catalogs)
        {
            return;
        }

        _code ??= catalogs.Get(_database);
        if (!_code.IsStale)
        {
            return;
        }

        try
        {
            await _code.RefreshAsync(ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Without the catalog the gateway cannot tell what a call or a write runs: fail closed.
            throw new PgProtocolException("58000", "terminating connection: the gateway cannot read the code catalog (functions, triggers, rules): " + ex.Message);
        }
    }

    /// <summary>What the statement may execute besides its verb; an empty list for a statement that runs no code.</summary>
    private IReadOnlyList<AccessEffect> EffectsOf(string text, SqlStatementInfo info)
    {
        if (info.Kind is SqlKinds.Empty)
        {
            return [];
        }

        var effects = SqlEffects.Extract(text, info, _code?.Current ?? PgCodeSnapshot.NotLoaded, _sessionCode, out var unresolved);
        if (unresolved)
        {
            // A name the catalog does not know: perhaps created since it was read. Read it again before the next batch.
            _code?.MarkStale();
        }

        return WithLexicalProblems(effects);
    }

    /// <summary>
    /// Code that would leave the session reading SQL text differently (a body that runs <c>set_config('client_encoding',
    /// 'SJIS', false)</c>) is an unclassified effect: what the client pipelines behind it could be read one way by the
    /// gateway and another by the server, before the server's ParameterStatus reports the change.
    /// </summary>
    private static IReadOnlyList<AccessEffect> WithLexicalProblems(IReadOnlyList<AccessEffect> effects)
    {
        List<AccessEffect>? problems = null;
        foreach (var effect in effects)
        {
            if (effect.Text is { } body && SqlClassifier.Classify(body).LexicalSettingProblem is { } problem)
            {
                (problems ??= []).Add(new AccessEffect
                {
                    Action = AccessRequest.UnclassifiedAction,
                    Via = $"{effect.Via} would change how SQL text is read ({problem})",
                    Text = body,
                });
            }
        }

        return problems is null ? effects : [.. effects, .. problems];
    }

    /// <summary>The effects of a prepared statement at this Execute, computed again only when the catalog or the session's code changed.</summary>
    private IReadOnlyList<AccessEffect> EffectsOf(PreparedStatement statement)
    {
        var catalog = _code?.Current ?? PgCodeSnapshot.NotLoaded;
        if (statement.Effects is { } cached && ReferenceEquals(cached.Catalog, catalog) && cached.SessionVersion == _sessionCode.Version)
        {
            return cached.Effects;
        }

        var effects = EffectsOf(statement.Text, statement.Info);
        statement.Effects = new CachedEffects(catalog, _sessionCode.Version, effects);
        return effects;
    }

    /// <summary>Remembers the code an allowed statement creates, for the statements after it.</summary>
    private void LearnCode(string text, SqlStatementInfo info)
    {
        if (info.Kind is SqlKinds.Create or "PREPARE")
        {
            SqlEffects.Learn(_sessionCode, text, info);
        }
    }

    /// <summary>Whether the code catalog must be read again once the statement completes.</summary>
    private static bool ChangesCode(SqlStatementInfo info, IReadOnlyList<AccessEffect> effects)
    {
        if (info.Kind is SqlKinds.Create or SqlKinds.Alter or SqlKinds.Drop or "DO" or "IMPORT")
        {
            return true;
        }

        foreach (var effect in effects)
        {
            if (effect.Action is SqlKinds.Create or SqlKinds.Alter or SqlKinds.Drop or AccessRequest.UnclassifiedAction)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The rule's reason, and when an effect decided, which one: <c>dropping objects is not allowed (DROP TABLE t inside a DO block)</c>.</summary>
    private static string RefusalMessage(PolicyDecision decision, IReadOnlyList<AccessEffect> effects) =>
        decision.Rule == "(masking)" && decision.Via is { } escape
            ? $"masking: {escape} ({decision.Reason})"
            : decision.EffectIndex is { } index && index < effects.Count
            ? $"{decision.Reason} ({DescribeEffect(effects[index])})"
            : decision.Reason;

    /// <summary>An effect in words: its statement and where it runs.</summary>
    internal static string DescribeEffect(AccessEffect effect)
    {
        var text = effect.Text is { } t ? Shorten(t) : null;
        if (effect.Action == AccessRequest.UnclassifiedAction)
        {
            return text is null ? effect.Via : $"{effect.Via}: {text}";
        }

        if (text is null)
        {
            return $"{effect.Action} in {effect.Via}";
        }

        return effect.Via.StartsWith("DO block", StringComparison.Ordinal) ? $"{text} inside a {effect.Via}" : $"{text} in {effect.Via}";
    }

    private static string Shorten(string text)
    {
        var builder = new StringBuilder(Math.Min(text.Length, MaxEffectTextInMessage + 1));
        var space = false;
        foreach (var c in text)
        {
            if (char.IsWhiteSpace(c))
            {
                space = builder.Length > 0;
                continue;
            }

            if (space)
            {
                builder.Append(' ');
                space = false;
            }

            builder.Append(c);
            if (builder.Length >= MaxEffectTextInMessage)
            {
                return builder.Append('…').ToString();
            }
        }

        return builder.ToString();
    }

    /// <summary>The effects as they go into the record: texts cut to the logged length and, with detectors, masked like the statement.</summary>
    private IReadOnlyList<AccessEffect> LoggedEffects(IReadOnlyList<AccessEffect> effects)
    {
        var masking = _masking is { HasDetectors: true } m ? m : null;
        var max = _target.MaxLoggedTextChars;
        var changed = false;
        foreach (var effect in effects)
        {
            changed |= effect.Text is { } text && (text.Length > max || masking is not null);
        }

        if (!changed)
        {
            return effects;
        }

        var logged = new AccessEffect[effects.Count];
        for (var i = 0; i < logged.Length; i++)
        {
            var effect = effects[i];
            var text = effect.Text;
            if (text is not null)
            {
                if (masking is not null)
                {
                    text = masking.MaskDetected(text, out _);
                }

                if (text.Length > max)
                {
                    text = string.Concat(text.AsSpan(0, max), "…");
                }
            }

            logged[i] = effect with { Text = text };
        }

        return logged;
    }
}
