using System.Buffers;
using System.IO.Pipelines;
using System.Security.Cryptography;
using NhiAudit.Ssh.Tests.Support;
using NhiAudit.Ssh.Transport;
using NhiAudit.Ssh.Transport.Ciphers;

namespace NhiAudit.Ssh.Tests.Transport;

public sealed class PacketCipherTests
{
    public static TheoryData<string, string?> CipherSuites => new()
    {
        { "none", null },
        { "aes128-gcm@openssh.com", null },
        { "aes256-gcm@openssh.com", null },
        { "chacha20-poly1305@openssh.com", null },
        { "aes128-ctr", "hmac-sha2-256-etm@openssh.com" },
        { "aes256-ctr", "hmac-sha2-512-etm@openssh.com" },
        { "aes128-ctr", "hmac-sha2-256" },
        { "aes256-ctr", "hmac-sha2-512" },
    };

    /// <summary>Two cipher instances with the same keys: one seals, the other opens.</summary>
    private static (PacketCipher Sender, PacketCipher Receiver) CreatePair(string encryption, string? mac)
    {
        if (encryption == "none")
        {
            return (NoneCipher.Instance, NoneCipher.Instance);
        }

        var (keyLength, ivLength) = SshAlgorithms.KeySizes(encryption);
        var key = RandomNumberGenerator.GetBytes(keyLength);
        var iv = RandomNumberGenerator.GetBytes(ivLength);
        var macKey = mac is null ? [] : RandomNumberGenerator.GetBytes(SshAlgorithms.MacKeyLength(mac));
        return (SshAlgorithms.CreateCipher(encryption, mac, key, iv, macKey), SshAlgorithms.CreateCipher(encryption, mac, key, iv, macKey));
    }

    private static SshTransport TransportOver(Pipe pipe) =>
        new(new Duplex(pipe.Reader, pipe.Writer), SshRole.Server, new SshTransportOptions());

    private sealed record Duplex(PipeReader Input, PipeWriter Output) : IDuplexPipe;

    private static async Task<byte[]> FrameAsync(PacketCipher cipher, IEnumerable<byte[]> payloads)
    {
        var pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 0));
        var sender = TransportOver(pipe);
        sender.UseCiphersForTesting(cipher, NoneCipher.Instance);
        foreach (var payload in payloads)
        {
            sender.WritePacketForTesting(payload);
        }

        await pipe.Writer.FlushAsync();
        await pipe.Writer.CompleteAsync();
        var result = await pipe.Reader.ReadAsync();
        while (!result.IsCompleted)
        {
            pipe.Reader.AdvanceTo(result.Buffer.Start, result.Buffer.End);
            result = await pipe.Reader.ReadAsync();
        }

        return result.Buffer.ToArray();
    }

    [Theory]
    [MemberData(nameof(CipherSuites))]
    public async Task Every_cipher_round_trips_packets_of_many_sizes(string encryption, string? mac)
    {
        var (sender, receiver) = CreatePair(encryption, mac);
        var random = new Random(42);
        var payloads = Enumerable.Range(0, 40).Select(i =>
        {
            var payload = new byte[i < 20 ? i + 1 : random.Next(1, 70000)];
            random.NextBytes(payload);
            payload[0] = 94;
            return payload;
        }).ToList();
        var wire = await FrameAsync(sender, payloads);

        var receiverTransport = TransportOver(new Pipe());
        receiverTransport.UseCiphersForTesting(NoneCipher.Instance, receiver);
        var sequence = new ReadOnlySequence<byte>(wire);
        foreach (var expected in payloads)
        {
            Assert.True(receiverTransport.TryReadPacket(ref sequence, out var actual));
            Assert.Equal(expected, actual.ToArray());
        }

        Assert.True(sequence.IsEmpty);
    }

    [Theory]
    [MemberData(nameof(CipherSuites))]
    public async Task Framing_handles_a_split_at_every_byte_position(string encryption, string? mac)
    {
        var payloads = new[] { new byte[] { 5, 1, 2, 3 }, Enumerable.Range(0, 300).Select(i => (byte)i).ToArray() };
        payloads[1][0] = 94;

        // Each split position needs fresh cipher state on both sides, so derive fixed keys once and rebuild.
        var (keyLength, ivLength) = encryption == "none" ? (0, 0) : SshAlgorithms.KeySizes(encryption);
        var key = RandomNumberGenerator.GetBytes(keyLength);
        var iv = RandomNumberGenerator.GetBytes(ivLength);
        var macKey = mac is null ? [] : RandomNumberGenerator.GetBytes(SshAlgorithms.MacKeyLength(mac));
        PacketCipher Create() => encryption == "none" ? NoneCipher.Instance : SshAlgorithms.CreateCipher(encryption, mac, key, iv, macKey);

        var wire = await FrameAsync(Create(), payloads);
        for (var split = 0; split <= wire.Length; split++)
        {
            var receiver = TransportOver(new Pipe());
            receiver.UseCiphersForTesting(NoneCipher.Instance, Create());
            var received = new List<byte[]>();

            // First only the bytes before the split arrive; the parser must take whole packets or nothing.
            var partial = new ReadOnlySequence<byte>(wire, 0, split);
            while (receiver.TryReadPacket(ref partial, out var payload))
            {
                received.Add(payload.ToArray());
            }

            var consumed = split - (int)partial.Length;
            var rest = TestSequence.Split(wire.AsMemory(consumed), split - consumed);
            while (receiver.TryReadPacket(ref rest, out var payload))
            {
                received.Add(payload.ToArray());
            }

            Assert.True(rest.IsEmpty, $"split {split}");
            Assert.Equal(payloads, received);
        }
    }

    [Theory]
    [MemberData(nameof(CipherSuites))]
    public async Task A_flipped_bit_is_a_mac_error(string encryption, string? mac)
    {
        if (encryption == "none")
        {
            return;
        }

        var (sender, receiver) = CreatePair(encryption, mac);
        var wire = await FrameAsync(sender, [[94, 1, 2, 3, 4, 5, 6, 7, 8]]);
        wire[^1] ^= 1;
        var transport = TransportOver(new Pipe());
        transport.UseCiphersForTesting(NoneCipher.Instance, receiver);
        var sequence = new ReadOnlySequence<byte>(wire);
        var ex = Assert.Throws<SshProtocolException>(() => transport.TryReadPacket(ref sequence, out _));
        Assert.Equal(SshDisconnectReason.MacError, ex.Reason);
    }

    [Fact]
    public void A_packet_over_the_size_bound_is_refused_before_it_is_buffered()
    {
        var transport = TransportOver(new Pipe());
        var head = new byte[] { 0x00, 0x10, 0x00, 0x00, 4, 0, 0, 0 };
        var sequence = new ReadOnlySequence<byte>(head);
        Assert.Throws<SshProtocolException>(() => transport.TryReadPacket(ref sequence, out _));
    }
}

/// <summary>Builds a ReadOnlySequence of two segments split at a given offset (Bedrock's TestSequenceSegment).</summary>
internal static class TestSequence
{
    public static ReadOnlySequence<byte> Split(ReadOnlyMemory<byte> data, int at)
    {
        at = Math.Clamp(at, 0, data.Length);
        var first = new Segment(data[..at]);
        var last = first.Append(data[at..]);
        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory) => Memory = memory;

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory) { RunningIndex = RunningIndex + Memory.Length };
            Next = next;
            return next;
        }
    }
}
