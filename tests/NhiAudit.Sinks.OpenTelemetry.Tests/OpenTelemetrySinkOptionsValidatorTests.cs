using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using NhiAudit.Audit.Sinks;
using OpenTelemetry.Exporter;

namespace NhiAudit.Sinks.OpenTelemetry.Tests;

public sealed class OpenTelemetrySinkOptionsValidatorTests
{
    [Fact]
    public void Valid_options_pass()
    {
        Assert.Empty(OpenTelemetrySinkOptionsValidator.FindProblems(new OpenTelemetrySinkOptions { Endpoint = new Uri("https://collector.example:4318/v1/logs") }));
        Assert.Empty(OpenTelemetrySinkOptionsValidator.FindProblems(new OpenTelemetrySinkOptions
        {
            Endpoint = new Uri("http://collector:4317"),
            Protocol = OtlpExportProtocol.Grpc,
            Headers = "x-api-key=abc, tenant=t1",
        }));
    }

    [Fact]
    public void The_endpoint_is_required()
    {
        var problem = Assert.Single(OpenTelemetrySinkOptionsValidator.FindProblems(new OpenTelemetrySinkOptions()));
        Assert.Contains("NhiAudit:Sinks:OpenTelemetry:Endpoint is required", problem, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/v1/logs")]
    [InlineData("ftp://collector/v1/logs")]
    [InlineData("file:///tmp/logs")]
    public void The_endpoint_must_be_absolute_http_or_https(string endpoint)
    {
        var problem = Assert.Single(OpenTelemetrySinkOptionsValidator.FindProblems(new OpenTelemetrySinkOptions { Endpoint = new Uri(endpoint, UriKind.RelativeOrAbsolute) }));
        Assert.Contains("absolute http or https", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_other_problem_is_named()
    {
        var problems = OpenTelemetrySinkOptionsValidator.FindProblems(new OpenTelemetrySinkOptions
        {
            Endpoint = new Uri("http://collector:4318"),
            Protocol = (OtlpExportProtocol)42,
            ServiceName = " ",
            Timeout = TimeSpan.Zero,
            CursorFile = " ",
            Headers = "no-equals-sign",
        });
        Assert.Equal(5, problems.Count);
        Assert.Contains(problems, p => p.Contains(":Protocol", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains(":ServiceName", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains(":Timeout", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains(":CursorFile", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains(":Headers", StringComparison.Ordinal) && !p.Contains("no-equals-sign", StringComparison.Ordinal));
    }

    [Fact]
    public void The_sink_constructor_rejects_invalid_options()
    {
        var error = Assert.Throws<ArgumentException>(() => new OpenTelemetryAuditSink(new OpenTelemetrySinkOptions { CursorFile = "x" }));
        Assert.Contains("Endpoint is required", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Di_validation_fails_on_start_with_the_setting_named()
    {
        using var provider = BuildServices(new Dictionary<string, string?> { ["Audit:Directory"] = Path.GetTempPath() });
        var error = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<OpenTelemetrySinkOptions>>().Value);
        Assert.Contains("Endpoint is required", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Di_registers_the_sink_with_the_cursor_under_the_audit_directory()
    {
        var auditDirectory = Path.Combine(Path.GetTempPath(), "nhiaudit-otlp-di-" + Guid.NewGuid().ToString("N"));
        using var provider = BuildServices(new Dictionary<string, string?>
        {
            ["Audit:Directory"] = auditDirectory,
            ["Sinks:OpenTelemetry:Endpoint"] = "http://127.0.0.1:4318",
            ["Sinks:OpenTelemetry:Protocol"] = "HttpProtobuf",
            ["Sinks:OpenTelemetry:ServiceName"] = "gateway-eu",
        });
        var sink = Assert.IsType<OpenTelemetryAuditSink>(Assert.Single(provider.GetServices<IAuditSink>()));
        Assert.Equal("otlp", sink.Name);
        Assert.Equal(Path.Combine(auditDirectory, ".sinks", "otlp.cursor"), sink.CursorFile);
        Assert.Equal(new Uri("http://127.0.0.1:4318/v1/logs"), sink.Endpoint);
    }

    private static ServiceProvider BuildServices(Dictionary<string, string?> settings)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddNhiAuditing(configuration).AddOpenTelemetrySink(configuration.GetSection("Sinks:OpenTelemetry"));
        return services.BuildServiceProvider();
    }
}
