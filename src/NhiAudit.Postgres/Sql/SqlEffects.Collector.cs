using System.Collections.Frozen;
using NhiAudit.Postgres.Catalog;

namespace NhiAudit.Postgres.Sql;

internal static partial class SqlEffects
{
    /// <summary>
    /// Words that are followed by a parenthesis without being a function call: keywords with a parenthesized operand
    /// (EXISTS (…), IN (…), OVER (…), ON CONFLICT (…)), type names with a modifier (numeric(10,2)), clause words.
    /// </summary>
    private static readonly FrozenSet<string> NotCalls = new[]
    {
        "ALL", "AND", "ANY", "ARRAY", "AS", "ASC", "BETWEEN", "BIT", "BY", "CALL", "CASE", "CAST", "CHAR", "CHARACTER", "CHECK",
        "COALESCE", "COLLATION", "CONFLICT", "CONSTRAINT", "COPY", "CUBE", "CURRENT_TIME", "CURRENT_TIMESTAMP", "CYCLE",
        "DEC", "DECIMAL", "DEFAULT", "DELETE", "DESC", "DISTINCT", "DO", "ELSE", "END", "EXCEPT", "EXCLUDE", "EXECUTE",
        "EXISTS", "EXPLAIN", "EXTRACT", "FETCH", "FILTER", "FLOAT", "FOR", "FROM", "GREATEST", "GROUP", "GROUPING", "GROUPS",
        "HAVING", "IF", "ILIKE", "IN", "INCLUDE", "INSERT", "INTERSECT", "INTERVAL", "INTO", "IS", "JOIN", "KEY", "LATERAL",
        "LEAST", "LIKE", "LIMIT", "LOCALTIME", "LOCALTIMESTAMP", "LOCK", "MATERIALIZED", "MERGE", "NATIONAL", "NCHAR",
        "NORMALIZE", "NOT", "NOTHING", "NULLIF", "NULLS", "OF", "OFFSET", "ON", "ONLY", "OPTIONS", "OR", "ORDER",
        "ORDINALITY", "OVER", "OVERLAPS", "OVERLAY", "PARTITION", "POSITION", "PRECISION", "PRIMARY", "RANGE", "REFERENCES",
        "REPEATABLE", "RETURNING", "RETURNS", "ROLLUP", "ROW", "ROWS", "SEARCH", "SELECT", "SET", "SETOF", "SETS", "SIMILAR",
        "SOME", "SUBSTRING", "SYSTEM", "TABLE", "THEN", "TIME", "TIMESTAMP", "TO", "TREAT", "TRIM", "UNION", "UNIQUE",
        "UPDATE", "USING", "VALUES", "VARCHAR", "VARIADIC", "VARYING", "VERBOSE", "VACUUM", "ANALYZE", "ANALYSE", "WHEN",
        "WHERE", "WINDOW", "WITH", "WITHIN", "XMLATTRIBUTES", "XMLCONCAT", "XMLELEMENT", "XMLEXISTS", "XMLFOREST",
        "XMLNAMESPACES", "XMLPARSE", "XMLPI", "XMLROOT", "XMLSERIALIZE", "XMLTABLE", "JSON", "JSON_ARRAY", "JSON_ARRAYAGG",
        "JSON_OBJECT", "JSON_OBJECTAGG", "JSON_EXISTS", "JSON_QUERY", "JSON_VALUE", "JSON_TABLE", "JSON_SCALAR",
        "JSON_SERIALIZE", "MERGE_ACTION", "ZONE", "ESCAPE", "INSTEAD", "ALSO", "LANGUAGE", "ATOMIC", "BEGIN", "STDIN", "STDOUT", "PROGRAM",
    }.ToFrozenSet(StringComparer.OrdinalIgnoreCase);

    private static readonly FrozenSet<string>.AlternateLookup<ReadOnlySpan<char>> NotCallLookup = NotCalls.GetAlternateLookup<ReadOnlySpan<char>>();

    /// <summary>Words after which a <c>name(</c> can only be a call, so an unknown name there is judged UNKNOWN.</summary>
    private static readonly FrozenSet<string> CallContext = new[]
    {
        "SELECT", "WHERE", "AND", "OR", "NOT", "THEN", "ELSE", "WHEN", "CASE", "FROM", "JOIN", "LATERAL", "ON", "HAVING",
        "RETURNING", "DISTINCT", "LIMIT", "OFFSET", "USING", "DEFAULT", "BY", "CALL", "IN", "IS", "BETWEEN", "ALL", "ANY",
        "SOME", "VALUES", "LIKE", "ILIKE", "RETURN",
    }.ToFrozenSet(StringComparer.OrdinalIgnoreCase);

