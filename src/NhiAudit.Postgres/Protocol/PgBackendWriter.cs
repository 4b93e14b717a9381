using System.Buffers;
using System.Buffers.Binary;

namespace NhiAudit.Postgres.Protocol;

/// <summary>
/// Writes server ("backend") messages that the gateway itself originates towards clients:
/// its own authentication exchange, errors and notices for denied or held statements, and the
/// session parameters it replays. Each method returns the number of bytes written.
/// </summary>
internal static class PgBackendWriter
{
    /// <summary>Writes an ErrorResponse ('E').</summary>
    /// <param name="writer">Destination.</param>
    /// <param name="severity">ERROR, FATAL or PANIC; written as both S and V (we do not localize).</param>
    /// <param name="sqlState">Five-character SQLSTATE, see <see cref="PgSqlState"/>.</param>
    /// <param name="message">Primary message (M).</param>
    /// <param name="detail">Optional detail (D).</param>
    /// <param name="hint">Optional hint (H).</param>
    public static int WriteErrorResponse(IBufferWriter<byte> writer, string severity, string sqlState, string message, string? detail = null, string? hint = null) =>
        WriteErrorOrNotice(writer, (byte)PgBackendMessageCode.ErrorResponse, severity, sqlState, message, detail, hint);

    /// <summary>Writes a NoticeResponse ('N').</summary>
    /// <param name="writer">Destination.</param>
    /// <param name="severity">WARNING, NOTICE, DEBUG, INFO or LOG.</param>
    /// <param name="sqlState">Five-character SQLSTATE (01000 for a plain warning, 00000 for a notice).</param>
    /// <param name="message">Primary message (M).</param>
    /// <param name="detail">Optional detail (D).</param>
    /// <param name="hint">Optional hint (H).</param>
    public static int WriteNoticeResponse(IBufferWriter<byte> writer, string severity, string sqlState, string message, string? detail = null, string? hint = null) =>
        WriteErrorOrNotice(writer, (byte)PgBackendMessageCode.NoticeResponse, severity, sqlState, message, detail, hint);

    /// <summary>Writes AuthenticationOk.</summary>
    public static int WriteAuthenticationOk(IBufferWriter<byte> writer) =>
        WriteAuthentication(writer, PgAuthenticationCode.Ok, []);

    /// <summary>Writes AuthenticationCleartextPassword: the gateway asks the workload for its token as the password.</summary>
    public static int WriteAuthenticationCleartextPassword(IBufferWriter<byte> writer) =>
        WriteAuthentication(writer, PgAuthenticationCode.CleartextPassword, []);

    /// <summary>Writes AuthenticationMD5Password with a 4-byte salt.</summary>
    public static int WriteAuthenticationMd5Password(IBufferWriter<byte> writer, ReadOnlySpan<byte> salt)
    {
        if (salt.Length != 4)
        {
            throw new ArgumentException("The MD5 salt is exactly 4 bytes.", nameof(salt));
        }

        return WriteAuthentication(writer, PgAuthenticationCode.Md5Password, salt);
    }

    /// <summary>Writes AuthenticationSASL listing the offered mechanisms.</summary>
    public static int WriteAuthenticationSasl(IBufferWriter<byte> writer, IReadOnlyList<string> mechanisms)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(mechanisms);
        int body = 4 + 1;
        for (int i = 0; i < mechanisms.Count; i++)
        {
            ArgumentException.ThrowIfNullOrEmpty(mechanisms[i], nameof(mechanisms));
            body += PgWire.CStringLength(mechanisms[i]);
        }

        int total = PgWire.HeaderLength + body;
        Span<byte> span = writer.GetSpan(total);
        PgWire.WriteHeader(span, (byte)PgBackendMessageCode.AuthenticationRequest, body);
        BinaryPrimitives.WriteInt32BigEndian(span[5..], (int)PgAuthenticationCode.Sasl);
        int offset = 9;
        for (int i = 0; i < mechanisms.Count; i++)
        {
            offset += PgWire.WriteCString(span[offset..], mechanisms[i], nameof(mechanisms));
        }

