using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Text;
using System.Text.Json;
using NhiAudit.Audit;
using NhiAudit.Postgres.Masking;
using NhiAudit.Postgres.Protocol;
using NhiAudit.Postgres.Sql;

namespace NhiAudit.Postgres.Relay;

/// <summary>The statement-level half of the client loop: what each frontend message means for the audit.</summary>
internal sealed partial class PgRelaySession
{
    private sealed record PreparedStatement(string Text, SqlStatementInfo Info, int[] ParameterTypes, string? Refusal)
    {
        /// <summary>Its effects as last computed (see <see cref="EffectsOf(PreparedStatement)"/>).</summary>
        public CachedEffects? Effects { get; set; }
    }

    private const string LexicalRefusalState = "0A000";
    private const string PolicyRefusalState = "42501";

    private sealed record BoundPortal(string StatementName, PreparedStatement? Statement, string?[] Parameters);

    private static readonly PreparedStatement UnknownStatement = new("", SqlStatementInfo.Unknown, [], null);

    /// <summary>
    /// Why a statement text must not run: it changes how the server reads SQL text, or the server could read it
    /// differently from the gateway. Either way the audit could no longer be sure what runs, so the gateway fails closed.
    /// </summary>
    private static string? LexicalRefusal(string text, SqlStatementInfo info)
    {
        if (info.LexicalSettingProblem is { } problem)
        {
            return "the gateway refuses a statement that would change how SQL text is read: " + problem;
        }

        return SqlStatementSplitter.DependsOnStandardConformingStrings(text)
            ? "the statement's meaning depends on standard_conforming_strings (a backslash next to a quote in a plain string literal): write it as an E'' string"
            : null;
    }

    private ClientMessageOutcome OnQuery(in ReadOnlySequence<byte> message, PipeWriter upstreamOut)
    {
        var text = PgQueryMessage.Parse(Payload(message, out var rented)).Query;
        Return(rented);
        var statements = SqlStatementSplitter.Split(text);
        if (statements.Count == 0)
        {
            Enqueue(AuditStatement("simple", text, SqlStatementInfo.Empty, index: 0, count: 1, statementName: null, portalName: null, parameters: null));
            _pending.Enqueue(new PendingEntry { Kind = PendingKind.SyncPoint });
            Forward(message, upstreamOut);
            return ClientMessageOutcome.Audited;
        }

        var infos = new SqlStatementInfo[statements.Count];
        var decisions = new PolicyDecision[statements.Count];
        var effects = new IReadOnlyList<AccessEffect>[statements.Count];
        string? approvalId = null;
        for (var i = 0; i < infos.Length; i++)
        {
            var statementText = statements[i].Text;
            infos[i] = SqlClassifier.Classify(statementText);
            if (LexicalRefusal(statementText, infos[i]) is { } refusal)
            {
                return RefuseQuery(text, infos[i], null, LexicalRefusalState, refusal, upstreamOut);
            }

            if (MaskingRefusal(statementText) is { } maskingRefusal)
            {
                return RefuseQuery(text, infos[i], null, PolicyRefusalState, maskingRefusal, upstreamOut);
            }

            effects[i] = EffectsOf(statementText, infos[i]);
            decisions[i] = Decide(statementText, infos[i], effects[i]);
            if (decisions[i].Effect == PolicyEffect.RequireApproval && approvalId is null)
            {
                switch (ResolveApproval(text, infos[i], decisions[i], out approvalId))
                {
                    case ApprovalResolution.Hold:
                        return ClientMessageOutcome.Hold;
                    case ApprovalResolution.Refused:
                        var why = ApprovalRefusal();
                        var state = ApprovalRefusalState();
                        _decidedTicket = null;
                        return RefuseQuery(text, infos[i], decisions[i], state, why, upstreamOut, effects[i]);
                }
            }

            if (decisions[i].Effect == PolicyEffect.Deny)
            {
                _decidedTicket = null;
                return RefuseQuery(text, infos[i], decisions[i], PolicyRefusalState, RefusalMessage(decisions[i], effects[i]), upstreamOut, effects[i]);
            }

            // Code this statement creates is seen by the statements after it in the same string.
            LearnCode(statementText, infos[i]);
        }

        _decidedTicket = null;

        for (var i = 0; i < infos.Length; i++)
        {
            if (infos[i].SessionReason is { } reason)
            {
                _reason = reason;
            }

            var entry = AuditStatement("simple", statements[i].Text, infos[i], i, infos.Length, statementName: null, portalName: null, parameters: null, decision: decisions[i], approvalId: decisions[i].Effect == PolicyEffect.RequireApproval ? approvalId : null, effects: effects[i]);
            entry.ChangesCode = ChangesCode(infos[i], effects[i]);
            PrepareMasking(entry, statements[i].Text, infos[i]);
            Enqueue(entry);
        }

        _pending.Enqueue(new PendingEntry { Kind = PendingKind.SyncPoint });
        Forward(message, upstreamOut);
        return ClientMessageOutcome.Audited;
    }