    private static readonly FrozenSet<string>.AlternateLookup<ReadOnlySpan<char>> CallContextLookup = CallContext.GetAlternateLookup<ReadOnlySpan<char>>();

    /// <summary>Built-in functions that run SQL they are given as text, and the argument holding it (-1: never readable).</summary>
    private static readonly FrozenDictionary<string, int> DynamicBuiltins = new Dictionary<string, int>(StringComparer.Ordinal)
    {
        ["query_to_xml"] = 0,
        ["query_to_xmlschema"] = 0,
        ["query_to_xml_and_xmlschema"] = 0,
        ["ts_stat"] = 0,
        ["cursor_to_xml"] = -1,
        ["cursor_to_xmlschema"] = -1,
        ["dblink"] = -1,
        ["dblink_exec"] = -1,
        ["dblink_open"] = -1,
        ["dblink_send_query"] = -1,
        ["dblink_fetch"] = -1,
    }.ToFrozenDictionary(StringComparer.Ordinal);

    private static readonly FrozenDictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> DynamicBuiltinLookup = DynamicBuiltins.GetAlternateLookup<ReadOnlySpan<char>>();

    /// <summary>One extraction: the effects found so far and what was already followed.</summary>
    private sealed class Collector(PgCodeSnapshot catalog, PgSessionCode? session)
    {
        private HashSet<object>? _visited;
        private bool _full;

        public List<AccessEffect>? Effects { get; private set; }

        public bool Unresolved { get; private set; }

        /// <summary>Unknown names are judged only when the catalog was read.</summary>
        private bool Strict => catalog.IsLoaded;

        private void Add(AccessEffect effect)
        {
            if (_full)
            {
                return;
            }

            Effects ??= [];
            if (Effects.Count >= MaxEffects)
            {
                Effects.Add(new AccessEffect { Action = AccessRequest.UnclassifiedAction, Via = $"more than {MaxEffects} effects" });
                _full = true;
                return;
            }

            Effects.Add(effect);
        }

        public void AddUnknown(string via, string? text) =>
            Add(new AccessEffect { Action = AccessRequest.UnclassifiedAction, Via = via, Text = text });

        private bool Visit(object key) => (_visited ??= new HashSet<object>(ReferenceEqualityComparer.Instance)).Add(key);

        /// <summary>Every statement of <paramref name="text"/>, each an effect of its own.</summary>
        private void Statements(string text, string via, int depth, bool lenient)
        {
            foreach (var statement in SqlStatementSplitter.Split(text))
            {
                Statement(statement.Text, null, via, depth, self: true, lenient);
            }
        }

        /// <summary>
        /// One statement: itself as an effect when <paramref name="self"/> (a statement inside code), then the code it
        /// runs. <paramref name="lenient"/> (a definition, not a run) leaves names the catalog does not know unjudged.
        /// </summary>
        public void Statement(string text, SqlStatementInfo? info, string? via, int depth, bool self, bool lenient)
        {
            info ??= SqlClassifier.Classify(text);
            if (self && info.Kind != SqlKinds.Empty)
            {
                Add(new AccessEffect
                {
                    Action = info.Kind,
                    ObjectKind = info.ObjectKind,
                    Resources = info.Tables,
                    HasWhere = info.HasWhere,
                    Via = via ?? "statement",
                    Text = text,
                });
            }

            if (depth > MaxDepth)
            {
                AddUnknown(Chain(via, $"code nested deeper than {MaxDepth} levels"), text);
                return;
            }

            using var t = new Tokens(text);
            if (t.Count == 0)
            {
                return;
            }

            if (t.Unterminated && via is not null)
            {
                AddUnknown(Chain(via, "a statement that does not lex (unterminated string or comment)"), text);
                return;
            }

            Run(t, info, via, depth, lenient);
        }

