using System.Text.Json;

namespace NhiAudit.Audit;

/// <summary>Reads the chain fields of one log line and checks the line is a single JSON object.</summary>
internal static class AuditLineParser
{
    /// <summary>
    /// Parses <paramref name="line"/> (without its newline). Succeeds when it is one JSON object whose first fields
    /// are <c>seq</c> (a positive integer) and <c>prev</c> (64 lowercase hex digits).
    /// </summary>
    /// <param name="line">The line's bytes without the trailing newline.</param>
    /// <param name="sequence">The <c>seq</c> field when it could be read, even if the rest of the line is broken.</param>
    /// <param name="prev">Receives the 32 bytes of <c>prev</c>.</param>
    /// <param name="error">Why the line is not a record.</param>
    public static bool TryParse(ReadOnlySpan<byte> line, out long? sequence, Span<byte> prev, out string? error)
    {
        sequence = null;
        var reader = new Utf8JsonReader(line, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow, MaxDepth = 64 });
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                error = "not a JSON object";
                return false;
            }

            if (!reader.Read() || reader.TokenType != JsonTokenType.PropertyName || !reader.ValueTextEquals("seq"u8))
            {
                error = "the first field is not seq";
                return false;
            }

            if (!reader.Read() || reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out var seq) || seq < 1)
            {
                error = "seq is not a positive integer";
                return false;
            }

            sequence = seq;
            if (!reader.Read() || reader.TokenType != JsonTokenType.PropertyName || !reader.ValueTextEquals("prev"u8))
            {
                error = "the second field is not prev";
                return false;
            }

            if (!reader.Read() || reader.TokenType != JsonTokenType.String || reader.ValueIsEscaped
                || !AuditHex.TryDecodeLower(reader.ValueSpan, prev))
            {
                error = "prev is not 64 lowercase hex digits";
                return false;
            }

            // Walk the rest so a line cut or spliced in the middle is caught here, not as a chain mismatch later.
            while (reader.Read())
            {
            }

            if (reader.CurrentDepth != 0 || reader.TokenType != JsonTokenType.EndObject)
            {
                error = "the JSON object is incomplete";
                return false;
            }
        }
        catch (JsonException ex)
        {
            error = "not valid JSON: " + ex.Message;
            return false;
        }

        error = null;
        return true;
    }
}
