using Microsoft.IdentityModel.JsonWebTokens;

namespace NhiAudit.Identity;

/// <summary>Turns a validated token's claims into a <see cref="WorkloadIdentity"/>.</summary>
internal static class TokenClaimsMapper
{
    /// <summary>Maps the claims; returns null when the token names no subject (<c>oid</c> or <c>sub</c>).</summary>
    public static WorkloadIdentity? Map(JsonWebToken token, string issuer)
    {
        var subject = Get(token, "oid") ?? Get(token, "sub");
        if (subject is null)
        {
            return null;
        }

        var managedIdentity = Get(token, "xms_mirid");
        var idtyp = Get(token, "idtyp");
        var applicationId = Get(token, "appid") ?? Get(token, "azp");
        var repository = Get(token, "repository");
        var workflow = Get(token, "workflow");
        var runId = Get(token, "run_id");
        var userName = Get(token, "preferred_username") ?? Get(token, "upn");

        // Order matters: a managed identity token also says idtyp=app, and only the most specific shape may win.
        WorkloadKind kind;
        string displayName;
        if (managedIdentity is not null)
        {
            kind = WorkloadKind.ManagedIdentity;
            displayName = LastSegment(managedIdentity) ?? subject;
        }
        else if (string.Equals(idtyp, "app", StringComparison.OrdinalIgnoreCase))
        {
            kind = WorkloadKind.ServicePrincipal;
            displayName = Get(token, "app_displayname") ?? applicationId ?? subject;
        }
        else if ((repository is not null && workflow is not null) || runId is not null)
        {
            kind = WorkloadKind.FederatedWorkload;
            displayName = CiName(repository, workflow, runId) ?? subject;
        }
        else if (string.Equals(idtyp, "user", StringComparison.OrdinalIgnoreCase) || userName is not null)
        {
            kind = WorkloadKind.User;
            displayName = userName ?? subject;
        }
        else
        {
            kind = WorkloadKind.Unknown;
            displayName = subject;
        }

        return new WorkloadIdentity
        {
            Kind = kind,
            Subject = subject,
            Issuer = issuer,
            DisplayName = displayName,
            TenantId = Get(token, "tid"),
            ApplicationId = applicationId,
            ManagedIdentityResourceId = managedIdentity,
            Repository = repository,
            Workflow = workflow,
            RunId = runId,
            Sha = Get(token, "sha"),
            Roles = Roles(token),
            ExpiresAt = new DateTimeOffset(DateTime.SpecifyKind(token.ValidTo, DateTimeKind.Utc)),
        };
    }

    private static string? Get(JsonWebToken token, string name)
    {
        // TryGetClaim renders numbers and booleans as text too (GitHub sends run_id as a string, others as a number).
        if (token.TryGetClaim(name, out var claim) && !string.IsNullOrWhiteSpace(claim.Value))
        {
            return claim.Value;
        }

        return null;
    }

    private static string[] Roles(JsonWebToken token)
    {
        // "roles" is an array in Entra tokens but a single string from some issuers; the claims view flattens both.
        var roles = new List<string>();
        foreach (var claim in token.Claims)
        {
            if (claim.Type == "roles" && !string.IsNullOrWhiteSpace(claim.Value))
            {
                roles.Add(claim.Value);
            }
        }

        return [.. roles];
    }

    private static string? LastSegment(string resourceId)
    {
        var trimmed = resourceId.TrimEnd('/');
        var slash = trimmed.LastIndexOf('/');
        var last = slash >= 0 ? trimmed[(slash + 1)..] : trimmed;
        return last.Length == 0 ? null : last;
    }

    private static string? CiName(string? repository, string? workflow, string? runId)
    {
        var name = repository is null ? workflow : workflow is null ? repository : $"{repository}/{workflow}";
        return runId is null ? name : $"{name}#{runId}";
    }
}
