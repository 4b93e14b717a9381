namespace NhiAudit.Identity;

/// <summary>What <see cref="DevelopmentIssuer.MintToken"/> should put into a token.</summary>
public sealed record TokenRequest
{
    /// <summary>The subject (<c>sub</c>, and <c>oid</c> for Entra-shaped kinds).</summary>
    public required string Subject { get; init; }

    /// <summary>The audience (<c>aud</c>); the gateway accepts only its configured audiences.</summary>
    public string Audience { get; init; } = "nhiaudit";

    /// <summary>How long the token is valid, counted from <see cref="IssuedAt"/>.</summary>
    public TimeSpan Lifetime { get; init; } = TimeSpan.FromHours(1);

    /// <summary>The shape of the claims, chosen so the validator maps the token back to this kind.</summary>
    public WorkloadKind Kind { get; init; } = WorkloadKind.FederatedWorkload;

    /// <summary>The CI repository (<c>repository</c>); defaults to <c>local/dev</c> for a federated workload.</summary>
    public string? Repository { get; init; }

    /// <summary>The CI workflow (<c>workflow</c>); defaults to <c>dev</c> for a federated workload.</summary>
    public string? Workflow { get; init; }

    /// <summary>The CI run id (<c>run_id</c>); defaults to <c>1</c> for a federated workload.</summary>
    public string? RunId { get; init; }

    /// <summary>The commit (<c>sha</c>).</summary>
    public string? Sha { get; init; }

    /// <summary>The managed identity's Azure resource id (<c>xms_mirid</c>); a made-up user-assigned identity named after the subject when null.</summary>
    public string? ManagedIdentityResourceId { get; init; }

    /// <summary>The client application id (<c>appid</c>); the subject when null for a service principal.</summary>
    public string? ApplicationId { get; init; }

    /// <summary>The tenant (<c>tid</c>).</summary>
    public string? TenantId { get; init; }

    /// <summary>Roles (<c>roles</c>), e.g. the approver role.</summary>
    public IReadOnlyList<string> Roles { get; init; } = [];

    /// <summary>Overrides <c>iat</c> (default: now). Lets tests mint already-expired tokens without sleeping.</summary>
    public DateTimeOffset? IssuedAt { get; init; }

    /// <summary>Overrides <c>nbf</c> (default: <see cref="IssuedAt"/>). Lets tests mint not-yet-valid tokens.</summary>
    public DateTimeOffset? NotBefore { get; init; }

    /// <summary>More claims, added last so they can also replace the ones above.</summary>
    public IDictionary<string, object>? ExtraClaims { get; init; }
}