        private void Run(Tokens t, SqlStatementInfo info, string? via, int depth, bool lenient)
        {
            if (t.Is(0, "DO"))
            {
                DoBlock(t, via, depth);
                return;
            }

            if (t.Is(0, "CREATE"))
            {
                int k = 1;
                while (t.Is(k, "OR") || t.Is(k, "REPLACE") || t.Is(k, "CONSTRAINT"))
                {
                    k++;
                }

                if (t.Is(k, "FUNCTION") || t.Is(k, "PROCEDURE"))
                {
                    CreatedRoutine(t.Sql, via, depth);
                    return;
                }

                if (t.Is(k, "TRIGGER"))
                {
                    CreatedTrigger(t.Sql, via, depth);
                    return;
                }

                if (t.Is(k, "RULE"))
                {
                    if (Definitions.Rule(t.Sql) is { } rule)
                    {
                        RuleActions(t.Sql, Chain(via, $"rule {rule.Name} on {Qualified(rule.Schema, rule.Table)}"), depth + 1, lenient: true);
                    }

                    return;
                }
            }

            if (t.Is(0, "PREPARE"))
            {
                if (Definitions.Prepare(t.Sql) is { } prepared)
                {
                    Statement(prepared.Statement, null, Chain(via, "PREPARE " + prepared.Name), depth + 1, self: true, lenient);
                }

                return;
            }

            if (t.Is(0, "EXECUTE") && t.IsName(1))
            {
                var name = t.Name(1);
                if (session is not null && session.Prepared.TryGetValue(name, out var prepared))
                {
                    Statement(prepared, null, Chain(via, "prepared statement " + name), depth + 1, self: true, lenient);
                }
                else if (Strict && !lenient)
                {
                    AddUnknown(Chain(via, $"prepared statement {name}, which the gateway did not see prepared"), t.Sql);
                }
            }

            if (t.Is(0, "EXPLAIN") && ExplainAnalyzed(t) is int inner and > 0 && inner < t.Count)
            {
                Statement(t.Text(inner, t.Count), null, Chain(via, "EXPLAIN ANALYZE"), depth + 1, self: true, lenient);
                return;
            }

            bool definition = info.Kind is SqlKinds.Create or SqlKinds.Alter or SqlKinds.Drop or "COMMENT" or "GRANT" or "REVOKE" or "SECURITY LABEL";
            if (!definition)
            {
                Writes(t, via, depth, lenient);
            }

            Calls(t, via, depth, lenient || definition);
        }

        /// <summary>The index of the statement EXPLAIN runs when ANALYZE is on, else -1.</summary>
        private static int ExplainAnalyzed(Tokens t)
        {
            int k = 1;
            bool analyze = false;
            if (t.IsKind(k, SqlTokenKind.OpenParen))
            {
                int close = Math.Min(t.Match(k), t.Count);
                for (int j = k + 1; j < close; j = t.Next(j))
                {
                    if ((t.Is(j, "ANALYZE") || t.Is(j, "ANALYSE")) && !(t.Is(j + 1, "false") || t.Is(j + 1, "off") || (t.IsKind(j + 1, SqlTokenKind.Number) && t.Word(j + 1) is "0")))
                    {
                        analyze = true;
                    }
                }

                k = close + 1;
            }
            else
            {
                while (t.Is(k, "ANALYZE") || t.Is(k, "ANALYSE") || t.Is(k, "VERBOSE"))
                {
                    analyze |= !t.Is(k, "VERBOSE");
                    k++;
                }
            }

            return analyze ? k : -1;
        }

        // ------------------------------------------------------------ code in the statement

        private void DoBlock(Tokens t, string? via, int depth)
        {
            string? body = null;
            string language = "plpgsql";
            for (int k = 1; k < t.Count; k++)
            {
                if (t.Is(k, "LANGUAGE") && t.Value(k + 1) is { } lang)
                {
                    language = lang.ToLowerInvariant();
                    k++;
                }
                else if (t.IsKind(k, SqlTokenKind.String) || t.IsKind(k, SqlTokenKind.DollarString))
                {
                    body ??= t.Value(k);
                }
            }

            var doVia = Chain(via, "DO block");
            if (body is null)
            {
                return;
            }

            if (language != "plpgsql")
            {
                AddUnknown($"{doVia} in language {language}, which the gateway cannot read", body);
                return;
            }

            Plpgsql(PlpgsqlBody.Parse(body), doVia, depth + 1, lenient: false);
        }

        private void CreatedRoutine(string text, string? via, int depth)
        {
            var routine = Definitions.Routine(text);
            if (routine is null)
            {
                if (Strict)
                {
                    AddUnknown(Chain(via, "a function or procedure definition the gateway cannot read"), text);
                }

                return;
            }

            Routine(routine, Chain(via, routine.Display), depth + 1, lenient: true);
        }

        private void CreatedTrigger(string text, string? via, int depth)
        {
            if (Definitions.Trigger(text) is not { } trigger)
            {
                return;
            }

            var triggerVia = Chain(via, $"trigger {trigger.Name} on {Qualified(trigger.Schema, trigger.Table)}");
            ForEachRoutine(trigger.FunctionSchema, trigger.FunctionName.AsSpan(), routine => Routine(routine, Chain(triggerVia, routine.Display), depth + 1, lenient: true));
        }

