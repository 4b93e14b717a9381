using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using NhiAudit.Kubernetes;
using NhiAudit.Kubernetes.Gateway;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds the Kubernetes API gateway to NhiAudit.</summary>
public static class NhiAuditKubernetesBuilderExtensions
{
    /// <summary>Adds the Kubernetes gateway, its targets bound from <paramref name="configuration"/> (the <c>NhiAudit:Kubernetes</c> section).</summary>
    /// <param name="builder">The NhiAudit builder.</param>
    /// <param name="configuration">The <c>NhiAudit:Kubernetes</c> section.</param>
    /// <returns>The builder.</returns>
    public static INhiAuditBuilder AddKubernetes(this INhiAuditBuilder builder, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.Configure<KubernetesOptions>(configuration);
        return builder.AddKubernetesCore();
    }

    /// <summary>Adds the Kubernetes gateway with targets configured in code.</summary>
    /// <param name="builder">The NhiAudit builder.</param>
    /// <param name="configure">Configures the targets.</param>
    /// <returns>The builder.</returns>
    public static INhiAuditBuilder AddKubernetes(this INhiAuditBuilder builder, Action<KubernetesOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.Configure(configure);
        return builder.AddKubernetesCore();
    }

    private static INhiAuditBuilder AddKubernetesCore(this INhiAuditBuilder builder)
    {
        builder.Services.TryAddSingleton<KubernetesGateway>();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, KubernetesGateway>(sp => sp.GetRequiredService<KubernetesGateway>()));
        return builder;
    }
}
