using System.Globalization;
using NhiAudit.IntegrationTests.Infrastructure;

namespace NhiAudit.IntegrationTests.Gateway;

/// <summary>Large results stream through the gateway; its memory does not grow with them.</summary>
[Collection(PostgresCollectionDefinition.Name)]
public sealed class StreamingTests(PostgresServerFixture fixture)
{
    [Fact]
    public async Task A_400_MB_value_streams_through_without_the_gateway_holding_it()
    {
        await using var gateway = await GatewayProcess.StartAsync(fixture.Server);
        var token = await gateway.MintTokenAsync("big-reader");
        var baseline = gateway.PeakResidentBytes;
        const int size = 400 * 1024 * 1024;
        var env = new Dictionary<string, string>(GatewayHost.LibpqEnvironment(token)) { ["PGSSLMODE"] = "disable" };
        var result = await ProcessRunner.RunAsync(
            PostgresBinaries.Psql,
            ["-X", "-At", "-h", "127.0.0.1", "-p", gateway.Port.ToString(CultureInfo.InvariantCulture), "-U", "ci-job", "-d", PostgresServer.AppDatabase,
             "-c", $"SELECT length(v), md5(v) FROM (SELECT repeat('x', {size}) AS v) s", "-c", $"SELECT repeat('y', {size})", "-o", "/dev/null"],
            timeout: TimeSpan.FromMinutes(3),
            env: env);
        Assert.True(result.Succeeded, result.Describe("psql"));

        var grown = gateway.PeakResidentBytes - baseline;
        Assert.True(grown < 96L * 1024 * 1024, $"the gateway's peak memory grew by {grown / (1024 * 1024)} MiB while relaying a {size / (1024 * 1024)} MiB value");

        var records = GatewayHost.ReadRecords(gateway.AuditDirectory);
        var big = records.OfType("pg.request").Single(r => r.Str("text") == $"SELECT repeat('y', {size})");
        var response = records.OfType("pg.response").Single(r => r.GetProperty("request").GetInt64() == big.GetProperty("seq").GetInt64());
        Assert.Equal(1, response.GetProperty("rows").GetInt64());
        Assert.True(response.GetProperty("bytes").GetInt64() > size);
    }
}
