using System.Text;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using NhiAudit.Audit;
using NhiAudit.Identity;
using NhiAudit.Tests.Identity;

namespace NhiAudit.Tests.DependencyInjection;

public sealed class AddNhiAuditingTests : IDisposable
{
    private readonly TestDirectory _directory = new();
    private readonly DevelopmentIssuer _issuer;

    public AddNhiAuditingTests()
    {
        _issuer = DevelopmentIssuer.LoadOrCreate(_directory.Sub("issuer"));
        File.WriteAllText(SigningKeyPath, Audit.CheckpointTests.NewKeyPem("ES256"));
    }

    private string SigningKeyPath => _directory.Sub("audit-signing.pem");

    public void Dispose()
    {
        _issuer.Dispose();
        _directory.Dispose();
    }

    /// <summary>The DESIGN.md reference configuration, with real paths for the local issuer and audit directory.</summary>
    private IConfiguration DesignConfiguration(string? algorithms = null, string audiences = "[\"nhiaudit\"]") => Json($$"""
        { "NhiAudit": {
            "Identity": { "Issuers": [
                { "Name": "entra", "Authority": "https://login.microsoftonline.com/TENANT/v2.0", "Audiences": ["api://nhiaudit"] },
                { "Name": "local", "Issuer": "https://issuer.local", "JwksFile": {{Quote(_issuer.JwksPath)}}, "Audiences": {{audiences}} {{(algorithms is null ? "" : $", \"Algorithms\": {algorithms}")}} } ],
              "SshKeys": [ { "PublicKey": "ssh-ed25519 AAAA deploy", "Subject": "deploy-job", "Kind": "ServicePrincipal" } ],
              "ApproverRole": "NhiAudit.Approver",
              "ClockSkew": "00:00:10",
              "SessionGrace": "00:01:00" },
            "Audit": { "Directory": {{Quote(_directory.Sub("audit"))}}, "Durability": "WriteAhead", "OnSinkFailure": "Deny",
                       "SigningKeyFile": {{Quote(SigningKeyPath)}} },
            "Postgres": { "Targets": [ { "Name": "orders", "Listen": "127.0.0.1:6432" } ] },
            "Admin": { "Listen": "127.0.0.1:9090" } } }
        """);

    private static string Quote(string value) => System.Text.Json.JsonSerializer.Serialize(value);

    private static IConfiguration Json(string json)
    {
        // Microsoft.Extensions.Configuration.Json is referenced only by the Proxy; flatten the JSON into the in-memory
        // provider the same way the JSON provider does (":"-joined paths, array indexes as keys).
        var values = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        using var document = System.Text.Json.JsonDocument.Parse(json);
        Flatten(document.RootElement, "", values);
        return new ConfigurationBuilder().AddInMemoryCollection(values).Build();
    }

    private static void Flatten(System.Text.Json.JsonElement element, string path, Dictionary<string, string?> values)
    {
        switch (element.ValueKind)
        {
            case System.Text.Json.JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                {
                    Flatten(property.Value, path.Length == 0 ? property.Name : $"{path}:{property.Name}", values);
                }

                break;
            case System.Text.Json.JsonValueKind.Array:
                var index = 0;
                foreach (var item in element.EnumerateArray())
                {
                    Flatten(item, $"{path}:{index++}", values);
                }

                break;
            case System.Text.Json.JsonValueKind.Null:
                values[path] = null;
                break;
            default:
                values[path] = element.ValueKind == System.Text.Json.JsonValueKind.String ? element.GetString() : element.GetRawText();
                break;
        }
    }