        /// <summary>A rule's actions (<c>DO [ALSO|INSTEAD] {NOTHING | command | (command; …)}</c>), each an effect.</summary>
        private void RuleActions(string definition, string via, int depth, bool lenient)
        {
            using var t = new Tokens(definition);
            int k = 0;
            while (k < t.Count && !t.Is(k, "DO"))
            {
                k = t.Next(k);
            }

            k++;
            if (t.Is(k, "ALSO") || t.Is(k, "INSTEAD"))
            {
                k++;
            }

            if (k >= t.Count || t.Is(k, "NOTHING"))
            {
                return;
            }

            if (t.IsKind(k, SqlTokenKind.OpenParen))
            {
                Statements(t.Text(k + 1, Math.Min(t.Match(k), t.Count)), via, depth, lenient);
            }
            else
            {
                Statement(t.Text(k, t.Count), null, via, depth, self: true, lenient);
            }
        }

        private void Plpgsql(List<PlpgsqlItem> items, string via, int depth, bool lenient)
        {
            foreach (var item in items)
            {
                switch (item.Kind)
                {
                    case PlpgsqlItemKind.Sql:
                        Statement(item.Text, null, via, depth, self: true, lenient);
                        break;
                    case PlpgsqlItemKind.Expression:
                        Statement("SELECT " + item.Text, null, via, depth, self: false, lenient);
                        break;
                    case PlpgsqlItemKind.DynamicConstant:
                        Statements(item.Text, via, depth + 1, lenient);
                        break;
                    case PlpgsqlItemKind.DynamicComputed:
                        AddUnknown("dynamic SQL in " + via, item.Text);
                        break;
                    default:
                        AddUnknown($"{via}: {item.Text}", null);
                        break;
                }
            }
        }

        /// <summary>What a function or procedure runs (each statement of its body an effect), once per extraction.</summary>
        private void Routine(PgRoutine routine, string via, int depth, bool lenient)
        {
            if (!Visit(routine))
            {
                return;
            }

            if (depth > MaxDepth)
            {
                AddUnknown(Chain(via, $"code nested deeper than {MaxDepth} levels"), null);
                return;
            }

            switch (routine.Language)
            {
                case "sql":
                    var statements = routine.ParsedBody as string[] ?? (string[])(routine.ParsedBody = Definitions.SqlBody(routine.Body));
                    foreach (var statement in statements)
                    {
                        Statement(statement, null, via, depth, self: true, lenient);
                    }

                    break;
                case "plpgsql":
                    var items = routine.ParsedBody as List<PlpgsqlItem> ?? (List<PlpgsqlItem>)(routine.ParsedBody = PlpgsqlBody.Parse(routine.Body));
                    Plpgsql(items, via, depth, lenient);
                    break;
                case "internal" when routine.Kind == 'a':
                    // A user aggregate's own entry is a placeholder; its support functions are not followed (see the README).
                    break;
                case "c" or "internal" when routine.IsExtensionMember:
                    // Compiled code an extension installed (a superuser did): ordinary, like pg_catalog's.
                    break;
                default:
                    AddUnknown($"{via} (language {routine.Language}: the gateway cannot read it)", null);
                    break;
            }
        }

        /// <summary>Every routine named <paramref name="name"/> the session or the catalog knows, in the schema when one is given.</summary>
        private bool ForEachRoutine(string? schema, ReadOnlySpan<char> name, Action<PgRoutine> action)
        {
            bool found = false;
            var fromCatalog = catalog.Routines(name);
            if (fromCatalog is not null)
            {
                foreach (var routine in fromCatalog)
                {
                    if (SchemaMatches(schema, routine.Schema))
                    {
                        found = true;
                        action(routine);
                    }
                }
            }

            if (session?.Created.Routines(name) is { } created)
            {
                foreach (var routine in created)
                {
                    // Once the catalog shows the same definition, the session's copy adds nothing.
                    if (SchemaMatches(schema, routine.Schema)
                        && !(fromCatalog?.Exists(r => r.Language == routine.Language && string.Equals(r.Body, routine.Body, StringComparison.Ordinal)) ?? false))
                    {
                        found = true;
                        action(routine);
                    }
                }
            }

            return found;
        }

        private static bool SchemaMatches(string? wanted, string actual) =>
            wanted is null || actual.Length == 0 || string.Equals(wanted, actual, StringComparison.Ordinal);

        private static string Qualified(string schema, string name) => schema.Length == 0 ? name : schema + "." + name;

        // ------------------------------------------------------------ calls

