using NhiAudit.Identity;

namespace NhiAudit.Tests.Identity;

public sealed class WorkloadTokenMappingTests : IDisposable
{
    private readonly DevIssuerContext _context = new();

    public void Dispose() => _context.Dispose();

    [Fact]
    public async Task Managed_identity_token_maps_resource_name_tenant_and_roles()
    {
        var issuedAt = DateTimeOffset.UtcNow.AddMinutes(-1);
        const string resourceId = "/subscriptions/1111/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/orders-api";
        var token = _context.Issuer.MintToken(new TokenRequest
        {
            Subject = "9f1e0c1a-oid",
            Kind = WorkloadKind.ManagedIdentity,
            ManagedIdentityResourceId = resourceId,
            ApplicationId = "app-123",
            TenantId = "tenant-1",
            Roles = ["Reader", "NhiAudit.Approver"],
            IssuedAt = issuedAt,
        });

        var identity = await _context.AssertValidAsync(token);

        Assert.Equal(WorkloadKind.ManagedIdentity, identity.Kind);
        Assert.Equal("9f1e0c1a-oid", identity.Subject);
        Assert.Equal("orders-api", identity.DisplayName);
        Assert.Equal(resourceId, identity.ManagedIdentityResourceId);
        Assert.Equal("app-123", identity.ApplicationId);
        Assert.Equal("tenant-1", identity.TenantId);
        Assert.Equal(["Reader", "NhiAudit.Approver"], identity.Roles);
        Assert.Equal(DevIssuerContext.IssuerUrl, identity.Issuer);
        Assert.Equal(issuedAt.AddHours(1).ToUnixTimeSeconds(), identity.ExpiresAt.ToUnixTimeSeconds());
        Assert.Equal(TimeSpan.Zero, identity.ExpiresAt.Offset);
    }

    [Fact]
    public async Task Service_principal_token_maps_application()
    {
        var token = _context.Issuer.MintToken(new TokenRequest { Subject = "sp-oid", Kind = WorkloadKind.ServicePrincipal, ApplicationId = "deploy-app", TenantId = "t" });

        var identity = await _context.AssertValidAsync(token);

        Assert.Equal(WorkloadKind.ServicePrincipal, identity.Kind);
        Assert.Equal("sp-oid", identity.Subject);
        Assert.Equal("deploy-app", identity.ApplicationId);
        Assert.Equal("deploy-app", identity.DisplayName);
        Assert.Equal("t", identity.TenantId);
        Assert.Null(identity.ManagedIdentityResourceId);
        Assert.Empty(identity.Roles);
    }

    [Fact]
    public async Task Service_principal_display_name_prefers_app_displayname()
    {
        var token = _context.Issuer.MintToken(new TokenRequest
        {
            Subject = "sp-oid",
            Kind = WorkloadKind.ServicePrincipal,
            ApplicationId = "deploy-app",
            ExtraClaims = new Dictionary<string, object> { ["app_displayname"] = "Nightly deploy" },
        });

        var identity = await _context.AssertValidAsync(token);

        Assert.Equal("Nightly deploy", identity.DisplayName);
    }

    [Fact]
    public async Task GitHub_shaped_token_maps_repository_workflow_run_and_commit()
    {
        var token = _context.Issuer.MintToken(new TokenRequest
        {
            Subject = "repo:octo-org/orders:ref:refs/heads/main",
            Repository = "octo-org/orders",
            Workflow = "deploy",
            RunId = "4242",
            Sha = "0123456789abcdef0123456789abcdef01234567",
        });

        var identity = await _context.AssertValidAsync(token);

        Assert.Equal(WorkloadKind.FederatedWorkload, identity.Kind);
        Assert.Equal("repo:octo-org/orders:ref:refs/heads/main", identity.Subject);
        Assert.Equal("octo-org/orders", identity.Repository);
        Assert.Equal("deploy", identity.Workflow);
        Assert.Equal("4242", identity.RunId);
        Assert.Equal("0123456789abcdef0123456789abcdef01234567", identity.Sha);
        Assert.Equal("octo-org/orders/deploy#4242", identity.DisplayName);
    }

