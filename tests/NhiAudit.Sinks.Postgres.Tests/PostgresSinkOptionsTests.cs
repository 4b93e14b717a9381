using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using NhiAudit.Audit.Sinks;

namespace NhiAudit.Sinks.Postgres.Tests;

/// <summary>Configuration binding and validation of <c>AddPostgresSink</c>; no database needed.</summary>
public sealed class PostgresSinkOptionsTests : IDisposable
{
    private readonly string _auditDirectory = Path.Combine(Path.GetTempPath(), "nhiaudit-pgsink-tests", Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_auditDirectory))
        {
            Directory.Delete(_auditDirectory, recursive: true);
        }
    }

    [Fact]
    public void MissingConnectionString_FailsValidationNamingTheSetting()
    {
        using var provider = BuildProvider(new Dictionary<string, string?> { ["NhiAudit:Sinks:Postgres:Schema"] = "audit" });

        var error = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<PostgresSinkOptions>>().Value);
        Assert.Contains("NhiAudit:Sinks:Postgres:ConnectionString is required", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Schema", "audit; DROP TABLE x")]
    [InlineData("Table", "audit-records")]
    [InlineData("CheckpointTable", "1checkpoints")]
    [InlineData("Table", "")]
    public void BadIdentifier_FailsValidationNamingTheSetting(string setting, string value)
    {
        using var provider = BuildProvider(new Dictionary<string, string?>
        {
            ["NhiAudit:Sinks:Postgres:ConnectionString"] = "Host=127.0.0.1;Username=app;Password=app-secret",
            ["NhiAudit:Sinks:Postgres:" + setting] = value,
        });

        var error = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<PostgresSinkOptions>>().Value);
        Assert.Contains($"NhiAudit:Sinks:Postgres:{setting} must be", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("app-secret", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void UnparsableConnectionString_FailsWithoutEchoingIt()
    {
        using var provider = BuildProvider(new Dictionary<string, string?>
        {
            ["NhiAudit:Sinks:Postgres:ConnectionString"] = "Host=127.0.0.1;Password=hunter2;NoSuchKeyword=1",
        });

        var error = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<PostgresSinkOptions>>().Value);
        Assert.Contains("ConnectionString is not a valid Npgsql connection string", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task BadConfig_StopsTheHostAtStart()
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["NhiAudit:Audit:Directory"] = _auditDirectory,
            ["NhiAudit:Sinks:Postgres:Table"] = "records;",
        });
        builder.Services.AddNhiAuditing(builder.Configuration.GetSection("NhiAudit"))
            .AddPostgresSink(builder.Configuration.GetSection("NhiAudit:Sinks:Postgres"));
        using var host = builder.Build();

        var error = await Assert.ThrowsAnyAsync<Exception>(() => host.StartAsync());
        var messages = Flatten(error);
        Assert.Contains(messages, m => m.Contains("NhiAudit:Sinks:Postgres:ConnectionString is required", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.Contains("NhiAudit:Sinks:Postgres:Table must be", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ValidConfig_BindsAndRegistersOneSinkForThePumps()
    {
        var settings = new Dictionary<string, string?>
        {
            ["NhiAudit:Sinks:Postgres:ConnectionString"] = "Host=127.0.0.1;Username=app;Password=app-secret;Database=audit",
            ["NhiAudit:Sinks:Postgres:Schema"] = "Evidence_2",
            ["NhiAudit:Sinks:Postgres:CreateSchema"] = "false",
        };
        // Disposed asynchronously: AuditSinkPumps is only IAsyncDisposable, so a synchronous Dispose of the container throws.
        await using var provider = BuildProvider(settings, addTwice: true);

        var options = provider.GetRequiredService<IOptions<PostgresSinkOptions>>().Value;
        Assert.Equal("Evidence_2", options.Schema);
        Assert.Equal("audit_records", options.Table);
        Assert.Equal("audit_checkpoints", options.CheckpointTable);
        Assert.False(options.CreateSchema);

        var sink = Assert.Single(provider.GetServices<IAuditSink>());
        Assert.IsType<PostgresAuditSink>(sink);
        Assert.Same(sink, provider.GetRequiredService<PostgresAuditSink>());
        Assert.NotNull(provider.GetRequiredService<PostgresAuditSinkReader>());
        Assert.Single(provider.GetRequiredService<AuditSinkPumps>().Pumps);
    }

    [Fact]
    public void SinkBuiltWithoutDependencyInjection_RejectsBadOptionsToo()
    {
        var error = Assert.Throws<ArgumentException>(() => new PostgresAuditSink(new PostgresSinkOptions { ConnectionString = "Host=x", Table = "a.b" }));
        Assert.Contains("NhiAudit:Sinks:Postgres:Table", error.Message, StringComparison.Ordinal);
    }

    private ServiceProvider BuildProvider(Dictionary<string, string?> settings, bool addTwice = false)
    {
        settings["NhiAudit:Audit:Directory"] = _auditDirectory;
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var services = new ServiceCollection();
        services.AddLogging();
        var builder = services.AddNhiAuditing(configuration.GetSection("NhiAudit"));
        builder.AddPostgresSink(configuration.GetSection("NhiAudit:Sinks:Postgres"));
        if (addTwice)
        {
            builder.AddPostgresSink(configuration.GetSection("NhiAudit:Sinks:Postgres"));
        }

        return services.BuildServiceProvider();
    }

    private static List<string> Flatten(Exception error)
    {
        var messages = new List<string>();
        var pending = new Stack<Exception>([error]);
        while (pending.TryPop(out var current))
        {
            messages.Add(current.Message);
            if (current is OptionsValidationException validation)
            {
                messages.AddRange(validation.Failures);
            }

            if (current is AggregateException aggregate)
            {
                foreach (var inner in aggregate.InnerExceptions)
                {
                    pending.Push(inner);
                }
            }
            else if (current.InnerException is { } inner)
            {
                pending.Push(inner);
            }
        }

        return messages;
    }
}
