using System.Buffers;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using NhiAudit.Postgres.Protocol;

namespace NhiAudit.Postgres.Tests.Protocol;

/// <summary>
/// Hostile input: every parser, fed random bytes, truncated or mutated valid messages, either
/// succeeds or throws <see cref="PgProtocolException"/> — never IndexOutOfRange or anything else.
/// </summary>
public class PgParserFuzzTests
{
    private delegate void Parser(ReadOnlySpan<byte> payload);

    private static readonly uint[] RenderOids = [0, 16, 17, 18, 19, 20, 21, 23, 25, 26, 114, 700, 701, 1042, 1043, 1082, 1083, 1114, 1184, 1186, 1266, 1700, 2950, 3802, 99999];

    private static readonly (string Name, Parser Parse)[] Parsers =
    [
        ("Parse", p => { var m = PgParseMessage.Parse(p); _ = m.Query; for (int i = 0; i < m.ParameterTypeCount; i++) { _ = m.GetParameterType(i); } _ = m.StatementName; }),
        ("Bind", p =>
        {
            var m = PgBindMessage.Parse(p);
            long total = 0;
            foreach (var parameter in m.Parameters)
            {
                total += parameter.Value.Length + parameter.FormatCode;
                _ = PgParameterRenderer.Render(parameter.Value, parameter.FormatCode, (uint)parameter.Index * 37, 64);
            }

            for (int i = 0; i < m.ParameterCount; i++)
            {
                _ = m.GetParameterFormat(i);
            }

            _ = m.PortalName;
            _ = m.StatementName;
        }),
        ("Execute", p => { var m = PgExecuteMessage.Parse(p); _ = m.PortalName; }),
        ("Close", p => { var m = PgCloseMessage.Parse(p); _ = m.Name; }),
        ("Describe", p => { var m = PgDescribeMessage.Parse(p); _ = m.Name; }),
        ("Query", p => _ = PgQueryMessage.Parse(p).Query),
        ("FunctionCall", p => { foreach (var a in PgFunctionCallMessage.Parse(p).Arguments) { _ = a.Value.Length; } }),
        ("Password", p => _ = PgPasswordMessage.Parse(p).GetPassword()),
        ("SASLInitialResponse", p => _ = PgSaslInitialResponse.Parse(p).Mechanism),
        ("ErrorResponse", p => _ = PgErrorOrNotice.Parse(p)),
        ("Authentication", p => { var a = PgAuthenticationRequest.Parse(p); if (a.Code == PgAuthenticationCode.Sasl) { _ = a.GetSaslMechanisms(); } if (a.Code == PgAuthenticationCode.Md5Password) { _ = a.Md5Salt.Length; } }),
        ("BackendKeyData", p => _ = PgBackendKeyData.Parse(p).SecretKey.Length),
        ("ParameterStatus", p => _ = PgParameterStatus.Parse(p)),
        ("ReadyForQuery", p => _ = PgReadyForQuery.Parse(p)),
        ("CommandComplete", p => { var c = PgCommandComplete.Parse(p); _ = c.Command; _ = c.Rows; }),
        ("StartupMessage", p => _ = PgStartupMessage.Parse(p)),
        ("CancelRequest", p => _ = PgCancelRequest.Parse(p)),
        ("Render", p =>
        {
            foreach (uint oid in RenderOids)
            {
                _ = PgParameterRenderer.Render(p, 1, oid, 32);
            }
        }),
    ];

    /// <summary>Valid samples to truncate and mutate: reaching deep into each parser needs a mostly valid prefix.</summary>
    private static readonly byte[][] Samples =
    [
        new PgTestMessages().CString("S_1").CString("SELECT $1").Int16(2).Int32(23).Int32(25).ToArray(),
        new PgTestMessages().CString("P").CString("S").Int16(2).Int16(0).Int16(1).Int16(2).Int32(2).Bytes(0x34, 0x32).Int32(8).Bytes(0, 0, 0, 0, 0, 0, 0, 9).Int16(1).Int16(1).ToArray(),
        new PgTestMessages().CString("P").Int32(0).ToArray(),
        new PgTestMessages().Byte((byte)'S').CString("stmt").ToArray(),
        new PgTestMessages().CString("SELECT 1; SELECT 'x'").ToArray(),
        new PgTestMessages().Int32(764).Int16(1).Int16(1).Int16(2).Int32(4).Bytes(0, 0, 0, 5).Int32(-1).Int16(1).ToArray(),
        new PgTestMessages().CString("SCRAM-SHA-256").Int32(3).Bytes(1, 2, 3).ToArray(),
        new PgTestMessages().Byte((byte)'S').CString("ERROR").Byte((byte)'C').CString("42P01").Byte((byte)'M').CString("m").Byte(0).ToArray(),
        new PgTestMessages().Int32(10).CString("SCRAM-SHA-256").Byte(0).ToArray(),
        new PgTestMessages().Int32(5).Bytes(1, 2, 3, 4).ToArray(),
        new PgTestMessages().CString("client_encoding").CString("UTF8").ToArray(),
        new PgTestMessages().CString("INSERT 0 3").ToArray(),
        new PgTestMessages().Int32(25).Int32(196608).CString("user").CString("u").CString("database").CString("d").Byte(0).ToArray(),
        new PgTestMessages().Int32(16).Int32(80877102).Int32(1).Int32(2).ToArray(),
        new PgTestMessages().Int16(3).Int16(1).Int16(0x4000).Int16(6).Int16(1234).Int16(5678).Int16(9012).ToArray(),
    ];

