namespace NhiAudit.Ssh;

/// <summary>The SSH section of the gateway configuration (<c>NhiAudit:Ssh</c>).</summary>
public sealed class SshOptions
{
    /// <summary>One listener per upstream host.</summary>
    public List<SshTargetOptions> Targets { get; init; } = [];
}

/// <summary>One SSH host behind the gateway: where workloads connect, and how the gateway reaches the host.</summary>
public sealed class SshTargetOptions
{
    /// <summary>The target's name, written in every record (e.g. <c>build</c>).</summary>
    public string Name { get; set; } = "ssh";

    /// <summary>The listen endpoint, <c>host:port</c>. Default <c>127.0.0.1:2222</c>.</summary>
    public string Listen { get; set; } = "127.0.0.1:2222";

    /// <summary>
    /// The gateway's host key toward workloads (an OpenSSH or PEM private key file: ed25519, RSA or ECDSA P-256).
    /// When unset, an Ed25519 key is generated on first run under <see cref="StateDirectory"/> and kept.
    /// </summary>
    public string? HostKeyFile { get; set; }

    /// <summary>Where a generated host key is kept. Default <c>.nhiaudit/ssh</c>.</summary>
    public string StateDirectory { get; set; } = ".nhiaudit/ssh";

    /// <summary>The upstream host and the gateway's own credential for it.</summary>
    public SshUpstreamOptions Upstream { get; set; } = new();

    /// <summary>Where shell sessions (and commands run with a terminal) are recorded as asciicast v2. Default <c>recordings</c>.</summary>
    public string RecordingsDirectory { get; set; } = "recordings";

    /// <summary>Channels one connection may have open at once. Default 10 (OpenSSH's MaxSessions).</summary>
    public int MaxChannelsPerConnection { get; set; } = 10;

    /// <summary>Failed authentication attempts before the connection ends. Default 6.</summary>
    public int MaxAuthenticationAttempts { get; set; } = 6;

    /// <summary>
    /// Which certificate principal a requested user name requires (see the certificate rules in the package README).
    /// By default a certificate must list the requested user name itself.
    /// </summary>
    public Dictionary<string, string> PrincipalForUser { get; set; } = new(StringComparer.Ordinal);
}

/// <summary>The upstream SSH server.</summary>
public sealed class SshUpstreamOptions
{
    /// <summary>The host name or address.</summary>
    public string Host { get; set; } = "";

    /// <summary>The port. Default 22.</summary>
    public int Port { get; set; } = 22;

    /// <summary>The account the gateway logs in as; every workload's channels run as this user.</summary>
    public string Username { get; set; } = "";

    /// <summary>The gateway's private key for the upstream (OpenSSH or PEM; ed25519, RSA or ECDSA P-256). Workloads never see it.</summary>
    public string PrivateKeyFile { get; set; } = "";

    /// <summary>
    /// The upstream's host key, pinned: its OpenSSH fingerprint (<c>SHA256:…</c>, as <c>ssh-keygen -lf</c> prints it).
    /// Required: a gateway that cannot tell the real host from an impostor would hand it every command.
    /// </summary>
    public string HostKeyFingerprint { get; set; } = "";

    /// <summary>How long connecting and logging in upstream may take. Default 15 s.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(15);
}
