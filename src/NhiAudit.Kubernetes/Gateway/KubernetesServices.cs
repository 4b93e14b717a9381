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
    ILogger Logger);
