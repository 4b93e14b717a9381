using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using NhiAudit.Postgres;
using NhiAudit.Postgres.Gateway;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds the PostgreSQL gateway to NhiAudit.</summary>
public static class NhiAuditPostgresBuilderExtensions
{
    /// <summary>Adds the PostgreSQL gateway, its targets bound from <paramref name="configuration"/> (the <c>NhiAudit:Postgres</c> section).</summary>
    public static INhiAuditBuilder AddPostgres(this INhiAuditBuilder builder, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.Configure<PostgresOptions>(configuration);
        return builder.AddPostgresCore();
    }

    /// <summary>Adds the PostgreSQL gateway with targets configured in code.</summary>
    public static INhiAuditBuilder AddPostgres(this INhiAuditBuilder builder, Action<PostgresOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.Configure(configure);
        return builder.AddPostgresCore();
    }

    private static INhiAuditBuilder AddPostgresCore(this INhiAuditBuilder builder)
    {
        builder.Services.TryAddSingleton<PostgresGateway>();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, PostgresGateway>(sp => sp.GetRequiredService<PostgresGateway>()));
        return builder;
    }
}
