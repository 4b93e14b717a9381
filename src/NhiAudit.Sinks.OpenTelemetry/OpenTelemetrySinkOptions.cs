using OpenTelemetry.Exporter;

namespace NhiAudit.Sinks.OpenTelemetry;

/// <summary>
/// Settings of the OTLP sink (<c>NhiAudit:Sinks:OpenTelemetry</c>): where the collector is and where the sink keeps
/// its delivery cursor.
/// </summary>
public sealed class OpenTelemetrySinkOptions
{
    /// <summary>The configuration section the options are usually bound from.</summary>
    public const string SectionName = "NhiAudit:Sinks:OpenTelemetry";

    /// <summary>
    /// The collector's OTLP endpoint, absolute <c>http</c> or <c>https</c>. For <see cref="OtlpExportProtocol.HttpProtobuf"/>
    /// this is the logs URL (<c>http://collector:4318/v1/logs</c>); an endpoint without a path gets <c>/v1/logs</c>
    /// appended. For <see cref="OtlpExportProtocol.Grpc"/> it is the server address (<c>http://collector:4317</c>). Required.
    /// </summary>
    public Uri? Endpoint { get; set; }

    /// <summary>The OTLP transport. Default: <see cref="OtlpExportProtocol.HttpProtobuf"/>.</summary>
    public OtlpExportProtocol Protocol { get; set; } = OtlpExportProtocol.HttpProtobuf;

    /// <summary>
    /// Extra request headers in the OTLP header format (<c>key1=value1,key2=value2</c>, values URL-encoded), for
    /// example an API key. Default: none.
    /// </summary>
    public string? Headers { get; set; }

    /// <summary>The <c>service.name</c> resource attribute of every exported record. Default: <c>nhiaudit</c>.</summary>
    public string ServiceName { get; set; } = "nhiaudit";

    /// <summary>
    /// The file that records how far each replica's chain has been exported. <c>AddOpenTelemetrySink</c> defaults it
    /// to <c>&lt;audit directory&gt;/.sinks/otlp.cursor</c>; a sink built by hand must set it.
    /// </summary>
    public string? CursorFile { get; set; }

    /// <summary>How long one export request may take before it counts as failed. Default: 10 s.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(10);
}
