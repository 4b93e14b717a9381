using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Text;
using System.Text.Json;
using NhiAudit.Postgres.Protocol;
using NhiAudit.Postgres.Sql;

namespace NhiAudit.Postgres.Relay;

/// <summary>The statement-level half of the client loop: what each frontend message means for the audit.</summary>
internal sealed partial class PgRelaySession
{
    private sealed record PreparedStatement(string Text, SqlStatementInfo Info, int[] ParameterTypes);

    private sealed record BoundPortal(string StatementName, PreparedStatement? Statement, string?[] Parameters);

    private static readonly PreparedStatement UnknownStatement = new("", SqlStatementInfo.Unknown, []);

    private ClientMessageOutcome OnQuery(in ReadOnlySequence<byte> message, PipeWriter upstreamOut)
    {
        var text = PgQueryMessage.Parse(Payload(message, out var rented)).Query;
        Return(rented);
        var statements = SqlStatementSplitter.Split(text);
        if (statements.Count == 0)
        {
            Enqueue(AuditStatement("simple", text, SqlStatementInfo.Empty, index: 0, count: 1, statementName: null, portalName: null, parameters: null));
        }
        else
        {
            for (var i = 0; i < statements.Count; i++)
            {
                var statementText = statements[i].Text;
                var info = SqlClassifier.Classify(statementText);
                if (info.SessionReason is { } reason)
                {
                    _reason = reason;
                }

                Enqueue(AuditStatement("simple", statementText, info, i, statements.Count, statementName: null, portalName: null, parameters: null));
            }
        }

        _pending.Enqueue(new PendingEntry { Kind = PendingKind.SyncPoint });
        Forward(message, upstreamOut);
        return ClientMessageOutcome.Audited;
    }

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

            _statements[parse.StatementName] = new PreparedStatement(query, SqlClassifier.Classify(query), types);
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

        Enqueue(AuditStatement("extended", statement.Text, statement.Info, 0, 1, portal.StatementName, portalName, portal.Parameters));
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

    private ClientMessageOutcome OnFunctionCall(in ReadOnlySequence<byte> message, PipeWriter upstreamOut)
    {
        var functionOid = PgFunctionCallMessage.Parse(Payload(message, out var rented)).FunctionOid;
        Return(rented);
        var seq = AppendRequest(w =>
        {
            w.WriteString("kind"u8, "FUNCTION CALL");
            w.WriteNumber("functionOid"u8, functionOid);
        });
        Enqueue(new PendingEntry { Kind = PendingKind.Statement, RequestSeq = seq, StartTimestamp = Stopwatch.GetTimestamp() });
        Forward(message, upstreamOut);
        return ClientMessageOutcome.Audited;
    }

    private PendingEntry AuditStatement(string protocol, string text, SqlStatementInfo info, int index, int count, string? statementName, string? portalName, string?[]? parameters)
    {
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
        });
        Interlocked.Increment(ref _statementCount);
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
        return append.IsCompletedSuccessfully ? append.Result : append.AsTask().GetAwaiter().GetResult();
    }

    private void Enqueue(PendingEntry entry)
    {
        _lastEnqueued = entry;
        _pending.Enqueue(entry);
    }

    /// <summary>The message body after the type byte and length; contiguous, copied into a rented array only when the message spans segments.</summary>
    private static ReadOnlySpan<byte> Payload(in ReadOnlySequence<byte> message, out byte[]? rented)
    {
        var body = message.Slice(5);
        if (body.IsSingleSegment)
        {
            rented = null;
            return body.FirstSpan;
        }

        rented = ArrayPool<byte>.Shared.Rent((int)body.Length);
        body.CopyTo(rented);
        return rented.AsSpan(0, (int)body.Length);
    }

    private static void Return(byte[]? rented)
    {
        if (rented is not null)
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }
}
