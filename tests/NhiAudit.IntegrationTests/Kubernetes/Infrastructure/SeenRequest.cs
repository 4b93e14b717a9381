namespace NhiAudit.IntegrationTests.Kubernetes.Infrastructure;

/// <summary>One request the fake Kubernetes API server received (recorded before authentication).</summary>
/// <param name="Method">HTTP method.</param>
/// <param name="Path">Request path, e.g. <c>/api/v1/namespaces/default/pods</c>.</param>
/// <param name="Query">Raw query string including the leading <c>?</c>, or empty.</param>
/// <param name="Accept">The Accept header, or null.</param>
/// <param name="UserAgent">The User-Agent header, or null.</param>
/// <param name="ImpersonateUser">The Impersonate-User header, or null.</param>
/// <param name="ImpersonateGroups">All Impersonate-Group header values.</param>
/// <param name="ImpersonateExtra">Impersonate-Extra-* headers: key (after the prefix, lower-cased) to values.</param>
/// <param name="AuthorizationScheme">The scheme of the Authorization header (e.g. <c>Bearer</c>), or null.</param>
public sealed record SeenRequest(
    string Method,
    string Path,
    string Query,
    string? Accept,
    string? UserAgent,
    string? ImpersonateUser,
    IReadOnlyList<string> ImpersonateGroups,
    IReadOnlyDictionary<string, IReadOnlyList<string>> ImpersonateExtra,
    string? AuthorizationScheme)
{
    /// <summary>The Upgrade header (websocket, SPDY/3.1), or null.</summary>
    public string? Upgrade { get; init; }

    /// <summary>The Sec-WebSocket-Protocol header, or null.</summary>
    public string? WebSocketProtocol { get; init; }

    /// <summary>The Content-Type header, or null.</summary>
    public string? ContentType { get; init; }
}