        private void Calls(Tokens t, string? via, int depth, bool lenient)
        {
            Span<char> buffer = stackalloc char[64];
            bool copy = t.Is(0, "COPY");
            int copyQueryEnd = copy && t.IsKind(1, SqlTokenKind.OpenParen) ? t.Match(1) : -1;
            for (int i = 0; i + 1 < t.Count; i++)
            {
                if (!t.IsKind(i + 1, SqlTokenKind.OpenParen) || !t.IsName(i))
                {
                    continue;
                }

                bool quoted = t[i].Kind == SqlTokenKind.QuotedIdentifier;
                if (!quoted && NotCallLookup.Contains(t.Word(i)))
                {
                    continue;
                }

                int start = i;
                string? schema = null;
                if (t.IsKind(i - 1, SqlTokenKind.Dot) && t.IsName(i - 2))
                {
                    start = i - 2;
                    schema = t.Name(i - 2);
                    if (t.IsKind(i - 3, SqlTokenKind.Dot) && t.IsName(i - 4))
                    {
                        start = i - 4;
                    }
                }

                int before = start - 1;
                if (t.IsOperator(before, ':') && t.IsOperator(before - 1, ':'))
                {
                    continue; // x::numeric(10, 2)
                }

                if (t.Is(before, "FUNCTION") || t.Is(before, "PROCEDURE") || t.Is(before, "ROUTINE") || t.Is(before, "AGGREGATE")
                    || t.Is(before, "EXECUTE") || t.Is(before, "TRIGGER") || t.Is(before, "TABLESAMPLE"))
                {
                    continue; // a definition or reference, not a call; EXECUTE name(args) runs a prepared statement
                }

                // COPY's own parentheses (column lists, options) are not calls; only its (query) holds expressions.
                bool strong = !lenient && Strict && IsCallContext(t, before) && !t.Is(Math.Min(t.Match(i + 1), t.Count - 1) + 1, "AS")
                    && !(copy && !(i > 1 && i < copyQueryEnd));
                var name = t.FoldedName(i, buffer);
                Call(t, i, start, name, schema, strong, via, depth, lenient);
            }
        }

        private static bool IsCallContext(Tokens t, int before)
        {
            if (before < 0)
            {
                return false;
            }

            return t[before].Kind switch
            {
                SqlTokenKind.OpenParen or SqlTokenKind.Comma or SqlTokenKind.Operator => true,
                SqlTokenKind.Identifier => CallContextLookup.Contains(t.Word(before)),
                _ => false,
            };
        }

        private void Call(Tokens t, int i, int start, ReadOnlySpan<char> name, string? schema, bool strong, string? via, int depth, bool lenient)
        {
            if (DynamicBuiltinLookup.TryGetValue(name, out int argument))
            {
                var dynamicVia = Chain(via, $"dynamic SQL in {name}()");
                int open = i + 1;
                int close = Math.Min(t.Match(open), t.Count);
                if (argument == 0 && (t.IsKind(open + 1, SqlTokenKind.String) || t.IsKind(open + 1, SqlTokenKind.DollarString))
                    && (t.IsKind(open + 2, SqlTokenKind.Comma) || open + 2 == close) && t.Value(open + 1) is { } constant)
                {
                    Statements(constant, dynamicVia, depth + 1, lenient);
                }
                else
                {
                    AddUnknown(dynamicVia, t.Text(start, close + 1));
                }

                return;
            }

            if (schema is "pg_catalog" or "information_schema")
            {
                return;
            }

            // The lookups first: the closure below is only allocated for a name that is a user routine.
            bool found = (catalog.Routines(name) is not null || session?.Created.Routines(name) is not null)
                && ForEachRoutine(schema, name, routine => Routine(routine, Chain(via, routine.Display), depth + 1, lenient));
            if (found || catalog.IsBuiltin(name) || !strong)
            {
                return;
            }

            Unresolved = true;
            AddUnknown(Chain(via, $"call of {(schema is null ? "" : schema + ".")}{name}(), a function the gateway's catalog does not know"), null);
        }

        // ------------------------------------------------------------ writes