    [Fact]
    public async Task Binds_the_design_configuration_and_resolves_the_authenticator()
    {
        var services = new ServiceCollection();
        var builder = services.AddNhiAuditing(DesignConfiguration().GetSection("NhiAudit"));
        await using var provider = new MiniServiceProvider(services);

        Assert.Same(services, builder.Services);
        var identity = provider.GetRequiredService<IOptions<IdentityOptions>>().Value;
        Assert.Equal(["entra", "local"], identity.Issuers.Select(i => i.Name));
        Assert.Equal("https://login.microsoftonline.com/TENANT/v2.0", identity.Issuers[0].Authority);
        Assert.Equal(["api://nhiaudit"], identity.Issuers[0].Audiences);
        Assert.Equal(_issuer.JwksPath, identity.Issuers[1].JwksFile);
        Assert.Equal("NhiAudit.Approver", identity.ApproverRole);
        Assert.Equal(TimeSpan.FromSeconds(10), identity.ClockSkew);
        Assert.Equal(TimeSpan.FromMinutes(1), identity.SessionGrace);
        Assert.Empty(identity.Issuers[1].Algorithms);

        var audit = provider.GetRequiredService<IOptions<AuditOptions>>().Value;
        Assert.Equal(_directory.Sub("audit"), audit.Directory);
        Assert.Equal(AuditDurability.WriteAhead, audit.Durability);
        Assert.Equal(SigningKeyPath, audit.SigningKeyFile);

        var root = provider.GetRequiredService<IOptions<NhiAuditOptions>>().Value;
        Assert.Same(identity, root.Identity);
        Assert.Same(audit, root.Audit);

        Assert.Same(TimeProvider.System, provider.GetRequiredService<TimeProvider>());
        var authenticator = provider.GetRequiredService<IWorkloadAuthenticator>();
        Assert.IsType<WorkloadTokenValidator>(authenticator);
        Assert.Same(authenticator, provider.GetRequiredService<IWorkloadAuthenticator>());

        // The local issuer from configuration works end to end; the Entra issuer is never contacted for it.
        var result = await authenticator.AuthenticateAsync(_issuer.MintToken(new TokenRequest { Subject = "job" }));
        Assert.True(result.Succeeded, result.Failure);
        Assert.Equal(WorkloadKind.FederatedWorkload, result.Identity!.Kind);
    }

    [Fact]
    public async Task Root_configuration_with_an_NhiAudit_section_also_binds()
    {
        var services = new ServiceCollection();
        services.AddNhiAuditing(DesignConfiguration());
        await using var provider = new MiniServiceProvider(services);

        Assert.Equal(2, provider.GetRequiredService<IOptions<IdentityOptions>>().Value.Issuers.Count);
    }

    [Fact]
    public async Task Startup_validation_passes_for_good_configuration()
    {
        var services = new ServiceCollection();
        services.AddNhiAuditing(DesignConfiguration().GetSection("NhiAudit"));
        await using var provider = new MiniServiceProvider(services);

        provider.GetRequiredService<IStartupValidator>().Validate();
    }

    [Fact]
    public async Task Calling_twice_registers_once_and_binds_once()
    {
        var configuration = DesignConfiguration();
        var services = new ServiceCollection();
        services.AddNhiAuditing(configuration.GetSection("NhiAudit"));
        var count = services.Count;
        services.AddNhiAuditing(configuration.GetSection("NhiAudit"));
        await using var provider = new MiniServiceProvider(services);

        Assert.Equal(count, services.Count);
        Assert.Single(services, d => d.ServiceType == typeof(IWorkloadAuthenticator));
        Assert.Single(services, d => d.ServiceType == typeof(IAuditLog));
        Assert.Equal(2, provider.GetRequiredService<IOptions<IdentityOptions>>().Value.Issuers.Count);
        Assert.IsType<WorkloadTokenValidator>(provider.GetRequiredService<IWorkloadAuthenticator>());
    }

    [Fact]
    public async Task Existing_registrations_are_kept()
    {
        var services = new ServiceCollection();
        var clock = new ManualClock(DateTimeOffset.UnixEpoch);
        var custom = new FixedAuthenticator();
        services.AddSingleton<TimeProvider>(clock);
        services.AddSingleton<IWorkloadAuthenticator>(custom);
        services.AddNhiAuditing(DesignConfiguration().GetSection("NhiAudit"));
        await using var provider = new MiniServiceProvider(services);

        Assert.Same(clock, provider.GetRequiredService<TimeProvider>());
        Assert.Same(custom, provider.GetRequiredService<IWorkloadAuthenticator>());
    }

