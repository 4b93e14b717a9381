using NhiAudit.Postgres.Protocol;
using NhiAudit.Postgres.Tests.Protocol;

namespace NhiAudit.Postgres.Tests.Masking;

public class PgRowDescriptionTests
{
    [Fact]
    public void Parses_every_field()
    {
        byte[] payload = new PgTestMessages()
            .Int16(2)
            .CString("id").Int32(16384).Int16(1).Int32(23).Int16(4).Int32(-1).Int16(0)
            .CString("ssn").Int32(16384).Int16(3).Int32(25).Int16(-1).Int32(-1).Int16(1)
            .ToArray();

        var fields = PgRowDescription.Parse(payload);

        Assert.Equal(
            [new PgFieldDescription("id", 16384, 1, 23, 4, -1, 0), new PgFieldDescription("ssn", 16384, 3, 25, -1, -1, 1)],
            fields);
    }

    [Fact]
    public void Parses_no_fields()
    {
        Assert.Empty(PgRowDescription.Parse(new PgTestMessages().Int16(0).ToArray()));
    }

    [Theory]
    [InlineData("")]
    [InlineData("0001")]
    [InlineData("000169640000")]
    [InlineData("0001696400000040000001000000170004FFFFFFFF0000FF")]
    [InlineData("0001696400000040000001000000170004FFFFFFFF0002")]
    [InlineData("FFFF")]
    public void Malformed_payloads_are_protocol_violations(string hex)
    {
        var ex = Assert.Throws<PgProtocolException>(() => PgRowDescription.Parse(Convert.FromHexString(hex)));
        Assert.Equal("08P01", ex.SqlState);
    }
}