        /// <summary>Data-modifying statements inside this one (CTEs, MERGE arms), and the triggers and rules its writes fire.</summary>
        private void Writes(Tokens t, string? via, int depth, bool lenient)
        {
            for (int i = 0; i < t.Count; i++)
            {
                if (i > 0 && !t.IsKind(i - 1, SqlTokenKind.OpenParen) && !(t.IsKind(i - 1, SqlTokenKind.CloseParen) && t.Parent(i) < 0))
                {
                    continue;
                }

                if (DmlHead(t, i) is not { } kind || !TargetOf(t, i, out var schema, out var table, out var display))
                {
                    continue;
                }

                var events = kind switch
                {
                    SqlKinds.Insert => PgWriteEvents.Insert,
                    SqlKinds.Update => PgWriteEvents.Update,
                    SqlKinds.Delete => PgWriteEvents.Delete,
                    _ => PgWriteEvents.None,
                };
                if (kind == SqlKinds.Merge)
                {
                    events = MergeArms(t, i, display, via);
                }
                else if (t.Parent(i) >= 0)
                {
                    bool cte = t.Is(t.Parent(i) - 1, "AS") || t.Is(t.Parent(i) - 1, "MATERIALIZED");
                    Add(new AccessEffect
                    {
                        Action = kind,
                        Resources = [display],
                        HasWhere = kind is SqlKinds.Update or SqlKinds.Delete ? HasOwnWhere(t, i) : null,
                        Via = Chain(via, cte ? "data-modifying CTE" : "nested statement"),
                        Text = t.Text(i, t.GroupEnd(i)),
                    });
                }

                if (kind == SqlKinds.Insert && HasDoUpdate(t, i))
                {
                    events |= PgWriteEvents.Update;
                }

                Fire(schema, table, events, via, depth, lenient);
            }

            if (t.Is(0, "TRUNCATE"))
            {
                int k = t.Is(1, "TABLE") ? 2 : 1;
                while (k < t.Count)
                {
                    if (t.Is(k, "ONLY"))
                    {
                        k++;
                    }

                    if (!t.QualifiedName(k, out var schema, out var table, out int after))
                    {
                        break;
                    }

                    Fire(schema, table, PgWriteEvents.Truncate, via, depth, lenient);
                    k = t.IsOperator(after, '*') ? after + 1 : after;
                    if (!t.IsKind(k, SqlTokenKind.Comma))
                    {
                        break;
                    }

                    k++;
                }
            }

            if (t.Is(0, "COPY") && t.QualifiedName(1, out var copySchema, out var copyTable, out int copyAfter))
            {
                int k = t.IsKind(copyAfter, SqlTokenKind.OpenParen) ? t.Next(copyAfter) : copyAfter;
                if (t.Is(k, "FROM"))
                {
                    Fire(copySchema, copyTable, PgWriteEvents.Insert, via, depth, lenient);
                }
            }
        }

        /// <summary>The triggers and rules on the table that <paramref name="events"/> fire, with what they run.</summary>
        private void Fire(string? schema, string table, PgWriteEvents events, string? via, int depth, bool lenient)
        {
            if (events == PgWriteEvents.None)
            {
                return;
            }

            FireTriggers(catalog.Triggers(table), schema, events, via, depth, lenient);
            FireTriggers(session?.Created.Triggers(table), schema, events, via, depth, lenient);
            FireRules(catalog.Rules(table), schema, events, via, depth, lenient);
            FireRules(session?.Created.Rules(table), schema, events, via, depth, lenient);
        }

        private void FireTriggers(List<PgTrigger>? triggers, string? schema, PgWriteEvents events, string? via, int depth, bool lenient)
        {
            if (triggers is null)
            {
                return;
            }

            foreach (var trigger in triggers)
            {
                if ((trigger.Events & events) == 0 || !SchemaMatches(schema, trigger.Schema) || !Visit(trigger))
                {
                    continue;
                }

                var triggerVia = Chain(via, $"trigger {trigger.Name} on {Qualified(trigger.Schema, trigger.Table)}");
                if (trigger.FunctionSchema is "pg_catalog")
                {
                    continue; // a built-in trigger function (tsvector_update_trigger, suppress_redundant_updates_trigger …)
                }

                bool found = false;
                if (trigger.FunctionOid != 0 && catalog.Routine(trigger.FunctionOid) is { } byOid)
                {
                    found = true;
                    Routine(byOid, Chain(triggerVia, byOid.Display), depth + 1, lenient);
                }
                else
                {
                    found = ForEachRoutine(trigger.FunctionSchema, trigger.FunctionName.AsSpan(), routine => Routine(routine, Chain(triggerVia, routine.Display), depth + 1, lenient));
                }

                if (!found && Strict)
                {
                    AddUnknown(Chain(triggerVia, $"function {trigger.FunctionName}(), which the gateway cannot read"), null);
                }
            }
        }

