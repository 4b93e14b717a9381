using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace NhiAudit.Proxy.Admin;

/// <summary>
/// The admin HTTP API on its own Kestrel listener, beside the gateway's protocol listeners. Start it with
/// <see cref="StartAsync"/> (port 0 picks a free port; <see cref="Address"/> tells which).
/// </summary>
internal sealed class AdminHost : IAsyncDisposable
{
    private readonly WebApplication _app;

    private AdminHost(WebApplication app, Uri address)
    {
        _app = app;
        Address = address;
    }

    /// <summary>The bound base address, e.g. <c>http://127.0.0.1:41234/</c>.</summary>
    public Uri Address { get; }

    /// <summary>Starts the admin API.</summary>
    /// <param name="options">Where to listen, and the optional HTTPS certificate.</param>
    /// <param name="broker">The approval broker the API drives.</param>
    /// <param name="authenticator">Validates approvers' bearer tokens.</param>
    /// <param name="approverRole">The role an approver's token must hold.</param>
    /// <param name="loggerFactory">The gateway's logging; none when null.</param>
    /// <param name="evidence">The log and sinks that <c>/readyz</c>, <c>/checkpoint</c> and <c>/sinks</c> report on.</param>
    /// <param name="cancellationToken">Cancels the start.</param>
    /// <exception cref="FormatException">Listen is not <c>ip:port</c>.</exception>
    public static async Task<AdminHost> StartAsync(AdminOptions options, IApprovalBroker broker, IWorkloadAuthenticator authenticator, string approverRole, ILoggerFactory? loggerFactory = null, AdminEvidence? evidence = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(broker);
        ArgumentNullException.ThrowIfNull(authenticator);
        ArgumentException.ThrowIfNullOrWhiteSpace(approverRole);
        if (!IPEndPoint.TryParse(options.Listen ?? "", out var endpoint))
        {
            throw new FormatException($"NhiAudit:Admin:Listen '{options.Listen}' is not ip:port, e.g. 127.0.0.1:9090.");
        }

        X509Certificate2? certificate = null;
        if (!string.IsNullOrWhiteSpace(options.CertificateFile))
        {
            if (string.IsNullOrWhiteSpace(options.KeyFile))
            {
                throw new FormatException("NhiAudit:Admin:CertificateFile needs NhiAudit:Admin:KeyFile.");
            }

            certificate = X509Certificate2.CreateFromPemFile(options.CertificateFile, options.KeyFile);
        }

        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = 64 * 1024;
            kestrel.Listen(endpoint, listen =>
            {
                if (certificate is not null)
                {
                    listen.UseHttps(certificate);
                }
            });
        });
        builder.Services.AddRoutingCore();
        builder.Services.AddSingleton(loggerFactory ?? NullLoggerFactory.Instance);
        builder.Services.AddSingleton(typeof(ILogger<>), typeof(Logger<>));

        var app = builder.Build();
        app.UseRouting();
        AdminEndpoints.Map(app, broker, authenticator, approverRole, (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("NhiAudit.Proxy.Admin"), evidence ?? new AdminEvidence(null, null));
        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
            var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault()
                ?? throw new InvalidOperationException("The admin listener reported no address.");
            var address = new Uri(bound.Replace("[::]", "[::1]", StringComparison.Ordinal).Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal).TrimEnd('/') + "/");
            (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("NhiAudit.Proxy.Admin").LogInformation("Admin API listening on {Address}", address);
            return new AdminHost(app, address);
        }
        catch
        {
            await app.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Stops listening.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await _app.StopAsync().ConfigureAwait(false);
        }
        finally
        {
            await _app.DisposeAsync().ConfigureAwait(false);
        }
    }
}
