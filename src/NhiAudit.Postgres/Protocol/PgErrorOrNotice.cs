namespace NhiAudit.Postgres.Protocol;

/// <summary>
/// The fields of an ErrorResponse or NoticeResponse from the server, for the audit record and logs.
/// Layout: <c>(Byte1 field-code, String value)* Byte1 0</c>; unknown field codes are skipped as the
/// protocol requires (new ones may be added).
/// </summary>
/// <param name="Severity">Non-localized severity (V) when sent (PostgreSQL 9.6+), otherwise S; e.g. ERROR, FATAL, WARNING.</param>
/// <param name="SqlState">SQLSTATE (C), empty when absent.</param>
/// <param name="Message">Primary message (M), empty when absent.</param>
/// <param name="Detail">Detail (D), if any.</param>
/// <param name="Hint">Hint (H), if any.</param>
/// <param name="Position">Cursor position into the query string (P), if any.</param>
/// <param name="Where">Context / call stack (W), if any.</param>
internal sealed record PgErrorOrNotice(
    string Severity,
    string SqlState,
    string Message,
    string? Detail,
    string? Hint,
    string? Position,
    string? Where)
{
    /// <summary>Parses the body of an 'E' or 'N' message.</summary>
    /// <exception cref="PgProtocolException">A field is not NUL-terminated, the terminator is missing, or bytes trail it.</exception>
    public static PgErrorOrNotice Parse(ReadOnlySpan<byte> payload)
    {
        var reader = new PgPayloadReader(payload, "ErrorResponse");
        string? severity = null, localizedSeverity = null, sqlState = null, message = null;
        string? detail = null, hint = null, position = null, where = null;
        while (true)
        {
            byte code = reader.ReadByte();
            if (code == 0)
            {
                break;
            }

            ReadOnlySpan<byte> value = reader.ReadCString();
            switch ((char)code)
            {
                case 'V': severity = PgText.DecodeText(value); break;
                case 'S': localizedSeverity = PgText.DecodeText(value); break;
                case 'C': sqlState = PgText.DecodeText(value); break;
                case 'M': message = PgText.DecodeText(value); break;
                case 'D': detail = PgText.DecodeText(value); break;
                case 'H': hint = PgText.DecodeText(value); break;
                case 'P': position = PgText.DecodeText(value); break;
                case 'W': where = PgText.DecodeText(value); break;
                default: break;
            }
        }

        reader.EnsureEnd();
        return new PgErrorOrNotice(severity ?? localizedSeverity ?? string.Empty, sqlState ?? string.Empty, message ?? string.Empty, detail, hint, position, where);
    }
}
