using System.Buffers;
using System.Buffers.Binary;
using NhiAudit.Postgres.Protocol;

namespace NhiAudit.Postgres.Tests.Protocol;

/// <summary>Extended-query parsers against hand-built messages, and frontend writers round-tripping through parsers.</summary>
public class PgFrontendMessageTests
{
    [Fact]
    public void Parse_message_with_parameter_types()
    {
        byte[] body = new PgTestMessages().CString("S_1").CString("SELECT $1::int + $2").Int16(2).Int32(23).Int32(unchecked((int)3_000_000_000)).ToArray();
        var parse = PgParseMessage.Parse(body);
        Assert.Equal("S_1", parse.StatementName);
        Assert.Equal("SELECT $1::int + $2", parse.Query);
        Assert.Equal(2, parse.ParameterTypeCount);
        Assert.Equal(23u, parse.GetParameterType(0));
        Assert.Equal(3_000_000_000u, parse.GetParameterType(1));
        Assert.Throws<ArgumentOutOfRangeException>(() => PgParseMessage.Parse(body).GetParameterType(2));
    }

    [Fact]
    public void Parse_message_unnamed_without_types()
    {
        var parse = PgParseMessage.Parse(new PgTestMessages().CString("").CString("SELECT 1").Int16(0).ToArray());
        Assert.Equal(string.Empty, parse.StatementName);
        Assert.Equal(0, parse.ParameterTypeCount);
    }

    [Fact]
    public void Parse_message_count_is_unsigned()
    {
        // 40000 parameter types: an Int16 count that would be negative if read signed.
        var builder = new PgTestMessages().CString("").CString("q").Int16(unchecked((short)40000));
        for (int i = 0; i < 40000; i++)
        {
            builder.Int32(25);
        }

        Assert.Equal(40000, PgParseMessage.Parse(builder.ToArray()).ParameterTypeCount);
    }

    [Theory]
    [InlineData("no terminator")]
    [InlineData("short types")]
    [InlineData("trailing")]
    [InlineData("missing count")]
    public void Parse_message_malformed(string kind)
    {
        byte[] body = kind switch
        {
            "no terminator" => new PgTestMessages().CString("s").Bytes((byte)'q').ToArray(),
            "short types" => new PgTestMessages().CString("s").CString("q").Int16(2).Int32(23).ToArray(),
            "trailing" => new PgTestMessages().CString("s").CString("q").Int16(0).Byte(1).ToArray(),
            _ => new PgTestMessages().CString("s").CString("q").Byte(0).ToArray(),
        };
        Assert.Throws<PgProtocolException>(() => PgParseMessage.Parse(body));
    }

    private static byte[] BindBody(short[] formats, byte[]?[] values, short[] resultFormats, string portal = "P1", string statement = "S1")
    {
        var b = new PgTestMessages().CString(portal).CString(statement).Int16((short)formats.Length);
        foreach (short f in formats)
        {
            b.Int16(f);
        }

        b.Int16((short)values.Length);
        foreach (byte[]? v in values)
        {
            if (v is null)
            {
                b.Int32(-1);
            }
            else
            {
                b.Int32(v.Length).Bytes(v);
            }
        }

        b.Int16((short)resultFormats.Length);
        foreach (short f in resultFormats)
        {
            b.Int16(f);
        }

        return b.ToArray();
    }

    [Fact]
    public void Bind_message_with_per_parameter_formats_and_null()
    {
        byte[] body = BindBody([0, 1, 1], ["42"u8.ToArray(), null, [0, 0, 0, 7]], [1]);
        var bind = PgBindMessage.Parse(body);
        Assert.Equal("P1", bind.PortalName);
        Assert.Equal("S1", bind.StatementName);
        Assert.Equal(3, bind.ParameterCount);
        Assert.Equal(3, bind.ParameterFormatCount);
        Assert.Equal(1, bind.ResultFormatCount);
        Assert.Equal(1, bind.GetResultFormat(5));

        var seen = new List<(int Index, short Format, int Offset, int Length, byte[] Value)>();
        foreach (var p in bind.Parameters)
        {
            seen.Add((p.Index, p.FormatCode, p.Offset, p.Length, p.Value.ToArray()));
            if (!p.IsNull)
            {
                Assert.True(body.AsSpan(p.Offset, p.Length).SequenceEqual(p.Value));
            }
        }

        Assert.Equal(3, seen.Count);
        Assert.Equal(0, seen[0].Index);
        Assert.Equal(0, seen[0].Format);
        Assert.Equal("42"u8.ToArray(), seen[0].Value);
        Assert.Equal(-1, seen[1].Length);
        Assert.Equal(1, seen[1].Format);
        Assert.Equal(new byte[] { 0, 0, 0, 7 }, seen[2].Value);
        Assert.Equal(1, bind.GetParameterFormat(2));
    }

