using NhiAudit.Ssh.Authentication;
using NhiAudit.Ssh.Transport;

namespace NhiAudit.Ssh.Server;

/// <summary>Settings of the workload-facing SSH server.</summary>
public sealed record SshServerOptions
{
    /// <summary>Transport settings: host keys, algorithms, rekey limits.</summary>
    public SshTransportOptions Transport { get; init; } = new();

    /// <summary>Client authentication: registered keys, trusted user CAs, workload tokens. Refuses everyone by default.</summary>
    public SshAuthenticationOptions Authentication { get; init; } = new();

    /// <summary>
    /// TEST ONLY. Accepts the "none" authentication method for any user, so interop tests can reach the
    /// connection layer before real authentication exists. Never set this in a gateway configuration.
    /// </summary>
    internal bool InsecureAcceptNoneAuthenticationForTesting { get; init; }

    /// <summary>
    /// TEST ONLY. Accepts session channels whose <c>exec</c> runs nothing: <c>cat</c> echoes stdin back until EOF,
    /// any other command prints <c>nhiaudit-test exec: COMMAND</c>; both exit with status 0. Without it every
    /// channel open is refused.
    /// </summary>
    internal bool EnableTestExecForTesting { get; init; }

    /// <summary>
    /// Makes the relay of an authenticated connection (client transport, user, connection id, client endpoint, and a
    /// callback that ends the connection with a reason). When set, every connection-protocol message goes to it.
    /// </summary>
    internal Func<SshTransport, SshAuthenticatedUser, string, System.Net.IPEndPoint?, Action<string>, Relay.SshRelay>? Relay { get; init; }
}

/// <summary>How one connection ended.</summary>
/// <param name="SentDisconnectReason">The reason we sent in SSH_MSG_DISCONNECT, or null if the peer ended it.</param>
/// <param name="Description">Why, in words.</param>
/// <param name="Fault">An exception that was not a protocol error (a bug); null normally.</param>
public sealed record SshSessionResult(SshDisconnectReason? SentDisconnectReason, string Description, Exception? Fault)
{
    /// <summary>Who the client had authenticated as, or null if it never did.</summary>
    public SshAuthenticatedUser? User { get; init; }
}
