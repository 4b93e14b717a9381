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
using NhiAudit.Proxy.Configuration;

namespace NhiAudit.Proxy.Commands;

/// <summary><c>nhiaudit run [--config FILE]</c>: a thin host over <c>AddNhiAuditing().AddPostgres().AddKubernetes().AddSsh()</c>.</summary>
internal static class RunCommand
{
    public static Command Create()
    {
        var config = new Option<FileInfo?>("--config", "-c") { Description = "Configuration file (appsettings-style JSON with a NhiAudit section). Without it the embedded default is used." };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Show the stack trace of a fatal error." };
        var command = new Command("run", "Run the gateway. Exit code 2: the configuration is not usable (one line per problem on stderr); 1: the gateway stopped on an error.") { config, verbose };
        command.SetAction((parse, ct) => RunAsync(parse.GetValue(config), parse.GetValue(verbose), parse.InvocationConfiguration.Error, ct));
        return command;
    }

    /// <summary>
    /// Checks the whole configuration first (nothing is written, nothing listens until it passes), then runs the host
    /// until it is stopped. A gateway that stops on its own because a part of it failed exits 1, never 0.
    /// </summary>
    public static async Task<int> RunAsync(FileInfo? configFile, bool verbose, TextWriter error, CancellationToken ct)
    {
        var check = await GatewayConfigurationCheck.RunAsync(configFile, online: false, ct).ConfigureAwait(false);
        if (check.Problems.Count > 0 || check.Configuration is null)
        {
            foreach (var problem in check.Problems)
            {
                await error.WriteLineAsync(problem.ToString()).ConfigureAwait(false);
            }

            return ConfigurationError;
        }

        var configuration = check.Configuration;
        UseInlineSocketCompletions(configuration);
        try
        {
            EnsureDevelopmentIssuer(configuration.GetSection(GatewayConfiguration.Section).GetSection("DevelopmentIssuer"));
            using var host = BuildHost(configuration);

            // A background service that fails stops the host, and RunAsync returns as if asked to stop: keep hold of
            // them (RunAsync disposes the host's services) to look afterwards.
            var services = host.Services.GetServices<IHostedService>().OfType<BackgroundService>().ToList();
            await host.RunAsync(ct).ConfigureAwait(false);
            var failed = services.Select(s => s.ExecuteTask).FirstOrDefault(t => t is { IsFaulted: true })?.Exception?.GetBaseException();
            if (failed is not null)
            {
                await ReportFatalAsync(error, failed, verbose).ConfigureAwait(false);
                return Failed;
            }

            return 0;
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return 0;
        }
        catch (Exception ex)
        {
            await ReportFatalAsync(error, ex, verbose).ConfigureAwait(false);
            return Failed;
        }
    }

    /// <summary>The exit code of a configuration that cannot be used.</summary>
    public const int ConfigurationError = 2;

    /// <summary>The exit code of a gateway that stopped on an error.</summary>
    public const int Failed = 1;

    private static async Task ReportFatalAsync(TextWriter error, Exception ex, bool verbose)
    {
        var inner = ex is AggregateException aggregate ? aggregate.GetBaseException() : ex;
        await error.WriteLineAsync($"nhiaudit: fatal: {inner.Message}").ConfigureAwait(false);
        if (verbose)
        {
            await error.WriteLineAsync(ex.ToString()).ConfigureAwait(false);
        }
    }

    public static IHost BuildHost(IConfigurationRoot configuration, Action<IServiceCollection>? configureServices = null)
    {
        var section = configuration.GetSection(GatewayConfiguration.Section);

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
