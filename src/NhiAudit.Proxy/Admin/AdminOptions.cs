namespace NhiAudit.Proxy.Admin;

/// <summary>The admin HTTP API (<c>NhiAudit:Admin</c>): approvals and health.</summary>
internal sealed class AdminOptions
{
    /// <summary>The configuration section these options bind from.</summary>
    public const string SectionName = "NhiAudit:Admin";

    /// <summary>
    /// <c>ip:port</c> to listen on, e.g. <c>127.0.0.1:9090</c> (port 0 picks a free one); no admin API when empty.
    /// Plain HTTP unless <see cref="CertificateFile"/> is set: keep it on loopback, or put TLS in front.
    /// </summary>
    public string? Listen { get; set; }

    /// <summary>A PEM certificate (chain) for HTTPS; requires <see cref="KeyFile"/>.</summary>
    public string? CertificateFile { get; set; }

    /// <summary>The PEM private key of <see cref="CertificateFile"/>.</summary>
    public string? KeyFile { get; set; }
}
