using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;
using NhiAudit.IntegrationTests.Infrastructure;

namespace NhiAudit.IntegrationTests.Gateway;

/// <summary>
/// The real <c>nhiaudit</c> process given a bad configuration, as a new user would meet it: exit code 2, one line per
/// problem on stderr naming the key path, no stack trace, and no audit file written.
/// </summary>
public sealed class ConfigurationErrorTests : IDisposable
{
    private readonly string _directory = Path.Combine(PostgresServer.TempRoot, "cfgerr-" + Guid.NewGuid().ToString("N")[..10]);

    public ConfigurationErrorTests() => Directory.CreateDirectory(_directory);

    private string AuditDirectory => Path.Combine(_directory, "audit");

    private string ConfigFile => Path.Combine(_directory, "nhiaudit.json");

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    /// <summary>A working configuration: development issuer, audit log under the test folder, one PostgreSQL target on a free port.</summary>
    private JsonObject Good(int? port = null) => new()
    {
        ["NhiAudit"] = new JsonObject
        {
            ["DevelopmentIssuer"] = new JsonObject { ["Directory"] = Path.Combine(_directory, "issuer"), ["Issuer"] = "https://issuer.local" },
            ["Identity"] = new JsonObject
            {
                ["Issuers"] = new JsonArray(new JsonObject
                {
                    ["Name"] = "local",
                    ["Issuer"] = "https://issuer.local",
                    ["JwksFile"] = Path.Combine(_directory, "issuer", "jwks.json"),
                    ["Audiences"] = new JsonArray("nhiaudit"),
                }),
            },
            ["Audit"] = new JsonObject { ["Directory"] = AuditDirectory, ["Durability"] = "WriteAhead" },
            ["Postgres"] = new JsonObject
            {
                ["Targets"] = new JsonArray(new JsonObject
                {
                    ["Name"] = "orders",
                    ["Listen"] = $"127.0.0.1:{(port ?? FreePort.Get()).ToString(CultureInfo.InvariantCulture)}",
                    ["Upstream"] = new JsonObject { ["Host"] = "127.0.0.1", ["Port"] = 5432, ["Username"] = "app", ["Password"] = "s3cret-upstream-pw" },
                    ["Tls"] = new JsonObject { ["Required"] = false, ["StateDirectory"] = Path.Combine(_directory, "state") },
                }),
            },
            ["Approvals"] = new JsonObject { ["Timeout"] = "00:01:00", ["Postgres"] = new JsonObject { ["ConnectionString"] = "Host=db;Username=approvals;Password=s3cret-approvals-pw" } },
            ["Policy"] = new JsonObject
            {
                ["Rules"] = new JsonArray(new JsonObject { ["Name"] = "no-drop", ["When"] = "request.action == 'DROP'", ["Effect"] = "Deny" }),
            },
        },
    };

    private async Task<ProcessResult> RunAsync(JsonObject? config, IDictionary<string, string>? env = null, params string[] command)
    {
        if (config is not null)
        {
            await File.WriteAllTextAsync(ConfigFile, config.ToJsonString());
        }

        return await ProcessRunner.RunAsync("dotnet", [GatewayProcess.ProgramPath, .. command.Length == 0 ? ["run", "--config", ConfigFile] : command], timeout: TimeSpan.FromSeconds(60), env: env, workingDirectory: _directory);
    }

    private void AssertRefused(ProcessResult result, params string[] lines)
    {
        Assert.False(result.TimedOut, "nhiaudit did not exit");
        Assert.True(result.ExitCode == 2, $"exit code {result.ExitCode}; stderr: {result.StandardError}; stdout: {result.StandardOutput}");
        var errors = result.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.Equal(lines, errors);
        Assert.DoesNotContain("   at ", result.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", result.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", result.StandardOutput, StringComparison.Ordinal);
        Assert.False(Directory.Exists(AuditDirectory) && Directory.EnumerateFileSystemEntries(AuditDirectory).Any(), "the audit directory was written");
    }

    [Fact]
    public async Task A_missing_file_is_one_line_and_exit_2()
    {
        var missing = Path.Combine(_directory, "missing.json");
        AssertRefused(await RunAsync(null, null, "run", "--config", missing), $"config: {missing}: no such file");
    }

    [Fact]
    public async Task A_misspelled_key_is_named_with_the_key_it_probably_meant()
    {
        var config = Good();
        config["NhiAudit"]!["Audit"]!["Durabilty"] = "Durable";
        AssertRefused(await RunAsync(config), "config: NhiAudit:Audit:Durabilty: unknown key (did you mean Durability?)");
    }

    [Fact]
    public async Task A_misspelled_key_in_an_array_element_or_an_environment_variable_is_caught_too()
    {
        var config = Good();
        config["NhiAudit"]!["Postgres"]!["Targets"]![0]!["Upstream"]!["Hots"] = "db";
        var env = new Dictionary<string, string> { ["NhiAudit__Postgres__Targets__0__Upstream__Prot"] = "5433" };
        AssertRefused(
            await RunAsync(config, env),
            "config: NhiAudit:Postgres:Targets:0:Upstream:Hots: unknown key (did you mean Host?)",
            "config: NhiAudit:Postgres:Targets:0:Upstream:Prot: unknown key (did you mean Port?)");
    }

    [Fact]
    public async Task A_bad_value_names_what_the_key_takes()
    {
        var config = Good();
        config["NhiAudit"]!["Audit"]!["Durability"] = "Sometimes";
        AssertRefused(await RunAsync(config), "config: NhiAudit:Audit:Durability: 'Sometimes' is not one of Buffered, WriteAhead, Durable");
    }