        span[offset] = 0;
        writer.Advance(total);
        return total;
    }

    /// <summary>Writes AuthenticationSASLContinue carrying a server-first-message.</summary>
    public static int WriteAuthenticationSaslContinue(IBufferWriter<byte> writer, ReadOnlySpan<byte> data) =>
        WriteAuthentication(writer, PgAuthenticationCode.SaslContinue, data);

    /// <summary>Writes AuthenticationSASLFinal carrying a server-final-message.</summary>
    public static int WriteAuthenticationSaslFinal(IBufferWriter<byte> writer, ReadOnlySpan<byte> data) =>
        WriteAuthentication(writer, PgAuthenticationCode.SaslFinal, data);

    /// <summary>Writes ParameterStatus ('S').</summary>
    public static int WriteParameterStatus(IBufferWriter<byte> writer, string name, string value)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(value);
        int body = PgWire.CStringLength(name) + PgWire.CStringLength(value);
        int total = PgWire.HeaderLength + body;
        Span<byte> span = writer.GetSpan(total);
        PgWire.WriteHeader(span, (byte)PgBackendMessageCode.ParameterStatus, body);
        int offset = PgWire.HeaderLength + PgWire.WriteCString(span[PgWire.HeaderLength..], name, nameof(name));
        PgWire.WriteCString(span[offset..], value, nameof(value));
        writer.Advance(total);
        return total;
    }

    /// <summary>Writes BackendKeyData ('K'); the key is 4 bytes in protocol 3.0, up to 256 in 3.2.</summary>
    public static int WriteBackendKeyData(IBufferWriter<byte> writer, int processId, ReadOnlySpan<byte> secretKey)
    {
        ArgumentNullException.ThrowIfNull(writer);
        if (secretKey.Length > PgStartupCodes.MaxCancelKeyLength)
        {
            throw new ArgumentException("The cancel key is at most 256 bytes.", nameof(secretKey));
        }

        int body = 4 + secretKey.Length;
        int total = PgWire.HeaderLength + body;
        Span<byte> span = writer.GetSpan(total);
        PgWire.WriteHeader(span, (byte)PgBackendMessageCode.BackendKeyData, body);
        BinaryPrimitives.WriteInt32BigEndian(span[5..], processId);
        secretKey.CopyTo(span[9..]);
        writer.Advance(total);
        return total;
    }

    /// <summary>Writes ReadyForQuery ('Z') with the transaction status.</summary>
    public static int WriteReadyForQuery(IBufferWriter<byte> writer, PgTransactionStatus status)
    {
        ArgumentNullException.ThrowIfNull(writer);
        Span<byte> span = writer.GetSpan(6);
        PgWire.WriteHeader(span, (byte)PgBackendMessageCode.ReadyForQuery, 1);
        span[5] = (byte)status;
        writer.Advance(6);
        return 6;
    }

    /// <summary>Writes CommandComplete ('C') with a command tag such as "SELECT 1".</summary>
    public static int WriteCommandComplete(IBufferWriter<byte> writer, string tag) =>
        PgWire.WriteSingleString(writer, (byte)PgBackendMessageCode.CommandComplete, tag, nameof(tag));

    /// <summary>Writes EmptyQueryResponse ('I'), the answer to a Query that held only comments or whitespace.</summary>
    public static int WriteEmptyQueryResponse(IBufferWriter<byte> writer) =>
        PgWire.WriteEmpty(writer, (byte)PgBackendMessageCode.EmptyQueryResponse);

    /// <summary>
    /// Writes NegotiateProtocolVersion ('v'): the newest minor version we support and the
    /// <c>_pq_.</c> options we did not recognise, as PostgreSQL does for a newer 3.x request.
    /// </summary>
    public static int WriteNegotiateProtocolVersion(IBufferWriter<byte> writer, int newestMinorVersion, IReadOnlyList<string> unrecognizedOptions)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(unrecognizedOptions);
        int body = 8;
        for (int i = 0; i < unrecognizedOptions.Count; i++)
        {
            body += PgWire.CStringLength(unrecognizedOptions[i]);
        }

        int total = PgWire.HeaderLength + body;
        Span<byte> span = writer.GetSpan(total);
        PgWire.WriteHeader(span, (byte)PgBackendMessageCode.NegotiateProtocolVersion, body);
        BinaryPrimitives.WriteInt32BigEndian(span[5..], (3 << 16) | newestMinorVersion);
        BinaryPrimitives.WriteInt32BigEndian(span[9..], unrecognizedOptions.Count);
        int offset = 13;
        for (int i = 0; i < unrecognizedOptions.Count; i++)
        {
            offset += PgWire.WriteCString(span[offset..], unrecognizedOptions[i], nameof(unrecognizedOptions));
        }

        writer.Advance(total);
        return total;
    }

    private static int WriteAuthentication(IBufferWriter<byte> writer, PgAuthenticationCode code, ReadOnlySpan<byte> data)
    {
        ArgumentNullException.ThrowIfNull(writer);
        int body = 4 + data.Length;
        int total = PgWire.HeaderLength + body;
        Span<byte> span = writer.GetSpan(total);
        PgWire.WriteHeader(span, (byte)PgBackendMessageCode.AuthenticationRequest, body);
        BinaryPrimitives.WriteInt32BigEndian(span[5..], (int)code);
        data.CopyTo(span[9..]);
        writer.Advance(total);
        return total;
    }

    private static int WriteErrorOrNotice(IBufferWriter<byte> writer, byte type, string severity, string sqlState, string message, string? detail, string? hint)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentException.ThrowIfNullOrEmpty(severity);
        ArgumentNullException.ThrowIfNull(message);
        if (sqlState is null || sqlState.Length != 5)
        {
            throw new ArgumentException("A SQLSTATE is exactly five characters.", nameof(sqlState));
        }

        // Error text may quote user input; a NUL would cut the field and desynchronize the client,
        // and failing to send the error at all would be worse, so replace rather than throw.
        message = Sanitize(message);
        detail = detail is null ? null : Sanitize(detail);
        hint = hint is null ? null : Sanitize(hint);
        severity = Sanitize(severity);

        int body = 1 // final field terminator
            + (2 * (1 + PgWire.CStringLength(severity))) // S and V
            + 1 + PgWire.CStringLength(sqlState)
            + 1 + PgWire.CStringLength(message)
            + (detail is null ? 0 : 1 + PgWire.CStringLength(detail))
            + (hint is null ? 0 : 1 + PgWire.CStringLength(hint));
        int total = PgWire.HeaderLength + body;
        Span<byte> span = writer.GetSpan(total);
        PgWire.WriteHeader(span, type, body);
        int offset = PgWire.HeaderLength;
        offset += WriteField(span[offset..], (byte)'S', severity);
        offset += WriteField(span[offset..], (byte)'V', severity);
        offset += WriteField(span[offset..], (byte)'C', sqlState);
        offset += WriteField(span[offset..], (byte)'M', message);
        if (detail is not null)
        {
            offset += WriteField(span[offset..], (byte)'D', detail);
        }

        if (hint is not null)
        {
            offset += WriteField(span[offset..], (byte)'H', hint);
        }

        span[offset] = 0;
        writer.Advance(total);
        return total;
    }

    private static int WriteField(Span<byte> span, byte code, string value)
    {
        span[0] = code;
        return 1 + PgWire.WriteCString(span[1..], value, nameof(value));
    }

    private static string Sanitize(string value) =>
        value.Contains('\0', StringComparison.Ordinal) ? value.Replace('\0', '\uFFFD') : value;
}
