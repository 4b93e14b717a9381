using NhiAudit.Kubernetes.Masking;

namespace NhiAudit.Kubernetes;

/// <summary>The Kubernetes section of the gateway configuration (<c>NhiAudit:Kubernetes</c>).</summary>
public sealed class KubernetesOptions
{
    /// <summary>One listener per API server.</summary>
    public List<KubernetesTargetOptions> Targets { get; init; } = [];

    /// <summary>What is masked in responses (Secret values, ConfigMap keys, detector findings).</summary>
    public KubernetesMaskingOptions Masking { get; set; } = new();
}

/// <summary>One Kubernetes API server behind the gateway.</summary>
public sealed class KubernetesTargetOptions
{
    /// <summary>The target's name, written in every record (e.g. <c>aks</c>).</summary>
    public string Name { get; set; } = "kubernetes";

    /// <summary>The HTTPS listen endpoint, <c>host:port</c>. Default <c>127.0.0.1:8443</c>.</summary>
    public string Listen { get; set; } = "127.0.0.1:8443";

    /// <summary>The listener's certificate: a PEM file, or a self-signed one generated on first run under <see cref="StateDirectory"/>.</summary>
    public string? CertificateFile { get; set; }

    /// <summary>The PEM key of <see cref="CertificateFile"/> when it is not in the same file.</summary>
    public string? KeyFile { get; set; }

    /// <summary>Where the self-signed certificate is kept. Default <c>.nhiaudit/kubernetes</c>.</summary>
    public string StateDirectory { get; set; } = ".nhiaudit/kubernetes";

    /// <summary>The API server and the gateway's own credential for it.</summary>
    public KubernetesUpstreamOptions Upstream { get; set; } = new();

    /// <summary>How the workload is named to the API server (its RBAC and its audit log see the workload, not the gateway).</summary>
    public KubernetesImpersonationOptions Impersonation { get; set; } = new();

    /// <summary>Where exec and attach sessions are recorded as asciicast v2 files. Default <c>recordings</c>.</summary>
    public string RecordingsDirectory { get; set; } = "recordings";

    /// <summary>The largest request body written (masked) into a request record; larger bodies are recorded by size. Default 64 KiB.</summary>
    public int MaxLoggedBodyBytes { get; set; } = 64 * 1024;

    /// <summary>The largest response the gateway masks whole (a get or list); a larger one fails closed with 502. Default 64 MiB.</summary>
    public int MaxMaskedResponseBytes { get; set; } = 64 * 1024 * 1024;
}

/// <summary>The upstream API server.</summary>
public sealed class KubernetesUpstreamOptions
{
    /// <summary>The API server URL, e.g. <c>https://aks-dns.hcp.westeurope.azmk8s.io:443</c>.</summary>
    public string Server { get; set; } = "";

    /// <summary>
    /// A kubeconfig file for the gateway's own login (its server, CA, and user: token, client certificate, or an exec or
    /// auth-provider plugin), read with KubernetesClient. Settings given here (<see cref="Server"/>, <see cref="CaFile"/>,
    /// <see cref="TokenFile"/>, ...) take precedence. A context that skips TLS verification is refused.
    /// </summary>
    public string? Kubeconfig { get; set; }

    /// <summary>The kubeconfig context to use; its current context when unset.</summary>
    public string? Context { get; set; }

    /// <summary>A PEM file of the CA certificates that sign the API server's certificate; the system store when unset.</summary>
    public string? CaFile { get; set; }

    /// <summary>A file holding the gateway's bearer token (a service account token); re-read when it changes.</summary>
    public string? TokenFile { get; set; }

    /// <summary>A PEM client certificate (and <see cref="ClientKeyFile"/>) for the gateway's own login.</summary>
    public string? ClientCertificateFile { get; set; }

    /// <summary>The PEM key of <see cref="ClientCertificateFile"/>.</summary>
    public string? ClientKeyFile { get; set; }

    /// <summary>Authenticate with an Azure.Identity <c>TokenCredential</c> registered in the container (AKS with Entra ID).</summary>
    public bool UseAzureIdentity { get; set; }

    /// <summary>The token scope for <see cref="UseAzureIdentity"/>. Default the AKS Entra server application.</summary>
    public string AzureScope { get; set; } = "6dae42f8-4368-4678-94ff-3960e28e3630/.default";

    /// <summary>How long to wait for the API server's response headers. Default 30 s (watches and exec streams run longer).</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(30);
}

/// <summary>The Impersonate-* headers the gateway sends for the workload.</summary>
public sealed class KubernetesImpersonationOptions
{
    /// <summary>
    /// The Impersonate-User value; <c>{subject}</c>, <c>{name}</c> and <c>{kind}</c> are replaced from the identity.
    /// Default <c>nhiaudit:{subject}</c>.
    /// </summary>
    public string User { get; set; } = "nhiaudit:{subject}";

    /// <summary>Impersonate-Group values for every workload; <c>nhiaudit:kind:{kind}</c> is added. Default <c>nhiaudit:workloads</c>.</summary>
    public List<string> Groups { get; set; } = ["nhiaudit:workloads"];

    /// <summary>Send the job context (repository, run id, commit, reason, request id) as Impersonate-Extra-nhiaudit.io-* headers. Default true.</summary>
    public bool Extra { get; set; } = true;
}