    [Fact]
    public async Task HS256_in_algorithms_fails_clearly()
    {
        var services = new ServiceCollection();
        services.AddNhiAuditing(DesignConfiguration(algorithms: "[\"ES256\", \"HS256\"]").GetSection("NhiAudit"));
        await using var provider = new MiniServiceProvider(services);

        var atStart = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IStartupValidator>().Validate());
        Assert.Contains("issuer 'local': algorithm 'HS256' is not allowed", atStart.Message, StringComparison.Ordinal);
        var atUse = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IWorkloadAuthenticator>());
        Assert.Contains("'HS256' is not allowed", atUse.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Narrowed_algorithms_replace_the_defaults()
    {
        var services = new ServiceCollection();
        services.AddNhiAuditing(DesignConfiguration(algorithms: "[\"RS256\"]").GetSection("NhiAudit"));
        await using var provider = new MiniServiceProvider(services);

        Assert.Equal(["RS256"], provider.GetRequiredService<IOptions<IdentityOptions>>().Value.Issuers[1].Algorithms);
        var result = await provider.GetRequiredService<IWorkloadAuthenticator>().AuthenticateAsync(_issuer.MintToken(new TokenRequest { Subject = "job" }));
        Assert.Equal("token algorithm 'ES256' is not allowed", result.Failure);
    }

    [Fact]
    public async Task Missing_audience_fails_clearly()
    {
        var services = new ServiceCollection();
        services.AddNhiAuditing(DesignConfiguration(audiences: "[]").GetSection("NhiAudit"));
        await using var provider = new MiniServiceProvider(services);

        var ex = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IStartupValidator>().Validate());
        Assert.Contains("issuer 'local': at least one non-empty Audience is required", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Code_configuration_overload_configures_identity_and_audit()
    {
        var services = new ServiceCollection();
        services.AddNhiAuditing(options =>
        {
            options.Identity.Issuers.Add(new IssuerOptions { Name = "local", Issuer = _issuer.Issuer, JwksFile = _issuer.JwksPath, Audiences = ["nhiaudit"] });
            options.Identity.ApproverRole = "Approver";
            options.Audit.Directory = _directory.Sub("audit-code");
        });
        await using var provider = new MiniServiceProvider(services);

        Assert.Equal("Approver", provider.GetRequiredService<IOptions<IdentityOptions>>().Value.ApproverRole);
        Assert.Equal(_directory.Sub("audit-code"), provider.GetRequiredService<IOptions<AuditOptions>>().Value.Directory);
        var result = await provider.GetRequiredService<IWorkloadAuthenticator>().AuthenticateAsync(_issuer.MintToken(new TokenRequest { Subject = "job" }));
        Assert.True(result.Succeeded, result.Failure);
    }

    [Fact]
    public async Task Code_configuration_may_replace_the_sub_objects()
    {
        var services = new ServiceCollection();
        services.AddNhiAuditing(options =>
        {
            options.Identity = new IdentityOptions { ApproverRole = "Replaced" };
            options.Audit = new AuditOptions { Directory = _directory.Sub("audit-replaced") };
        });
        await using var provider = new MiniServiceProvider(services);

        Assert.Equal("Replaced", provider.GetRequiredService<IOptions<IdentityOptions>>().Value.ApproverRole);
        Assert.Equal(_directory.Sub("audit-replaced"), provider.GetRequiredService<IOptions<AuditOptions>>().Value.Directory);
    }

    [Fact]
    public async Task Code_configuration_called_twice_applies_both()
    {
        var services = new ServiceCollection();
        services.AddNhiAuditing(options => options.Identity.ApproverRole = "First");
        services.AddNhiAuditing(options => options.Identity.ClockSkew = TimeSpan.FromSeconds(5));
        await using var provider = new MiniServiceProvider(services);

        var identity = provider.GetRequiredService<IOptions<IdentityOptions>>().Value;
        Assert.Equal("First", identity.ApproverRole);
        Assert.Equal(TimeSpan.FromSeconds(5), identity.ClockSkew);
        Assert.Single(services, d => d.ServiceType == typeof(IWorkloadAuthenticator));
    }

    [Fact]
    public async Task Audit_log_resolves_as_a_file_log_in_the_configured_directory()
    {
        var services = new ServiceCollection();
        services.AddNhiAuditing(DesignConfiguration().GetSection("NhiAudit"));
        await using (var provider = new MiniServiceProvider(services))
        {
            var log = provider.GetRequiredService<IAuditLog>();
            Assert.IsType<FileAuditLog>(log);
            Assert.Same(log, provider.GetRequiredService<IAuditLog>());
            await log.AppendAsync(Encoding.UTF8.GetBytes("""{"type":"test"}"""));

            // The configured key signs checkpoints: log.opened names it.
            using var key = AuditCheckpointSigner.FromFile(SigningKeyPath);
            Assert.Contains($"\"checkpointKeyId\":\"{key.KeyId}\"", File.ReadAllText(((FileAuditLog)log).SegmentPath), StringComparison.Ordinal);
        }

        Assert.NotEmpty(Directory.GetFiles(_directory.Sub("audit")));
    }
}
