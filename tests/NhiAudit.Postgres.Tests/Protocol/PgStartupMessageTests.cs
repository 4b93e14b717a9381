using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using NhiAudit.Postgres.Protocol;

namespace NhiAudit.Postgres.Tests.Protocol;

public class PgStartupMessageTests
{
    private static byte[] Packet(string parameters, int version = 196608)
    {
        byte[] body = Encoding.UTF8.GetBytes(parameters);
        var packet = new byte[8 + body.Length];
        BinaryPrimitives.WriteInt32BigEndian(packet, packet.Length);
        BinaryPrimitives.WriteInt32BigEndian(packet.AsSpan(4), version);
        body.CopyTo(packet, 8);
        return packet;
    }

    [Fact]
    public void Parses_parameters_in_order_with_accessors()
    {
        var startup = PgStartupMessage.Parse(Packet("user\0deploy\0database\0orders\0application_name\0psql\0options\0-c geqo=off\0replication\0database\0_pq_.x\0y\0\0"));
        Assert.Equal(196608, startup.ProtocolVersion);
        Assert.Equal("deploy", startup.User);
        Assert.Equal("orders", startup.Database);
        Assert.Equal("psql", startup.ApplicationName);
        Assert.Equal("-c geqo=off", startup.Options);
        Assert.Equal("database", startup.Replication);
        Assert.Equal(["user", "database", "application_name", "options", "replication", "_pq_.x"], startup.Parameters.Select(p => p.Key));
        Assert.Equal("y", startup.GetParameter("_pq_.x"));
        Assert.Null(startup.GetParameter("USER"));
    }

    [Fact]
    public void Database_defaults_to_user_and_empty_values_are_kept()
    {
        var startup = PgStartupMessage.Parse(Packet("user\0bob\0application_name\0\0\0", 196610));
        Assert.Equal("bob", startup.Database);
        Assert.Equal(string.Empty, startup.ApplicationName);
        Assert.Null(startup.Options);
        Assert.Equal(196610, startup.ProtocolVersion);
        Assert.Equal("bob", PgStartupMessage.Parse(Packet("database\0\0user\0bob\0\0")).Database);
    }

    [Fact]
    public void Parses_from_a_multi_segment_sequence()
    {
        byte[] packet = Packet("user\0a\0\0");
        Assert.Equal("a", PgStartupMessage.Parse(TestSequenceSegment.Split(packet, 3, 9)).User);
    }

    [Theory]
    [InlineData("database\0x\0\0", "no PostgreSQL user name", "28000")]
    [InlineData("user\0\0\0", "no PostgreSQL user name", "28000")]
    [InlineData("\0", "no PostgreSQL user name", "28000")]
    [InlineData("user\0a\0user\0b\0\0", "duplicate parameter \"user\"", "08P01")]
    [InlineData("user\0a\0", "not terminated", "08P01")]
    [InlineData("user\0a", "expected terminator as last byte", "08P01")]
    [InlineData("user\0", "has no value", "08P01")]
    [InlineData("user\0a\0\0x", "expected terminator as last byte", "08P01")]
    [InlineData("user\0a\0\0x\0", "bytes after the terminating NUL", "08P01")]
    [InlineData("", "expected terminator as last byte", "08P01")]
    public void Rejects_bad_layouts_with_a_precise_reason(string parameters, string reason, string sqlState)
    {
        var ex = Assert.Throws<PgProtocolException>(() => PgStartupMessage.Parse(Packet(parameters)));
        Assert.Contains(reason, ex.Message, StringComparison.Ordinal);
        Assert.Equal(sqlState, ex.SqlState);
    }

    [Fact]
    public void Rejects_invalid_utf8_and_wrong_lengths()
    {
        byte[] packet = Packet("user\0X\0\0");
        packet[13] = 0xFF;
        Assert.Contains("UTF-8", Assert.Throws<PgProtocolException>(() => PgStartupMessage.Parse(packet)).Message, StringComparison.Ordinal);

        byte[] good = Packet("user\0a\0\0");
        Assert.Throws<PgProtocolException>(() => PgStartupMessage.Parse(good.AsSpan(0, good.Length - 1)));
        Assert.Throws<PgProtocolException>(() => PgStartupMessage.Parse(good.AsSpan(0, 7)));
        Assert.Equal("0A000", Assert.Throws<PgProtocolException>(() => PgStartupMessage.Parse(Packet("user\0a\0\0", 131072))).SqlState);
    }

    [Fact]
    public void Write_round_trips_through_parse()
    {
        KeyValuePair<string, string>[] parameters = [new("user", "app"), new("database", "orders"), new("application_name", "nhiaudit/éé"), new("client_encoding", "UTF8")];
        byte[] written = PgTestMessages.Written(w => PgStartupMessage.WriteStartupMessage(w, PgStartupCodes.Protocol30, parameters));
        Assert.Equal(written.Length, BinaryPrimitives.ReadInt32BigEndian(written));
        Assert.Equal(PgFrameResult.Complete, PgMessageFraming.TryReadStartupFrame(new ReadOnlySequence<byte>(written), out var frame));
        Assert.Equal(PgStartupPacketKind.StartupMessage, frame.Kind);
        var parsed = PgStartupMessage.Parse(written);
        Assert.Equal(parameters, parsed.Parameters);
        Assert.Equal("orders", parsed.Database);
    }

    [Fact]
    public void Write_refuses_nul_and_oversized_packets()
    {
        var buffer = new ArrayBufferWriter<byte>();
        Assert.Throws<ArgumentException>(() => PgStartupMessage.WriteStartupMessage(buffer, PgStartupCodes.Protocol30, [new("user", "a\0b")]));
        Assert.Throws<ArgumentException>(() => PgStartupMessage.WriteStartupMessage(buffer, PgStartupCodes.Protocol30, [new("user", new string('x', 10000))]));
    }
}
