using Azure.Core;
using Azure.Identity;
using Azure.Storage.Blobs;

namespace NhiAudit.Sinks.AzureBlob;

/// <summary>Builds the container client from <see cref="AzureBlobSinkOptions"/>, shared by the sink and the reader.</summary>
internal static class AzureBlobClients
{
    /// <summary>The client for <paramref name="options"/>' container.</summary>
    /// <param name="options">Validated options.</param>
    /// <param name="credential">The host's credential for <see cref="AzureBlobSinkOptions.ServiceUri"/>; <see cref="DefaultAzureCredential"/> when null.</param>
    public static BlobContainerClient CreateContainerClient(AzureBlobSinkOptions options, TokenCredential? credential)
    {
        ArgumentNullException.ThrowIfNull(options);
        AzureBlobSinkOptionsValidator.ThrowIfInvalid(options);
        var clientOptions = CreateClientOptions();
        var service = string.IsNullOrWhiteSpace(options.ConnectionString)
            ? new BlobServiceClient(options.ServiceUri, credential ?? new DefaultAzureCredential(), clientOptions)
            : new BlobServiceClient(options.ConnectionString, clientOptions);
        return service.GetBlobContainerClient(options.ContainerName);
    }

    /// <summary>
    /// Client options with short SDK retries: the pump already retries for as long as the service is down and re-reads
    /// where the sink stands after each failure, so SDK retries only need to cover a brief glitch, and a long SDK back-off
    /// would only delay the pump noticing (and reporting) an outage.
    /// </summary>
    public static BlobClientOptions CreateClientOptions()
    {
        var options = new BlobClientOptions();
        options.Retry.Mode = RetryMode.Exponential;
        options.Retry.MaxRetries = 3;
        options.Retry.Delay = TimeSpan.FromMilliseconds(200);
        options.Retry.MaxDelay = TimeSpan.FromSeconds(2);
        options.Retry.NetworkTimeout = TimeSpan.FromSeconds(30);
        return options;
    }
}
