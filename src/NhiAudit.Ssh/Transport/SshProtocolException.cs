namespace NhiAudit.Ssh.Transport;

/// <summary>
/// The peer broke the protocol (or the keys do not match): the connection ends with SSH_MSG_DISCONNECT carrying
/// <see cref="Reason"/>. Thrown only inside the transport; sessions turn it into a disconnect, never let it escape.
/// </summary>
public sealed class SshProtocolException : Exception
{
    /// <summary>Creates the exception with the disconnect reason to send.</summary>
    public SshProtocolException(SshDisconnectReason reason, string message)
        : base(message) => Reason = reason;

    /// <summary>Creates a protocol error.</summary>
    public SshProtocolException()
        : this(SshDisconnectReason.ProtocolError, "protocol error")
    {
    }

    /// <summary>Creates a protocol error with a description.</summary>
    public SshProtocolException(string message)
        : this(SshDisconnectReason.ProtocolError, message)
    {
    }

    /// <summary>Creates a protocol error with a description and cause.</summary>
    public SshProtocolException(string message, Exception innerException)
        : base(message, innerException) => Reason = SshDisconnectReason.ProtocolError;

    /// <summary>The reason code sent in SSH_MSG_DISCONNECT.</summary>
    public SshDisconnectReason Reason { get; }
}

/// <summary>The peer sent SSH_MSG_DISCONNECT or closed the connection.</summary>
public sealed class SshConnectionClosedException : Exception
{
    /// <summary>Creates the exception.</summary>
    public SshConnectionClosedException(SshDisconnectReason reason, string message)
        : base(message) => Reason = reason;

    /// <summary>Creates the exception for a lost connection.</summary>
    public SshConnectionClosedException()
        : this(SshDisconnectReason.ConnectionLost, "connection lost")
    {
    }

    /// <summary>Creates the exception for a lost connection with a description.</summary>
    public SshConnectionClosedException(string message)
        : this(SshDisconnectReason.ConnectionLost, message)
    {
    }

    /// <summary>Creates the exception with a cause.</summary>
    public SshConnectionClosedException(string message, Exception innerException)
        : base(message, innerException) => Reason = SshDisconnectReason.ConnectionLost;

    /// <summary>The reason code the peer gave, or <see cref="SshDisconnectReason.ConnectionLost"/>.</summary>
    public SshDisconnectReason Reason { get; }
}
