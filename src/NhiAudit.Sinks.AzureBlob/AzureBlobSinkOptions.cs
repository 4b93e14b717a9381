namespace NhiAudit.Sinks.AzureBlob;

/// <summary>
/// Where the Azure Blob sink writes: a storage account (by connection string, or by URI with the host's Azure
/// credential) and a container in it.
/// </summary>
public sealed class AzureBlobSinkOptions
{
    /// <summary>The configuration section these options are usually bound from.</summary>
    public const string SectionName = "NhiAudit:Sinks:AzureBlob";

    /// <summary>The container name used when none is configured.</summary>
    public const string DefaultContainerName = "nhiaudit-audit";

    /// <summary>
    /// A storage connection string (account key, SAS, or the Azurite development account). Set this or
    /// <see cref="ServiceUri"/>, not both.
    /// </summary>
    public string? ConnectionString { get; set; }

    /// <summary>
    /// The blob service endpoint (<c>https://ACCOUNT.blob.core.windows.net</c>), authenticated with the
    /// <c>TokenCredential</c> registered in DI or, when there is none, <c>DefaultAzureCredential</c> (managed identity,
    /// workload identity, environment). Set this or <see cref="ConnectionString"/>, not both.
    /// </summary>
    public Uri? ServiceUri { get; set; }

    /// <summary>The container that holds one folder per replica. Default: <c>nhiaudit-audit</c>.</summary>
    public string ContainerName { get; set; } = DefaultContainerName;

    /// <summary>
    /// Whether the sink creates the container when it does not exist. Default: <see langword="true"/>. Turn it off when
    /// the identity may only write blobs and the container (with its immutability policy) is managed elsewhere.
    /// </summary>
    public bool CreateContainer { get; set; } = true;
}
