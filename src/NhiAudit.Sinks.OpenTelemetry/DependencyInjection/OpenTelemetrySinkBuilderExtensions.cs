using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using NhiAudit.Audit;
using NhiAudit.Sinks.OpenTelemetry;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the OTLP audit sink.</summary>
public static class OpenTelemetrySinkBuilderExtensions
{
    /// <summary>
    /// Adds an <see cref="OpenTelemetryAuditSink"/> fed from the primary log, configured from
    /// <paramref name="section"/> (usually <c>NhiAudit:Sinks:OpenTelemetry</c>). The options are validated when the
    /// host starts; an unset <see cref="OpenTelemetrySinkOptions.CursorFile"/> becomes
    /// <c>&lt;audit directory&gt;/.sinks/otlp.cursor</c>.
    /// </summary>
    /// <param name="builder">The engine builder.</param>
    /// <param name="section">The sink's configuration section.</param>
    /// <returns>The builder.</returns>
    public static INhiAuditBuilder AddOpenTelemetrySink(this INhiAuditBuilder builder, IConfiguration section)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(section);
        builder.Services.AddOptions<OpenTelemetrySinkOptions>().Bind(section).ValidateOnStart();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<OpenTelemetrySinkOptions>, OpenTelemetrySinkOptionsValidator>());
        return builder.AddAuditSink(services =>
        {
            var configured = services.GetRequiredService<IOptions<OpenTelemetrySinkOptions>>().Value;
            var audit = services.GetRequiredService<IOptions<AuditOptions>>().Value;
            var options = new OpenTelemetrySinkOptions
            {
                Endpoint = configured.Endpoint,
                Protocol = configured.Protocol,
                Headers = configured.Headers,
                ServiceName = configured.ServiceName,
                Timeout = configured.Timeout,

                // Next to the log it describes, so the cursor and the log are backed up and moved together.
                CursorFile = configured.CursorFile ?? Path.Combine(Path.GetFullPath(audit.Directory), ".sinks", OpenTelemetryAuditSink.SinkName + ".cursor"),
            };
            return new OpenTelemetryAuditSink(options, services.GetService<ILogger<OpenTelemetryAuditSink>>());
        });
    }
}
