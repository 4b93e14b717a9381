using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using NhiAudit.Audit.Sinks;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers secondary audit sinks; sink packages wrap this in their own <c>Add…Sink</c> methods.</summary>
public static class AuditSinkBuilderExtensions
{
    /// <summary>
    /// Adds a sink fed from the primary log by an <see cref="AuditSinkPump"/> that the host starts and stops
    /// (<see cref="AuditSinkPumps"/>).
    /// </summary>
    /// <param name="builder">The engine builder.</param>
    /// <param name="factory">Creates the sink.</param>
    /// <returns>The builder.</returns>
    public static INhiAuditBuilder AddAuditSink(this INhiAuditBuilder builder, Func<IServiceProvider, IAuditSink> factory)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(factory);
        builder.Services.AddSingleton(factory);
        builder.Services.TryAddSingleton<AuditSinkPumps>();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, AuditSinkPumps>(sp => sp.GetRequiredService<AuditSinkPumps>()));
        return builder;
    }
}
