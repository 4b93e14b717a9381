using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using NhiAudit.IntegrationTests.Infrastructure;
using Npgsql;

namespace NhiAudit.IntegrationTests.Gateway;

/// <summary>The reference gateway as users run it: the <c>nhiaudit</c> program in its own process, with a config file.</summary>
public sealed partial class GatewayProcess : IAsyncDisposable
{
    private readonly Process _process;

    private GatewayProcess(Process process, string directory, int port)
    {
        _process = process;
        Directory = directory;
        Port = port;
    }

    public string Directory { get; }

    public string AuditDirectory => Path.Combine(Directory, "audit");

    public string ConfigFile => Path.Combine(Directory, "nhiaudit.json");

    public int Port { get; }

    /// <summary>The peak resident memory of the gateway process so far (VmHWM), in bytes.</summary>
    public long PeakResidentBytes
    {
        get
        {
            var line = File.ReadLines($"/proc/{_process.Id.ToString(CultureInfo.InvariantCulture)}/status").First(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
            return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
        }
    }

    public static string ProgramPath => Path.Combine(AppContext.BaseDirectory, "NhiAudit.Proxy.dll");

    /// <summary>Runs <c>nhiaudit ARGS</c> to completion.</summary>
    public static Task<ProcessResult> RunCliAsync(IEnumerable<string> args, string? workingDirectory = null) =>
        ProcessRunner.RunAsync("dotnet", [ProgramPath, .. args], timeout: TimeSpan.FromSeconds(60), workingDirectory: workingDirectory);

    public static Task<GatewayProcess> StartAsync(PostgresServer server, string? directory = null, string durability = "WriteAhead", Action<Dictionary<string, object?>>? configure = null)
    {
        var port = FreePort.Get();
        return StartAsync(port, directory, durability, section =>
        {
            section["Postgres"] = new
            {
                Targets = new[]
                {
                    new
                    {
                        Name = "orders",
                        Listen = $"127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}",
                        Upstream = new { Host = server.Host, server.Port, Username = PostgresServer.AppUser, Password = PostgresServer.AppPassword, SslMode = "Disable" },
                        Tls = new { Required = false, StateDirectory = Path.Combine((string)section["Directory"]!, "state") },
                    },
                },
            };
            configure?.Invoke(section);
        });
    }

    /// <summary>
    /// Starts <c>nhiaudit run</c> with the development issuer, its audit log under the directory, and whatever
    /// <paramref name="configure"/> adds to the <c>NhiAudit</c> section: at least a target listening on
    /// <paramref name="port"/>, which is awaited. The section's <c>Directory</c> entry names the folder and is removed before writing.
    /// </summary>
    public static async Task<GatewayProcess> StartAsync(int port, string? directory, string durability, Action<Dictionary<string, object?>> configure)
    {
        directory ??= Path.Combine(PostgresServer.TempRoot, "gwp-" + Guid.NewGuid().ToString("N")[..10]);
        System.IO.Directory.CreateDirectory(directory);
        var section = new Dictionary<string, object?>
        {
            ["Directory"] = directory,
            ["DevelopmentIssuer"] = new { Directory = Path.Combine(directory, "issuer"), Issuer = "https://issuer.local" },
            ["Identity"] = new { Issuers = new[] { new { Name = "local", Issuer = "https://issuer.local", JwksFile = Path.Combine(directory, "issuer", "jwks.json"), Audiences = new[] { "nhiaudit" } } } },
            ["Audit"] = new { Directory = Path.Combine(directory, "audit"), Durability = durability },
        };

        // The fixed settings above, plus whatever the test adds (targets, Policy, Approvals, Admin, ...).
        configure(section);
        section.Remove("Directory");
        var configFile = Path.Combine(directory, "nhiaudit.json");
        await File.WriteAllTextAsync(configFile, JsonSerializer.Serialize(new Dictionary<string, object?> { ["NhiAudit"] = section }));

        var start = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { ProgramPath, "run", "--config", configFile },
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        var process = Process.Start(start)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        // The admin API is a hosted service of its own, started after the targets: a test that calls it at once must
        // not find the target listening and the admin API not yet.
        var ports = new List<int> { port };
        if (JsonSerializer.SerializeToElement(section).TryGetProperty("Admin", out var admin) && admin.TryGetProperty("Listen", out var listen)
            && System.Net.IPEndPoint.TryParse(listen.GetString() ?? "", out var adminEndpoint))
        {
            ports.Add(adminEndpoint.Port);
        }

        foreach (var awaited in ports)
        {
            if (!await FreePort.WaitForListeningAsync(awaited, TimeSpan.FromSeconds(60)))
            {
                process.Kill(entireProcessTree: true);
                throw new InvalidOperationException($"nhiaudit did not start listening on {awaited}");
            }
        }

        return new GatewayProcess(process, directory, port);
    }

    /// <summary>Runs <c>nhiaudit approvals ARGS</c> against the admin API on <paramref name="adminPort"/> as the approver holding <paramref name="approverToken"/>.</summary>
    public static Task<ProcessResult> ApprovalsCliAsync(int adminPort, string approverToken, params string[] args) =>
        RunCliAsync(["approvals", .. args, "--admin", $"http://127.0.0.1:{adminPort.ToString(CultureInfo.InvariantCulture)}", "--token", approverToken]);

    /// <summary>
    /// An open Npgsql connection through this gateway with a token for <paramref name="subject"/>, and the ticket id of
    /// the first statement it has held for approval (read from the NoticeResponse the gateway sends).
    /// </summary>
    public async Task<(NpgsqlConnection Connection, Task<string> Ticket)> OpenWatchingForTicketAsync(string subject, int commandTimeoutSeconds)
    {
        var token = await MintTokenAsync(subject);
        var connection = new NpgsqlConnection($"Host=127.0.0.1;Port={Port};Username=ci-job;Password={token};Database=app;SSL Mode=Disable;Pooling=false;Command Timeout={commandTimeoutSeconds}");
        var ticket = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        connection.Notice += (_, e) =>
        {
            if (TicketInNotice().Match(e.Notice.MessageText) is { Success: true } match)
            {
                ticket.TrySetResult(match.Groups[1].Value);
            }
        };
        await connection.OpenAsync();
        return (connection, ticket.Task);
    }

    [GeneratedRegex(@"held for approval (\S+)")]
    private static partial Regex TicketInNotice();

    public async Task<string> MintTokenAsync(string subject, params string[] extraArgs)
    {
        var result = await RunCliAsync(["token", "--config", ConfigFile, "--subject", subject, .. extraArgs]);
        Assert.True(result.Succeeded, result.Describe("nhiaudit token"));
        return result.StandardOutput.Trim();
    }

    /// <summary>SIGKILL: no shutdown code runs, exactly like a crash or an OOM kill.</summary>
    public void Kill()
    {
        _process.Kill(entireProcessTree: false);
        _process.WaitForExit(10_000);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }
}
