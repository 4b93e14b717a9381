namespace NhiAudit.Tests.DependencyInjection;

/// <summary>An authenticator registered before AddNhiAuditing, to prove TryAdd keeps it.</summary>
internal sealed class FixedAuthenticator : IWorkloadAuthenticator
{
    public ValueTask<WorkloadAuthenticationResult> AuthenticateAsync(string token, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult(WorkloadAuthenticationResult.Fail("fixed"));
}
