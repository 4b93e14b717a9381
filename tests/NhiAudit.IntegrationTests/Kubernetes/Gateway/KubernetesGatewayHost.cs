using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NhiAudit.Identity;
using NhiAudit.IntegrationTests.Gateway;
using NhiAudit.IntegrationTests.Infrastructure;
using NhiAudit.IntegrationTests.Kubernetes.Infrastructure;
using NhiAudit.Kubernetes.Gateway;

namespace NhiAudit.IntegrationTests.Kubernetes.Gateway;

/// <summary>
/// The Kubernetes gateway in process (<c>AddNhiAuditing().AddKubernetes()</c>) in front of a <see cref="FakeKubeApiServer"/>,
/// with a development issuer for workload tokens and kubeconfig files for the real kubectl.
/// </summary>
public sealed class KubernetesGatewayHost : IAsyncDisposable
{
    private readonly IHost _host;

    private KubernetesGatewayHost(IHost host, string directory, DevelopmentIssuer issuer, int port, FakeKubeApiServer upstream)
    {
        _host = host;
        Directory = directory;
        Issuer = issuer;
        Port = port;
        Upstream = upstream;
    }

    public string Directory { get; }

    public string AuditDirectory => Path.Combine(Directory, "audit");

    public string RecordingsDirectory => Path.Combine(Directory, "recordings");

    public DevelopmentIssuer Issuer { get; }

    public int Port { get; }

    public Uri Url => new($"https://127.0.0.1:{Port.ToString(CultureInfo.InvariantCulture)}");

    /// <summary>The gateway's certificate, which clients trust as the cluster's CA.</summary>
    public string CaFile => Path.Combine(Directory, "state", "gateway-tls.crt");

    public FakeKubeApiServer Upstream { get; }

    public IServiceProvider Services => _host.Services;

    public static async Task<KubernetesGatewayHost> StartAsync(Action<Dictionary<string, string?>>? configure = null)
    {
        var directory = Path.Combine(PostgresServer.TempRoot, "k8sgw-" + Guid.NewGuid().ToString("N")[..10]);
        System.IO.Directory.CreateDirectory(directory);
        var upstream = await FakeKubeApiServer.StartAsync(Path.Combine(directory, "upstream")).ConfigureAwait(false);
        var issuer = DevelopmentIssuer.LoadOrCreate(Path.Combine(directory, "issuer"), "https://issuer.test");
        var tokenFile = Path.Combine(directory, "upstream-token");
        await File.WriteAllTextAsync(tokenFile, upstream.Token).ConfigureAwait(false);

        var settings = new Dictionary<string, string?>
        {
            ["NhiAudit:Identity:Issuers:0:Name"] = "test",
            ["NhiAudit:Identity:Issuers:0:Issuer"] = "https://issuer.test",
            ["NhiAudit:Identity:Issuers:0:JwksFile"] = issuer.JwksPath,
            ["NhiAudit:Identity:Issuers:0:Audiences:0"] = "nhiaudit",
            ["NhiAudit:Identity:ApproverRole"] = "NhiAudit.Approver",
            ["NhiAudit:Audit:Directory"] = Path.Combine(directory, "audit"),
            ["NhiAudit:Kubernetes:Targets:0:Name"] = "cluster",
            ["NhiAudit:Kubernetes:Targets:0:Listen"] = "127.0.0.1:0",
            ["NhiAudit:Kubernetes:Targets:0:StateDirectory"] = Path.Combine(directory, "state"),
            ["NhiAudit:Kubernetes:Targets:0:RecordingsDirectory"] = Path.Combine(directory, "recordings"),
            ["NhiAudit:Kubernetes:Targets:0:Upstream:Server"] = upstream.Url.ToString(),
            ["NhiAudit:Kubernetes:Targets:0:Upstream:CaFile"] = upstream.CaFile,
            ["NhiAudit:Kubernetes:Targets:0:Upstream:TokenFile"] = tokenFile,
        };
        configure?.Invoke(settings);

        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.AddSimpleConsole().SetMinimumLevel(LogLevel.Warning);
        builder.Services
            .AddNhiAuditing(configuration.GetSection("NhiAudit"))
            .AddKubernetes(configuration.GetSection("NhiAudit:Kubernetes"));
        var host = builder.Build();
        await host.StartAsync().ConfigureAwait(false);
        var gateway = host.Services.GetRequiredService<KubernetesGateway>();
        await gateway.Listening.WaitAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
        return new KubernetesGatewayHost(host, directory, issuer, gateway.Endpoints["cluster"].Port, upstream);
    }

    public string MintToken(string subject = "deploy-job", TimeSpan? lifetime = null, string audience = "nhiaudit", IReadOnlyList<string>? roles = null) =>
        Issuer.MintToken(new TokenRequest
        {
            Subject = subject,
            Audience = audience,
            Lifetime = lifetime ?? TimeSpan.FromHours(1),
            Kind = WorkloadKind.FederatedWorkload,
            Repository = "contoso/platform",
            Workflow = "deploy.yml",
            RunId = "77",
            Sha = "cafe1234",
            Roles = roles ?? [],
        });

    /// <summary>A kubeconfig for kubectl through the gateway, carrying a workload token.</summary>
    public string WriteKubeconfig(string token, string @namespace = "default")
    {
        var path = Path.Combine(Directory, "kubeconfig-" + Guid.NewGuid().ToString("N")[..6]);
        FakeKubeApiServer.WriteKubeconfig(path, Url, token, CaFile, @namespace);
        return path;
    }

    public async Task<ProcessResult> KubectlAsync(string kubeconfig, IEnumerable<string> args, string? stdin = null, TimeSpan? timeout = null) =>
        await ProcessRunner.RunAsync("kubectl", ["--kubeconfig", kubeconfig, .. args], timeout: timeout ?? TimeSpan.FromSeconds(30), stdin: stdin).ConfigureAwait(false);

    public Task<List<JsonElement>> ReadRecordsAsync() => WaitForRecordsAsync(static _ => true);

    /// <summary>The records once <paramref name="ready"/> holds (see <see cref="GatewayHost.WaitForRecordsAsync"/>).</summary>
    public Task<List<JsonElement>> WaitForRecordsAsync(Func<List<JsonElement>, bool> ready) =>
        GatewayHost.WaitForRecordsAsync(_host.Services, AuditDirectory, ready);

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _host.StopAsync(TimeSpan.FromSeconds(15)).ConfigureAwait(false);
        }
        finally
        {
            _host.Dispose();
            await Upstream.DisposeAsync().ConfigureAwait(false);
        }

        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // Best effort.
        }
    }
}