    /// <summary>
    /// Refuses a whole simple-query string, as PostgreSQL aborts the rest of a string at its first error: nothing of it
    /// runs. A Sync goes upstream instead, so the server's ReadyForQuery marks where the gateway's error belongs.
    /// </summary>
    private ClientMessageOutcome RefuseQuery(string text, SqlStatementInfo info, PolicyDecision? decision, string sqlState, string message, PipeWriter upstreamOut, IReadOnlyList<AccessEffect>? effects = null)
    {
        Enqueue(AuditStatement("simple", text, info, 0, 1, null, null, null, sqlState, message, decision, effects: effects));
        _pending.Enqueue(new PendingEntry { Kind = PendingKind.SyncPoint });
        PgFrontendWriter.WriteSync(upstreamOut);
        return ClientMessageOutcome.Audited;
    }

    private PolicyDecision Decide(string text, SqlStatementInfo info, IReadOnlyList<AccessEffect> effects) => _services.Policy.Evaluate(DescribeRequest(text, info, effects));

    /// <summary>The statement as the policy engine and the approval broker see it, with what it may execute besides its verb.</summary>
    private AccessRequest DescribeRequest(string text, SqlStatementInfo info, IReadOnlyList<AccessEffect>? effects = null) => new()
    {
        Protocol = "postgres",
        Target = _target.Name,
        Action = info.Kind,
        Resources = info.Tables,
        Text = text,
        Attributes = info.ObjectKind is { } objectKind
            ? new Dictionary<string, object?>(Attributes[_masking is not null && TouchesProtected(text) ? 3 : 0]) { ["objectKind"] = objectKind }
            : Attributes[(info.HasWhere is { } hasWhere ? (hasWhere ? 1 : 2) : 0) + (_masking is not null && TouchesProtected(text) ? 3 : 0)],
        Effects = WithMaskingEscape(effects ?? EffectsOf(text, info), text, info),
        Identity = _identity!,
    };

    /// <summary>The statement's effects, and a <see cref="AccessRequest.ProtectedCopyAction"/> effect when it would carry protected data out of masking's reach.</summary>
    private IReadOnlyList<AccessEffect> WithMaskingEscape(IReadOnlyList<AccessEffect> effects, string text, SqlStatementInfo info)
    {
        var escape = MaskingEscapeEffects(text, info);
        return escape.Count == 0 ? effects : effects.Count == 0 ? escape : [.. effects, .. escape];
    }

    /// <summary>
    /// A <see cref="AccessRequest.ProtectedCopyAction"/> effect when the statement would carry protected data out of
    /// masking's reach (see <see cref="PgMaskingEscapes"/>); none otherwise, and none when masking is off.
    /// </summary>
    private IReadOnlyList<AccessEffect> MaskingEscapeEffects(string text, SqlStatementInfo info)
    {
        if (_masking is null || _catalog is null || PgMaskingEscapes.Find(text, info.ObjectKind, _catalog.Current, ComputeTouchesProtected) is not { } escape)
        {
            return [];
        }

        return [new AccessEffect { Action = AccessRequest.ProtectedCopyAction, Via = escape, Resources = info.Tables, Text = text }];
    }

    /// <summary>
    /// The request attributes, shared: <c>hasWhere</c> (UPDATE/DELETE only) and <c>readsProtected</c> (the statement
    /// reads a column the masking rules protect, so a rule can keep it from copying protected data elsewhere); DDL
    /// adds <c>objectKind</c> (TABLE, VIEW, MATERIALIZED VIEW, FUNCTION …).
    /// </summary>
    private static readonly IReadOnlyDictionary<string, object?>[] Attributes =
    [
        new Dictionary<string, object?> { ["readsProtected"] = false },
        new Dictionary<string, object?> { ["hasWhere"] = true, ["readsProtected"] = false },
        new Dictionary<string, object?> { ["hasWhere"] = false, ["readsProtected"] = false },
        new Dictionary<string, object?> { ["readsProtected"] = true },
        new Dictionary<string, object?> { ["hasWhere"] = true, ["readsProtected"] = true },
        new Dictionary<string, object?> { ["hasWhere"] = false, ["readsProtected"] = true },
    ];

