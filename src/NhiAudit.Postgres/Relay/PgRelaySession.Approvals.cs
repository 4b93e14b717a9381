using System.IO.Pipelines;
using Microsoft.Extensions.Logging;
using NhiAudit.Approvals;
using NhiAudit.Postgres.Protocol;
using NhiAudit.Postgres.Sql;

namespace NhiAudit.Postgres.Relay;

/// <summary>
/// Just-in-time approval: a statement whose rule says RequireApproval is held on the live connection. The client is
/// told (a NoticeResponse naming the ticket) and waits; the message is handled again once an approver decides, and
/// then runs, or fails like a denied statement.
/// </summary>
internal sealed partial class PgRelaySession
{
    private enum ApprovalResolution
    {
        Approved,
        Hold,
        Refused,
    }

    private readonly SemaphoreSlim _clientWriteLock = new(1, 1);
    private PipeWriter? _clientOut;
    private ApprovalTicket? _heldTicket;
    private ApprovalTicket? _decidedTicket;

    /// <summary>
    /// Decides what an approval-requiring statement does now: runs under a decided or standing grant, is refused after a
    /// denial or timeout, or is held while a new ticket waits.
    /// </summary>
    private ApprovalResolution ResolveApproval(string text, SqlStatementInfo info, PolicyDecision decision, out string? approvalId)
    {
        if (_decidedTicket is { } decided)
        {
            approvalId = decided.Id;
            return decided.State == ApprovalState.Approved ? ApprovalResolution.Approved : ApprovalResolution.Refused;
        }

        var ticket = _services.Approvals.Submit(DescribeRequest(text, info), decision.Rule, _sessionId);
        approvalId = ticket.Id;
        if (ticket.State == ApprovalState.Approved)
        {
            // A standing grant for this identity and rule covers it: the record points to the approval that granted it,
            // whose pg.approval.decided record names the approver.
            approvalId = ticket.GrantedByTicket ?? ticket.Id;
            return ApprovalResolution.Approved;
        }

        _heldTicket = ticket;
        return ApprovalResolution.Hold;
    }

    private string ApprovalRefusal() =>
        ApprovalDecisionRules.Refusal(_decidedTicket!, "statement") ?? $"approval {_decidedTicket!.Id} was not granted";

    /// <summary>Records the hold, tells the client, waits for the decision and records it.</summary>
    private async Task AwaitApprovalAsync(CancellationToken ct)
    {
        var ticket = _heldTicket!;
        await AuditAsync(_requestRecords, "pg.approval.requested", AuditAppendMode.Request, w =>
        {
            w.WriteString("approval", ticket.Id);
            w.WriteString("rule", ticket.Rule);
            w.WriteString("kind", ticket.Request.Action);
            w.WriteString("text", ticket.Request.Text);
            w.WriteString("expires", ticket.ExpiresAt);
        }).ConfigureAwait(false);

        await SendNoticeAsync($"nhiaudit: statement held for approval {ticket.Id} (rule '{ticket.Rule}'); approve with: nhiaudit approvals approve {ticket.Id} — waiting until {ticket.ExpiresAt:u}", ct).ConfigureAwait(false);
        var final = await _services.Approvals.WaitAsync(ticket.Id, ct).ConfigureAwait(false);
        await AuditAsync(_requestRecords, "pg.approval.decided", AuditAppendMode.Request, w =>
        {
            w.WriteString("approval", final.Id);
            w.WriteString("state", final.State.ToString());
            if (final.DecidedBy is { } approver)
            {
                w.WriteStartObject("decidedBy");
                w.WriteString("subject", approver.Subject);
                w.WriteString("name", approver.DisplayName);
                w.WriteString("issuer", approver.Issuer);
                w.WriteEndObject();
            }

            if (final.DecidedAt is { } at)
            {
                w.WriteString("decidedAt", at);
            }

            if (final.DecisionReason is { } why)
            {
                w.WriteString("why", why);
            }

            if (final.GrantUntil is { } until)
            {
                w.WriteString("grantUntil", until);
            }
        }).ConfigureAwait(false);
        _heldTicket = null;
        _decidedTicket = final;
    }

    /// <summary>
    /// Writes a NoticeResponse between two whole server messages: notices may arrive at any time in the protocol, but
    /// never inside another message, so it waits while a large row is streaming through.
    /// </summary>
    private async Task SendNoticeAsync(string message, CancellationToken ct)
    {
        for (var attempt = 0; attempt < 100; attempt++)
        {
            await _clientWriteLock.WaitAsync(ct).ConfigureAwait(false);
            try
            {
                if (_serverPassthrough == 0 && _clientOut is { } clientOut)
                {
                    PgBackendWriter.WriteNoticeResponse(clientOut, "NOTICE", "00000", message);
                    await clientOut.FlushAsync(ct).ConfigureAwait(false);
                    return;
                }
            }
            finally
            {
                _clientWriteLock.Release();
            }

            await Task.Delay(20, ct).ConfigureAwait(false);
        }

        _services.Logger.LogWarning("Session {Session}: could not tell the client about approval {Ticket}", _sessionId, _heldTicket?.Id);
    }
}
