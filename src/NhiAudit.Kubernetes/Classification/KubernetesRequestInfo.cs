namespace NhiAudit.Kubernetes.Classification;

/// <summary>
/// What a request to the Kubernetes API server asks for, read from its method, path and query exactly as the API server's
/// <c>RequestInfoFactory</c> reads them (<c>k8s.io/apiserver/pkg/endpoints/request/requestinfo.go</c>).
/// </summary>
public sealed record KubernetesRequestInfo
{
    /// <summary>True for a request on an API resource or subresource (<c>/api/…</c>, <c>/apis/…</c> with a resource).</summary>
    public required bool IsResourceRequest { get; init; }

    /// <summary>The URL path of the request.</summary>
    public required string Path { get; init; }

    /// <summary>
    /// The Kubernetes verb (<c>get</c>, <c>list</c>, <c>watch</c>, <c>create</c>, <c>update</c>, <c>patch</c>, <c>delete</c>,
    /// <c>deletecollection</c>, <c>proxy</c>); for a non-resource request the lower-case HTTP method. Empty for a resource
    /// request with a method the API server does not map to a verb.
    /// </summary>
    public required string Verb { get; init; }

    /// <summary>The API prefix: <c>api</c> or <c>apis</c>; empty for a non-resource request.</summary>
    public string ApiPrefix { get; init; } = "";

    /// <summary>The API group; empty for the core group.</summary>
    public string ApiGroup { get; init; } = "";

    /// <summary>The API version (<c>v1</c>, <c>v1beta1</c> …).</summary>
    public string ApiVersion { get; init; } = "";

    /// <summary>The namespace; empty for a cluster-scoped request or one across all namespaces.</summary>
    public string Namespace { get; init; } = "";

    /// <summary>The resource (<c>pods</c>, <c>secrets</c> …), not the kind.</summary>
    public string Resource { get; init; } = "";

    /// <summary>The subresource (<c>status</c>, <c>log</c>, <c>exec</c> …).</summary>
    public string Subresource { get; init; } = "";

    /// <summary>The object's name, from the path or from a <c>metadata.name</c> field selector on a list or watch.</summary>
    public string Name { get; init; } = "";

    /// <summary>For a patch: <c>json</c>, <c>merge</c>, <c>strategic</c> or <c>apply</c>, from the Content-Type; otherwise null.</summary>
    public string? PatchType { get; init; }

    /// <summary>True for the discovery documents: <c>/api</c>, <c>/apis</c>, <c>/api/v1</c>, <c>/apis/&lt;g&gt;</c>, <c>/apis/&lt;g&gt;/&lt;v&gt;</c>, <c>/version</c>, <c>/openapi/*</c>.</summary>
    public bool IsDiscovery { get; init; }

    /// <summary>
    /// The action for the policy engine: the verb, except <c>exec</c>, <c>attach</c> and <c>portforward</c> (the subresource
    /// name), and <see cref="AccessRequest.UnclassifiedAction"/> when the request cannot be read faithfully.
    /// </summary>
    public required string Action { get; init; }

    /// <summary>
    /// The request as <see cref="AccessRequest.Resources"/>: <c>namespace/resource[/name[/subresource]]</c> with an empty
    /// namespace kept for cluster-scoped requests (<c>default/secrets/db</c>, <c>kube-system/pods</c>, <c>/nodes/n1</c>),
    /// or the path for a non-resource request.
    /// </summary>
    public required IReadOnlyList<string> Resources { get; init; }

    /// <summary>True when the request could not be read faithfully (<see cref="Action"/> is <see cref="AccessRequest.UnclassifiedAction"/>).</summary>
    public bool IsUnclassified => Action == AccessRequest.UnclassifiedAction;
}
