using System.Buffers;
using System.Buffers.Binary;
using NhiAudit.Postgres.Protocol;

namespace NhiAudit.Postgres.Tests.Protocol;

public class PgMessageFramingTests
{
    private static readonly byte[] Query = PgTestMessages.Frame('Q', new PgTestMessages().CString("SELECT 1").ToArray());

    [Fact]
    public void Complete_frame_in_one_segment()
    {
        var result = PgMessageFraming.TryReadFrame(new ReadOnlySequence<byte>(Query), 1024, out byte type, out int length);
        Assert.Equal(PgFrameResult.Complete, result);
        Assert.Equal((byte)'Q', type);
        Assert.Equal(Query.Length - 1, length);
    }

    [Fact]
    public void Complete_frame_split_at_every_position()
    {
        for (int cut = 0; cut <= Query.Length; cut++)
        {
            var buffer = TestSequenceSegment.Split(Query, cut);
            Assert.Equal(PgFrameResult.Complete, PgMessageFraming.TryReadFrame(buffer, 1024, out byte type, out int length));
            Assert.Equal((byte)'Q', type);
            Assert.Equal(Query.Length - 1, length);
        }
    }

    [Fact]
    public void Complete_frame_split_at_every_pair_of_positions_and_bytewise()
    {
        for (int a = 0; a <= Query.Length; a++)
        {
            for (int b = a; b <= Query.Length; b++)
            {
                var buffer = TestSequenceSegment.Split(Query, a, b);
                Assert.Equal(PgFrameResult.Complete, PgMessageFraming.TryReadFrame(buffer, 1024, out _, out int length));
                Assert.Equal(Query.Length - 1, length);
            }
        }

        Assert.Equal(PgFrameResult.Complete, PgMessageFraming.TryReadFrame(TestSequenceSegment.Bytewise(Query), 1024, out _, out _));
    }

    [Fact]
    public void Every_proper_prefix_is_incomplete_however_it_is_split()
    {
        for (int take = 0; take < Query.Length; take++)
        {
            byte[] prefix = Query[..take];
            Assert.Equal(PgFrameResult.Incomplete, PgMessageFraming.TryReadFrame(new ReadOnlySequence<byte>(prefix), 1024, out _, out _));
            for (int cut = 0; cut <= take; cut++)
            {
                Assert.Equal(PgFrameResult.Incomplete, PgMessageFraming.TryReadFrame(TestSequenceSegment.Split(prefix, cut), 1024, out _, out _));
            }
        }
    }

