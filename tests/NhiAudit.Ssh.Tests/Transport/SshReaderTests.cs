using NhiAudit.Ssh.Transport;

namespace NhiAudit.Ssh.Tests.Transport;

public sealed class SshReaderTests
{
    [Fact]
    public void Reads_every_data_type_written_by_the_writer()
    {
        var bytes = new SshWriter().WriteByte(7).WriteBoolean(true).WriteUInt32(0xDEADBEEF).WriteUInt64(ulong.MaxValue - 1)
            .WriteString("héllo").WriteMpint([0x80, 0x01]).WriteMpint([0x00, 0x00, 0x7F]).WriteNameList(["a", "b-c@d"]).ToArray();
        var reader = new SshReader(bytes);
        Assert.Equal(7, reader.ReadByte());
        Assert.True(reader.ReadBoolean());
        Assert.Equal(0xDEADBEEF, reader.ReadUInt32());
        Assert.Equal(ulong.MaxValue - 1, reader.ReadUInt64());
        Assert.Equal("héllo", reader.ReadUtf8String());
        Assert.Equal(new byte[] { 0x80, 0x01 }, reader.ReadPositiveMpint().ToArray());
        Assert.Equal(new byte[] { 0x7F }, reader.ReadPositiveMpint().ToArray());
        Assert.Equal(["a", "b-c@d"], reader.ReadNameList());
        Assert.True(reader.IsAtEnd);
    }

    [Fact]
    public void Mpint_encoding_follows_RFC_4251_examples()
    {
        // RFC 4251 §5: 0 is 00 00 00 00; 0x80 is 00 00 00 02 00 80.
        Assert.Equal(new byte[] { 0, 0, 0, 0 }, new SshWriter().WriteMpint([0]).ToArray());
        Assert.Equal(new byte[] { 0, 0, 0, 2, 0, 0x80 }, new SshWriter().WriteMpint([0x80]).ToArray());
        Assert.Equal(new byte[] { 0, 0, 0, 8, 0x09, 0xa3, 0x78, 0xf9, 0xb2, 0xe3, 0x32, 0xa7 }, new SshWriter().WriteMpint([0x09, 0xa3, 0x78, 0xf9, 0xb2, 0xe3, 0x32, 0xa7]).ToArray());
    }

    [Theory]
    [InlineData(new byte[] { 0, 0, 0, 5, 1, 2 })]
    [InlineData(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF })]
    [InlineData(new byte[] { 0, 0 })]
    public void A_string_longer_than_the_message_is_refused(byte[] bytes)
    {
        var ex = Assert.Throws<SshProtocolException>(() => new SshReader(bytes).ReadStringBytes().Length);
        Assert.Equal(SshDisconnectReason.ProtocolError, ex.Reason);
    }

    [Theory]
    [InlineData("a,,b")]
    [InlineData(",a")]
    [InlineData("a b")]
    [InlineData("a\u0001")]
    public void Malformed_name_lists_are_refused(string text)
    {
        var bytes = new SshWriter().WriteString(text).ToArray();
        Assert.Throws<SshProtocolException>(() => new SshReader(bytes).ReadNameList());
    }

    [Fact]
    public void Negative_mpints_and_invalid_utf8_are_refused()
    {
        Assert.Throws<SshProtocolException>(() => new SshReader(new SshWriter().WriteString([0x80]).ToArray()).ReadPositiveMpint().Length);
        Assert.Throws<SshProtocolException>(() => new SshReader(new SshWriter().WriteString([0xC3, 0x28]).ToArray()).ReadUtf8String());
    }

    /// <summary>Seeded random input through every reader operation: only SshProtocolException may come out.</summary>
    [Fact]
    public void Random_input_never_escapes_as_anything_but_a_protocol_error()
    {
        var random = new Random(4253);
        for (var iteration = 0; iteration < 20000; iteration++)
        {
            var bytes = new byte[random.Next(0, 64)];
            random.NextBytes(bytes);
            if (bytes.Length >= 4 && random.Next(2) == 0)
            {
                // Make a plausible small length so the parser gets past the first field more often.
                bytes[0] = bytes[1] = bytes[2] = 0;
                bytes[3] = (byte)random.Next(0, bytes.Length);
            }

            var operations = random.Next(1, 8);
            try
            {
                var reader = new SshReader(bytes);
                for (var i = 0; i < operations; i++)
                {
                    _ = random.Next(7) switch
                    {
                        0 => reader.ReadByte(),
                        1 => reader.ReadUInt32(),
                        2 => (object)reader.ReadUInt64(),
                        3 => reader.ReadStringBytes().Length,
                        4 => reader.ReadNameList().Length,
                        5 => reader.ReadPositiveMpint().Length,
                        _ => reader.ReadUtf8String(),
                    };
                }
            }
            catch (SshProtocolException)
            {
            }
        }
    }
}
