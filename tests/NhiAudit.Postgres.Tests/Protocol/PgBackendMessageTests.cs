using System.Buffers;
using System.Text;
using NhiAudit.Postgres.Protocol;

namespace NhiAudit.Postgres.Tests.Protocol;

/// <summary>Every backend writer round-trips through its parser, and parsers read hand-built server messages.</summary>
public class PgBackendMessageTests
{
    [Fact]
    public void ErrorResponse_round_trips()
    {
        byte[] message = PgTestMessages.Written(w => PgBackendWriter.WriteErrorResponse(w, "FATAL", "08P01", "bad message", "detail here", "try again"));
        var parsed = PgErrorOrNotice.Parse(PgTestMessages.Body(message, 'E'));
        Assert.Equal(new PgErrorOrNotice("FATAL", "08P01", "bad message", "detail here", "try again", null, null), parsed);
    }

    [Fact]
    public void NoticeResponse_round_trips_without_optional_fields()
    {
        byte[] message = PgTestMessages.Written(w => PgBackendWriter.WriteNoticeResponse(w, "WARNING", "01000", "held for approval"));
        var parsed = PgErrorOrNotice.Parse(PgTestMessages.Body(message, 'N'));
        Assert.Equal("WARNING", parsed.Severity);
        Assert.Equal("01000", parsed.SqlState);
        Assert.Equal("held for approval", parsed.Message);
        Assert.Null(parsed.Detail);
        Assert.Null(parsed.Hint);
    }

    [Fact]
    public void Error_writer_replaces_nul_and_validates_sqlstate()
    {
        byte[] message = PgTestMessages.Written(w => PgBackendWriter.WriteErrorResponse(w, "ERROR", "42501", "a\0b"));
        Assert.Equal("a\uFFFDb", PgErrorOrNotice.Parse(PgTestMessages.Body(message, 'E')).Message);
        Assert.Throws<ArgumentException>(() => PgBackendWriter.WriteErrorResponse(new ArrayBufferWriter<byte>(), "ERROR", "4250", "x"));
    }

    [Fact]
    public void ErrorResponse_from_a_real_server_prefers_the_unlocalized_severity()
    {
        // As PostgreSQL 16 sends it with lc_messages=de: S is localized, V is not; unknown fields are skipped.
        byte[] body = new PgTestMessages()
            .Byte((byte)'S').CString("FEHLER").Byte((byte)'V').CString("ERROR").Byte((byte)'C').CString("42P01")
            .Byte((byte)'M').CString("relation \"nope\" does not exist").Byte((byte)'P').CString("15")
            .Byte((byte)'F').CString("parse_relation.c").Byte((byte)'L').CString("1449").Byte((byte)'R').CString("parserOpenTable")
            .Byte(0).ToArray();
        var parsed = PgErrorOrNotice.Parse(body);
        Assert.Equal("ERROR", parsed.Severity);
        Assert.Equal("42P01", parsed.SqlState);
        Assert.Equal("15", parsed.Position);
    }

    [Theory]
    [InlineData(new byte[] { })]
    [InlineData(new byte[] { (byte)'M', (byte)'x' })]
    [InlineData(new byte[] { (byte)'M', (byte)'x', 0 })]
    [InlineData(new byte[] { (byte)'M', (byte)'x', 0, 0, 1 })]
    public void Malformed_error_responses_throw_protocol_exception(byte[] body)
    {
        Assert.Throws<PgProtocolException>(() => PgErrorOrNotice.Parse(body));
    }

