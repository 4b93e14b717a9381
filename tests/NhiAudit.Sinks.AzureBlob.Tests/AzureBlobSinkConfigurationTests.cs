using Azure;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using NhiAudit.Audit.Sinks;

namespace NhiAudit.Sinks.AzureBlob.Tests;

public sealed class AzureBlobSinkConfigurationTests
{
    private const string Section = "NhiAudit:Sinks:AzureBlob";
    private const string AzuriteConnectionString =
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;";

    [Fact]
    public void Both_a_connection_string_and_a_service_uri_name_both_fields()
    {
        var failure = Assert.Single(Validate(new AzureBlobSinkOptions { ConnectionString = AzuriteConnectionString, ServiceUri = new Uri("https://acct.blob.core.windows.net") }));

        Assert.Contains($"{Section}:ConnectionString", failure, StringComparison.Ordinal);
        Assert.Contains($"{Section}:ServiceUri", failure, StringComparison.Ordinal);
    }

    [Fact]
    public void Neither_a_connection_string_nor_a_service_uri_names_both_fields()
    {
        var failure = Assert.Single(Validate(new AzureBlobSinkOptions()));

        Assert.Contains($"{Section}:ConnectionString", failure, StringComparison.Ordinal);
        Assert.Contains($"{Section}:ServiceUri", failure, StringComparison.Ordinal);
    }

    [Fact]
    public void A_malformed_connection_string_names_the_field()
    {
        var failure = Assert.Single(Validate(new AzureBlobSinkOptions { ConnectionString = "not a connection string" }));

        Assert.StartsWith($"{Section}:ConnectionString", failure, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("http://acct.blob.core.windows.net")]
    [InlineData("/relative")]
    public void A_service_uri_that_is_not_absolute_https_names_the_field(string uri)
    {
        var failure = Assert.Single(Validate(new AzureBlobSinkOptions { ServiceUri = new Uri(uri, UriKind.RelativeOrAbsolute) }));

        Assert.StartsWith($"{Section}:ServiceUri", failure, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("ab")]
    [InlineData("Audit")]
    [InlineData("audit_log")]
    [InlineData("-audit")]
    [InlineData("audit-")]
    [InlineData("audit--log")]
    public void A_container_name_the_service_would_reject_names_the_field(string name)
    {
        var failure = Assert.Single(Validate(new AzureBlobSinkOptions { ConnectionString = AzuriteConnectionString, ContainerName = name }));

        Assert.StartsWith($"{Section}:ContainerName", failure, StringComparison.Ordinal);
    }

    [Fact]
    public void Valid_options_pass()
    {
        Assert.Empty(Validate(new AzureBlobSinkOptions { ConnectionString = AzuriteConnectionString }));
        Assert.Empty(Validate(new AzureBlobSinkOptions { ServiceUri = new Uri("https://acct.blob.core.windows.net"), ContainerName = "audit-2026" }));
    }

    [Fact]
    public void AddAzureBlobSink_refuses_invalid_configuration_naming_the_configured_field()
    {
        using var services = Build(new Dictionary<string, string?>
        {
            [$"{Section}:ConnectionString"] = AzuriteConnectionString,
            [$"{Section}:ContainerName"] = "Bad_Name",
        });

        var error = Assert.Throws<OptionsValidationException>(() => services.GetRequiredService<IOptions<AzureBlobSinkOptions>>().Value);

        Assert.Contains(error.Failures, f => f.StartsWith($"{Section}:ContainerName 'Bad_Name'", StringComparison.Ordinal));
    }

    [Fact]
    public void AddAzureBlobSink_registers_the_sink_and_a_reader_from_configuration()
    {
        using var services = Build(new Dictionary<string, string?>
        {
            [$"{Section}:ConnectionString"] = AzuriteConnectionString,
            [$"{Section}:ContainerName"] = "audit-test",
            [$"{Section}:CreateContainer"] = "false",
        });

        var sink = Assert.IsType<AzureBlobAuditSink>(Assert.Single(services.GetServices<IAuditSink>()));
        Assert.Equal("azureblob", sink.Name);
        Assert.Equal("audit-test", sink.Container.Name);
        Assert.NotNull(services.GetRequiredService<AzureBlobAuditSinkReader>());
    }

    [Fact]
    public void An_immutability_refusal_becomes_an_exception_that_says_to_allow_protected_append_writes()
    {
        var refusal = new RequestFailedException(409, "This operation is not permitted as the blob is immutable due to a policy.", "BlobImmutableDueToPolicy", null);

        var translated = Assert.IsType<AzureBlobImmutabilityException>(AzureBlobAuditSink.Translate(refusal, "r/audit-000000000001.jsonl"));

        Assert.Contains("allowProtectedAppendWrites", translated.Message, StringComparison.Ordinal);
        Assert.Contains("r/audit-000000000001.jsonl", translated.Message, StringComparison.Ordinal);
        Assert.Same(refusal, translated.InnerException);
        var other = new RequestFailedException(500, "Internal error", "InternalError", null);
        Assert.Same(other, AzureBlobAuditSink.Translate(other, "r/x"));
    }

    [Theory]
    [InlineData("a/b")]
    [InlineData("..")]
    [InlineData(" ")]
    public async Task A_replica_name_that_is_not_one_folder_is_refused(string replica)
    {
        var sink = new AzureBlobAuditSink(new AzureBlobSinkOptions { ConnectionString = AzuriteConnectionString });

        await Assert.ThrowsAsync<ArgumentException>(() => sink.GetDeliveredSequenceAsync(replica, default).AsTask());
    }

    private static List<string> Validate(AzureBlobSinkOptions options) => AzureBlobSinkOptionsValidator.Collect(options, Section);

    private static ServiceProvider Build(Dictionary<string, string?> settings)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton(TimeProvider.System);
        new TestBuilder(services).AddAzureBlobSink(configuration.GetSection(Section));
        return services.BuildServiceProvider();
    }

    private sealed class TestBuilder(IServiceCollection services) : INhiAuditBuilder
    {
        public IServiceCollection Services { get; } = services;
    }
}
