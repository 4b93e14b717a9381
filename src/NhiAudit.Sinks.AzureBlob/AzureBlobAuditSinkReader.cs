using Azure;
using Azure.Core;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Blobs.Specialized;
using NhiAudit.Audit;

namespace NhiAudit.Sinks.AzureBlob;

/// <summary>
/// Reads back what <see cref="AzureBlobAuditSink"/> stored: the replicas in the container, a replica's segments as a
/// local log directory (which <see cref="AuditVerifier.Verify(string)"/> and <c>nhiaudit verify</c> check), and its
/// newest published checkpoint. Only reads; never writes to the container.
/// </summary>
public sealed class AzureBlobAuditSinkReader
{
    private readonly BlobContainerClient _container;

    /// <summary>Creates a reader from the same options as the sink.</summary>
    /// <param name="options">The account and container.</param>
    /// <param name="credential">The host's Azure credential, used with <see cref="AzureBlobSinkOptions.ServiceUri"/>; <c>DefaultAzureCredential</c> when null.</param>
    /// <exception cref="Microsoft.Extensions.Options.OptionsValidationException">The options are invalid.</exception>
    public AzureBlobAuditSinkReader(AzureBlobSinkOptions options, TokenCredential? credential = null)
        : this(AzureBlobClients.CreateContainerClient(options, credential))
    {
    }

    /// <summary>Creates a reader over a container client the caller built.</summary>
    /// <param name="container">The container the sink writes to.</param>
    public AzureBlobAuditSinkReader(BlobContainerClient container)
    {
        ArgumentNullException.ThrowIfNull(container);
        _container = container;
    }

    /// <summary>The replicas that have a folder in the container, sorted by name.</summary>
    /// <param name="cancellationToken">Cancels the listing.</param>
    public async Task<IReadOnlyList<string>> ListReplicasAsync(CancellationToken cancellationToken = default)
    {
        var replicas = new List<string>();
        await foreach (var item in _container.GetBlobsByHierarchyAsync(new GetBlobsByHierarchyOptions { Delimiter = "/" }, cancellationToken).ConfigureAwait(false))
        {
            if (item.IsPrefix)
            {
                replicas.Add(item.Prefix.TrimEnd('/'));
            }
        }

        replicas.Sort(StringComparer.Ordinal);
        return replicas;
    }

    /// <summary>
    /// Downloads <paramref name="replica"/>'s segment blobs into <paramref name="targetDirectory"/> under their segment
    /// file names (<c>audit-….jsonl</c>), creating the directory; files of the same name there are replaced. Checkpoints
    /// are not downloaded (see <see cref="GetLatestCheckpointAsync"/>), so the directory holds exactly the log.
    /// </summary>
    /// <param name="replica">The replica name.</param>
    /// <param name="targetDirectory">The local directory.</param>
    /// <param name="cancellationToken">Cancels the download.</param>
    /// <returns>The paths of the files written, oldest segment first.</returns>
    public async Task<IReadOnlyList<string>> DownloadReplicaAsync(string replica, string targetDirectory, CancellationToken cancellationToken = default)
    {
        AzureBlobLayout.ValidateReplica(replica);
        ArgumentException.ThrowIfNullOrEmpty(targetDirectory);
        Directory.CreateDirectory(targetDirectory);
        var written = new List<string>();
        foreach (var segment in await AzureBlobLayout.ListSegmentsAsync(_container, replica, cancellationToken).ConfigureAwait(false))
        {
            var path = Path.Combine(targetDirectory, segment.FileName);

            // Written next to the target and moved into place, so an interrupted download never leaves a short segment
            // under the real name for a verifier to report as a cut log.
            var partial = path + ".partial";
            await _container.GetBlobClient(segment.BlobName).DownloadToAsync(partial, cancellationToken).ConfigureAwait(false);
            File.Move(partial, path, overwrite: true);
            written.Add(path);
        }

        return written;
    }

    /// <summary>The newest checkpoint published for <paramref name="replica"/>, or <see langword="null"/> when there is none.</summary>
    /// <param name="replica">The replica name.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    /// <exception cref="FormatException">The last line of <c>checkpoints.jsonl</c> is not a checkpoint.</exception>
    public async Task<AuditCheckpoint?> GetLatestCheckpointAsync(string replica, CancellationToken cancellationToken = default)
    {
        AzureBlobLayout.ValidateReplica(replica);
        var blob = _container.GetAppendBlobClient(AzureBlobLayout.CheckpointsBlob(replica));
        long length;
        try
        {
            length = (await blob.GetPropertiesAsync(cancellationToken: cancellationToken).ConfigureAwait(false)).Value.ContentLength;
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            return null;
        }

        var line = await AzureBlobLayout.ReadLastLineAsync(blob, length, cancellationToken).ConfigureAwait(false);
        return line is null ? null : AuditCheckpoint.Parse(System.Text.Encoding.UTF8.GetString(line));
    }
}