    [Fact]
    public async Task A_rule_that_does_not_compile_is_refused_before_the_audit_log_opens()
    {
        var config = Good();
        config["NhiAudit"]!["Policy"]!["Rules"]![0]!["When"] = "request.action ==";
        var result = await RunAsync(config);
        var line = Assert.Single(result.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("config: NhiAudit:Policy rule 'no-drop': When does not compile:", line, StringComparison.Ordinal);
        AssertRefused(result, line.Trim());
    }

    [Fact]
    public async Task An_unusable_key_file_is_refused()
    {
        var key = Path.Combine(_directory, "signing.pem");
        await File.WriteAllTextAsync(key, "not a key");
        var config = Good();
        config["NhiAudit"]!["Audit"]!["SigningKeyFile"] = key;
        var result = await RunAsync(config);
        var line = Assert.Single(result.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries)).Trim();
        Assert.StartsWith($"config: NhiAudit:Audit:SigningKeyFile: file '{key}' is not usable: ", line, StringComparison.Ordinal);
        AssertRefused(result, line);

        // A directory where a file should be cannot be read at all.
        config["NhiAudit"]!["Audit"]!["SigningKeyFile"] = _directory;
        AssertRefused(await RunAsync(config), $"config: NhiAudit:Audit:SigningKeyFile: '{_directory}' is a directory, not a file");
    }

    [Fact]
    public async Task A_port_in_use_is_refused_before_anything_starts()
    {
        using var taken = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        taken.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        taken.Listen();
        var port = ((IPEndPoint)taken.LocalEndPoint!).Port;
        AssertRefused(await RunAsync(Good(port)), $"config: NhiAudit:Postgres:Targets:0:Listen: 127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)} is already in use");
    }

    [Fact]
    public async Task An_unparseable_listen_address_is_exit_2_not_a_silent_0()
    {
        var config = Good();
        config["NhiAudit"]!["Postgres"]!["Targets"]![0]!["Listen"] = "localhost:6432";
        AssertRefused(await RunAsync(config), "config: NhiAudit:Postgres:Targets:0:Listen: 'localhost:6432' is not an address to listen on (an IP address and a port, e.g. 127.0.0.1:6432)");
    }

    [Fact]
    public async Task A_gateway_that_stops_on_an_error_after_starting_exits_1_not_0()
    {
        // Passes every check, then the PostgreSQL listener cannot create its TLS state directory (a file is in the way).
        var config = Good();
        await File.WriteAllTextAsync(Path.Combine(_directory, "afile"), "");
        config["NhiAudit"]!["Postgres"]!["Targets"]![0]!["Tls"] = new JsonObject { ["Required"] = true, ["StateDirectory"] = Path.Combine(_directory, "afile", "state") };
        var result = await RunAsync(config);
        Assert.False(result.TimedOut, "nhiaudit did not exit");
        Assert.True(result.ExitCode == 1, $"exit code {result.ExitCode}; stderr: {result.StandardError}");
        Assert.Contains("nhiaudit: fatal: Could not find a part of the path", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Config_check_prints_the_effective_configuration_without_secrets_and_starts_nothing()
    {
        var config = Good();
        var env = new Dictionary<string, string> { ["NhiAudit__Postgres__Targets__0__Upstream__Port"] = "5433" };
        var result = await RunAsync(config, env, "config", "check", "--config", ConfigFile);
        Assert.True(result.ExitCode == 0, result.StandardError);
        Assert.DoesNotContain("s3cret", result.StandardOutput, StringComparison.Ordinal);
        var effective = JsonNode.Parse(result.StandardOutput)!["NhiAudit"]!;
        var upstream = effective["Postgres"]!["Targets"]![0]!["Upstream"]!;
        Assert.Equal(5433, upstream["Port"]!.GetValue<int>());
        Assert.Equal("***", upstream["Password"]!.GetValue<string>());
        Assert.Equal("Host=db;Username=approvals;Password=***", effective["Approvals"]!["Postgres"]!["ConnectionString"]!.GetValue<string>(), ignoreCase: true);
        Assert.Equal("00:00:00.0200000", effective["Audit"]!["FlushInterval"]!.GetValue<string>());
        Assert.False(Directory.Exists(AuditDirectory));
        Assert.False(Directory.Exists(Path.Combine(_directory, "issuer")), "config check created the development issuer");
    }

    [Fact]
    public async Task Config_check_on_the_embedded_default_exits_0_and_on_a_bad_file_2_with_the_lines()
    {
        var result = await RunAsync(null, null, "config", "check");
        Assert.True(result.ExitCode == 0, result.StandardError);
        Assert.Equal(JsonValueKind.Object, JsonDocument.Parse(result.StandardOutput).RootElement.GetProperty("NhiAudit").ValueKind);

        var config = Good();
        config["NhiAudit"]!["Audit"]!["Durabilty"] = "Durable";
        config["NhiAudit"]!["Approvals"]!["Timeout"] = "soon";
        var bad = await RunAsync(config, null, "config", "check", "--config", ConfigFile);
        AssertRefused(
            bad,
            "config: NhiAudit:Approvals:Timeout: 'soon' is not a duration (hh:mm:ss, or d.hh:mm:ss)",
            "config: NhiAudit:Audit:Durabilty: unknown key (did you mean Durability?)");
        Assert.Equal("", bad.StandardOutput);
    }

    [Fact]
    public async Task Help_names_the_command_nhiaudit()
    {
        var result = await RunAsync(null, null, "--help");
        Assert.Equal(0, result.ExitCode);
        Assert.Contains("nhiaudit [command] [options]", result.StandardOutput, StringComparison.Ordinal);
        Assert.DoesNotContain("NhiAudit.Proxy", result.StandardOutput, StringComparison.Ordinal);
    }
}