    [Fact]
    public async Task Numeric_run_id_is_read_as_text()
    {
        var token = _context.Issuer.MintToken(new TokenRequest
        {
            Subject = "job",
            ExtraClaims = new Dictionary<string, object> { ["run_id"] = 987654321L },
        });

        var identity = await _context.AssertValidAsync(token);

        Assert.Equal("987654321", identity.RunId);
    }

    [Fact]
    public async Task User_token_maps_username()
    {
        var token = _context.Issuer.MintToken(new TokenRequest { Subject = "alice@example.com", Kind = WorkloadKind.User, Roles = ["NhiAudit.Approver"] });

        var identity = await _context.AssertValidAsync(token);

        Assert.Equal(WorkloadKind.User, identity.Kind);
        Assert.Equal("alice@example.com", identity.DisplayName);
        Assert.Contains("NhiAudit.Approver", identity.Roles);
    }

    [Fact]
    public async Task Token_without_a_known_shape_is_unknown_with_subject_as_name()
    {
        var token = _context.Issuer.MintToken(new TokenRequest { Subject = "mystery", Kind = WorkloadKind.Unknown });

        var identity = await _context.AssertValidAsync(token);

        Assert.Equal(WorkloadKind.Unknown, identity.Kind);
        Assert.Equal("mystery", identity.DisplayName);
        Assert.Equal("mystery", identity.Subject);
    }

    [Theory]
    [InlineData(WorkloadKind.ManagedIdentity)]
    [InlineData(WorkloadKind.ServicePrincipal)]
    [InlineData(WorkloadKind.FederatedWorkload)]
    [InlineData(WorkloadKind.User)]
    [InlineData(WorkloadKind.Unknown)]
    public async Task Every_kind_round_trips(WorkloadKind kind)
    {
        var token = _context.Issuer.MintToken(new TokenRequest { Subject = "s-" + kind, Kind = kind });

        var identity = await _context.AssertValidAsync(token);

        Assert.Equal(kind, identity.Kind);
        Assert.Equal("s-" + kind, identity.Subject);
    }

    [Fact]
    public async Task Single_string_roles_claim_becomes_one_role()
    {
        var token = _context.Issuer.MintToken(new TokenRequest
        {
            Subject = "u",
            Kind = WorkloadKind.User,
            ExtraClaims = new Dictionary<string, object> { ["roles"] = "NhiAudit.Approver" },
        });

        var identity = await _context.AssertValidAsync(token);

        Assert.Equal(["NhiAudit.Approver"], identity.Roles);
    }

    [Fact]
    public async Task Oid_wins_over_sub_and_azp_fills_application()
    {
        var token = _context.Issuer.MintToken(new TokenRequest
        {
            Subject = "the-sub",
            Kind = WorkloadKind.Unknown,
            ExtraClaims = new Dictionary<string, object> { ["oid"] = "the-oid", ["azp"] = "client-app", ["upn"] = "bob@example.com" },
        });

        var identity = await _context.AssertValidAsync(token);

        Assert.Equal("the-oid", identity.Subject);
        Assert.Equal("client-app", identity.ApplicationId);
        Assert.Equal(WorkloadKind.User, identity.Kind);
        Assert.Equal("bob@example.com", identity.DisplayName);
    }

    [Fact]
    public async Task Token_with_surrounding_whitespace_is_accepted()
    {
        var token = _context.Issuer.MintToken(new TokenRequest { Subject = "job" });

        await _context.AssertValidAsync(" " + token + "\r\n");
    }

    [Fact]
    public async Task Expiry_just_inside_the_clock_skew_is_accepted()
    {
        var token = _context.Issuer.MintToken(new TokenRequest
        {
            Subject = "job",
            IssuedAt = DateTimeOffset.UtcNow.AddMinutes(-60).AddSeconds(-10),
            Lifetime = TimeSpan.FromMinutes(60),
        });

        await _context.AssertValidAsync(token);
    }
}
