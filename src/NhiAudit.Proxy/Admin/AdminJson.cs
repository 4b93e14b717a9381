using System.Text.Json;
using System.Text.Json.Serialization;

namespace NhiAudit.Proxy.Admin;

/// <summary>The admin API's wire shapes, shared by the server and the <c>approvals</c> command.</summary>
internal static class AdminJson
{
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
    };

    public static TicketDto ToDto(ApprovalTicket ticket) => new(
        ticket.Id,
        ticket.State,
        ticket.Rule,
        ticket.SessionId,
        new RequestDto(ticket.Request.Protocol, ticket.Request.Target, ticket.Request.Action, ticket.Request.Text, ticket.Request.Resources),
        new IdentityDto(ticket.Request.Identity.Kind, ticket.Request.Identity.Subject, ticket.Request.Identity.DisplayName),
        ticket.RequestedAt,
        ticket.ExpiresAt,
        ticket.DecidedBy is { } by ? new ApproverDto(by.Subject, by.DisplayName) : null,
        ticket.DecidedAt,
        ticket.DecisionReason,
        ticket.GrantUntil,
        ticket.GrantedByTicket);
}

/// <summary>A ticket as the admin API shows it.</summary>
internal sealed record TicketDto(
    string Id,
    ApprovalState State,
    string Rule,
    string SessionId,
    RequestDto Request,
    IdentityDto Identity,
    DateTimeOffset RequestedAt,
    DateTimeOffset ExpiresAt,
    ApproverDto? DecidedBy,
    DateTimeOffset? DecidedAt,
    string? Reason,
    DateTimeOffset? GrantUntil,
    string? GrantedByTicket);

/// <summary>The held request.</summary>
internal sealed record RequestDto(string Protocol, string Target, string Action, string Text, IReadOnlyList<string> Resources);

/// <summary>Who asked.</summary>
internal sealed record IdentityDto(WorkloadKind Kind, string Subject, string Name);

/// <summary>Who decided.</summary>
internal sealed record ApproverDto(string Subject, string Name);

/// <summary>The optional body of approve and deny.</summary>
internal sealed record DecisionBody(string? Reason, int? GrantForMinutes);

/// <summary>An error answer.</summary>
internal sealed record ErrorDto(string Error);
