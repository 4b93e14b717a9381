using System.Globalization;
using System.Text.RegularExpressions;
using NhiAudit.IntegrationTests.Gateway;
using NhiAudit.IntegrationTests.Infrastructure;
using NhiAudit.IntegrationTests.Kubernetes.Infrastructure;

namespace NhiAudit.IntegrationTests.Kubernetes.Gateway;

/// <summary>
/// A held <c>kubectl exec</c> through the reference gateway process: the HTTP request waits, kubectl waits with it, and
/// an approver decides with <c>nhiaudit approvals</c>.
/// </summary>
[Collection(PostgresCollectionDefinition.Name)]
public sealed partial class KubernetesApprovalTests(PostgresServerFixture fixture) : IAsyncLifetime
{
    private FakeKubeApiServer _upstream = null!;
    private GatewayProcess _gateway = null!;
    private int _port;
    private int _adminPort;
    private string _kubeconfig = "";
    private string _approverToken = "";

    public async Task InitializeAsync()
    {
        var directory = Path.Combine(PostgresServer.TempRoot, "k8sapp-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(directory);
        _upstream = await FakeKubeApiServer.StartAsync(Path.Combine(directory, "upstream"));
        var tokenFile = Path.Combine(directory, "upstream-token");
        await File.WriteAllTextAsync(tokenFile, _upstream.Token);
        _port = FreePort.Get();
        _adminPort = FreePort.Get();
        _gateway = await GatewayProcess.StartAsync(fixture.Server, directory: Path.Combine(directory, "gateway"), configure: section =>
        {
            section["Kubernetes"] = new
            {
                Targets = new[]
                {
                    new
                    {
                        Name = "cluster",
                        Listen = $"127.0.0.1:{_port.ToString(CultureInfo.InvariantCulture)}",
                        StateDirectory = Path.Combine(directory, "gateway", "k8s-state"),
                        RecordingsDirectory = Path.Combine(directory, "gateway", "recordings"),
                        Upstream = new { Server = _upstream.Url.ToString(), _upstream.CaFile, TokenFile = tokenFile },
                    },
                },
            };
            section["Policy"] = new
            {
                Rules = new[] { new { Name = "hold-exec", Protocols = new[] { "kubernetes" }, Actions = new[] { "exec" }, When = "request.namespace == 'default'", Effect = "RequireApproval" } },
            };
            section["Approvals"] = new { Timeout = "00:00:30" };
            section["Admin"] = new { Listen = $"127.0.0.1:{_adminPort.ToString(CultureInfo.InvariantCulture)}" };
        });
        Assert.True(await FreePort.WaitForListeningAsync(_port, TimeSpan.FromSeconds(30)), "the Kubernetes listener did not start");
        Assert.True(await FreePort.WaitForListeningAsync(_adminPort, TimeSpan.FromSeconds(30)), "the admin listener did not start");
        _approverToken = await _gateway.MintTokenAsync("alice", "--kind", "User", "--role", "NhiAudit.Approver");
        _kubeconfig = Path.Combine(directory, "kubeconfig");
        FakeKubeApiServer.WriteKubeconfig(_kubeconfig, new Uri($"https://127.0.0.1:{_port.ToString(CultureInfo.InvariantCulture)}"), await _gateway.MintTokenAsync("deploy-job"), Path.Combine(directory, "gateway", "k8s-state", "gateway-tls.crt"));
        var manifest = Path.Combine(directory, "pod.yaml");
        await File.WriteAllTextAsync(manifest, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: web\n    image: nginx\n");
        var apply = await Kubectl("apply", "--validate=false", "-f", manifest);
        Assert.True(apply.Succeeded, apply.Describe("kubectl apply"));
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    private Task<ProcessResult> Kubectl(params string[] args) =>
        ProcessRunner.RunAsync("kubectl", ["--kubeconfig", _kubeconfig, .. args], timeout: TimeSpan.FromSeconds(60));

    private Task<ProcessResult> ApprovalsAsync(params string[] args) =>
        GatewayProcess.RunCliAsync(["approvals", .. args, "--admin", $"http://127.0.0.1:{_adminPort.ToString(CultureInfo.InvariantCulture)}", "--token", _approverToken]);

    private async Task<string> WaitForTicketAsync()
    {
        for (var i = 0; i < 100; i++)
        {
            var list = await ApprovalsAsync("list");
            if (TicketLine().Match(list.StandardOutput) is { Success: true } match)
            {
                return match.Groups[1].Value;
            }

            await Task.Delay(200);
        }

        throw new TimeoutException("no held request appeared");
    }

    [Fact]
    public async Task A_held_exec_runs_after_approval_through_the_CLI()
    {
        var exec = Kubectl("exec", "web", "--", "sh", "-c", "echo approved-run");
        var ticket = await WaitForTicketAsync();
        Assert.False(exec.IsCompleted, "kubectl must wait while the exec is held");
        Assert.DoesNotContain(_upstream.Requests, r => r.Path.EndsWith("/exec", StringComparison.Ordinal));

        var approve = await ApprovalsAsync("approve", ticket, "--reason", "hotfix INC-7");
        Assert.True(approve.Succeeded, approve.Describe("nhiaudit approvals approve"));
        var result = await exec;
        Assert.True(result.Succeeded, result.Describe("kubectl exec"));
        Assert.Contains("approved-run", result.StandardOutput, StringComparison.Ordinal);

        var records = GatewayHost.ReadRecords(_gateway.AuditDirectory);
        var decided = records.Single(r => r.Str("type") == "k8s.approval.decided");
        Assert.Equal("Approved", decided.Str("state"));
        Assert.Equal("alice", decided.GetProperty("decidedBy").GetProperty("subject").GetString());
        var request = records.Single(r => r.Str("type") == "k8s.request" && r.TryGetProperty("approval", out _));
        Assert.Equal(ticket, request.Str("approval"));
    }

    [Fact]
    public async Task A_denied_exec_fails_cleanly_and_never_reaches_the_API_server()
    {
        var exec = Kubectl("exec", "web", "--", "sh", "-c", "echo should-not-run");
        var ticket = await WaitForTicketAsync();
        var deny = await ApprovalsAsync("deny", ticket, "--reason", "not during the freeze");
        Assert.True(deny.Succeeded, deny.Describe("nhiaudit approvals deny"));
        var result = await exec;
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("forbidden by the NhiAudit gateway", result.StandardError, StringComparison.Ordinal);
        Assert.Contains("not during the freeze", result.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("should-not-run", result.StandardOutput, StringComparison.Ordinal);
        Assert.DoesNotContain(_upstream.Requests, r => r.Path.EndsWith("/exec", StringComparison.Ordinal));
    }

    [GeneratedRegex(@"^([a-z0-9]{10}) pending", RegexOptions.Multiline)]
    private static partial Regex TicketLine();
}
