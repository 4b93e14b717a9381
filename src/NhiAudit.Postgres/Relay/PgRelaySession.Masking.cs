using System.Buffers;
using System.IO.Pipelines;
using NhiAudit.Masking;
using NhiAudit.Postgres.Masking;
using NhiAudit.Postgres.Protocol;
using NhiAudit.Postgres.Sql;

namespace NhiAudit.Postgres.Relay;

/// <summary>
/// Masking on the way back to the client. Every result column is traced to its source through RowDescription's table
/// OID and attribute number, checked against the catalog of protected columns (views resolved to what they show), and
/// a column with no source in a statement that touches protected data is masked whole. Every Execute is described
/// (the gateway adds a Describe when the client skipped it, as Npgsql does for prepared statements), so a re-executed
/// statement is masked by its current shape, never by a cached one.
/// </summary>
internal sealed partial class PgRelaySession
{
    private MaskingPolicy? _masking;
    private PgMaskingCatalog? _catalog;
    private PgColumnMask[]? _rowMask;
    private MaskingPolicy? _rowMaskPolicy;
    private PgFieldDescription[]? _rowFields;
    private PgCopyOutMasker? _copyMasker;
    private readonly HashSet<string> _describedPortals = new(StringComparer.Ordinal);
    private readonly Dictionary<string, bool> _sqlObjectsTouching = new(StringComparer.Ordinal);

    /// <summary>True when either masking or row capture needs the result's shape.</summary>
    private bool InspectsResults => _masking is not null || _target.CaptureRows > 0;

    private Task StartMaskingAsync(CancellationToken ct) => FollowMaskingPolicyAsync(ct).AsTask();

    /// <summary>
    /// Before each batch of client messages: takes up the masking rules in force (a policy reload may have changed,
    /// added or removed them) and reads the catalog again when it is stale, before the statements that follow are planned.
    /// </summary>
    private async ValueTask FollowMaskingPolicyAsync(CancellationToken ct)
    {
        if (_services.Masking is not { } source || _services.MaskingCatalogs is not { } catalogs)
        {
            return;
        }

        var current = source.Current;
        if (!current.IsEnabled)
        {
            _masking = null;
            return;
        }

        _catalog ??= catalogs.Get(_database);
        await RefreshMaskingCatalogAsync(ct).ConfigureAwait(false);

        // Only now: the server loop must never see rules whose catalog has not been read.
        _masking = _catalog.Current.Policy ?? current;
    }