    private void OnParse(in ReadOnlySequence<byte> message)
    {
        var payload = Payload(message, out var rented);
        try
        {
            var parse = PgParseMessage.Parse(payload);
            var query = parse.Query;
            var types = new int[parse.ParameterTypeCount];
            for (var i = 0; i < types.Length; i++)
            {
                types[i] = (int)parse.GetParameterType(i);
            }

            var info = SqlClassifier.Classify(query);
            _statements[parse.StatementName] = new PreparedStatement(query, info, types, LexicalRefusal(query, info));
        }
        finally
        {
            Return(rented);
        }
    }

    private void OnBind(in ReadOnlySequence<byte> message)
    {
        var payload = Payload(message, out var rented);
        try
        {
            var bind = PgBindMessage.Parse(payload);
            var statementName = bind.StatementName;
            _statements.TryGetValue(statementName, out var statement);
            string?[] parameters = bind.ParameterCount == 0 ? [] : new string?[bind.ParameterCount];
            foreach (var parameter in bind.Parameters)
            {
                if (parameter.IsNull)
                {
                    continue;
                }

                var i = parameter.Index;
                var typeOid = statement is not null && i < statement.ParameterTypes.Length ? statement.ParameterTypes[i] : 0;
                parameters[i] = PgParameterRenderer.Render(parameter.Value, parameter.FormatCode, typeOid, _target.MaxLoggedParameterChars);
            }

            _portals[bind.PortalName] = new BoundPortal(statementName, statement, parameters);
            _describedPortals.Remove(bind.PortalName);
        }
        finally
        {
            Return(rented);
        }
    }

    private ClientMessageOutcome OnExecute(in ReadOnlySequence<byte> message, PipeWriter upstreamOut)
    {
        var portalName = PgExecuteMessage.Parse(Payload(message, out var rented)).PortalName;
        Return(rented);
        BoundPortal portal;
        if (!_portals.TryGetValue(portalName, out portal!))
        {
            portal = new BoundPortal("", null, []);
        }

        var statement = portal.Statement ?? UnknownStatement;
        if (statement.Info.SessionReason is { } reason)
        {
            _reason = reason;
        }

        var effects = statement.Refusal is null && statement.Info.Kind != SqlKinds.Empty ? EffectsOf(statement) : [];
        var decision = statement.Refusal is null && statement.Info.Kind != SqlKinds.Empty ? Decide(statement.Text, statement.Info, effects) : null;
        string? approvalId = null;
        if (decision is { Effect: PolicyEffect.RequireApproval })
        {
            switch (ResolveApproval(statement.Text, statement.Info, decision, out approvalId))
            {
                case ApprovalResolution.Hold:
                    return ClientMessageOutcome.Hold;
                case ApprovalResolution.Refused:
                    Enqueue(AuditStatement("extended", statement.Text, statement.Info, 0, 1, portal.StatementName, portalName, portal.Parameters, ApprovalRefusalState(), ApprovalRefusal(), decision, effects: effects));
                    _decidedTicket = null;
                    _discardUntilSync = true;
                    return ClientMessageOutcome.Audited;
            }

            _decidedTicket = null;
        }

        if (decision is { Effect: PolicyEffect.Deny })
        {
            Enqueue(AuditStatement("extended", statement.Text, statement.Info, 0, 1, portal.StatementName, portalName, portal.Parameters, PolicyRefusalState, RefusalMessage(decision, effects), decision, effects: effects));
            _discardUntilSync = true;
            return ClientMessageOutcome.Audited;
        }

        if (MaskingRefusal(statement.Text) is { } maskingRefusal)
        {
            Enqueue(AuditStatement("extended", statement.Text, statement.Info, 0, 1, portal.StatementName, portalName, portal.Parameters, PolicyRefusalState, maskingRefusal, decision));
            _discardUntilSync = true;
            return ClientMessageOutcome.Audited;
        }

        if (statement.Refusal is { } refusal)
        {
            // Not forwarded; like PostgreSQL after an error, everything up to Sync is discarded, and the gateway answers
            // in the place of this Execute once the server has answered what came before it.
            Enqueue(AuditStatement("extended", statement.Text, statement.Info, 0, 1, portal.StatementName, portalName, portal.Parameters, LexicalRefusalState, refusal));
            _discardUntilSync = true;
            return ClientMessageOutcome.Audited;
        }

        var entry = AuditStatement("extended", statement.Text, statement.Info, 0, 1, portal.StatementName, portalName, portal.Parameters, decision: decision, approvalId: approvalId, effects: effects);
        entry.ChangesCode = ChangesCode(statement.Info, effects);
        LearnCode(statement.Text, statement.Info);
        PrepareMasking(entry, statement.Text, statement.Info);
        DescribeBeforeExecute(portalName, upstreamOut);
        Enqueue(entry);
        Forward(message, upstreamOut);
        return ClientMessageOutcome.Audited;
    }

