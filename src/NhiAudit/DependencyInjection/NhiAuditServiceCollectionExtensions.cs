using System.Reflection;
using System.Text;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using NhiAudit;
using NhiAudit.Approvals;
using NhiAudit.Audit;
using NhiAudit.Identity;
using NhiAudit.Masking;
using NhiAudit.Policy;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the NhiAudit engine: options, workload-token validation, the policy engine, the approval broker and the primary audit log.</summary>
public static class NhiAuditServiceCollectionExtensions
{
    /// <summary>
    /// Adds the engine, binding <paramref name="configuration"/> as the <c>NhiAudit</c> section (its <c>Identity</c>,
    /// <c>Audit</c>, <c>Policy</c> and <c>Approvals</c> children). Passing the configuration root also works when it has an <c>NhiAudit</c> section.
    /// Options are validated when the host starts (and at the latest when a service first needs them).
    /// Safe to call twice: services are registered once and an identical section is bound once.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configuration">The <c>NhiAudit</c> configuration section.</param>
    /// <returns>A builder that protocol packages extend.</returns>
    public static INhiAuditBuilder AddNhiAuditing(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);

        var registration = AddCore(services);
        var section = ResolveSection(configuration);
        if (registration.TryMarkBound(Fingerprint(section)))
        {
            services.AddOptions<IdentityOptions>().Bind(section.GetSection("Identity"));
            services.AddOptions<AuditOptions>().Bind(section.GetSection("Audit"));
            services.AddOptions<PolicyOptions>().Bind(section.GetSection("Policy"));
            services.AddOptions<ApprovalOptions>().Bind(section.GetSection("Approvals"));
        }

        return new NhiAuditBuilder(services);
    }

    /// <summary>
    /// Adds the engine, configured in code. The delegate runs once for each options type it feeds (identity, audit, policy, approvals),
    /// each time on a fresh <see cref="NhiAuditOptions"/>, so it should only set values. Options are validated when the host
    /// starts (and at the latest when a service first needs them). Safe to call twice: services are registered once
    /// and each delegate is applied in turn.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Sets the options.</param>
    /// <returns>A builder that protocol packages extend.</returns>
    public static INhiAuditBuilder AddNhiAuditing(this IServiceCollection services, Action<NhiAuditOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);

        AddCore(services);
        services.AddOptions<IdentityOptions>().Configure(identity =>
        {
            var root = new NhiAuditOptions { Identity = identity };
            configure(root);
            CopyIfReplaced(root.Identity, identity);
        });
        services.AddOptions<AuditOptions>().Configure(audit =>
        {
            var root = new NhiAuditOptions { Audit = audit };
            configure(root);
            CopyIfReplaced(root.Audit, audit);
        });
        services.AddOptions<PolicyOptions>().Configure(policy =>
        {
            var root = new NhiAuditOptions { Policy = policy };
            configure(root);
            CopyIfReplaced(root.Policy, policy);
        });
        services.AddOptions<ApprovalOptions>().Configure(approvals =>
        {
            var root = new NhiAuditOptions { Approvals = approvals };
            configure(root);
            CopyIfReplaced(root.Approvals, approvals);
        });
        return new NhiAuditBuilder(services);
    }

    private static NhiAuditRegistration AddCore(IServiceCollection services)
    {
        foreach (var descriptor in services)
        {
            if (descriptor.ServiceType == typeof(NhiAuditRegistration) && !descriptor.IsKeyedService && descriptor.ImplementationInstance is NhiAuditRegistration existing)
            {
                return existing;
            }
        }

        var registration = new NhiAuditRegistration();
        services.AddSingleton(registration);

        services.AddOptions();
        services.AddOptions<IdentityOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<IdentityOptions>, IdentityOptionsValidator>());
        services.AddOptions<AuditOptions>().ValidateOnStart();
        services.AddOptions<PolicyOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<PolicyOptions>, PolicyOptionsValidator>());
        services.AddOptions<ApprovalOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ApprovalOptions>, ApprovalOptionsValidator>());
        services.AddOptions<NhiAuditOptions>().Configure<IOptions<IdentityOptions>, IOptions<AuditOptions>, IOptions<PolicyOptions>, IOptions<ApprovalOptions>>((root, identity, audit, policy, approvals) =>
        {
            root.Identity = identity.Value;
            root.Audit = audit.Value;
            root.Policy = policy.Value;
            root.Approvals = approvals.Value;
        });

        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<IWorkloadAuthenticator>(sp => new WorkloadTokenValidator(
            sp.GetRequiredService<IOptions<IdentityOptions>>(),
            sp.GetRequiredService<TimeProvider>(),
            Logger<WorkloadTokenValidator>(sp)));

        services.TryAddSingleton<IPolicyEngine>(sp => new CelPolicyEngine(
            sp.GetRequiredService<IOptions<PolicyOptions>>(),
            Logger<CelPolicyEngine>(sp)));

        services.TryAddSingleton(sp => new MaskingPolicySource(
            sp.GetRequiredService<IOptions<PolicyOptions>>().Value,
            sp.GetRequiredService<IPolicyEngine>(),
            Logger<MaskingPolicySource>(sp)));
        services.TryAddSingleton<IValueMasker>(sp => sp.GetRequiredService<MaskingPolicySource>());

        services.TryAddSingleton<IApprovalBroker>(sp => new InMemoryApprovalBroker(
            sp.GetRequiredService<IOptions<ApprovalOptions>>(),
            sp.GetRequiredService<TimeProvider>(),
            Logger<InMemoryApprovalBroker>(sp)));

        // FileAuditLog.Open is the synchronous form of OpenAsync (a few blocks of file I/O), made for DI factories.
        services.TryAddSingleton<IAuditLog>(sp => FileAuditLog.Open(
            sp.GetRequiredService<IOptions<AuditOptions>>().Value,
            sp.GetRequiredService<TimeProvider>(),
            Logger<FileAuditLog>(sp),
            sp.GetService<AuditCheckpointSigner>()));
        return registration;
    }

    private static ILogger<T> Logger<T>(IServiceProvider services) =>
        // Logging is optional: a library host without AddLogging still gets working services.
        services.GetService<ILogger<T>>() ?? NullLogger<T>.Instance;

    private static IConfiguration ResolveSection(IConfiguration configuration)
    {
        if (configuration.GetSection("Identity").Exists() || configuration.GetSection("Audit").Exists() || configuration.GetSection("Policy").Exists() || configuration.GetSection("Approvals").Exists())
        {
            return configuration;
        }

        var nested = configuration.GetSection(NhiAuditOptions.SectionName);
        return nested.Exists() ? nested : configuration;
    }

    private static string Fingerprint(IConfiguration section)
    {
        // Sections have no identity of their own (GetSection returns a new object each time), so "the same section"
        // means the same path and the same values.
        var builder = new StringBuilder((section as IConfigurationSection)?.Path ?? "");
        foreach (var (key, value) in section.AsEnumerable(makePathsRelative: true).OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            builder.Append('\n').Append(key).Append('=').Append(value);
        }

        return builder.ToString();
    }

    private static void CopyIfReplaced<T>(T source, T target)
        where T : class
    {
        // The delegate may assign a new object (root.Identity = new() { ... }) instead of mutating the one it was given;
        // its values must not be lost.
        if (ReferenceEquals(source, target) || source is null)
        {
            return;
        }

        foreach (var property in typeof(T).GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            if (property.CanRead && property.CanWrite && property.GetIndexParameters().Length == 0)
            {
                property.SetValue(target, property.GetValue(source));
            }
        }
    }
}
