using NhiAudit.IntegrationTests.Infrastructure;
using NhiAudit.IntegrationTests.Kubernetes.Infrastructure;

namespace NhiAudit.IntegrationTests.Kubernetes.Gateway;

/// <summary>The gateway's own upstream credential from a kubeconfig, as an operator would hand it over.</summary>
public sealed class KubernetesUpstreamCredentialTests
{
    [Fact]
    public async Task The_gateway_logs_in_upstream_with_a_kubeconfig()
    {
        var kubeconfigs = Path.Combine(PostgresServer.TempRoot, "upstream-kubeconfig-" + Guid.NewGuid().ToString("N")[..6]);
        await using var gateway = await KubernetesGatewayHost.StartAsync(settings =>
        {
            // Instead of Server/CaFile/TokenFile: a kubeconfig for the upstream, written once the upstream runs (below).
            settings.Remove("NhiAudit:Kubernetes:Targets:0:Upstream:CaFile");
            settings.Remove("NhiAudit:Kubernetes:Targets:0:Upstream:TokenFile");
            var server = new Uri(settings["NhiAudit:Kubernetes:Targets:0:Upstream:Server"]!);
            settings.Remove("NhiAudit:Kubernetes:Targets:0:Upstream:Server");
            var upstreamDirectory = Path.GetDirectoryName(settings["NhiAudit:Audit:Directory"]!)!;
            var token = File.ReadAllText(Path.Combine(upstreamDirectory, "upstream-token"));
            FakeKubeApiServer.WriteKubeconfig(kubeconfigs, server, token, Path.Combine(upstreamDirectory, "upstream", "ca.crt"));
            settings["NhiAudit:Kubernetes:Targets:0:Upstream:Kubeconfig"] = kubeconfigs;
        });
        var kubeconfig = gateway.WriteKubeconfig(gateway.MintToken("kubeconfig-user"));
        var get = await gateway.KubectlAsync(kubeconfig, ["get", "ns"]);
        Assert.True(get.Succeeded, get.Describe("kubectl get ns"));
        Assert.Contains("kube-system", get.StandardOutput, StringComparison.Ordinal);
        Assert.Contains(gateway.Upstream.Requests, r => r.ImpersonateUser == "nhiaudit:kubeconfig-user" && r.AuthorizationScheme == "Bearer");
        File.Delete(kubeconfigs);
    }
}
