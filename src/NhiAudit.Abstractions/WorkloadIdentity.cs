namespace NhiAudit;

/// <summary>What kind of non-human identity presented the token.</summary>
public enum WorkloadKind
{
    /// <summary>The token's claims did not match a known workload shape.</summary>
    Unknown = 0,

    /// <summary>An Azure managed identity (the token carries <c>xms_mirid</c>).</summary>
    ManagedIdentity,

    /// <summary>An application (service principal) token (<c>idtyp=app</c>).</summary>
    ServicePrincipal,

    /// <summary>A federated CI/CD workload such as a GitHub Actions job (<c>repository</c>, <c>workflow</c>, <c>run_id</c>).</summary>
    FederatedWorkload,

    /// <summary>A human user; approvers are users.</summary>
    User,
}

/// <summary>
/// The proven identity of a caller, taken from a validated workload token. Every audit record carries it,
/// and the target learns it too (PostgreSQL <c>application_name</c>, Kubernetes impersonation).
/// </summary>
public sealed record WorkloadIdentity
{
    /// <summary>The kind of workload.</summary>
    public required WorkloadKind Kind { get; init; }

    /// <summary>The stable subject: <c>oid</c> when present, otherwise <c>sub</c>.</summary>
    public required string Subject { get; init; }

    /// <summary>The issuer (<c>iss</c>) that vouched for the token.</summary>
    public required string Issuer { get; init; }

    /// <summary>A short human-readable name: the managed identity's resource name, the repository and workflow, or the subject.</summary>
    public string DisplayName { get; init; } = "";

    /// <summary>The tenant (<c>tid</c>), when the issuer is Entra ID.</summary>
    public string? TenantId { get; init; }

    /// <summary>The client application (<c>appid</c> or <c>azp</c>).</summary>
    public string? ApplicationId { get; init; }

    /// <summary>The managed identity's Azure resource id (<c>xms_mirid</c>).</summary>
    public string? ManagedIdentityResourceId { get; init; }

    /// <summary>The CI repository (GitHub <c>repository</c>).</summary>
    public string? Repository { get; init; }

    /// <summary>The CI workflow (GitHub <c>workflow</c>).</summary>
    public string? Workflow { get; init; }

    /// <summary>The CI run (GitHub <c>run_id</c>).</summary>
    public string? RunId { get; init; }

    /// <summary>The commit the job runs (GitHub <c>sha</c>).</summary>
    public string? Sha { get; init; }

    /// <summary>Roles granted by the token (<c>roles</c>), e.g. the approver role.</summary>
    public IReadOnlyList<string> Roles { get; init; } = [];

    /// <summary>When the token stops being valid; a session ends then (plus the configured grace).</summary>
    public DateTimeOffset ExpiresAt { get; init; }
}
