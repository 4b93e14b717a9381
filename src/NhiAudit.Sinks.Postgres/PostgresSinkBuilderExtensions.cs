using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using NhiAudit.Sinks.Postgres;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the PostgreSQL secondary audit sink.</summary>
public static class PostgresSinkBuilderExtensions
{
    /// <summary>
    /// Adds a <see cref="PostgresAuditSink"/> fed from the primary log, configured from <paramref name="section"/>
    /// (normally <c>NhiAudit:Sinks:Postgres</c>, bound to <see cref="PostgresSinkOptions"/>), and a
    /// <see cref="PostgresAuditSinkReader"/> over the same tables. The options are validated when the host starts, so a
    /// missing connection string or a bad table name stops the start with a message naming the setting. Calling it
    /// again adds no second sink.
    /// </summary>
    /// <param name="builder">The engine builder returned by <c>AddNhiAuditing</c>.</param>
    /// <param name="section">The sink's configuration section.</param>
    /// <returns>The builder.</returns>
    public static INhiAuditBuilder AddPostgresSink(this INhiAuditBuilder builder, IConfiguration section)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(section);
        var services = builder.Services;
        var alreadyAdded = services.Any(descriptor => descriptor.ServiceType == typeof(PostgresAuditSink));

        services.AddOptions<PostgresSinkOptions>().Bind(section).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<PostgresSinkOptions>, PostgresSinkOptionsValidator>());
        services.TryAddSingleton(sp => new PostgresAuditSink(
            sp.GetRequiredService<IOptions<PostgresSinkOptions>>().Value,
            sp.GetService<ILoggerFactory>()?.CreateLogger<PostgresAuditSink>()));
        services.TryAddSingleton(sp => new PostgresAuditSinkReader(sp.GetRequiredService<IOptions<PostgresSinkOptions>>().Value));
        if (!alreadyAdded)
        {
            builder.AddAuditSink(sp => sp.GetRequiredService<PostgresAuditSink>());
        }

        return builder;
    }
}
