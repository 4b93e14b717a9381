using Microsoft.Extensions.Configuration;
using NhiAudit.Postgres;
using NhiAudit.Proxy.Commands;

namespace NhiAudit.Proxy.Tests;

public sealed class GatewayConfigurationTests
{
    [Fact]
    public void Without_a_file_the_embedded_default_listens_on_loopback_and_trusts_the_local_issuer()
    {
        var configuration = GatewayConfiguration.Build(null);
        var postgres = configuration.GetSection("NhiAudit:Postgres").Get<PostgresOptions>()!;
        var target = Assert.Single(postgres.Targets);
        Assert.StartsWith("127.0.0.1:", target.Listen, StringComparison.Ordinal);
        Assert.True(target.Tls.Required);
        Assert.Equal("https://issuer.local", configuration["NhiAudit:Identity:Issuers:0:Issuer"]);
        Assert.Equal("audit", configuration["NhiAudit:Audit:Directory"]);
        Assert.Equal("WriteAhead", configuration["NhiAudit:Audit:Durability"]);
    }

    [Fact]
    public void A_missing_config_file_is_a_clear_error()
    {
        var missing = new FileInfo(Path.Combine(Path.GetTempPath(), Guid.NewGuid().ToString("N") + ".json"));
        var error = Assert.Throws<FileNotFoundException>(() => GatewayConfiguration.Build(missing));
        Assert.Contains(missing.FullName, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Show_renders_a_request_and_its_response_on_one_line_each()
    {
        var request = """{"seq":7,"prev":"00","time":"2026-11-28T08:00:00.1234567Z","type":"pg.request","session":{"id":"abcdefghijkm"},"identity":{"name":"contoso/orders/deploy.yml#1"},"kind":"SELECT","text":"SELECT\n  1","params":["42"]}""";
        var response = """{"seq":8,"prev":"00","time":"2026-11-28T08:00:00.2234567Z","type":"pg.response","session":{"id":"abcdefghijkm"},"request":7,"tag":"SELECT 1","rows":1,"durationMs":0.4}""";
        var requestLine = ShowCommand.Describe(request);
        Assert.Contains("SELECT SELECT 1 params=[\"42\"]", requestLine, StringComparison.Ordinal);
        Assert.Contains("contoso/orders/deploy.yml#1", requestLine, StringComparison.Ordinal);
        Assert.Contains("← #7 SELECT 1 rows=1 0.4ms", ShowCommand.Describe(response), StringComparison.Ordinal);
        Assert.StartsWith("(not JSON)", ShowCommand.Describe("{broken"), StringComparison.Ordinal);
    }

    [Fact]
    public void Show_renders_ssh_records_with_their_connection_command_and_outcome()
    {
        var request = """{"seq":3,"prev":"00","time":"2026-11-28T08:00:00.1234567Z","type":"ssh.request","identity":{"subject":"deploy-bot","name":"deploy-bot"},"request":{"id":"c0ffee000001-1","target":"build","connection":"c0ffee000001","action":"exec","command":"rm -rf /srv/app"},"policy":{"effect":"Deny","rule":"no-rm-rf","version":1},"refused":"denied by policy rule 'no-rm-rf'"}""";
        var response = """{"seq":4,"prev":"00","time":"2026-11-28T08:00:00.2234567Z","type":"ssh.response","request":3,"requestId":"c0ffee000001-1","exitStatus":126,"bytesIn":0,"bytesOut":0,"stderrBytes":60,"durationMs":4.2}""";
        var file = """{"seq":5,"prev":"00","time":"2026-11-28T08:00:00.3234567Z","type":"ssh.sftp","request":3,"requestId":"c0ffee000001-2","kind":"FileClosed","path":"/srv/app/VERSION","succeeded":true,"bytesRead":0,"bytesWritten":14,"sha256":"1e0d5dd13d94012d0000000000000000000000000000000000000000000000"}""";

        var requestLine = ShowCommand.Describe(request);
        Assert.Contains("c0ffee000001", requestLine, StringComparison.Ordinal);
        Assert.Contains("deploy-bot", requestLine, StringComparison.Ordinal);
        Assert.Contains("exec rm -rf /srv/app", requestLine, StringComparison.Ordinal);
        Assert.Contains("REFUSED", requestLine, StringComparison.Ordinal);
        Assert.Contains("← #3 exit=126 in=0 out=0 4.2ms", ShowCommand.Describe(response), StringComparison.Ordinal);
        Assert.Contains("FileClosed /srv/app/VERSION wrote 14 sha256=1e0d5dd13d94012d…", ShowCommand.Describe(file), StringComparison.Ordinal);
    }
}