    private static void AssertOnlyProtocolErrors(ReadOnlySpan<byte> payload)
    {
        foreach (var (name, parse) in Parsers)
        {
            try
            {
                parse(payload);
            }
            catch (PgProtocolException)
            {
            }
            catch (Exception ex)
            {
                Assert.Fail($"{name} threw {ex.GetType().Name} for [{Convert.ToHexString(payload)}]: {ex.Message}");
            }
        }
    }

    [Property(MaxTest = 2000)]
    public void Random_bytes_only_raise_protocol_errors(byte[] payload)
    {
        AssertOnlyProtocolErrors(payload ?? []);
    }

    [Property(MaxTest = 1000)]
    public void Random_bytes_framing_never_throws(byte[] buffer, int maxLength, byte cut)
    {
        buffer ??= [];
        var sequence = buffer.Length == 0 ? ReadOnlySequence<byte>.Empty : TestSequenceSegment.Split(buffer, cut % (buffer.Length + 1));
        var result = PgMessageFraming.TryReadFrame(sequence, Math.Abs(maxLength % 100_000), out _, out int length);
        if (result == PgFrameResult.Complete)
        {
            Assert.True(length >= 4 && length + 1 <= buffer.Length);
        }

        var startup = PgMessageFraming.TryReadStartupFrame(sequence, out var frame);
        if (startup == PgFrameResult.Complete)
        {
            Assert.True(frame.Length >= 8 && frame.Length <= buffer.Length);
        }
    }

    [Fact]
    public void Every_truncation_and_single_byte_mutation_of_valid_messages_only_raises_protocol_errors()
    {
        byte[] interesting = [0x00, 0x01, 0x7F, 0x80, 0xFF, (byte)'S', (byte)'P'];
        foreach (byte[] sample in Samples)
        {
            for (int length = 0; length <= sample.Length; length++)
            {
                AssertOnlyProtocolErrors(sample.AsSpan(0, length));
            }

            byte[] mutated = (byte[])sample.Clone();
            for (int i = 0; i < mutated.Length; i++)
            {
                byte original = mutated[i];
                foreach (byte value in interesting)
                {
                    mutated[i] = value;
                    AssertOnlyProtocolErrors(mutated);
                }

                mutated[i] = original;
            }
        }
    }

    [Property(MaxTest = 300)]
    public void Scram_server_messages_are_refused_cleanly(string serverFirst, string serverFinal)
    {
        var client = new ScramSha256Client("pencil", "nonce", "*");
        client.CreateClientFirst();
        try
        {
            client.CreateClientFinal("r=nonce" + (serverFirst ?? string.Empty) + ",s=c2FsdA==,i=1");
            client.VerifyServerFinal(serverFinal ?? string.Empty);
            Assert.Fail("a random server signature must not verify");
        }
        catch (PgProtocolException)
        {
        }
    }

    [Property(MaxTest = 300)]
    public void Scram_random_server_first_only_raises_protocol_errors(string serverFirst)
    {
        var client = new ScramSha256Client("pencil", "nonce", "*");
        client.CreateClientFirst();
        try
        {
            client.CreateClientFinal(serverFirst ?? string.Empty);
        }
        catch (PgProtocolException)
        {
        }
    }

    public static class Arbitraries
    {
        public static Arbitrary<byte[]> Bytes() => Gen.ArrayOf(Gen.Elements<byte>(0, 1, 2, 3, 4, 0x7F, 0x80, 0xFF, (byte)'S', (byte)'P', (byte)'a')).ToArbitrary();
    }

    [Property(MaxTest = 2000, Arbitrary = new[] { typeof(Arbitraries) })]
    public void Small_alphabet_bytes_only_raise_protocol_errors(byte[] payload)
    {
        // A small alphabet makes counts, NULs and valid format codes likely, so parsers get further in.
        AssertOnlyProtocolErrors(payload ?? []);
    }
}
