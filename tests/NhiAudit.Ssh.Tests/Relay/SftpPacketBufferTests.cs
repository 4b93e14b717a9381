using System.Buffers.Binary;
using FsCheck.Xunit;
using NhiAudit.Ssh.Relay;

namespace NhiAudit.Ssh.Tests.Relay;

/// <summary>
/// The relay's SFTP framing: whatever chunks the client's stream arrives in, the packets come out whole, in order and
/// unchanged; a packet that claims more than the limit is refused, never buffered.
/// </summary>
public sealed class SftpPacketBufferTests
{
    private const int Limit = 4096;

    private static byte[] Frame(byte[] body)
    {
        var packet = new byte[body.Length + 4];
        BinaryPrimitives.WriteUInt32BigEndian(packet, (uint)body.Length);
        body.CopyTo(packet, 4);
        return packet;
    }

    [Property(MaxTest = 300)]
    public void Any_chunking_gives_back_the_same_packets(byte[][] bodies, int[] cuts)
    {
        var packets = (bodies ?? []).Where(b => b is not null && b.Length <= Limit).Select(Frame).ToList();
        var stream = packets.SelectMany(p => p).ToArray();
        var buffer = new SftpPacketBuffer(Limit);
        var taken = new List<byte[]>();
        var position = 0;
        foreach (var cut in (cuts ?? []).Select(c => Math.Abs(c % 5000)).Append(stream.Length))
        {
            var end = Math.Min(stream.Length, position + cut);
            Assert.True(buffer.Append(stream.AsSpan(position, end - position)));
            position = end;
            while (buffer.TakePacket() is { } packet)
            {
                taken.Add(packet);
            }
        }

        Assert.Equal(packets, taken);
    }

    [Theory]
    [InlineData(Limit + 1)]
    [InlineData(int.MaxValue)]
    public void A_packet_over_the_limit_is_refused_as_soon_as_its_length_is_seen(int claimed)
    {
        var buffer = new SftpPacketBuffer(Limit);
        var header = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(header, (uint)claimed);

        Assert.True(buffer.Append(header.AsSpan(0, 2)), "two bytes of a length say nothing yet");
        Assert.False(buffer.Append(header.AsSpan(2)));
        Assert.Null(buffer.TakePacket());
    }

    [Fact]
    public void A_packet_of_exactly_the_limit_passes()
    {
        var buffer = new SftpPacketBuffer(Limit);
        var packet = Frame(new byte[Limit]);

        Assert.True(buffer.Append(packet));
        Assert.Equal(packet, buffer.TakePacket());
        Assert.Null(buffer.TakePacket());
    }
}