    private void OnClose(in ReadOnlySequence<byte> message)
    {
        var close = PgCloseMessage.Parse(Payload(message, out var rented));
        var name = close.Name;
        var target = close.Target;
        Return(rented);
        if (target == PgTargetKind.Statement)
        {
            _statements.Remove(name);
        }
        else
        {
            _portals.Remove(name);
        }
    }

    /// <summary>
    /// The pg_catalog functions libpq calls over the fast path (its large-object API: psql's <c>\lo_import</c>,
    /// <c>\lo_export</c>); their OIDs are fixed in every PostgreSQL release. Any other function called this way
    /// could run code the gateway cannot read (the message names it only by OID), so it is an unclassified effect.
    /// </summary>
    private static readonly Dictionary<uint, string> FastPathFunctions = new()
    {
        [715] = "lo_create",
        [952] = "lo_open",
        [953] = "lo_close",
        [954] = "loread",
        [955] = "lowrite",
        [956] = "lo_lseek",
        [957] = "lo_creat",
        [958] = "lo_tell",
        [964] = "lo_unlink",
        [1004] = "lo_truncate",
        [3170] = "lo_lseek64",
        [3171] = "lo_tell64",
        [3172] = "lo_truncate64",
    };

    private static readonly SqlStatementInfo FunctionCallInfo = new() { Kind = "FUNCTION CALL" };

    private ClientMessageOutcome OnFunctionCall(in ReadOnlySequence<byte> message, PipeWriter upstreamOut)
    {
        var functionOid = PgFunctionCallMessage.Parse(Payload(message, out var rented)).FunctionOid;
        Return(rented);
        var known = FastPathFunctions.TryGetValue(functionOid, out var name);
        var text = known ? $"FUNCTION CALL pg_catalog.{name}" : $"FUNCTION CALL {functionOid}";
        var request = new AccessRequest
        {
            Protocol = "postgres",
            Target = _target.Name,
            Action = FunctionCallInfo.Kind,
            Resources = [known ? $"pg_catalog.{name}" : functionOid.ToString(System.Globalization.CultureInfo.InvariantCulture)],
            Text = text,
            Identity = _identity!,
            Effects = known
                ? []
                : [new AccessEffect { Action = AccessRequest.UnclassifiedAction, Via = $"a fast-path call of function OID {functionOid}, whose code the gateway does not read" }],
        };
        var decision = _services.Policy.Evaluate(request);
        if (decision.Effect != PolicyEffect.Allow)
        {
            // Held requests are for statements an approver can read; a fast-path call is refused instead.
            return RefuseQuery(text, FunctionCallInfo, decision, PolicyRefusalState, RefusalMessage(decision, request.Effects), upstreamOut, request.Effects);
        }

        var seq = AppendRequest(w =>
        {
            w.WriteString("kind"u8, "FUNCTION CALL");
            w.WriteNumber("functionOid"u8, functionOid);
            if (known)
            {
                w.WriteString("function"u8, "pg_catalog." + name);
            }

            AuditRecordWriter.WritePolicyDecision(w, decision);
        });
        Enqueue(new PendingEntry { Kind = PendingKind.Statement, RequestSeq = seq, StartTimestamp = Stopwatch.GetTimestamp() });
        Forward(message, upstreamOut);
        return ClientMessageOutcome.Audited;
    }

