using System.CommandLine;
using Microsoft.Extensions.Configuration;
using NhiAudit.Identity;

namespace NhiAudit.Proxy.Commands;

/// <summary><c>nhiaudit token</c>: mints a development workload token from the local issuer, so demos and tests need no cloud.</summary>
internal static class TokenCommand
{
    public static Command Create()
    {
        var subject = new Option<string>("--subject") { Description = "The token subject (sub/oid).", DefaultValueFactory = _ => "ci-job" };
        var kind = new Option<WorkloadKind>("--kind") { Description = "FederatedWorkload (GitHub Actions shape), ManagedIdentity, ServicePrincipal or User.", DefaultValueFactory = _ => WorkloadKind.FederatedWorkload };
        var audience = new Option<string>("--audience") { Description = "The audience (aud).", DefaultValueFactory = _ => "nhiaudit" };
        var lifetime = new Option<TimeSpan>("--lifetime") { Description = "How long the token is valid, e.g. 01:00:00.", DefaultValueFactory = _ => TimeSpan.FromHours(1) };
        var repository = new Option<string?>("--repository") { Description = "GitHub repository claim, e.g. contoso/orders." };
        var workflow = new Option<string?>("--workflow") { Description = "GitHub workflow claim." };
        var runId = new Option<string?>("--run-id") { Description = "GitHub run_id claim." };
        var sha = new Option<string?>("--sha") { Description = "GitHub sha claim." };
        var resourceId = new Option<string?>("--mi-resource-id") { Description = "xms_mirid of a managed identity." };
        var appId = new Option<string?>("--app-id") { Description = "appid of a service principal." };
        var roles = new Option<string[]>("--role") { Description = "A role claim (repeatable), e.g. NhiAudit.Approver.", AllowMultipleArgumentsPerToken = true };
        var config = new Option<FileInfo?>("--config", "-c") { Description = "The gateway configuration whose DevelopmentIssuer signs the token; the embedded default when omitted." };
        var command = new Command("token", "Mint a development workload token signed by the local issuer.")
        {
            subject, kind, audience, lifetime, repository, workflow, runId, sha, resourceId, appId, roles, config,
        };
        command.SetAction(parse =>
        {
            var section = GatewayConfiguration.Build(parse.GetValue(config)).GetSection($"{GatewayConfiguration.Section}:DevelopmentIssuer");
            var directory = section["Directory"];
            if (string.IsNullOrEmpty(directory))
            {
                Console.Error.WriteLine("nhiaudit token: the configuration has no NhiAudit:DevelopmentIssuer:Directory");
                return 2;
            }

            using var issuer = DevelopmentIssuer.LoadOrCreate(directory, section["Issuer"] ?? "https://issuer.local");
            var workloadKind = parse.GetValue(kind);
            var token = issuer.MintToken(new TokenRequest
            {
                Subject = parse.GetValue(subject)!,
                Audience = parse.GetValue(audience)!,
                Lifetime = parse.GetValue(lifetime),
                Kind = workloadKind,
                Repository = parse.GetValue(repository) ?? (workloadKind == WorkloadKind.FederatedWorkload ? "contoso/orders" : null),
                Workflow = parse.GetValue(workflow) ?? (workloadKind == WorkloadKind.FederatedWorkload ? "deploy.yml" : null),
                RunId = parse.GetValue(runId) ?? (workloadKind == WorkloadKind.FederatedWorkload ? "1" : null),
                Sha = parse.GetValue(sha),
                ManagedIdentityResourceId = parse.GetValue(resourceId),
                ApplicationId = parse.GetValue(appId),
                Roles = parse.GetValue(roles) ?? [],
            });
            Console.WriteLine(token);
            return 0;
        });
        return command;
    }
}
