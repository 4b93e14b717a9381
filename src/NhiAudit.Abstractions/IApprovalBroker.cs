namespace NhiAudit;

/// <summary>Where a held request stands.</summary>
public enum ApprovalState
{
    /// <summary>Waiting for an approver.</summary>
    Pending,

    /// <summary>Granted: the request runs.</summary>
    Approved,

    /// <summary>Refused by an approver.</summary>
    Denied,

    /// <summary>Nobody decided in time: refused.</summary>
    TimedOut,
}

/// <summary>A request held for a just-in-time approval.</summary>
public sealed record ApprovalTicket
{
    /// <summary>The ticket id the client is told and the approver names.</summary>
    public required string Id { get; init; }

    /// <summary>What is asked.</summary>
    public required AccessRequest Request { get; init; }

    /// <summary>The rule that asked for the approval.</summary>
    public required string Rule { get; init; }

    /// <summary>The session that waits, for the approver's context.</summary>
    public required string SessionId { get; init; }

    /// <summary>When the request was held.</summary>
    public required DateTimeOffset RequestedAt { get; init; }

    /// <summary>When the hold times out.</summary>
    public required DateTimeOffset ExpiresAt { get; init; }

    /// <summary>The state.</summary>
    public ApprovalState State { get; init; } = ApprovalState.Pending;

    /// <summary>Who decided (an approver's validated identity).</summary>
    public WorkloadIdentity? DecidedBy { get; init; }

    /// <summary>When it was decided.</summary>
    public DateTimeOffset? DecidedAt { get; init; }

    /// <summary>Why, in the approver's words.</summary>
    public string? DecisionReason { get; init; }

    /// <summary>
    /// When set, the grant also covers later requests of the same identity under the same rule until this time;
    /// when null the grant covers this request once.
    /// </summary>
    public DateTimeOffset? GrantUntil { get; init; }

    /// <summary>For a request approved by a standing grant: the ticket whose approval covers it.</summary>
    public string? GrantedByTicket { get; init; }
}

/// <summary>
/// Holds requests for a just-in-time approval and releases them when an approver decides or the hold times out.
/// Shared by every protocol.
/// </summary>
public interface IApprovalBroker
{
    /// <summary>
    /// Registers a held request and returns its ticket at once: <see cref="ApprovalState.Pending"/>, or already
    /// <see cref="ApprovalState.Approved"/> when a standing grant for this identity and rule covers it.
    /// </summary>
    ApprovalTicket Submit(AccessRequest request, string rule, string sessionId);

    /// <summary>Completes when the ticket is decided or times out; returns the final ticket.</summary>
    Task<ApprovalTicket> WaitAsync(string ticketId, CancellationToken cancellationToken = default);

    /// <summary>The tickets still waiting.</summary>
    IReadOnlyList<ApprovalTicket> Pending { get; }

    /// <summary>Decides a pending ticket.</summary>
    /// <param name="ticketId">The ticket.</param>
    /// <param name="approve">True to grant, false to refuse.</param>
    /// <param name="approver">The approver's validated identity; never the workload that asked.</param>
    /// <param name="reason">Why.</param>
    /// <param name="grantFor">With <paramref name="approve"/>: also grant later requests of this identity under this rule for this long.</param>
    /// <exception cref="KeyNotFoundException">No pending ticket has that id.</exception>
    /// <exception cref="UnauthorizedAccessException">The approver is the workload that asked.</exception>
    ApprovalTicket Decide(string ticketId, bool approve, WorkloadIdentity approver, string? reason, TimeSpan? grantFor = null);
}