    private PendingEntry AuditStatement(string protocol, string text, SqlStatementInfo info, int index, int count, string? statementName, string? portalName, string?[]? parameters, string? refusalSqlState = null, string? refusalMessage = null, PolicyDecision? decision = null, string? approvalId = null, IReadOnlyList<AccessEffect>? effects = null)
    {
        effects = effects is { Count: > 0 } ? LoggedEffects(effects) : null;
        if (_masking is { HasDetectors: true } masking)
        {
            // Credentials and personal data the detectors recognise stay out of the log, even in what the client sent.
            text = masking.MaskDetected(text, out _);
            parameters = parameters?.Select(p => p is null ? null : masking.MaskDetected(p, out _)).ToArray();
        }

        var seq = AppendRequest(w =>
        {
            w.WriteString("queryMode"u8, protocol);
            w.WriteString("kind"u8, info.Kind);
            if (info.Tables.Count > 0)
            {
                w.WriteStartArray("tables"u8);
                foreach (var table in info.Tables)
                {
                    w.WriteStringValue(table);
                }

                w.WriteEndArray();
            }

            if (info.HasWhere is { } hasWhere)
            {
                w.WriteBoolean("hasWhere"u8, hasWhere);
            }

            if (count > 1)
            {
                w.WriteNumber("index"u8, index);
                w.WriteNumber("of"u8, count);
            }

            if (statementName is { Length: > 0 })
            {
                w.WriteString("statement"u8, statementName);
            }

            if (portalName is { Length: > 0 })
            {
                w.WriteString("portal"u8, portalName);
            }

            w.WriteString("text"u8, text.Length <= _target.MaxLoggedTextChars ? text : string.Concat(text.AsSpan(0, _target.MaxLoggedTextChars), "…"));
            if (parameters is { Length: > 0 })
            {
                w.WriteStartArray("params"u8);
                foreach (var parameter in parameters)
                {
                    if (parameter is null)
                    {
                        w.WriteNullValue();
                    }
                    else
                    {
                        w.WriteStringValue(parameter);
                    }
                }

                w.WriteEndArray();
            }

            if (effects is not null)
            {
                AuditRecordWriter.WriteEffects(w, effects);
            }

            if (decision is not null)
            {
                AuditRecordWriter.WritePolicyDecision(w, decision);
            }

            if (approvalId is not null)
            {
                w.WriteString("approval"u8, approvalId);
            }

            if (refusalMessage is not null)
            {
                w.WriteString("refused"u8, refusalMessage);
            }
        });
        Interlocked.Increment(ref _statementCount);
        if (refusalMessage is not null)
        {
            Interlocked.Increment(ref _refusedInFlight);
            return new PendingEntry { Kind = PendingKind.Refused, RequestSeq = seq, StartTimestamp = Stopwatch.GetTimestamp(), RefusalSqlState = refusalSqlState, RefusalMessage = refusalMessage };
        }

        return new PendingEntry { Kind = PendingKind.Statement, RequestSeq = seq, StartTimestamp = Stopwatch.GetTimestamp() };
    }

    /// <summary>
    /// Appends a request record to the chain now; the batch's records are made durable together
    /// (<see cref="IAuditLog.CommitAsync"/>) before the batch is flushed upstream.
    /// </summary>
    private long AppendRequest(Action<Utf8JsonWriter> fields)
    {
        var w = _requestRecords.Begin("pg.request");
        WriteContext(w);
        fields(w);
        var append = _services.AuditLog.AppendAsync(_requestRecords.End(), AuditAppendMode.Deferred);
        var seq = append.IsCompletedSuccessfully ? append.Result : append.AsTask().GetAwaiter().GetResult();
        _batchRequestSeqs.Add(seq);
        return seq;
    }

    private void Enqueue(PendingEntry entry)
    {
        _lastEnqueued = entry;
        _pending.Enqueue(entry);
    }

    /// <summary>The message body after the type byte and length; contiguous, copied into a rented array only when the message spans segments.</summary>
    private static ReadOnlySpan<byte> Payload(in ReadOnlySequence<byte> message, out byte[]? rented) => Contiguous(message.Slice(5), out rented);

    /// <summary>The bytes as one span, copied into a rented array (return it with <see cref="Return"/>) only when they span segments.</summary>
    private static ReadOnlySpan<byte> Contiguous(ReadOnlySequence<byte> bytes, out byte[]? rented)
    {
        if (bytes.IsSingleSegment)
        {
            rented = null;
            return bytes.FirstSpan;
        }

        rented = ArrayPool<byte>.Shared.Rent((int)bytes.Length);
        bytes.CopyTo(rented);
        return rented.AsSpan(0, (int)bytes.Length);
    }

    private static void Return(byte[]? rented)
    {
        if (rented is not null)
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }
}
