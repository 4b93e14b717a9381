using Azure.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using NhiAudit.Sinks.AzureBlob;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the Azure Blob audit sink.</summary>
public static class AzureBlobSinkServiceCollectionExtensions
{
    /// <summary>
    /// Adds <see cref="AzureBlobAuditSink"/>, fed from the primary log by a pump the host runs, with options bound from
    /// <paramref name="section"/> (<c>ConnectionString</c> or <c>ServiceUri</c>, <c>ContainerName</c>,
    /// <c>CreateContainer</c>) and validated when the host starts. With <c>ServiceUri</c> the sink authenticates with the
    /// <see cref="TokenCredential"/> registered in DI, or <c>DefaultAzureCredential</c> when none is. Also registers an
    /// <see cref="AzureBlobAuditSinkReader"/> over the same container.
    /// </summary>
    /// <param name="builder">The engine builder.</param>
    /// <param name="section">The sink's configuration section (for example <c>NhiAudit:Sinks:AzureBlob</c>).</param>
    /// <returns>The builder.</returns>
    public static INhiAuditBuilder AddAzureBlobSink(this INhiAuditBuilder builder, IConfiguration section)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(section);
        var path = (section as IConfigurationSection)?.Path ?? AzureBlobSinkOptions.SectionName;
        builder.Services.AddOptions<AzureBlobSinkOptions>().Bind(section).ValidateOnStart();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<AzureBlobSinkOptions>>(new AzureBlobSinkOptionsValidator(path)));
        builder.Services.TryAddSingleton(sp => new AzureBlobAuditSinkReader(
            sp.GetRequiredService<IOptions<AzureBlobSinkOptions>>().Value,
            sp.GetService<TokenCredential>()));
        return builder.AddAuditSink(sp => new AzureBlobAuditSink(
            sp.GetRequiredService<IOptions<AzureBlobSinkOptions>>().Value,
            sp.GetService<TokenCredential>(),
            sp.GetService<ILogger<AzureBlobAuditSink>>()));
    }
}