        private void FireRules(List<PgRule>? rules, string? schema, PgWriteEvents events, string? via, int depth, bool lenient)
        {
            if (rules is null)
            {
                return;
            }

            foreach (var rule in rules)
            {
                if ((rule.Events & events) == 0 || !SchemaMatches(schema, rule.Schema) || !Visit(rule))
                {
                    continue;
                }

                if (depth + 1 > MaxDepth)
                {
                    AddUnknown(Chain(via, $"code nested deeper than {MaxDepth} levels"), null);
                    continue;
                }

                RuleActions(rule.Definition, Chain(via, $"rule {rule.Name} on {Qualified(rule.Schema, rule.Table)}"), depth + 1, lenient);
            }
        }

        /// <summary>
        /// Each MERGE arm as an effect: <c>THEN DELETE</c> a DELETE, <c>THEN UPDATE</c> an UPDATE, <c>THEN INSERT</c> an
        /// INSERT. A DELETE or UPDATE arm has a WHERE only when its own <c>AND</c> condition, or (for a MATCHED arm) the ON
        /// condition, restricts rows; an ON that matches everything (<c>ON true</c>, <c>ON 1 = 1</c>, <c>ON t.id = t.id</c>) does not.
        /// </summary>
        private PgWriteEvents MergeArms(Tokens t, int head, string target, string? via)
        {
            int end = t.GroupEnd(head);
            int on = head;
            while (on < end && !t.Is(on, "ON"))
            {
                on = t.Next(on);
            }

            int when = FindWord(t, on + 1, end, "WHEN");
            bool onRestricts = Restricts(t, on + 1, when, 0);
            var events = PgWriteEvents.None;
            while (when < end && t.Is(when, "WHEN"))
            {
                int next = Math.Min(FindWord(t, when + 1, end, "WHEN"), FindWord(t, when + 1, end, "RETURNING"));
                bool notMatched = t.Is(when + 1, "NOT");
                int k = notMatched ? when + 3 : when + 2;
                if (t.Is(k, "BY"))
                {
                    k += 2;
                }

                int then = FindWord(t, k, next, "THEN");
                bool armRestricts = t.Is(k, "AND") && Restricts(t, k + 1, then, 0);
                int action = then + 1;
                string? kind = t.Is(action, "UPDATE") ? SqlKinds.Update : t.Is(action, "DELETE") ? SqlKinds.Delete : t.Is(action, "INSERT") ? SqlKinds.Insert : null;
                if (kind is not null)
                {
                    Add(new AccessEffect
                    {
                        Action = kind,
                        Resources = [target],
                        HasWhere = kind == SqlKinds.Insert ? null : armRestricts || (!notMatched && onRestricts),
                        Via = Chain(via, "MERGE arm"),
                        Text = t.Text(when, next),
                    });
                    events |= kind == SqlKinds.Update ? PgWriteEvents.Update : kind == SqlKinds.Delete ? PgWriteEvents.Delete : PgWriteEvents.Insert;
                }

                when = next;
            }

            return events;
        }

        /// <summary>Index of <paramref name="word"/> at the depth of <paramref name="from"/>, outside CASE … END, or <paramref name="end"/>.</summary>
        private static int FindWord(Tokens t, int from, int end, string word)
        {
            int cases = 0;
            for (int i = from; i < end; i = t.Next(i))
            {
                if (cases == 0 && t.Is(i, word))
                {
                    return i;
                }

                if (t.Is(i, "CASE"))
                {
                    cases++;
                }
                else if (t.Is(i, "END") && cases > 0)
                {
                    cases--;
                }
            }

            return end;
        }

        /// <summary>
        /// Whether a condition restricts rows: false for constants (<c>true</c>, <c>1 = 1</c>), a column compared with
        /// itself (<c>t.id = t.id</c>), or an OR with such a branch; true when some conjunct compares real columns.
        /// </summary>
        private static bool Restricts(Tokens t, int from, int to, int nesting)
        {
            while (to - from >= 2 && t.IsKind(from, SqlTokenKind.OpenParen) && t.Match(from) == to - 1)
            {
                from++;
                to--;
            }

            if (from >= to || nesting > 16)
            {
                return false;
            }

            // OR: every branch must restrict.
            bool any = false;
            int branch = from;
            for (int i = from; i < to; i = t.Next(i))
            {
                if (t.Is(i, "OR"))
                {
                    any = true;
                    if (!Restricts(t, branch, i, nesting + 1))
                    {
                        return false;
                    }

                    branch = i + 1;
                }
            }

            if (any)
            {
                return Restricts(t, branch, to, nesting + 1);
            }

            // AND: one restricting conjunct is enough (BETWEEN x AND y stays one conjunct).
            int conjunct = from;
            bool between = false;
            bool split = false;
            for (int i = from; i < to; i = t.Next(i))
            {
                if (t.Is(i, "BETWEEN"))
                {
                    between = true;
                }
                else if (t.Is(i, "AND"))
                {
                    if (between)
                    {
                        between = false;
                        continue;
                    }

                    split = true;
                    if (Restricts(t, conjunct, i, nesting + 1))
                    {
                        return true;
                    }

                    conjunct = i + 1;
                }
            }

            if (split)
            {
                return Restricts(t, conjunct, to, nesting + 1);
            }

            return RestrictsAtom(t, from, to);
        }

