using System.Text;

namespace NhiAudit.Sinks.Postgres.Tests;

public sealed class JsonbCompatibilityTests
{
    [Theory]
    [InlineData("""{"seq":1,"sql":"select 1"}""")]
    [InlineData("""{"s":"tab\tquote\"back\\slash"}""")]
    [InlineData("""{"s":"\u00e9\uD83D\uDE00"}""")]
    [InlineData("""{"s":"\\u0000 is an escaped backslash, not a NUL"}""")]
    public void AcceptsWhatJsonbAccepts(string line) => Assert.True(JsonbCompatibility.CanStoreAsJsonb(Encoding.UTF8.GetBytes(line)));

    [Theory]
    [InlineData("""{"s":"\u0000"}""")]
    [InlineData("""{"s":"\uD83D"}""")]
    [InlineData("""{"s":"\uDE00"}""")]
    [InlineData("""{"s":"\uD83Dx"}""")]
    [InlineData("""{"s":"\uD83D\n"}""")]
    public void RejectsWhatJsonbRefuses(string line) => Assert.False(JsonbCompatibility.CanStoreAsJsonb(Encoding.UTF8.GetBytes(line)));
}
