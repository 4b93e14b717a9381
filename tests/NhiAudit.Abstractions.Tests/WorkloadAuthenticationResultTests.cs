namespace NhiAudit.Abstractions.Tests;

public sealed class WorkloadAuthenticationResultTests
{
    [Fact]
    public void A_success_carries_the_identity_and_no_failure()
    {
        var identity = new WorkloadIdentity { Kind = WorkloadKind.ManagedIdentity, Subject = "oid-1", Issuer = "https://sts" };
        var result = WorkloadAuthenticationResult.Success(identity);
        Assert.True(result.Succeeded);
        Assert.Same(identity, result.Identity);
        Assert.Null(result.Failure);
    }

    [Fact]
    public void A_failure_carries_its_reason_and_no_identity()
    {
        var result = WorkloadAuthenticationResult.Fail("token expired");
        Assert.False(result.Succeeded);
        Assert.Null(result.Identity);
        Assert.Equal("token expired", result.Failure);
    }

    [Fact]
    public void An_identity_has_no_roles_until_the_token_grants_some()
    {
        var identity = new WorkloadIdentity { Kind = WorkloadKind.ServicePrincipal, Subject = "sp", Issuer = "https://sts" };
        Assert.Empty(identity.Roles);
        Assert.Equal(identity with { }, identity);
    }
}
