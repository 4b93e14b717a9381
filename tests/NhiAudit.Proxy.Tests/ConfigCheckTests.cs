using System.CommandLine;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Configuration;
using NhiAudit.Proxy.Configuration;

namespace NhiAudit.Proxy.Tests;

/// <summary><c>nhiaudit config check</c> and the checks <c>run</c> makes first, in process.</summary>
public sealed class ConfigCheckTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("nhiaudit-cfg-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static List<string> Problems(string json)
    {
        var configuration = new ConfigurationBuilder().AddJsonStream(new MemoryStream(System.Text.Encoding.UTF8.GetBytes(json))).Build();
        return ConfigurationSchema.Check(configuration.GetSection("NhiAudit")).Select(p => p.ToString()).ToList();
    }

    private async Task<(int Exit, string Output, string Error)> CliAsync(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var exit = await NhiAuditCli.InvokeAsync(args, new InvocationConfiguration { Output = output, Error = error });
        return (exit, output.ToString(), error.ToString());
    }

    private string Write(string json)
    {
        var file = Path.Combine(_directory, Guid.NewGuid().ToString("N") + ".json");
        File.WriteAllText(file, json);
        return file;
    }

    [Fact]
    public void Unknown_keys_are_named_with_their_path_and_the_nearest_known_key()
    {
        Assert.Equal(
            [
                "config: NhiAudit:Audit:Durabilty: unknown key (did you mean Durability?)",
                "config: NhiAudit:Frobnicate: unknown key",
                "config: NhiAudit:Policy:Rules:0:Wehn: unknown key (did you mean When?)",
                "config: NhiAudit:Ssh:Targets:0:Upstream:PrivateKey: unknown key (did you mean PrivateKeyFile?)",
            ],
            Problems("""
                { "NhiAudit": {
                    "Audit": { "Durabilty": "Durable" },
                    "Frobnicate": 1,
                    "Policy": { "Rules": [ { "Name": "x", "Wehn": "true" } ] },
                    "Ssh": { "Targets": [ { "Upstream": { "PrivateKey": "k" } } ] } } }
                """));
    }

    [Fact]
    public void Values_lists_and_sections_must_fit_their_property()
    {
        Assert.Equal(
            [
                "config: NhiAudit:Approvals:Timeout: expected a duration (hh:mm:ss, or d.hh:mm:ss), found a section",
                "config: NhiAudit:Audit:Durability: 'Sometimes' is not one of Buffered, WriteAhead, Durable",
                "config: NhiAudit:Identity:Issuers:0:Audiences: expected a list, found the value 'nhiaudit'",
                "config: NhiAudit:Postgres:Targets:0:Tls:Required: 'yes' is not true or false",
                "config: NhiAudit:Postgres:Targets:x: not a list index (a list's items are numbered 0, 1, ...)",
            ],
            Problems("""
                { "NhiAudit": {
                    "Approvals": { "Timeout": { "Minutes": 5 } },
                    "Audit": { "Durability": "Sometimes" },
                    "Identity": { "Issuers": [ { "Name": "a", "Audiences": "nhiaudit" } ] },
                    "Postgres": { "Targets": { "0": { "Tls": { "Required": "yes" } }, "x": { } } } } }
                """));
    }

    [Fact]
    public void What_the_binder_accepts_is_accepted_dictionaries_extras_case_and_numbers_included()
    {
        Assert.Empty(Problems("""
            { "NhiAudit": {
                "audit": { "durability": "durable", "MaxSegmentBytes": "1024", "Retention": "30.00:00:00" },
                "Approvals": { "Timeout": "00:01:00", "Postgres": { "ConnectionString": "Host=db" } },
                "Sinks": { "Postgres": { "ConnectionString": "Host=db" }, "OpenTelemetry": { "Endpoint": "http://127.0.0.1:4318" } },
                "Ssh": { "Targets": [ { "PrincipalForUser": { "deploy": "root", "any-name": "x" } } ] },
                "Policy": { "Rules": [ { "Name": "n", "When": "true", "Effect": "Deny", "Protocols": ["ssh"] } ], "Masking": [] },
                "DevelopmentIssuer": { "Directory": "d" },
                "Kubernetes": { "Masking": { "ConfigMapKeys": ["password"] } } } }
            """));
    }

    [Fact]
    public void The_deployment_configuration_has_no_unknown_keys()
    {
        var root = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(root, "NhiAudit.sln")))
        {
            root = Path.GetDirectoryName(root)!;
        }

        Assert.Empty(Problems(File.ReadAllText(Path.Combine(root, "deploy", "kubernetes", "nhiaudit.json"))));
    }

    [Fact]
    public void Secrets_are_elided_from_printed_values()
    {
        Assert.Equal("***", GatewayConfigurationCheck.ElideValue("Password", "hunter2"));
        Assert.Equal("***", GatewayConfigurationCheck.ElideValue("Headers", "Authorization=Bearer abc"));
        Assert.Equal("host=db;password=***", GatewayConfigurationCheck.ElideValue("ConnectionString", "Host=db;Password=hunter2"));
        Assert.Equal("https://hooks.example.com/***", GatewayConfigurationCheck.ElideValue("WebhookUrl", "https://hooks.example.com/services/T0/B0/secret"));
        Assert.Equal("***", GatewayConfigurationCheck.ElideValue("PublicKey", "-----BEGIN PRIVATE KEY-----\nMII..."));
        Assert.Equal("/etc/nhiaudit/key.pem", GatewayConfigurationCheck.ElideValue("KeyFile", "/etc/nhiaudit/key.pem"));
    }

    [Fact]
    public async Task Config_check_of_the_embedded_default_exits_0_with_the_effective_configuration()
    {
        var (exit, output, error) = await CliAsync("config", "check");
        Assert.True(exit == 0, error);
        var effective = JsonNode.Parse(output)!["NhiAudit"]!;
        Assert.Equal("WriteAhead", effective["Audit"]!["Durability"]!.GetValue<string>());
        Assert.Equal("00:05:00", effective["Approvals"]!["Timeout"]!.GetValue<string>());
        Assert.Contains("OK", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Config_check_of_a_bad_file_exits_2_with_one_line_per_problem()
    {
        var file = Write("""
            { "NhiAudit": {
                "Identity": { "Issuers": [ { "Name": "local", "Issuer": "https://issuer.local", "JwksFile": "/nonexistent/jwks.json", "Audiences": ["nhiaudit"] } ] },
                "Audit": { "Directory": "audit" },
                "Policy": { "Rules": [ { "Name": "broken", "When": "request.action ==", "Effect": "Deny" } ] },
                "Admin": { "Listen": "127.0.0.1" } } }
            """);
        var (exit, output, error) = await CliAsync("config", "check", "--config", file);
        Assert.Equal(2, exit);
        Assert.Equal("", output);
        var lines = error.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.Equal(3, lines.Length);
        Assert.StartsWith("config: NhiAudit:Policy rule 'broken': When does not compile: ", lines[0], StringComparison.Ordinal);
        Assert.Equal("config: NhiAudit:Identity:Issuers:0:JwksFile: file '/nonexistent/jwks.json' does not exist", lines[1]);
        Assert.Equal("config: NhiAudit:Admin:Listen: '127.0.0.1' is not an address to listen on (an IP address and a port, e.g. 127.0.0.1:6432)", lines[2]);
        Assert.DoesNotContain("   at ", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_file_that_is_not_json_or_has_no_NhiAudit_section_is_one_line()
    {
        var broken = Write("{ \"NhiAudit\": { \"Audit\": ");
        var (exit, _, error) = await CliAsync("config", "check", "--config", broken);
        Assert.Equal(2, exit);
        Assert.StartsWith($"config: {broken}: cannot be read: ", error, StringComparison.Ordinal);
        Assert.Single(error.Split('\n', StringSplitOptions.RemoveEmptyEntries));

        var empty = Write("{ \"Nhiaudit-typo\": {} }");
        (exit, _, error) = await CliAsync("run", "--config", empty);
        Assert.Equal(2, exit);
        Assert.Equal("config: NhiAudit: missing: the file has no NhiAudit section", error.Trim());
    }

    [Fact]
    public async Task Run_with_a_missing_file_exits_2_with_one_line()
    {
        var missing = Path.Combine(_directory, "missing.json");
        var (exit, _, error) = await CliAsync("run", "--config", missing);
        Assert.Equal(2, exit);
        Assert.Equal($"config: {missing}: no such file", error.Trim());
    }

    [Fact]
    public async Task Help_and_usage_name_the_command_nhiaudit()
    {
        var (exit, output, _) = await CliAsync("--help");
        Assert.Equal(0, exit);
        Assert.Contains("nhiaudit [command] [options]", output, StringComparison.Ordinal);
        Assert.DoesNotContain("NhiAudit.Proxy", output, StringComparison.Ordinal);

        (_, output, _) = await CliAsync("config", "check", "--help");
        Assert.Contains("nhiaudit config check [options]", output, StringComparison.Ordinal);
    }
}
