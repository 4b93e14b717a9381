using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Logging;
using Microsoft.Net.Http.Headers;

namespace NhiAudit.Proxy.Admin;

/// <summary>
/// The admin API: <c>GET /healthz</c> (the process answers), <c>GET /readyz</c> (503 while the audit log cannot be
/// written, so a load balancer sends workloads to another replica), <c>GET /checkpoint</c> (the newest signed
/// checkpoint, for a witness to fetch), <c>GET /sinks</c> (each secondary sink's progress) — these four without
/// auth, as they carry no secrets — and <c>GET /approvals</c>, <c>POST /approvals/{id}/approve</c> and
/// <c>POST /approvals/{id}/deny</c> (optional body <c>{"reason": "...", "grantForMinutes": 30}</c>). Approvals need
/// <c>Authorization: Bearer TOKEN</c>, a workload token whose roles hold the approver role.
/// </summary>
internal static class AdminEndpoints
{
    /// <summary>The longest grant the API accepts in a request body (the broker caps it further by MaxGrant).</summary>
    private const int MaxGrantMinutes = 7 * 24 * 60;

    public static void Map(IEndpointRouteBuilder app, IApprovalBroker broker, IWorkloadAuthenticator authenticator, string approverRole, ILogger logger, AdminEvidence evidence)
    {
        app.MapGet("/healthz", () => Results.Text("ok"));
        app.MapGet("/readyz", () => evidence.Log is { CanWrite: false }
            ? Results.Text("the audit log cannot be written; requests are refused", statusCode: StatusCodes.Status503ServiceUnavailable)
            : Results.Text("ok"));
        app.MapGet("/checkpoint", () => evidence.Log?.LastCheckpoint is { } checkpoint
            ? Results.Text(checkpoint.ToJson(), "application/json")
            : Results.NotFound());
        app.MapGet("/sinks", () => Results.Json(
            (evidence.Sinks?.Pumps ?? []).Select(p => new { name = p.Sink.Name, deliveredSequence = p.DeliveredSequence, healthy = p.IsHealthy, lastCheckpoint = p.LastPublishedCheckpoint?.Sequence }).ToList(),
            AdminJson.Options));

        app.MapGet("/approvals", async (HttpContext context) =>
        {
            var (_, refusal) = await AuthorizeAsync(context, authenticator, approverRole).ConfigureAwait(false);
            return refusal ?? Results.Json(broker.Pending.Select(AdminJson.ToDto).ToList(), AdminJson.Options);
        });

        app.MapPost("/approvals/{id}/approve", (HttpContext context, string id) => DecideAsync(context, id, approve: true, broker, authenticator, approverRole, logger));
        app.MapPost("/approvals/{id}/deny", (HttpContext context, string id) => DecideAsync(context, id, approve: false, broker, authenticator, approverRole, logger));
    }

    private static async Task<IResult> DecideAsync(HttpContext context, string id, bool approve, IApprovalBroker broker, IWorkloadAuthenticator authenticator, string approverRole, ILogger logger)
    {
        var (approver, refusal) = await AuthorizeAsync(context, authenticator, approverRole).ConfigureAwait(false);
        if (refusal is not null)
        {
            return refusal;
        }

        DecisionBody? body = null;
        if (context.Request.ContentLength is not 0 && (context.Request.ContentLength is not null || context.Request.Headers.TransferEncoding.Count > 0))
        {
            try
            {
                body = await JsonSerializer.DeserializeAsync<DecisionBody>(context.Request.Body, AdminJson.Options, context.RequestAborted).ConfigureAwait(false);
            }
            catch (JsonException ex)
            {
                return Error(StatusCodes.Status400BadRequest, $"the body is not a decision ({{\"reason\": \"...\", \"grantForMinutes\": 30}}): {ex.Message}");
            }
        }

        if (body?.GrantForMinutes is < 0 or > MaxGrantMinutes)
        {
            return Error(StatusCodes.Status400BadRequest, $"grantForMinutes must be between 0 and {MaxGrantMinutes}");
        }

        if (body?.Reason is { Length: > 1000 })
        {
            return Error(StatusCodes.Status400BadRequest, "reason must be at most 1000 characters");
        }

        try
        {
            var grantFor = approve && body?.GrantForMinutes is > 0 ? TimeSpan.FromMinutes(body.GrantForMinutes.Value) : (TimeSpan?)null;
            var ticket = broker.Decide(id, approve, approver!, body?.Reason, grantFor);
            return Results.Json(AdminJson.ToDto(ticket), AdminJson.Options);
        }
        catch (KeyNotFoundException)
        {
            return Error(StatusCodes.Status404NotFound, $"no pending approval '{id}'");
        }
        catch (UnauthorizedAccessException ex)
        {
            logger.LogWarning("{Approver} tried to decide their own request {Ticket}", approver!.DisplayName, id);
            return Error(StatusCodes.Status403Forbidden, ex.Message);
        }
    }

    private static async Task<(WorkloadIdentity? Identity, IResult? Refusal)> AuthorizeAsync(HttpContext context, IWorkloadAuthenticator authenticator, string approverRole)
    {
        var header = context.Request.Headers.Authorization.ToString();
        const string Scheme = "Bearer ";
        if (!header.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase) || header.Length == Scheme.Length)
        {
            return (null, Unauthorized(context, "an approver's bearer token is required (Authorization: Bearer TOKEN)"));
        }

        var result = await authenticator.AuthenticateAsync(header[Scheme.Length..].Trim(), context.RequestAborted).ConfigureAwait(false);
        if (!result.Succeeded)
        {
            return (null, Unauthorized(context, $"the token was refused: {result.Failure}"));
        }

        if (!result.Identity!.Roles.Contains(approverRole, StringComparer.Ordinal))
        {
            return (null, Error(StatusCodes.Status403Forbidden, $"'{result.Identity.DisplayName}' does not hold the approver role '{approverRole}'"));
        }

        return (result.Identity, null);
    }

    private static IResult Unauthorized(HttpContext context, string message)
    {
        context.Response.Headers[HeaderNames.WWWAuthenticate] = "Bearer";
        return Error(StatusCodes.Status401Unauthorized, message);
    }

    private static IResult Error(int status, string message) => Results.Json(new ErrorDto(message), AdminJson.Options, statusCode: status);
}
