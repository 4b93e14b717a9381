using Microsoft.Extensions.Logging;
using NhiAudit.Kubernetes.Masking;
using Yarp.ReverseProxy.Forwarder;

namespace NhiAudit.Kubernetes.Gateway;

/// <summary>What every request through one Kubernetes target uses.</summary>
internal sealed record KubernetesServices(
    KubernetesTargetOptions Target,
    KubernetesUpstream Upstream,
    IHttpForwarder Forwarder,
    IAuditLog AuditLog,
    IWorkloadAuthenticator Authenticator,
    IPolicyEngine Policy,
    IApprovalBroker Approvals,
    KubernetesResponseMasker Masker,
    TimeProvider Time,
    ILogger Logger)
{
    /// <summary>Recently validated workload tokens and the identity each proved, with when to validate again.</summary>
    public System.Collections.Concurrent.ConcurrentDictionary<string, (WorkloadIdentity Identity, DateTimeOffset Until)> TokenCache { get; } = new(StringComparer.Ordinal);
}