    [Fact]
    public void Two_frames_back_to_back_report_the_first()
    {
        byte[] sync = [(byte)'S', 0, 0, 0, 4];
        byte[] both = [.. sync, .. Query];
        Assert.Equal(PgFrameResult.Complete, PgMessageFraming.TryReadFrame(TestSequenceSegment.Split(both, 3), 1024, out byte type, out int length));
        Assert.Equal((byte)'S', type);
        Assert.Equal(4, length);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(-1)]
    [InlineData(int.MinValue)]
    public void Length_below_four_is_malformed_without_waiting_for_a_body(int declared)
    {
        var header = new byte[5];
        header[0] = (byte)'Q';
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(1), declared);
        Assert.Equal(PgFrameResult.Malformed, PgMessageFraming.TryReadFrame(TestSequenceSegment.Split(header, 2), 1024, out _, out int length));
        Assert.Equal(declared, length);
    }

    [Fact]
    public void Length_above_the_limit_is_too_large_as_soon_as_the_header_is_in()
    {
        var header = new byte[5];
        header[0] = (byte)'D';
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(1), 1025);
        Assert.Equal(PgFrameResult.TooLarge, PgMessageFraming.TryReadFrame(new ReadOnlySequence<byte>(header), 1024, out byte type, out int length));
        Assert.Equal((byte)'D', type);
        Assert.Equal(1025, length);

        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(1), 1024);
        Assert.Equal(PgFrameResult.Incomplete, PgMessageFraming.TryReadFrame(new ReadOnlySequence<byte>(header), 1024, out _, out _));
    }

    [Fact]
    public void Empty_body_messages_are_complete_at_five_bytes()
    {
        byte[] terminate = [(byte)'X', 0, 0, 0, 4];
        Assert.Equal(PgFrameResult.Complete, PgMessageFraming.TryReadFrame(TestSequenceSegment.Bytewise(terminate), 4, out _, out int length));
        Assert.Equal(4, length);
    }

    [Fact]
    public void GetBody_returns_a_slice_or_a_copy()
    {
        byte[]? scratch = null;
        var single = new ReadOnlySequence<byte>(Query);
        Assert.True(PgMessageFraming.GetBody(single, Query.Length - 1, ref scratch).SequenceEqual(Query.AsSpan(5)));
        Assert.Null(scratch);

        var split = TestSequenceSegment.Split(Query, 7);
        Assert.True(PgMessageFraming.GetBody(split, Query.Length - 1, ref scratch).SequenceEqual(Query.AsSpan(5)));
        Assert.NotNull(scratch);
    }

    // ---------------------------------------------------------------- startup packets

    private static byte[] StartupPacket(int code, int extraBytes = 0)
    {
        var packet = new byte[8 + extraBytes];
        BinaryPrimitives.WriteInt32BigEndian(packet, packet.Length);
        BinaryPrimitives.WriteInt32BigEndian(packet.AsSpan(4), code);
        return packet;
    }

    [Theory]
    [InlineData(80877103, "SslRequest")]
    [InlineData(80877104, "GssEncRequest")]
    public void Ssl_and_gss_requests_are_recognised_across_segments(int code, string kindName)
    {
        var kind = Enum.Parse<PgStartupPacketKind>(kindName);
        byte[] packet = StartupPacket(code);
        for (int cut = 0; cut <= packet.Length; cut++)
        {
            Assert.Equal(PgFrameResult.Complete, PgMessageFraming.TryReadStartupFrame(TestSequenceSegment.Split(packet, cut), out var frame));
            Assert.Equal(kind, frame.Kind);
            Assert.Equal(8, frame.Length);
            Assert.Equal(code, frame.Code);
        }
    }

    [Fact]
    public void Ssl_request_with_a_body_is_malformed()
    {
        Assert.Equal(PgFrameResult.Malformed, PgMessageFraming.TryReadStartupFrame(new ReadOnlySequence<byte>(StartupPacket(80877103, 4)), out _));
    }

    [Fact]
    public void Cancel_request_protocol_30_and_32()
    {
        byte[] v30 = StartupPacket(80877102, 8);
        BinaryPrimitives.WriteInt32BigEndian(v30.AsSpan(8), 4242);
        BinaryPrimitives.WriteInt32BigEndian(v30.AsSpan(12), 77);
        Assert.Equal(PgFrameResult.Complete, PgMessageFraming.TryReadStartupFrame(TestSequenceSegment.Bytewise(v30), out var frame));
        Assert.Equal(PgStartupPacketKind.CancelRequest, frame.Kind);
        Assert.Equal(16, frame.Length);
        var cancel = PgCancelRequest.Parse(TestSequenceSegment.Split(v30, 9));
        Assert.Equal(4242, cancel.ProcessId);
        Assert.Equal(new byte[] { 0, 0, 0, 77 }, cancel.SecretKey.ToArray());

        byte[] v32 = StartupPacket(80877102, 4 + 256);
        v32.AsSpan(12).Fill(0xAB);
        Assert.Equal(PgFrameResult.Complete, PgMessageFraming.TryReadStartupFrame(new ReadOnlySequence<byte>(v32), out frame));
        Assert.Equal(268, frame.Length);
        Assert.Equal(256, PgCancelRequest.Parse(v32).SecretKey.Length);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(4 + 257)]
    public void Cancel_request_outside_12_to_268_bytes_is_malformed(int extra)
    {
        byte[] packet = StartupPacket(80877102, extra);
        Assert.Equal(PgFrameResult.Malformed, PgMessageFraming.TryReadStartupFrame(new ReadOnlySequence<byte>(packet), out var frame));
        Assert.Equal(PgStartupPacketKind.CancelRequest, frame.Kind);
        Assert.Throws<PgProtocolException>(() => PgCancelRequest.Parse(packet));
    }

    [Theory]
    [InlineData(196608)]
    [InlineData(196610)]
    public void Startup_message_versions_30_and_32(int version)
    {
        byte[] packet = StartupPacket(version, 6);
        "user\0\0"u8.CopyTo(packet.AsSpan(8));
        Assert.Equal(PgFrameResult.Incomplete, PgMessageFraming.TryReadStartupFrame(new ReadOnlySequence<byte>(packet[..^1]), out _));
        Assert.Equal(PgFrameResult.Complete, PgMessageFraming.TryReadStartupFrame(TestSequenceSegment.Split(packet, 5, 6), out var frame));
        Assert.Equal(PgStartupPacketKind.StartupMessage, frame.Kind);
        Assert.Equal(3, frame.MajorVersion);
        Assert.Equal(version & 0xFFFF, frame.MinorVersion);
    }

    [Theory]
    [InlineData(196609)] // 3.1 was never used
    [InlineData(196611)]
    [InlineData(131072)] // 2.0
    [InlineData(0x12345678)]
    public void Other_versions_are_unsupported_with_the_requested_version(int version)
    {
        Assert.Equal(PgFrameResult.Complete, PgMessageFraming.TryReadStartupFrame(new ReadOnlySequence<byte>(StartupPacket(version, 1)), out var frame));
        Assert.Equal(PgStartupPacketKind.UnsupportedProtocol, frame.Kind);
        Assert.Equal(version, frame.Code);
    }

    [Fact]
    public void Startup_length_limits()
    {
        byte[] header = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(header, 10001);
        Assert.Equal(PgFrameResult.TooLarge, PgMessageFraming.TryReadStartupFrame(new ReadOnlySequence<byte>(header), out _));
        BinaryPrimitives.WriteInt32BigEndian(header, 7);
        Assert.Equal(PgFrameResult.Malformed, PgMessageFraming.TryReadStartupFrame(new ReadOnlySequence<byte>(header), out _));
        BinaryPrimitives.WriteInt32BigEndian(header, 10000);
        Assert.Equal(PgFrameResult.Incomplete, PgMessageFraming.TryReadStartupFrame(new ReadOnlySequence<byte>(header), out _));
        Assert.Equal(PgFrameResult.Incomplete, PgMessageFraming.TryReadStartupFrame(new ReadOnlySequence<byte>(header[..3]), out _));
    }
}
