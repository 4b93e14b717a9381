namespace NhiAudit;

/// <summary>Validates a workload token (signature, issuer, audience, lifetime, algorithm) and maps its claims.</summary>
public interface IWorkloadAuthenticator
{
    /// <summary>Validates <paramref name="token"/>. Never throws for a bad token: the result says why it failed.</summary>
    ValueTask<WorkloadAuthenticationResult> AuthenticateAsync(string token, CancellationToken cancellationToken = default);
}

/// <summary>The outcome of validating a workload token.</summary>
/// <param name="Identity">The identity, when the token is valid.</param>
/// <param name="Failure">Why the token was refused, in words safe to show the client (never the token itself).</param>
public sealed record WorkloadAuthenticationResult(WorkloadIdentity? Identity, string? Failure)
{
    /// <summary>True when the token was valid.</summary>
    public bool Succeeded => Identity is not null;

    /// <summary>A successful result.</summary>
    public static WorkloadAuthenticationResult Success(WorkloadIdentity identity) => new(identity, null);

    /// <summary>A refusal with a reason.</summary>
    public static WorkloadAuthenticationResult Fail(string reason) => new(null, reason);
}
