using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using NhiAudit.Masking;
using NhiAudit.Postgres.Masking;
using NhiAudit.Postgres.Protocol;
using NhiAudit.Postgres.Tests.Protocol;
using static NhiAudit.Postgres.Tests.Masking.MaskingTestData;

namespace NhiAudit.Postgres.Tests.Masking;

public class PgErrorMaskerTests
{
    private static readonly MaskingPolicy Pii = PiiPolicy();
    private static readonly MaskingPolicy NoDetectors = ColumnsOnly();

    private static readonly PgErrorMaskContext Touching = new(true, false, (_, _) => false);
    private static readonly PgErrorMaskContext NotTouching = new(false, false, (s, t) => s == "public" && t == "customers");
    private static readonly PgErrorMaskContext RunsCode = new(true, true, (_, _) => false);

    [Fact]
    public void What_code_over_protected_data_raises_is_masked_whole_and_the_rest_kept()
    {
        var counters = default(PgMaskCounters);
        var fields = Rewrite(
            Error('N', ('S', "NOTICE"), ('C', "P0001"), ('M', "got QZX7731"), ('D', "QZX7731"), ('H', "hint QZX7731"), ('W', "PL/pgSQL function leak() line 1 at RAISE")),
            RunsCode,
            NoDetectors,
            ref counters);
        Assert.NotNull(fields);
        Assert.DoesNotContain(fields, f => f.Value.Contains("QZX7731", StringComparison.Ordinal));
        Assert.Contains(('C', "P0001"), fields);
        Assert.Contains(('S', "NOTICE"), fields);
        Assert.Equal(4, counters.MaskedValues);
    }

    private static byte[] Error(char type, params (char Code, string Value)[] fields)
    {
        var body = new PgTestMessages();
        foreach (var (code, value) in fields)
        {
            body.Byte((byte)code).CString(value);
        }

        return Frame(type, body.Byte(0).ToArray());
    }

    private static List<(char Code, string Value)>? Rewrite(byte[] message, PgErrorMaskContext context, MaskingPolicy policy, ref PgMaskCounters counters)
    {
        var buffer = new ArrayBufferWriter<byte>();
        if (!PgErrorMasker.TryRewrite(message, context, policy, buffer, ref counters))
        {
            Assert.Equal(0, buffer.WrittenCount);
            return null;
        }

        byte[] written = buffer.WrittenSpan.ToArray();
        Assert.Equal(message[0], written[0]);
        Assert.Equal(written.Length - 1, BinaryPrimitives.ReadInt32BigEndian(written.AsSpan(1)));
        var fields = new List<(char, string)>();
        int pos = 5;
        while (written[pos] != 0)
        {
            char code = (char)written[pos++];
            int nul = Array.IndexOf(written, (byte)0, pos);
            fields.Add((code, Encoding.UTF8.GetString(written, pos, nul - pos)));
            pos = nul + 1;
        }

        Assert.Equal(written.Length - 1, pos);
        _ = PgErrorOrNotice.Parse(written.AsSpan(5));
        return fields;
    }

    private static string? Field(List<(char Code, string Value)> fields, char code) => fields.FirstOrDefault(f => f.Code == code).Value;

    [Theory]
    [InlineData("Key (ssn)=(123-45-6789) already exists.", "Key (ssn)=(****) already exists.")]
    [InlineData("Key (a, b)=(1, x) is not present in table \"t\".", "Key (a, b)=(****) is not present in table \"t\".")]
    [InlineData("Key (c)=(v) conflicts with existing key (c)=(w).", "Key (c)=(****) conflicts with existing key (c)=(****).")]
    [InlineData("Key (lower(name))=(a (b) c) already exists.", "Key (lower(name))=(****) already exists.")]
    [InlineData("Key (ssn)=(12(3 already exists.", "Key (ssn)=(****)")]
    [InlineData("Failing row contains (1, 123-45-6789, null).", "Failing row contains (****).")]
    [InlineData("Failing row contains (1, ), x).", "Failing row contains (****).")]
    public void Detail_value_tuples_are_masked(string detail, string expected)
    {
        var counters = new PgMaskCounters();
        var fields = Rewrite(Error('E', ('S', "ERROR"), ('V', "ERROR"), ('C', "23505"), ('M', "duplicate key value violates unique constraint \"c\""), ('D', detail), ('s', "public"), ('t', "customers")), NotTouching, NoDetectors, ref counters)!;

        Assert.Equal(expected, Field(fields, 'D'));
        Assert.Equal("duplicate key value violates unique constraint \"c\"", Field(fields, 'M'));
        Assert.Equal(['S', 'V', 'C', 'M', 'D', 's', 't'], fields.Select(f => f.Code));
        Assert.Equal(1, counters.MaskedValues);
    }

