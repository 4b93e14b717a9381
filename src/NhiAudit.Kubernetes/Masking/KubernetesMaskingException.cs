namespace NhiAudit.Kubernetes.Masking;

/// <summary>A body that had to be masked could not be read (not JSON, malformed, too deep): the gateway fails closed.</summary>
public sealed class KubernetesMaskingException : Exception
{
    /// <summary>Creates the exception.</summary>
    public KubernetesMaskingException()
        : base("The body could not be masked.")
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    /// <param name="message">Why.</param>
    public KubernetesMaskingException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and its cause.</summary>
    /// <param name="message">Why.</param>
    /// <param name="innerException">The cause.</param>
    public KubernetesMaskingException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