    [Fact]
    public void Bind_format_rules_zero_and_one_code()
    {
        var none = PgBindMessage.Parse(BindBody([], ["a"u8.ToArray(), "b"u8.ToArray()], []));
        Assert.Equal(0, none.GetParameterFormat(1));
        Assert.Equal(0, none.GetResultFormat(3));

        var one = PgBindMessage.Parse(BindBody([1], [[1], [2]], [], portal: "", statement: ""));
        Assert.Equal(1, one.GetParameterFormat(0));
        Assert.Equal(1, one.GetParameterFormat(1));
        Assert.Equal(string.Empty, one.PortalName);
        Assert.Equal(string.Empty, one.StatementName);
    }

    [Theory]
    [InlineData("format count mismatch")]
    [InlineData("bad format code")]
    [InlineData("value past end")]
    [InlineData("negative length")]
    [InlineData("missing result formats")]
    [InlineData("trailing")]
    [InlineData("bad result format")]
    public void Bind_message_malformed(string kind)
    {
        byte[] body = kind switch
        {
            "format count mismatch" => BindBody([0, 1], [[1], [2], [3]], []),
            "bad format code" => BindBody([2], [[1]], []),
            "bad result format" => BindBody([], [], [7]),
            "value past end" => new PgTestMessages().CString("").CString("").Int16(0).Int16(1).Int32(100).Bytes(1, 2, 3).ToArray(),
            "negative length" => new PgTestMessages().CString("").CString("").Int16(0).Int16(1).Int32(-2).Int16(0).ToArray(),
            "missing result formats" => new PgTestMessages().CString("").CString("").Int16(0).Int16(0).ToArray(),
            _ => [.. BindBody([], [], []), 0],
        };
        Assert.Throws<PgProtocolException>(() => PgBindMessage.Parse(body));
    }

    [Fact]
    public void Bind_with_invalid_utf8_statement_name_is_a_protocol_error_not_a_collision()
    {
        byte[] body = BindBody([], [], [], statement: "S");
        int s = Array.IndexOf(body, (byte)'S');
        body[s] = 0xFF;
        var bind = PgBindMessage.Parse(body);
        try
        {
            _ = bind.StatementName;
            Assert.Fail("expected PgProtocolException");
        }
        catch (PgProtocolException)
        {
        }
    }

    [Fact]
    public void Execute_close_describe_query()
    {
        var execute = PgExecuteMessage.Parse(new PgTestMessages().CString("portal").Int32(100).ToArray());
        Assert.Equal("portal", execute.PortalName);
        Assert.Equal(100, execute.MaxRows);

        var close = PgCloseMessage.Parse(new PgTestMessages().Byte((byte)'S').CString("S_1").ToArray());
        Assert.Equal(PgTargetKind.Statement, close.Target);
        Assert.Equal("S_1", close.Name);

        var describe = PgDescribeMessage.Parse(new PgTestMessages().Byte((byte)'P').CString("").ToArray());
        Assert.Equal(PgTargetKind.Portal, describe.Target);
        Assert.Equal(string.Empty, describe.Name);

        var query = PgQueryMessage.Parse(new PgTestMessages().CString("SELECT 'é'; SELECT 2").ToArray());
        Assert.Equal("SELECT 'é'; SELECT 2", query.Query);
    }

    [Fact]
    public void Malformed_execute_close_describe_query()
    {
        Assert.Throws<PgProtocolException>(() => PgExecuteMessage.Parse(new PgTestMessages().CString("p").Int16(1).ToArray()));
        Assert.Throws<PgProtocolException>(() => PgCloseMessage.Parse(new PgTestMessages().Byte((byte)'X').CString("a").ToArray()));
        Assert.Throws<PgProtocolException>(() => PgDescribeMessage.Parse(new PgTestMessages().Byte((byte)'S').ToArray()));
        Assert.Throws<PgProtocolException>(() => PgDescribeMessage.Parse([]));

        // A NUL inside the query would let the server and the gateway read different text: PostgreSQL refuses it too.
        Assert.Throws<PgProtocolException>(() => PgQueryMessage.Parse(new PgTestMessages().CString("SELECT 1").CString("; DROP TABLE t").ToArray()));
        Assert.Throws<PgProtocolException>(() => PgQueryMessage.Parse("SELECT 1"u8));
    }