    [Fact]
    public void A_localized_detail_of_class_23_is_masked_whole()
    {
        var counters = new PgMaskCounters();
        var fields = Rewrite(Error('E', ('C', "23505"), ('M', "doppelter Schlüsselwert"), ('D', "Schlüssel »(ssn)«=»123« existiert bereits.")), Touching, NoDetectors, ref counters)!;
        Assert.Equal("(detail masked by the gateway)", Field(fields, 'D'));
    }

    [Fact]
    public void Class_22_masks_quoted_input_in_the_message()
    {
        var counters = new PgMaskCounters();
        var fields = Rewrite(Error('E', ('C', "22P02"), ('M', "invalid input syntax for type integer: \"123-45-6789\""), ('P', "42")), Touching, NoDetectors, ref counters)!;
        Assert.Equal("invalid input syntax for type integer: \"****\"", Field(fields, 'M'));
        Assert.Equal("42", Field(fields, 'P'));
        Assert.Equal(1, counters.MaskedValues);
    }

    [Fact]
    public void Unpaired_quote_masks_the_rest()
    {
        Assert.Equal("a \"****\"", Encoding.UTF8.GetString(PgErrorMasker.MaskQuoted("a \"secret"u8)!));
        Assert.Null(PgErrorMasker.MaskQuoted("no quotes"u8));
    }

    [Fact]
    public void Errors_of_unprotected_tables_are_left_alone_without_detectors()
    {
        var counters = new PgMaskCounters();
        byte[] message = Error('E', ('C', "23505"), ('D', "Key (id)=(1) already exists."), ('s', "public"), ('t', "orders"));
        Assert.Null(Rewrite(message, NotTouching, NoDetectors, ref counters));
        Assert.Null(Rewrite(Error('E', ('C', "42P01"), ('M', "relation \"x\" does not exist")), Touching, NoDetectors, ref counters));
        Assert.Equal(default, counters);
    }

    [Fact]
    public void Detectors_run_over_free_text_fields()
    {
        var counters = new PgMaskCounters();
        var fields = Rewrite(
            Error('N', ('S', "NOTICE"), ('C', "00000"), ('M', "sent to bob@example.com"), ('H', "card 4111 1111 1111 1111"), ('W', "PL/pgSQL function f()"), ('q', "SELECT 'eve@example.com'"), ('F', "bob@example.com")),
            NotTouching,
            Pii,
            ref counters)!;

        Assert.Equal(DetectedOf(Pii, "sent to bob@example.com"), Field(fields, 'M'));
        Assert.DoesNotContain("4111 1111 1111 1111", Field(fields, 'H'));
        Assert.Equal("PL/pgSQL function f()", Field(fields, 'W'));
        Assert.DoesNotContain("eve@example.com", Field(fields, 'q'));
        Assert.Equal("bob@example.com", Field(fields, 'F'));
        Assert.Equal(3, counters.DetectedValues);
        Assert.True(counters.Found.HasFlag(SensitiveValueKinds.Email | SensitiveValueKinds.CreditCard));
    }

    [Fact]
    public void Nothing_found_writes_nothing()
    {
        var counters = new PgMaskCounters();
        Assert.Null(Rewrite(Error('E', ('C', "42601"), ('M', "syntax error at or near \"x\"")), NotTouching, Pii, ref counters));
    }

    [Theory]
    [InlineData("45")]
    [InlineData("450000000400")]
    [InlineData("450000000843414243")]
    [InlineData("4500000007434100")]
    [InlineData("4500000007004142")]
    [InlineData("440000000500")]
    public void Malformed_messages_are_protocol_violations(string hex)
    {
        var counters = new PgMaskCounters();
        Assert.Equal("08P01", Assert.Throws<PgProtocolException>(() => Rewrite(Convert.FromHexString(hex), Touching, Pii, ref counters)).SqlState);
    }
}
