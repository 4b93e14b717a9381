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

    /// <summary>While a statement is held, more than this many bytes pipelined behind it are left in the socket (backpressure).</summary>
    private const int HeldBacklogLimit = 1024 * 1024;

    // Set when the client's CancelRequest ended the hold: the statement then fails as a cancelled one (57014).
    private volatile bool _holdCancelled;
    private CancellationTokenSource? _holdEnd;

    private string ApprovalRefusal() =>
        _holdCancelled
            ? $"canceling statement due to user request (it was held for approval {_decidedTicket!.Id})"
            : ApprovalDecisionRules.Refusal(_decidedTicket!, "statement") ?? $"approval {_decidedTicket!.Id} was not granted";

    private string ApprovalRefusalState() => _holdCancelled ? "57014" : PolicyRefusalState;

    /// <summary>
    /// The client's CancelRequest while a statement is held: as PostgreSQL cancels a running statement, the hold ends
    /// and the statement fails with 57014. Called from the connection that carried the cancel.
    /// </summary>
    internal bool CancelHeldStatement()
    {
        var holdEnd = Volatile.Read(ref _holdEnd);
        if (holdEnd is null)
        {
            return false;
        }

        _holdCancelled = true;
        try
        {
            holdEnd.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // The hold ended meanwhile.
        }

        return true;
    }

    /// <summary>
    /// Records the hold, tells the client, waits for the decision and records it. The wait ends on a cause: the
    /// decision (or the broker's timeout), the client's cancel, the client going away, or the session ending.
    /// Returns false when the client went away while its statement was held.
    /// </summary>
    private async Task<bool> AwaitApprovalAsync(PipeReader clientIn, CancellationToken ct)
    {
        var ticket = _heldTicket!;
        _holdCancelled = false;
        await AuditAsync(_requestRecords, "pg.approval.requested", AuditAppendMode.Request, w =>
        {
            w.WriteString("approval", ticket.Id);
            w.WriteString("rule", ticket.Rule);
            w.WriteString("kind", ticket.Request.Action);
            w.WriteString("text", ticket.Request.Text);
            w.WriteString("expires", ticket.ExpiresAt);
        }).ConfigureAwait(false);

        await SendNoticeAsync($"nhiaudit: statement held for approval {ticket.Id} (rule '{ticket.Rule}'); approve with: nhiaudit approvals approve {ticket.Id} — waiting until {ticket.ExpiresAt:u}", ct).ConfigureAwait(false);
        ApprovalTicket final;
        using (var holdEnd = CancellationTokenSource.CreateLinkedTokenSource(ct))
        {
            Volatile.Write(ref _holdEnd, holdEnd);
            var decision = _services.Approvals.WaitAsync(ticket.Id, holdEnd.Token);
            bool clientStayed;
            try
            {
                clientStayed = await WatchClientWhileHeldAsync(clientIn, decision).ConfigureAwait(false);
            }
            finally
            {
                Volatile.Write(ref _holdEnd, null);
            }

            if (!clientStayed)
            {
                await holdEnd.CancelAsync().ConfigureAwait(false);
                await AuditAsync(_requestRecords, "pg.approval.abandoned", AuditAppendMode.Request, w =>
                {
                    w.WriteString("approval", ticket.Id);
                    w.WriteString("reason", "the client closed the connection while its statement was held");
                }).ConfigureAwait(false);
                _heldTicket = null;
                return false;
            }

            try
            {
                final = await decision.ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (_holdCancelled && !ct.IsCancellationRequested)
            {
                await AuditAsync(_requestRecords, "pg.approval.cancelled", AuditAppendMode.Request, w =>
                {
                    w.WriteString("approval", ticket.Id);
                    w.WriteString("reason", "the client cancelled the statement while it was held");
                }).ConfigureAwait(false);
                _heldTicket = null;
                _decidedTicket = ticket;
                return true;
            }
        }

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
        return true;
    }

    /// <summary>
    /// Waits for <paramref name="decision"/> while reading what the client sends meanwhile (it stays buffered, unconsumed,
    /// up to <see cref="HeldBacklogLimit"/>), so that a client that goes away is noticed at once rather than when the
    /// approver decides. Returns false when the client closed the connection.
    /// </summary>
    private static async Task<bool> WatchClientWhileHeldAsync(PipeReader clientIn, Task decision)
    {
        while (true)
        {
            var reading = clientIn.ReadAsync().AsTask();
            if (await Task.WhenAny(reading, decision).ConfigureAwait(false) != reading)
            {
                clientIn.CancelPendingRead();
                var pending = await reading.ConfigureAwait(false);
                clientIn.AdvanceTo(pending.Buffer.Start, pending.Buffer.End);
                return true;
            }

            var read = await reading.ConfigureAwait(false);
            clientIn.AdvanceTo(read.Buffer.Start, read.Buffer.End);
            if (read.IsCompleted)
            {
                return false;
            }

            if (read.Buffer.Length > HeldBacklogLimit)
            {
                // Stop reading: the client's socket fills and TCP holds it back until the decision.
                await Task.WhenAny(decision).ConfigureAwait(false);
                return true;
            }
        }
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