        private static bool RestrictsAtom(Tokens t, int from, int to)
        {
            bool column = false;
            int equals = -1;
            int equalsCount = 0;
            for (int i = from; i < to; i++)
            {
                var kind = t[i].Kind;
                if (kind == SqlTokenKind.QuotedIdentifier
                    || (kind == SqlTokenKind.Identifier && !t.IsKind(i + 1, SqlTokenKind.OpenParen)
                        && !(t.Is(i, "TRUE") || t.Is(i, "FALSE") || t.Is(i, "NULL") || t.Is(i, "NOT") || t.Is(i, "IS") || t.Is(i, "DISTINCT")
                            || t.Is(i, "FROM") || t.Is(i, "UNKNOWN"))))
                {
                    column = true;
                }

                if (t.IsOperator(i, '=') && !t.IsOperator(i - 1, '<') && !t.IsOperator(i - 1, '>') && !t.IsOperator(i - 1, '!') && !t.IsOperator(i + 1, '>'))
                {
                    equals = i;
                    equalsCount++;
                }
            }

            if (!column)
            {
                return false;
            }

            if (equalsCount == 1 && equals - from == to - equals - 1)
            {
                // a = a: the same text on both sides matches every row (NULLs aside).
                bool same = true;
                for (int k = 0; k < equals - from && same; k++)
                {
                    same = t[from + k].Kind == t[equals + 1 + k].Kind && t.Word(from + k).Equals(t.Word(equals + 1 + k), StringComparison.OrdinalIgnoreCase);
                }

                return !same;
            }

            return true;
        }

        /// <summary>
        /// The DML kind when token <paramref name="i"/> starts a data-modifying statement: DELETE FROM, INSERT INTO,
        /// MERGE INTO, or UPDATE [ONLY] name [*] [[AS] alias] SET (as <see cref="SqlClassifier"/> reads it).
        /// </summary>
        private static string? DmlHead(Tokens t, int i)
        {
            if (t.Is(i, "DELETE"))
            {
                return t.Is(i + 1, "FROM") ? SqlKinds.Delete : null;
            }

            if (t.Is(i, "INSERT"))
            {
                return t.Is(i + 1, "INTO") ? SqlKinds.Insert : null;
            }

            if (t.Is(i, "MERGE"))
            {
                return t.Is(i + 1, "INTO") ? SqlKinds.Merge : null;
            }

            if (!t.Is(i, "UPDATE"))
            {
                return null;
            }

            int j = i + 1;
            if (t.Is(j, "ONLY"))
            {
                j++;
            }

            if (!t.QualifiedName(j, out _, out _, out j))
            {
                return null;
            }

            if (t.IsOperator(j, '*'))
            {
                j++;
            }

            if (t.Is(j, "SET"))
            {
                return SqlKinds.Update;
            }

            if (t.Is(j, "AS"))
            {
                j++;
            }

            return t.IsName(j) && t.Is(j + 1, "SET") ? SqlKinds.Update : null;
        }

        /// <summary>The table a DML statement at <paramref name="head"/> writes.</summary>
        private static bool TargetOf(Tokens t, int head, out string? schema, out string table, out string display)
        {
            int k = t.Is(head, "UPDATE") ? head + 1 : head + 2;
            if (t.Is(k, "ONLY"))
            {
                k++;
            }

            if (!t.QualifiedName(k, out schema, out table, out _))
            {
                display = string.Empty;
                return false;
            }

            display = schema is null ? table : schema + "." + table;
            return true;
        }

        private static bool HasOwnWhere(Tokens t, int head)
        {
            int end = t.GroupEnd(head);
            for (int i = head; i < end; i = t.Next(i))
            {
                if (t.Is(i, "WHERE"))
                {
                    return true;
                }
            }

            return false;
        }

        private static bool HasDoUpdate(Tokens t, int head)
        {
            int end = t.GroupEnd(head);
            for (int i = head; i < end; i = t.Next(i))
            {
                if (t.Is(i, "DO") && t.Is(i + 1, "UPDATE"))
                {
                    return true;
                }
            }

            return false;
        }
    }
}
