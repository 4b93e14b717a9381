using System.CommandLine;
using Azure.Core;
using Azure.Identity;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NhiAudit.Identity;
using NhiAudit.Postgres;
using NhiAudit.Proxy.Admin;

namespace NhiAudit.Proxy.Commands;

/// <summary><c>nhiaudit run [--config FILE]</c>: a thin host over <c>AddNhiAuditing().AddPostgres().AddKubernetes().AddSsh()</c>.</summary>
internal static class RunCommand
{
    public static Command Create()
    {
        var config = new Option<FileInfo?>("--config", "-c") { Description = "Configuration file (appsettings-style JSON with a NhiAudit section). Without it the embedded default is used." };
        var command = new Command("run", "Run the gateway.") { config };
        command.SetAction(async (parse, ct) =>
        {
            var configuration = GatewayConfiguration.Build(parse.GetValue(config));
            UseInlineSocketCompletions(configuration);
            using var host = BuildHost(configuration);
            await host.RunAsync(ct).ConfigureAwait(false);
            return 0;
        });
        return command;
    }

    public static IHost BuildHost(IConfigurationRoot configuration, Action<IServiceCollection>? configureServices = null)
    {
        var section = configuration.GetSection(GatewayConfiguration.Section);
        EnsureDevelopmentIssuer(section.GetSection("DevelopmentIssuer"));

        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddConfiguration(configuration);
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss ";
        });
        builder.Logging.AddConfiguration(configuration.GetSection("Logging"));
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(10));
        var engine = builder.Services
            .AddNhiAuditing(section)
            .AddPostgres(section.GetSection("Postgres"))
            .AddKubernetes(section.GetSection("Kubernetes"))
            .AddSsh(section.GetSection("Ssh"));
        if (!string.IsNullOrWhiteSpace(section["Approvals:Postgres:ConnectionString"]))
        {
            // Replicas share held requests through PostgreSQL: an approval given on any replica releases them.
            engine.AddPostgresApprovals(section.GetSection("Approvals:Postgres"));
        }

        engine.AddConfiguredEvidence(section);

        var postgres = section.GetSection("Postgres").Get<PostgresOptions>();
        var kubernetes = section.GetSection("Kubernetes").Get<NhiAudit.Kubernetes.KubernetesOptions>();
        if (postgres?.Targets.Any(t => t.Upstream.UseAzureIdentity) == true || kubernetes?.Targets.Any(t => t.Upstream.UseAzureIdentity) == true)
        {
            // The gateway's own Entra identity (managed identity, workload identity, or az login for development).
            builder.Services.AddSingleton<TokenCredential>(new DefaultAzureCredential());
        }

        var admin = section.GetSection("Admin").Get<AdminOptions>();
        if (!string.IsNullOrWhiteSpace(admin?.Listen))
        {
            // The admin API (approvals, health) on its own listener; AdminHostedService.Address tells the bound port.
            builder.Services.AddSingleton(admin);
            builder.Services.AddSingleton<AdminHostedService>();
            builder.Services.AddHostedService(sp => sp.GetRequiredService<AdminHostedService>());
        }

        configureServices?.Invoke(builder.Services);
        return builder.Build();
    }

    /// <summary>
    /// Runs socket continuations on the epoll thread instead of handing each one to the thread pool: one thread hop
    /// less per message, which is most of a relay's overhead. Safe because the relay never blocks in a continuation;
    /// the exception is <c>Durable</c>, whose fsync would stall every socket, so it keeps the default there.
    /// Must run before the first socket is created; an explicit environment setting wins.
    /// </summary>
    private static void UseInlineSocketCompletions(IConfiguration configuration)
    {
        const string Variable = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";
        var durable = string.Equals(configuration[$"{GatewayConfiguration.Section}:Audit:Durability"], "Durable", StringComparison.OrdinalIgnoreCase);
        if (Environment.GetEnvironmentVariable(Variable) is null && !durable)
        {
            Environment.SetEnvironmentVariable(Variable, "1");
        }
    }

    /// <summary>The embedded default trusts a local development issuer; create its key on first run so tokens can be minted.</summary>
    private static void EnsureDevelopmentIssuer(IConfigurationSection section)
    {
        var directory = section["Directory"];
        if (!string.IsNullOrEmpty(directory))
        {
            using var issuer = DevelopmentIssuer.LoadOrCreate(directory, section["Issuer"] ?? "https://issuer.local");
        }
    }
}
