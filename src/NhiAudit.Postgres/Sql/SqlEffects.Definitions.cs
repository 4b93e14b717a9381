using NhiAudit.Postgres.Catalog;

namespace NhiAudit.Postgres.Sql;

internal static partial class SqlEffects
{
    /// <summary>Reads the definitions of code out of CREATE FUNCTION/PROCEDURE/TRIGGER/RULE and PREPARE statements.</summary>
    internal static class Definitions
    {
        /// <summary>Index after <c>CREATE [OR REPLACE] [CONSTRAINT]</c>.</summary>
        private static int AfterCreate(Tokens t)
        {
            int k = 1;
            while (t.Is(k, "OR") || t.Is(k, "REPLACE") || t.Is(k, "CONSTRAINT"))
            {
                k++;
            }

            return k;
        }

        /// <summary>
        /// <c>CREATE [OR REPLACE] {FUNCTION|PROCEDURE} name (args) … {AS 'body' | RETURN expr | BEGIN ATOMIC … END}</c>
        /// with its LANGUAGE (sql when the body is SQL-standard); null when it is not one.
        /// </summary>
        public static PgRoutine? Routine(string text)
        {
            using var t = new Tokens(text);
            if (!t.Is(0, "CREATE"))
            {
                return null;
            }

            int k = AfterCreate(t);
            char kind = t.Is(k, "PROCEDURE") ? 'p' : t.Is(k, "FUNCTION") ? 'f' : '\0';
            if (kind == '\0' || !t.QualifiedName(k + 1, out var schema, out var name, out int after) || !t.IsKind(after, SqlTokenKind.OpenParen))
            {
                return null;
            }

            string? language = null;
            string? body = null;
            for (int j = t.Next(after); j < t.Count; j = t.Next(j))
            {
                if (t.Is(j, "LANGUAGE") && t.Value(j + 1) is { } lang)
                {
                    language = lang.ToLowerInvariant();
                }
                else if (t.Is(j, "AS") && t.IsKind(j + 1, SqlTokenKind.String) || t.Is(j, "AS") && t.IsKind(j + 1, SqlTokenKind.DollarString))
                {
                    body ??= t.Value(j + 1);
                }
                else if (t.Is(j, "RETURN") || (t.Is(j, "BEGIN") && t.Is(j + 1, "ATOMIC")))
                {
                    body = t.Text(j, t.Count);
                    language ??= "sql";
                    break;
                }
            }

            return body is null
                ? null
                : new PgRoutine { Schema = schema ?? "", Name = name, Kind = kind, Language = language ?? "sql", Body = body, CreatedInSession = true };
        }

        /// <summary><c>CREATE [OR REPLACE] [CONSTRAINT] TRIGGER name {BEFORE|AFTER|INSTEAD OF} events ON table … EXECUTE {FUNCTION|PROCEDURE} f(args)</c>.</summary>
        public static PgTrigger? Trigger(string text)
        {
            using var t = new Tokens(text);
            if (!t.Is(0, "CREATE"))
            {
                return null;
            }

            int k = AfterCreate(t);
            if (!t.Is(k, "TRIGGER") || !t.IsName(k + 1))
            {
                return null;
            }

            string name = t.Name(k + 1);
            var events = PgWriteEvents.None;
            int j = k + 2;
            for (; j < t.Count && !t.Is(j, "ON"); j = t.Next(j))
            {
                events |= Event(t, j);
            }

            if (!t.QualifiedName(j + 1, out var schema, out var table, out int after))
            {
                return null;
            }

            for (j = after; j < t.Count; j = t.Next(j))
            {
                if (t.Is(j, "EXECUTE") && (t.Is(j + 1, "FUNCTION") || t.Is(j + 1, "PROCEDURE"))
                    && t.QualifiedName(j + 2, out var functionSchema, out var function, out _))
                {
                    return new PgTrigger(name, schema ?? "", table, events, functionSchema, function, 0);
                }
            }

            return null;
        }

        /// <summary><c>CREATE [OR REPLACE] RULE name AS ON event TO table [WHERE …] DO [ALSO|INSTEAD] actions</c>.</summary>
        public static PgRule? Rule(string text)
        {
            using var t = new Tokens(text);
            if (!t.Is(0, "CREATE"))
            {
                return null;
            }

            int k = AfterCreate(t);
            if (!t.Is(k, "RULE") || !t.IsName(k + 1) || !t.Is(k + 2, "AS") || !t.Is(k + 3, "ON") || !t.Is(k + 5, "TO"))
            {
                return null;
            }

            var events = Event(t, k + 4);
            return t.QualifiedName(k + 6, out var schema, out var table, out _)
                ? new PgRule(t.Name(k + 1), schema ?? "", table, events, text)
                : null;
        }

        /// <summary><c>PREPARE name [(types)] AS statement</c>.</summary>
        public static (string Name, string Statement)? Prepare(string text)
        {
            using var t = new Tokens(text);
            if (!t.Is(0, "PREPARE") || !t.IsName(1))
            {
                return null;
            }

            int k = t.IsKind(2, SqlTokenKind.OpenParen) ? t.Next(2) : 2;
            return t.Is(k, "AS") && k + 1 < t.Count ? (t.Name(1), t.Text(k + 1, t.Count)) : null;
        }

        private static PgWriteEvents Event(Tokens t, int i) =>
            t.Is(i, "INSERT") ? PgWriteEvents.Insert
            : t.Is(i, "UPDATE") ? PgWriteEvents.Update
            : t.Is(i, "DELETE") ? PgWriteEvents.Delete
            : t.Is(i, "TRUNCATE") ? PgWriteEvents.Truncate
            : PgWriteEvents.None;

        /// <summary>The statements of a SQL-language body: <c>BEGIN ATOMIC s; s; END</c>, <c>RETURN expr</c> (a SELECT), or prosrc text.</summary>
        public static string[] SqlBody(string body)
        {
            // Lexed whole: a BEGIN ATOMIC body holds semicolons of its own.
            var lexer = new SqlLexer(body);
            SqlToken first = default, second = default, last = default;
            int count = 0;
            while (lexer.TryRead(out var token))
            {
                if (token.IsComment)
                {
                    continue;
                }

                if (count == 0)
                {
                    first = token;
                }
                else if (count == 1)
                {
                    second = token;
                }

                last = token;
                count++;
            }

            bool Is(in SqlToken token, string word) =>
                token.Kind == SqlTokenKind.Identifier && body.AsSpan(token.Start, token.Length).Equals(word, StringComparison.OrdinalIgnoreCase);

            if (count >= 2 && Is(first, "BEGIN") && Is(second, "ATOMIC"))
            {
                int end = count > 2 && Is(last, "END") ? last.Start : body.Length;
                return [.. SqlStatementSplitter.Split(body[second.End..Math.Max(second.End, end)]).Select(s => s.Text)];
            }

            if (count >= 1 && Is(first, "RETURN"))
            {
                return ["SELECT " + body[first.End..]];
            }

            return [.. SqlStatementSplitter.Split(body).Select(s => s.Text)];
        }
    }
}
