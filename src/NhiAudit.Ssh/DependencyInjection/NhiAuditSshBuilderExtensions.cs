using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using NhiAudit.Ssh;
using NhiAudit.Ssh.Gateway;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds the SSH gateway to NhiAudit.</summary>
public static class NhiAuditSshBuilderExtensions
{
    /// <summary>Adds the SSH gateway, its targets bound from <paramref name="configuration"/> (the <c>NhiAudit:Ssh</c> section).</summary>
    /// <param name="builder">The NhiAudit builder.</param>
    /// <param name="configuration">The <c>NhiAudit:Ssh</c> section.</param>
    /// <returns>The builder.</returns>
    public static INhiAuditBuilder AddSsh(this INhiAuditBuilder builder, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.Configure<SshOptions>(configuration);
        return builder.AddSshCore();
    }

    /// <summary>Adds the SSH gateway with targets configured in code.</summary>
    /// <param name="builder">The NhiAudit builder.</param>
    /// <param name="configure">Configures the targets.</param>
    /// <returns>The builder.</returns>
    public static INhiAuditBuilder AddSsh(this INhiAuditBuilder builder, Action<SshOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.Configure(configure);
        return builder.AddSshCore();
    }

    private static INhiAuditBuilder AddSshCore(this INhiAuditBuilder builder)
    {
        builder.Services.TryAddSingleton<SshGateway>();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, SshGateway>(sp => sp.GetRequiredService<SshGateway>()));
        return builder;
    }
}
