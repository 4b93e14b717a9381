namespace NhiAudit.Sinks.AzureBlob;

/// <summary>
/// An append was refused because the blob's length was not the one the sink expected (HTTP 412,
/// <c>AppendPositionConditionNotMet</c>): an earlier attempt whose answer was lost did land, or another writer appended.
/// Nothing was duplicated; the pump asks the sink where it stands again and resends from there.
/// </summary>
public sealed class AzureBlobAppendConflictException : IOException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="blobName">The append blob.</param>
    /// <param name="expectedPosition">The length the sink expected.</param>
    /// <param name="innerException">The service's error.</param>
    public AzureBlobAppendConflictException(string blobName, long expectedPosition, Exception? innerException)
        : base($"append to {blobName} at offset {expectedPosition} was refused because the blob is no longer that long: an earlier attempt landed or another writer appended; nothing was duplicated, the sink re-reads where it stands", innerException)
    {
        BlobName = blobName;
        ExpectedPosition = expectedPosition;
    }

    /// <summary>Creates the exception.</summary>
    public AzureBlobAppendConflictException()
    {
        BlobName = "";
    }

    /// <summary>Creates the exception.</summary>
    /// <param name="message">What was refused.</param>
    public AzureBlobAppendConflictException(string message)
        : base(message)
    {
        BlobName = "";
    }

    /// <summary>Creates the exception.</summary>
    /// <param name="message">What was refused.</param>
    /// <param name="innerException">The service's error.</param>
    public AzureBlobAppendConflictException(string message, Exception? innerException)
        : base(message, innerException)
    {
        BlobName = "";
    }

    /// <summary>The append blob.</summary>
    public string BlobName { get; }

    /// <summary>The length the sink expected the blob to have.</summary>
    public long ExpectedPosition { get; }
}