    private async ValueTask RefreshMaskingCatalogAsync(CancellationToken ct)
    {
        if (_catalog is not { IsStale: true } catalog)
        {
            return;
        }

        try
        {
            await catalog.RefreshAsync(ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Without the catalog the gateway cannot tell what to mask: fail closed.
            throw new PgProtocolException("58000", "terminating connection: the gateway cannot read the masking catalog: " + ex.Message);
        }
    }

    /// <summary>Marks what the server loop needs to mask this statement's response.</summary>
    private void PrepareMasking(PendingEntry entry, string text, SqlStatementInfo info)
    {
        if (_masking is null || entry.Kind != PendingKind.Statement)
        {
            return;
        }

        entry.TouchesProtected = TouchesProtected(text);
        entry.RunsProtectedCode = entry.TouchesProtected && _touchCallsCode;
        entry.ChangesSchema = info.Kind is SqlKinds.Create or SqlKinds.Alter or SqlKinds.Drop || info.Kind == "SELECT INTO";
        if (PgCopyStatementParser.Parse(text, out var copy, out _) == PgCopyParseResult.CopyToStdout)
        {
            entry.CopyOut = copy;
        }
    }

    /// <summary>Why masking cannot guard this statement, if it cannot: a COPY to the client whose format the gateway cannot read.</summary>
    private string? MaskingRefusal(string text)
    {
        if (_masking is null)
        {
            return null;
        }

        return PgCopyStatementParser.Parse(text, out _, out var error) == PgCopyParseResult.Unreadable
            ? "masking: the gateway cannot read this COPY's format, so it cannot mask its data: " + error
            : null;
    }

    /// <summary>
    /// True when a computed column of this statement could carry protected data: the statement reads a protected relation
    /// (or a view that shows one) and names a protected column, selects <c>*</c>, or uses a whole row of it
    /// (<c>row_to_json(c)</c>); or it calls a function over protected data; or it fetches from a cursor or executes a
    /// prepared statement declared over protected data (or one the gateway never saw declared: fail closed).
    /// <c>SELECT count(*) FROM customers</c> does not touch protected data; <c>SELECT upper(ssn) FROM customers</c> does.
    /// </summary>
    private bool TouchesProtected(string text)
    {
        // The policy decision and the masking plan ask about the same statement, one after the other.
        if (ReferenceEquals(text, _touchText) && _touchSnapshot == _catalog!.Current)
        {
            return _touchResult;
        }

        _callsProtectedCode = false;
        _touchResult = ComputeTouchesProtected(text);
        _touchCallsCode = _callsProtectedCode;
        _touchText = text;
        _touchSnapshot = _catalog!.Current;
        return _touchResult;
    }

    private string? _touchText;
    private PgMaskingSnapshot? _touchSnapshot;
    private bool _touchResult;
    private bool _touchCallsCode;
    private bool _callsProtectedCode;

    private bool ComputeTouchesProtected(string text)
    {
        var snapshot = _catalog!.Current;
        var tokens = new List<(SqlTokenKind Kind, string? Name, char Symbol)>();
        var codeNames = new HashSet<string>(StringComparer.Ordinal);
        var nesting = 0;
        var lexer = new SqlLexer(text);
        while (lexer.TryRead(out var token))
        {
            if (token.IsComment)
            {
                continue;
            }

            var isName = token.Kind is SqlTokenKind.Identifier or SqlTokenKind.QuotedIdentifier;
            tokens.Add((token.Kind, isName ? SqlText.IdentifierValue(text, token) : null, token.Length == 1 ? text[token.Start] : '\0'));
            if (token.Kind is SqlTokenKind.String or SqlTokenKind.DollarString && nesting < 3 && SqlText.StringValue(text, token) is { Length: > 0 } inner)
            {
                // SQL inside a string is code (a DO or function body, query_to_xml's query, EXECUTE's text): read its names too.
                nesting++;
                var innerLexer = new SqlLexer(inner);
                while (innerLexer.TryRead(out var innerToken))
                {
                    if (!innerToken.IsComment && innerToken.Kind is SqlTokenKind.Identifier or SqlTokenKind.QuotedIdentifier)
                    {
                        var innerName = SqlText.IdentifierValue(inner, innerToken);
                        if (snapshot.ProtectedNames.Contains(innerName) || snapshot.ProtectedColumnNames.Contains(innerName) || snapshot.ProtectedFunctions.Contains(innerName))
                        {
                            codeNames.Add(innerName);
                        }
                    }
                }

                nesting--;
            }
        }

        if (codeNames.Overlaps(snapshot.ProtectedNames) && (codeNames.Overlaps(snapshot.ProtectedColumnNames) || codeNames.Overlaps(snapshot.ProtectedFunctions)))
        {
            // Code that names a protected relation and one of its columns reads protected data, whatever it does with it.
            RememberProtectedFunction(tokens);
            return true;
        }

        bool IsName(int i) => i >= 0 && i < tokens.Count && tokens[i].Name is not null;
        bool IsKeyword(int i, params string[] words) => i >= 0 && i < tokens.Count && tokens[i].Kind == SqlTokenKind.Identifier && words.Contains(tokens[i].Name);
        bool IsSymbol(int i, char symbol) => i >= 0 && i < tokens.Count && tokens[i].Name is null && tokens[i].Symbol == symbol;

        var readsProtected = false;
        var namesColumn = false;
        var star = false;
        var wholeRow = false;
        var callsProtectedFunction = false;
        var aliases = new HashSet<string>(StringComparer.Ordinal);
        var definitions = new HashSet<int>();
        for (var i = 0; i < tokens.Count; i++)
        {
            var name = tokens[i].Name;
            if (name is null)
            {
                // '*' outside count(*): a whole row.
                star |= tokens[i].Symbol == '*' && !IsSymbol(i - 1, '(');
                continue;
            }

            namesColumn |= snapshot.ProtectedColumnNames.Contains(name);
            callsProtectedFunction |= (snapshot.ProtectedFunctions.Contains(name) || _sessionProtectedFunctions.Contains(name)) && IsSymbol(i + 1, '(');
            if (!snapshot.ProtectedNames.Contains(name))
            {
                continue;
            }

            readsProtected = true;
            var before = IsSymbol(i - 1, '.') ? i - 3 : i - 1;
            if (IsKeyword(before, "from", "join", "into", "update", "table", "only", "using", "copy") || IsSymbol(before, ','))
            {
                // Where the relation is read (FROM customers [AS] c): its alias may stand for its whole row later.
                definitions.Add(i);
                var alias = IsKeyword(i + 1, "as") ? i + 2 : i + 1;
                if (IsName(alias) && !IsKeyword(alias, NotAliases))
                {
                    aliases.Add(tokens[alias].Name!);
                    definitions.Add(alias);
                }
            }
            else if (!IsSymbol(i + 1, '.'))
            {
                wholeRow = true;
            }
        }

        for (var i = 0; i < tokens.Count && !wholeRow; i++)
        {
            wholeRow = tokens[i].Name is { } name && aliases.Contains(name) && !definitions.Contains(i) && !IsSymbol(i + 1, '.');
        }

        _callsProtectedCode = callsProtectedFunction;
        var touches = callsProtectedFunction || (readsProtected && (namesColumn || star || wholeRow));
        var first = tokens.Count > 0 && tokens[0].Kind == SqlTokenKind.Identifier ? tokens[0].Name : null;
        if (first is "fetch" or "move" or "execute")
        {
            // A cursor or prepared statement touches what its declaration touched; one the gateway never saw declared
            // (inside a function, or before a policy change) is treated as touching.
            var known = false;
            foreach (var token in tokens)
            {
                if (token.Name is { } name && _sqlObjectsTouching.TryGetValue(name, out var objectTouches))
                {
                    known = true;
                    touches |= objectTouches;
                }
            }

            touches |= !known;
        }
        else if (first is "declare" or "prepare" && IsName(1))
        {
            _sqlObjectsTouching[tokens[1].Name!] = touches;
        }

        return touches;
    }

    // Functions this session created over protected data, before the catalog has read them: calling one touches it.
    private readonly HashSet<string> _sessionProtectedFunctions = new(StringComparer.Ordinal);

    /// <summary>After <c>CREATE [OR REPLACE] FUNCTION|PROCEDURE name</c> whose body reads protected data: remember the name.</summary>
    private void RememberProtectedFunction(List<(SqlTokenKind Kind, string? Name, char Symbol)> tokens)
    {
        if (tokens.Count < 3 || tokens[0].Name != "create")
        {
            return;
        }

        for (var i = 1; i + 1 < tokens.Count; i++)
        {
            if (tokens[i].Name is "function" or "procedure")
            {
                var name = i + 3 < tokens.Count && tokens[i + 2].Symbol == '.' && tokens[i + 2].Name is null ? i + 3 : i + 1;
                if (tokens[name].Name is { } function && _sessionProtectedFunctions.Count < 1024)
                {
                    _sessionProtectedFunctions.Add(function);
                }

                return;
            }
        }
    }

    private static readonly string[] NotAliases =
    [
        "where", "join", "inner", "left", "right", "full", "cross", "natural", "on", "using", "group", "order", "limit",
        "offset", "union", "except", "intersect", "set", "lateral", "window", "having", "for", "returning", "values",
        "default", "fetch", "to", "from", "with", "tablesample", "select", "as", "only", "when", "then", "do",
    ];

    private void OnClientDescribe(in ReadOnlySequence<byte> message)
    {
        if (!InspectsResults)
        {
            return;
        }

        var describe = PgDescribeMessage.Parse(Payload(message, out var rented));
        var portal = describe.Target == PgTargetKind.Portal;
        if (portal)
        {
            _describedPortals.Add(describe.Name);
        }

        Return(rented);
        _pending.Enqueue(new PendingEntry { Kind = PendingKind.Describe, DescribesPortal = portal });
    }

    /// <summary>Before an Execute goes upstream: describe its portal when the client did not, so its rows have a known shape.</summary>
    private void DescribeBeforeExecute(string portalName, PipeWriter upstreamOut)
    {
        if (!InspectsResults || _describedPortals.Remove(portalName))
        {
            return;
        }

        _pending.Enqueue(new PendingEntry { Kind = PendingKind.Describe, DescribesPortal = true, Injected = true });
        PgFrontendWriter.WriteDescribe(upstreamOut, PgTargetKind.Portal, portalName);
    }

    /// <summary>RowDescription or NoData: sets the shape of the rows that follow. True when the message is the gateway's own and must not reach the client.</summary>
    private bool OnResultShape(byte type, in ReadOnlySequence<byte> message)
    {
        PendingEntry? describe = null;
        if (_pending.TryPeek(out var head) && head.Kind == PendingKind.Describe)
        {
            _pending.TryDequeue(out describe);
        }

        if (type == (byte)'n' || describe is { DescribesPortal: false })
        {
            // NoData, or a statement's description (its formats are not known until Bind): no rows follow from it.
            return describe?.Injected == true;
        }

        var fields = PgRowDescription.Parse(Payload(message, out var rented));
        Return(rented);
        var statement = _pending.TryPeek(out var next) && next.Kind == PendingKind.Statement ? next : null;
        _rowFields = fields;
        _rowMaskPolicy = _masking;
        _rowMask = _rowMaskPolicy is { } masking ? PlanColumns(fields, statement, masking) : null;
        return describe?.Injected == true;
    }

    /// <summary>What happens to each column of a result; null when nothing does.</summary>
    private PgColumnMask[]? PlanColumns(PgFieldDescription[] fields, PendingEntry? statement, MaskingPolicy masking)
    {
        var snapshot = _catalog!.Current;
        PgColumnMask[]? plan = null;
        for (var i = 0; i < fields.Length; i++)
        {
            var field = fields[i];
            var shape = snapshot.ShapeOf(field.TypeOid);
            var binary = field.FormatCode == 1;
            var detect = masking.HasDetectors && shape != PgValueShape.Other;
            string? source = null;
            var strategy = MaskingStrategy.Redact;
            if (field.TableOid != 0)
            {
                if (snapshot.ProtectedColumns.TryGetValue((field.TableOid, field.AttributeNumber), out var protection))
                {
                    source = $"{protection.Source} ({protection.Rule.Rule})";
                    strategy = protection.Rule.Strategy;
                }
                else if (field.AttributeNumber <= 0 && snapshot.ProtectedRelationOids.Contains(field.TableOid))
                {
                    // A whole-row reference (SELECT c FROM customers c) names its relation with attribute 0.
                    source = $"relation {field.TableOid} (a whole row of a protected relation)";
                }
                else if (!snapshot.KnownRelations.TryGetValue(field.TableOid, out var highest) || field.AttributeNumber > highest)
                {
                    // A relation or column created since the catalog was read: masked until the catalog says what it is.
                    source = $"relation {field.TableOid} column {field.AttributeNumber} (not yet in the masking catalog)";
                    _catalog.MarkStale();
                }
            }
            else if (statement?.TouchesProtected == true)
            {
                source = "(computed in a statement that reads protected data)";
            }

            if (source is null && !detect)
            {
                continue;
            }

            plan ??= new PgColumnMask[fields.Length];
            plan[i] = new PgColumnMask(source is not null, strategy, detect, shape, binary);
            if (source is not null && statement is not null)
            {
                (statement.MaskedColumns ??= []).Add($"{field.Name} ← {source}");
            }
        }

        return plan;
    }

    /// <summary>CopyOutResponse: plans the masking of the COPY's data from the statement and the catalog.</summary>
    private void OnCopyOut(in ReadOnlySequence<byte> message)
    {
        _copyMasker = null;
        if (_masking is null || !_pending.TryPeek(out var head) || head.Kind != PendingKind.Statement)
        {
            return;
        }

        var payload = Payload(message, out var rented);
        try
        {
            if (payload.Length < 3)
            {
                throw new PgProtocolException("08P01", "the server sent a short CopyOutResponse");
            }

            var binary = payload[0] == 1;
            var columnCount = (payload[1] << 8) | payload[2];
            var copy = head.CopyOut ?? throw new PgProtocolException("XX000", "terminating connection: the server started a COPY to the client that the gateway did not see asked for, so it cannot mask it");
            var snapshot = _catalog!.Current;
            var plan = new PgColumnMask[columnCount];
            var any = false;
            List<PgCatalogColumn>? columns = null;
            if (copy.Relation is { } relation)
            {
                snapshot.RelationColumns.TryGetValue(relation, out columns);
                if (columns is not null && copy.Columns is { Count: > 0 } named)
                {
                    columns = [.. named.Select(n => columns.FirstOrDefault(c => c.Name == n) ?? new PgCatalogColumn(n, 0, null, n))];
                }
            }

            for (var i = 0; i < columnCount; i++)
            {
                var column = columns is not null && i < columns.Count ? columns[i] : null;
                var shape = binary ? (column is null ? PgValueShape.Other : snapshot.ShapeOf(column.TypeOid)) : PgValueShape.Text;
                var mask = column?.Rule is not null || (copy.Query is not null && head.TouchesProtected);
                var detect = _masking.HasDetectors && shape != PgValueShape.Other;
                plan[i] = new PgColumnMask(mask, column?.Rule?.Strategy ?? MaskingStrategy.Redact, detect, shape, binary);
                any |= mask || detect;
                if (mask)
                {
                    (head.MaskedColumns ??= []).Add(column is not null ? $"{column.Name} ← {column.Source} ({column.Rule!.Rule})" : $"column {i + 1} ← (computed in a COPY query that reads protected data)");
                }
            }

            _copyMasker = any ? new PgCopyOutMasker(copy, plan, _masking) : null;
        }
        finally
        {
            Return(rented);
        }
    }

    /// <summary>
    /// Masks a DataRow or server CopyData, and captures sample rows; writes the replacement to the client and returns
    /// true, or returns false when the original goes on unchanged.
    /// </summary>
    private bool InspectRow(byte type, in ReadOnlySequence<byte> frame, PipeWriter clientOut)
    {
        var message = Contiguous(frame, out var rented);
        try
        {
            var head = _resultHead;
            var capture = type == (byte)'D' && head is not null && _target.CaptureRows > 0 && (head.Sample?.Count ?? 0) < _target.CaptureRows;

            // A captured row is rewritten aside first, so the sample is exactly what the client saw; others go straight out.
            IBufferWriter<byte> output = clientOut;
            if (capture)
            {
                _rewritten.ResetWrittenCount();
                output = _rewritten;
            }

            var replaced = false;
            var scratch = default(PgMaskCounters);
            if (type == (byte)'D' && _rowMask is { } plan)
            {
                replaced = PgDataRowMasker.TryRewrite(message, plan, _rowMaskPolicy!, output, ref head is null ? ref scratch : ref head.Masking);
            }
            else if (type == (byte)'d' && _copyMasker is { } copy)
            {
                replaced = copy.TryRewrite(message, output, ref head is null ? ref scratch : ref head.Masking);
            }

            if (capture)
            {
                if (replaced)
                {
                    clientOut.Write(_rewritten.WrittenSpan);
                }

                CaptureRow(head!, replaced ? _rewritten.WrittenSpan : message);
            }

            return replaced;
        }
        finally
        {
            Return(rented);
        }
    }

    /// <summary>Masks an ErrorResponse or NoticeResponse; true when a replacement was written.</summary>
    private bool MaskServerMessage(in ReadOnlySequence<byte> frame, PipeWriter clientOut, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out byte[]? replacement)
    {
        replacement = null;
        if (_masking is null)
        {
            return false;
        }

        var message = Contiguous(frame, out var rented);
        try
        {
            // The statement the message belongs to: the first open one (an error may come before a skipped Describe's answer).
            var head = _pending.FirstOrDefault(e => e.Kind != PendingKind.Describe) is { Kind: PendingKind.Statement } open ? open : null;
            var snapshot = _catalog!.Current;
            var context = new PgErrorMaskContext(head?.TouchesProtected ?? false, head?.RunsProtectedCode ?? false, (schema, table) => table is not null && (schema is null ? snapshot.ProtectedNames.Contains(table) : snapshot.ProtectedRelations.Contains((schema, table))));
            var writer = new ArrayBufferWriter<byte>(message.Length + 64);
            var scratch = default(PgMaskCounters);
            if (!PgErrorMasker.TryRewrite(message, context, _masking, writer, ref head is null ? ref scratch : ref head.Masking))
            {
                return false;
            }

            replacement = writer.WrittenSpan.ToArray();
            clientOut.Write(replacement);
            return true;
        }
        finally
        {
            Return(rented);
        }
    }

    private void CaptureRow(PendingEntry head, ReadOnlySpan<byte> row)
    {
        var fields = _rowFields;
        var reader = new PgPayloadReader(row[5..], "DataRow");
        var values = new string?[reader.ReadInt16()];
        for (var i = 0; i < values.Length; i++)
        {
            var length = reader.ReadInt32();
            if (length < 0)
            {
                continue;
            }

            var value = reader.ReadBytes(length);
            var format = fields is not null && i < fields.Length ? fields[i].FormatCode : (short)0;
            var typeOid = fields is not null && i < fields.Length ? fields[i].TypeOid : 0u;
            values[i] = PgParameterRenderer.Render(value, format, typeOid, _target.MaxLoggedParameterChars);
        }

        (head.Sample ??= []).Add(values);
    }

    private readonly ArrayBufferWriter<byte> _rewritten = new();

    private static void WriteMaskingFields(System.Text.Json.Utf8JsonWriter w, PendingEntry entry)
    {
        if (entry.MaskedColumns is { Count: > 0 } || entry.Masking.MaskedValues > 0 || entry.Masking.DetectedValues > 0)
        {
            w.WriteStartObject("masked"u8);
            if (entry.MaskedColumns is { Count: > 0 } columns)
            {
                w.WriteStartArray("columns"u8);
                foreach (var column in columns)
                {
                    w.WriteStringValue(column);
                }

                w.WriteEndArray();
            }

            w.WriteNumber("values"u8, entry.Masking.MaskedValues);
            if (entry.Masking.DetectedValues > 0)
            {
                w.WriteNumber("detected"u8, entry.Masking.DetectedValues);
                w.WriteString("detectors"u8, entry.Masking.Found.ToString());
            }

            w.WriteEndObject();
        }

        if (entry.Sample is { Count: > 0 } sample)
        {
            w.WriteStartArray("sample"u8);
            foreach (var row in sample)
            {
                w.WriteStartArray();
                foreach (var value in row)
                {
                    if (value is null)
                    {
                        w.WriteNullValue();
                    }
                    else
                    {
                        w.WriteStringValue(value);
                    }
                }

                w.WriteEndArray();
            }

            w.WriteEndArray();
        }
    }
}
