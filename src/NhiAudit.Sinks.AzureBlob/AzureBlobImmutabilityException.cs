namespace NhiAudit.Sinks.AzureBlob;

/// <summary>
/// The service refused to grow an append blob because the container (or blob) is under a time-based immutability
/// policy or a legal hold that does not allow protected append writes. The pump keeps retrying; a person has to enable
/// <c>allowProtectedAppendWrites</c> on the policy (see the package README).
/// </summary>
public sealed class AzureBlobImmutabilityException : IOException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="message">What was refused and what to change.</param>
    /// <param name="innerException">The service's error.</param>
    public AzureBlobImmutabilityException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates the exception.</summary>
    public AzureBlobImmutabilityException()
    {
    }

    /// <summary>Creates the exception.</summary>
    /// <param name="message">What was refused.</param>
    public AzureBlobImmutabilityException(string message)
        : base(message)
    {
    }
}
