using NhiAudit.Ssh.HostKeys;

namespace NhiAudit.Ssh.Transport;

/// <summary>Which end of the connection the transport plays.</summary>
public enum SshRole
{
    /// <summary>Faces a client (the gateway toward the workload).</summary>
    Server,

    /// <summary>Faces a server (the gateway toward the upstream sshd).</summary>
    Client,
}

/// <summary>Settings of one SSH transport (RFC 4253) connection.</summary>
public sealed record SshTransportOptions
{
    /// <summary>The software version in our identification line (RFC 4253 §4.2). Default "NhiAudit_0.1".</summary>
    public string SoftwareVersion { get; init; } = "NhiAudit_0.1";

    /// <summary>Algorithms offered, in order of preference.</summary>
    public SshAlgorithmPreferences Algorithms { get; init; } = new();

    /// <summary>Host keys (server role); the host key algorithms offered are those these keys can sign with.</summary>
    public IReadOnlyList<SshHostKey> HostKeys { get; init; } = [];

    /// <summary>
    /// Client role: decides whether the server's host key blob is the one expected (pin its fingerprint). Called
    /// on every key exchange. The default refuses every key.
    /// </summary>
    public Func<ReadOnlyMemory<byte>, bool> AcceptHostKey { get; init; } = static _ => false;

    /// <summary>
    /// Largest packet_length accepted (RFC 4253 §6.1 requires at least 35000). Default 256 KiB plus room for
    /// padding and headers, as OpenSSH; larger packets end the connection.
    /// </summary>
    public int MaxPacketLength { get; init; } = (256 * 1024) + 1024;

    /// <summary>Start a new key exchange after this many bytes in either direction since the last (default 1 GiB, RFC 4253 §9).</summary>
    public long RekeyAfterBytes { get; init; } = 1L << 30;

    /// <summary>Start a new key exchange after this many packets since the last (default 2^31, RFC 4344 §3.1).</summary>
    public long RekeyAfterPackets { get; init; } = 1L << 31;

    /// <summary>Offer strict key exchange (kex-strict-*-v00@openssh.com, the Terrapin mitigation). Default true.</summary>
    public bool OfferStrictKeyExchange { get; init; } = true;
}