    [Fact]
    public void Authentication_requests_round_trip()
    {
        var ok = PgAuthenticationRequest.Parse(PgTestMessages.Body(PgTestMessages.Written(PgBackendWriter.WriteAuthenticationOk), 'R'));
        Assert.Equal(PgAuthenticationCode.Ok, ok.Code);

        var clear = PgAuthenticationRequest.Parse(PgTestMessages.Body(PgTestMessages.Written(PgBackendWriter.WriteAuthenticationCleartextPassword), 'R'));
        Assert.Equal(PgAuthenticationCode.CleartextPassword, clear.Code);

        byte[] md5Body = PgTestMessages.Body(PgTestMessages.Written(w => PgBackendWriter.WriteAuthenticationMd5Password(w, [1, 2, 3, 4])), 'R');
        var md5 = PgAuthenticationRequest.Parse(md5Body);
        Assert.Equal(PgAuthenticationCode.Md5Password, md5.Code);
        Assert.Equal(new byte[] { 1, 2, 3, 4 }, md5.Md5Salt.ToArray());

        byte[] saslBody = PgTestMessages.Body(PgTestMessages.Written(w => PgBackendWriter.WriteAuthenticationSasl(w, ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"])), 'R');
        var sasl = PgAuthenticationRequest.Parse(saslBody);
        Assert.Equal(PgAuthenticationCode.Sasl, sasl.Code);
        Assert.Equal(["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"], sasl.GetSaslMechanisms());

        byte[] continueBody = PgTestMessages.Body(PgTestMessages.Written(w => PgBackendWriter.WriteAuthenticationSaslContinue(w, "r=abc,s=c2FsdA==,i=4096"u8)), 'R');
        var cont = PgAuthenticationRequest.Parse(continueBody);
        Assert.Equal(PgAuthenticationCode.SaslContinue, cont.Code);
        Assert.Equal("r=abc,s=c2FsdA==,i=4096", cont.GetSaslDataString());

        byte[] finalBody = PgTestMessages.Body(PgTestMessages.Written(w => PgBackendWriter.WriteAuthenticationSaslFinal(w, "v=xyz"u8)), 'R');
        Assert.Equal(PgAuthenticationCode.SaslFinal, PgAuthenticationRequest.Parse(finalBody).Code);
        Assert.Equal("v=xyz", PgAuthenticationRequest.Parse(finalBody).GetSaslDataString());
    }

    [Theory]
    [InlineData(new byte[] { 0, 0, 0 })]
    [InlineData(new byte[] { 0, 0, 0, 0, 1 })]
    [InlineData(new byte[] { 0, 0, 0, 5, 1, 2, 3 })]
    [InlineData(new byte[] { 0, 0, 0, 5, 1, 2, 3, 4, 5 })]
    [InlineData(new byte[] { 0, 0, 0, 10, (byte)'S', 0 })]
    [InlineData(new byte[] { 0, 0, 0, 10, (byte)'S' })]
    [InlineData(new byte[] { 0, 0, 0, 99 })]
    public void Malformed_authentication_requests_throw(byte[] body)
    {
        Assert.Throws<PgProtocolException>(() => PgAuthenticationRequest.Parse(body));
    }

    [Fact]
    public void ParameterStatus_round_trips()
    {
        byte[] body = PgTestMessages.Body(PgTestMessages.Written(w => PgBackendWriter.WriteParameterStatus(w, "standard_conforming_strings", "on")), 'S');
        Assert.Equal(new PgParameterStatus("standard_conforming_strings", "on"), PgParameterStatus.Parse(body));
        Assert.Throws<PgProtocolException>(() => PgParameterStatus.Parse("name\0value"u8));
        Assert.Throws<PgProtocolException>(() => PgParameterStatus.Parse("name\0value\0x"u8));
    }

    [Fact]
    public void BackendKeyData_round_trips_with_short_and_long_keys()
    {
        byte[] body = PgTestMessages.Body(PgTestMessages.Written(w => PgBackendWriter.WriteBackendKeyData(w, 1234, [9, 8, 7, 6])), 'K');
        var key = PgBackendKeyData.Parse(body);
        Assert.Equal(1234, key.ProcessId);
        Assert.Equal(new byte[] { 9, 8, 7, 6 }, key.SecretKey.ToArray());

        byte[] longKey = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();
        var parsed = PgBackendKeyData.Parse(PgTestMessages.Body(PgTestMessages.Written(w => PgBackendWriter.WriteBackendKeyData(w, -5, longKey)), 'K'));
        Assert.Equal(-5, parsed.ProcessId);
        Assert.Equal(longKey, parsed.SecretKey.ToArray());

        Assert.Throws<PgProtocolException>(() => PgBackendKeyData.Parse([1, 2, 3]));
        Assert.Throws<PgProtocolException>(() => PgBackendKeyData.Parse(new byte[4 + 257]));
    }

    [Theory]
    [InlineData('I')]
    [InlineData('T')]
    [InlineData('E')]
    public void ReadyForQuery_round_trips(char code)
    {
        var status = (PgTransactionStatus)code;
        byte[] body = PgTestMessages.Body(PgTestMessages.Written(w => PgBackendWriter.WriteReadyForQuery(w, status)), 'Z');
        Assert.Equal(status, PgReadyForQuery.Parse(body));
    }

    [Fact]
    public void ReadyForQuery_rejects_unknown_status_and_length()
    {
        Assert.Throws<PgProtocolException>(() => PgReadyForQuery.Parse("X"u8));
        Assert.Throws<PgProtocolException>(() => PgReadyForQuery.Parse("II"u8));
        Assert.Throws<PgProtocolException>(() => PgReadyForQuery.Parse([]));
    }

    [Theory]
    [InlineData("SELECT 5", "SELECT", 5L)]
    [InlineData("INSERT 0 3", "INSERT", 3L)]
    [InlineData("UPDATE 2", "UPDATE", 2L)]
    [InlineData("DELETE 1", "DELETE", 1L)]
    [InlineData("COPY 10", "COPY", 10L)]
    [InlineData("MOVE 0", "MOVE", 0L)]
    [InlineData("FETCH 7", "FETCH", 7L)]
    [InlineData("MERGE 4", "MERGE", 4L)]
    [InlineData("SELECT 9223372036854775807", "SELECT", long.MaxValue)]
    [InlineData("SELECT 9223372036854775808", "SELECT", null)]
    [InlineData("CREATE TABLE", "CREATE TABLE", null)]
    [InlineData("BEGIN", "BEGIN", null)]
    [InlineData("SELECT", "SELECT", null)]
    [InlineData("", "", null)]
    public void CommandComplete_tags_and_rows(string tag, string command, long? rows)
    {
        byte[] body = PgTestMessages.Body(PgTestMessages.Written(w => PgBackendWriter.WriteCommandComplete(w, tag)), 'C');
        var parsed = PgCommandComplete.Parse(body);
        Assert.Equal(tag, parsed.Tag);
        Assert.Equal(command, parsed.Command);
        Assert.Equal(rows, parsed.Rows);
    }

    [Fact]
    public void CommandComplete_command_is_cached()
    {
        var first = PgCommandComplete.Parse("UPDATE 1\0"u8).Command;
        var second = PgCommandComplete.Parse("UPDATE 2\0"u8).Command;
        Assert.Same(first, second);
    }

    [Fact]
    public void Negotiate_protocol_version_and_empty_query_layout()
    {
        byte[] body = PgTestMessages.Body(PgTestMessages.Written(w => PgBackendWriter.WriteNegotiateProtocolVersion(w, 0, ["_pq_.x"])), 'v');
        Assert.Equal(new PgTestMessages().Int32(196608).Int32(1).CString("_pq_.x").ToArray(), body);
        Assert.Empty(PgTestMessages.Body(PgTestMessages.Written(PgBackendWriter.WriteEmptyQueryResponse), 'I'));
    }

    [Fact]
    public void Writers_append_to_existing_content()
    {
        var buffer = new ArrayBufferWriter<byte>();
        PgBackendWriter.WriteAuthenticationOk(buffer);
        PgBackendWriter.WriteParameterStatus(buffer, "server_version", "16.4");
        PgBackendWriter.WriteReadyForQuery(buffer, PgTransactionStatus.Idle);
        var sequence = new ReadOnlySequence<byte>(buffer.WrittenMemory);
        var types = new StringBuilder();
        while (PgMessageFraming.TryReadFrame(sequence, 1024, out byte type, out int length) == PgFrameResult.Complete)
        {
            types.Append((char)type);
            sequence = sequence.Slice(1 + length);
        }

        Assert.Equal("RSZ", types.ToString());
        Assert.True(sequence.IsEmpty);
    }
}
