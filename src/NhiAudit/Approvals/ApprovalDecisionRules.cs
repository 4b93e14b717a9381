using System.Security.Cryptography;

namespace NhiAudit.Approvals;

/// <summary>
/// The rules every approval broker applies the same way, whatever holds its state: ticket ids, who may decide, and
/// how long a standing grant lasts.
/// </summary>
public static class ApprovalDecisionRules
{
    private const string IdAlphabet = "abcdefghijkmnpqrstuvwxyz23456789";
    private const int IdLength = 10;

    /// <summary>
    /// A new random ticket id: 10 characters of an alphabet without look-alikes (no 0/o, 1/l), easy to read out and
    /// type into <c>nhiaudit approvals approve ID</c>; 50 bits, so callers only need to check for a clash, not avoid one.
    /// </summary>
    public static string NewTicketId()
    {
        Span<byte> random = stackalloc byte[IdLength];
        Span<char> id = stackalloc char[IdLength];
        RandomNumberGenerator.Fill(random);
        for (var i = 0; i < IdLength; i++)
        {
            id[i] = IdAlphabet[random[i] & 31];
        }

        return new string(id);
    }

    /// <summary>True when <paramref name="approver"/> is the workload that asked (same subject and issuer).</summary>
    /// <param name="requester">Who asked.</param>
    /// <param name="approver">Who decides.</param>
    public static bool IsOwnRequest(WorkloadIdentity requester, WorkloadIdentity approver)
    {
        ArgumentNullException.ThrowIfNull(requester);
        ArgumentNullException.ThrowIfNull(approver);
        return string.Equals(requester.Subject, approver.Subject, StringComparison.Ordinal) && string.Equals(requester.Issuer, approver.Issuer, StringComparison.Ordinal);
    }

    /// <summary>The refusal of a workload deciding its own request.</summary>
    public static UnauthorizedAccessException OwnRequestRefusal() => new("a workload never approves its own request");

    /// <summary>The refusal of a decision on a ticket that does not exist or is no longer pending.</summary>
    /// <param name="ticketId">The ticket.</param>
    public static KeyNotFoundException NotPending(string ticketId) => new($"No pending approval ticket '{ticketId}'.");

    /// <summary>Throws when a requested grant period is negative.</summary>
    /// <param name="grantFor">The requested period.</param>
    /// <exception cref="ArgumentOutOfRangeException">The period is negative.</exception>
    public static void ThrowIfInvalidGrantPeriod(TimeSpan? grantFor)
    {
        if (grantFor is { } requested && requested < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(grantFor), grantFor, "A grant period must not be negative.");
        }
    }

    /// <summary>
    /// When an approval's standing grant ends: null for a denial, for no (or a zero) period, or when grants are off
    /// (<see cref="ApprovalOptions.MaxGrant"/> zero); otherwise <paramref name="now"/> plus the period, cut to the cap.
    /// </summary>
    /// <param name="approve">Whether the decision grants.</param>
    /// <param name="grantFor">The period the approver asked for.</param>
    /// <param name="now">The time of the decision.</param>
    /// <param name="maxGrant">The longest grant allowed.</param>
    public static DateTimeOffset? GrantUntil(bool approve, TimeSpan? grantFor, DateTimeOffset now, TimeSpan maxGrant) =>
        approve && grantFor is { } period && period > TimeSpan.Zero && maxGrant > TimeSpan.Zero
            ? now + (period < maxGrant ? period : maxGrant)
            : null;

    /// <summary>
    /// Why a decided ticket does not let its request through, in the words every protocol shows its client; null when
    /// it was approved.
    /// </summary>
    /// <param name="ticket">The ticket as decided (or timed out).</param>
    /// <param name="what">What was held, for the timeout message: <c>statement</c>, <c>request</c>, <c>command</c>.</param>
    public static string? Refusal(ApprovalTicket ticket, string what)
    {
        ArgumentNullException.ThrowIfNull(ticket);
        return ticket.State switch
        {
            ApprovalState.Approved => null,
            ApprovalState.Denied => $"approval {ticket.Id} was denied by {ticket.DecidedBy?.DisplayName ?? "an approver"}{(ticket.DecisionReason is { Length: > 0 } why ? ": " + why : "")}",
            ApprovalState.TimedOut => $"approval {ticket.Id} timed out at {ticket.ExpiresAt:u}: nobody approved the {what}",
            _ => $"approval {ticket.Id} was not granted",
        };
    }
}