    [Fact]
    public void FunctionCall_message()
    {
        byte[] body = new PgTestMessages().Int32(764).Int16(1).Int16(1).Int16(2).Int32(4).Bytes(0, 0, 0, 5).Int32(-1).Int16(1).ToArray();
        var call = PgFunctionCallMessage.Parse(body);
        Assert.Equal(764u, call.FunctionOid);
        Assert.Equal(2, call.ArgumentCount);
        Assert.Equal(1, call.ResultFormat);
        int count = 0;
        foreach (var argument in call.Arguments)
        {
            Assert.Equal(1, argument.FormatCode);
            Assert.Equal(count == 1, argument.IsNull);
            count++;
        }

        Assert.Equal(2, count);
        Assert.Throws<PgProtocolException>(() => PgFunctionCallMessage.Parse(body.AsSpan(0, body.Length - 1)));
        Assert.Throws<PgProtocolException>(() => PgFunctionCallMessage.Parse(new PgTestMessages().Int32(1).Int16(0).Int16(0).Int16(3).ToArray()));
    }

    [Fact]
    public void Password_message_round_trips()
    {
        byte[] body = PgTestMessages.Body(PgTestMessages.Written(w => PgFrontendWriter.WritePasswordMessage(w, "eyJ0eXAi.token")), 'p');
        Assert.Equal("eyJ0eXAi.token", PgPasswordMessage.Parse(body).GetPassword());
        Assert.Throws<PgProtocolException>(() => PgPasswordMessage.Parse("abc"u8));
        Assert.Throws<PgProtocolException>(() => PgPasswordMessage.Parse("abc\0d"u8));
    }

    [Fact]
    public void Sasl_messages_round_trip()
    {
        byte[] initial = PgTestMessages.Body(PgTestMessages.Written(w => PgFrontendWriter.WriteSaslInitialResponse(w, "SCRAM-SHA-256", "n,,n=*,r=abc")), 'p');
        var parsed = PgSaslInitialResponse.Parse(initial);
        Assert.Equal("SCRAM-SHA-256", parsed.Mechanism);
        Assert.True(parsed.HasData);
        Assert.Equal("n,,n=*,r=abc"u8.ToArray(), parsed.Data.ToArray());

        var none = PgSaslInitialResponse.Parse(new PgTestMessages().CString("X").Int32(-1).ToArray());
        Assert.False(none.HasData);
        Assert.Throws<PgProtocolException>(() => PgSaslInitialResponse.Parse(new PgTestMessages().CString("X").Int32(5).Bytes(1).ToArray()));
        Assert.Throws<PgProtocolException>(() => PgSaslInitialResponse.Parse(new PgTestMessages().CString("X").Int32(-2).ToArray()));

        byte[] response = PgTestMessages.Body(PgTestMessages.Written(w => PgFrontendWriter.WriteSaslResponse(w, "c=biws,r=abc,p=xyz")), 'p');
        Assert.Equal("c=biws,r=abc,p=xyz"u8.ToArray(), PgSaslResponse.Parse(response).ToArray());
    }

    [Fact]
    public void Terminate_sync_query_layout()
    {
        Assert.Equal(new byte[] { (byte)'X', 0, 0, 0, 4 }, PgTestMessages.Written(PgFrontendWriter.WriteTerminate));
        Assert.Equal(new byte[] { (byte)'S', 0, 0, 0, 4 }, PgTestMessages.Written(PgFrontendWriter.WriteSync));
        byte[] query = PgTestMessages.Body(PgTestMessages.Written(w => PgFrontendWriter.WriteQuery(w, "SELECT 1")), 'Q');
        Assert.Equal("SELECT 1", PgQueryMessage.Parse(query).Query);
    }

    [Fact]
    public void Cancel_request_round_trips_through_framing_and_parser()
    {
        byte[] packet = PgTestMessages.Written(w => PgFrontendWriter.WriteCancelRequest(w, 31337, [1, 2, 3, 4]));
        Assert.Equal(16, packet.Length);
        Assert.Equal(PgFrameResult.Complete, PgMessageFraming.TryReadStartupFrame(new ReadOnlySequence<byte>(packet), out var frame));
        Assert.Equal(PgStartupPacketKind.CancelRequest, frame.Kind);
        var cancel = PgCancelRequest.Parse(packet);
        Assert.Equal(31337, cancel.ProcessId);
        Assert.Equal(new byte[] { 1, 2, 3, 4 }, cancel.SecretKey.ToArray());

        byte[] ssl = PgTestMessages.Written(PgFrontendWriter.WriteSslRequest);
        Assert.Equal(PgFrameResult.Complete, PgMessageFraming.TryReadStartupFrame(new ReadOnlySequence<byte>(ssl), out frame));
        Assert.Equal(PgStartupPacketKind.SslRequest, frame.Kind);
        Assert.Equal(80877103, BinaryPrimitives.ReadInt32BigEndian(ssl.AsSpan(4)));
    }
}
