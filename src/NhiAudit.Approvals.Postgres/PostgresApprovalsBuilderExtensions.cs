using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using NhiAudit;
using NhiAudit.Approvals;
using NhiAudit.Approvals.Postgres;
using NhiAudit.Audit;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the approval broker that gateway replicas share through PostgreSQL.</summary>
public static class PostgresApprovalsBuilderExtensions
{
    /// <summary>
    /// Replaces the in-memory approval broker with <see cref="PostgresApprovalBroker"/>, binding
    /// <paramref name="section"/> (the <c>NhiAudit:Approvals:Postgres</c> section) as <see cref="PostgresApprovalOptions"/>,
    /// validated at startup. Tickets are held under this replica's name (<see cref="AuditOptions.GetReplicaName"/>).
    /// </summary>
    /// <param name="builder">The engine builder from <c>AddNhiAuditing</c>.</param>
    /// <param name="section">The <c>NhiAudit:Approvals:Postgres</c> configuration section.</param>
    /// <returns>The builder.</returns>
    public static INhiAuditBuilder AddPostgresApprovals(this INhiAuditBuilder builder, IConfiguration section)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(section);
        var services = builder.Services;
        services.AddOptions<PostgresApprovalOptions>().Bind(section).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<PostgresApprovalOptions>, PostgresApprovalOptionsValidator>());
        services.RemoveAll<IApprovalBroker>();
        services.TryAddSingleton(sp => new PostgresApprovalBroker(
            sp.GetRequiredService<IOptions<PostgresApprovalOptions>>(),
            sp.GetRequiredService<IOptions<ApprovalOptions>>(),
            sp.GetRequiredService<IOptions<AuditOptions>>().Value.GetReplicaName(),
            sp.GetRequiredService<TimeProvider>(),
            (ILogger?)sp.GetService<ILogger<PostgresApprovalBroker>>() ?? NullLogger<PostgresApprovalBroker>.Instance));
        services.AddSingleton<IApprovalBroker>(sp => sp.GetRequiredService<PostgresApprovalBroker>());
        return builder;
    }
}
