using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace NhiAudit.Approvals;

/// <summary>
/// The approval broker of a single gateway process: held requests, their waiters and standing grants live in memory
/// (a restart refuses whatever was waiting, which fails closed). Thread-safe.
/// </summary>
/// <remarks>
/// A ticket waits at most <see cref="ApprovalOptions.Timeout"/>, then is <see cref="ApprovalState.TimedOut"/>. An
/// approval with a grant period lets later requests of the same identity (subject and issuer) under the same rule
/// through without asking again, until the grant ends. The last 1000 decided tickets stay available to
/// <see cref="Find"/>.
/// </remarks>
public sealed class InMemoryApprovalBroker : IApprovalBroker, IDisposable
{
    /// <summary>How many decided tickets <see cref="Find"/> still knows.</summary>
    public const int DecidedCapacity = 1000;

    private readonly object _gate = new();
    private readonly Dictionary<string, PendingEntry> _pending = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ApprovalTicket> _decided = new(StringComparer.Ordinal);
    private readonly Queue<string> _decidedOrder = new();
    private readonly Dictionary<GrantKey, StandingGrant> _grants = [];
    private readonly ApprovalOptions _options;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private readonly ApprovalWebhook _webhook;
    private bool _disposed;

    /// <summary>Creates the broker.</summary>
    /// <param name="options">The approval settings.</param>
    /// <param name="timeProvider">The clock and timers; the system clock when null.</param>
    /// <param name="logger">Where decisions and webhook failures are logged.</param>
    /// <param name="httpClient">The client for the webhook; one is created (and disposed with the broker) when null and a webhook is configured.</param>
    public InMemoryApprovalBroker(IOptions<ApprovalOptions> options, TimeProvider? timeProvider = null, ILogger? logger = null, HttpClient? httpClient = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value;
        var failures = ApprovalOptionsValidator.Collect(_options);
        if (failures.Count > 0)
        {
            throw new OptionsValidationException(Options.DefaultName, typeof(ApprovalOptions), failures);
        }

        _timeProvider = timeProvider ?? TimeProvider.System;
        _logger = logger ?? NullLogger.Instance;
        _webhook = new ApprovalWebhook(_options, _logger, httpClient);
    }

    /// <inheritdoc />
    public IReadOnlyList<ApprovalTicket> Pending
    {
        get
        {
            lock (_gate)
            {
                return _pending.Values.Select(e => e.Ticket).OrderBy(t => t.RequestedAt).ThenBy(t => t.Id, StringComparer.Ordinal).ToList();
            }
        }
    }

    /// <inheritdoc />
    public ApprovalTicket Submit(AccessRequest request, string rule, string sessionId)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(request.Identity);
        ArgumentException.ThrowIfNullOrEmpty(rule);
        ArgumentNullException.ThrowIfNull(sessionId);

        var now = _timeProvider.GetUtcNow();
        ApprovalTicket ticket;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var id = NewId();
            var key = new GrantKey(request.Identity.Subject, request.Identity.Issuer, rule);
            if (_grants.TryGetValue(key, out var grant))
            {
                if (grant.Until > now)
                {
                    ticket = new ApprovalTicket
                    {
                        Id = id,
                        Request = request,
                        Rule = rule,
                        SessionId = sessionId,
                        RequestedAt = now,
                        ExpiresAt = now,
                        State = ApprovalState.Approved,
                        DecidedBy = grant.DecidedBy,
                        DecidedAt = now,
                        DecisionReason = grant.Reason,
                        GrantUntil = grant.Until,
                        GrantedByTicket = grant.TicketId,
                    };
                    RememberDecided(ticket);
                    _logger.LogInformation("Approval {Ticket} for {Identity} under rule {Rule} granted by standing grant {Grant} (until {Until:O})", id, request.Identity.DisplayName, rule, grant.TicketId, grant.Until);
                    return ticket;
                }

                _grants.Remove(key);
            }

            ticket = new ApprovalTicket
            {
                Id = id,
                Request = request,
                Rule = rule,
                SessionId = sessionId,
                RequestedAt = now,
                ExpiresAt = now + _options.Timeout,
            };
            var entry = new PendingEntry(ticket);
            _pending.Add(id, entry);
            entry.Timer = _timeProvider.CreateTimer(static state => ((TimeoutState)state!).Fire(), new TimeoutState(this, id), _options.Timeout, Timeout.InfiniteTimeSpan);
        }

        _logger.LogInformation("Approval {Ticket} pending for {Identity} under rule {Rule}: {Action} on {Target} (expires {ExpiresAt:O})", ticket.Id, request.Identity.DisplayName, rule, request.Action, request.Target, ticket.ExpiresAt);
        _webhook.Announce(ticket);
        return ticket;
    }

    /// <inheritdoc />
    public Task<ApprovalTicket> WaitAsync(string ticketId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ticketId);
        lock (_gate)
        {
            if (_pending.TryGetValue(ticketId, out var entry))
            {
                return entry.Completion.Task.WaitAsync(cancellationToken);
            }

            if (_decided.TryGetValue(ticketId, out var decided))
            {
                return Task.FromResult(decided);
            }
        }

        return Task.FromException<ApprovalTicket>(new KeyNotFoundException($"No approval ticket '{ticketId}'."));
    }

    /// <inheritdoc />
    public ApprovalTicket Decide(string ticketId, bool approve, WorkloadIdentity approver, string? reason, TimeSpan? grantFor = null)
    {
        ArgumentNullException.ThrowIfNull(ticketId);
        ArgumentNullException.ThrowIfNull(approver);
        ApprovalDecisionRules.ThrowIfInvalidGrantPeriod(grantFor);

        PendingEntry entry;
        ApprovalTicket decided;
        lock (_gate)
        {
            if (!_pending.TryGetValue(ticketId, out entry!))
            {
                throw ApprovalDecisionRules.NotPending(ticketId);
            }

            var identity = entry.Ticket.Request.Identity;
            if (ApprovalDecisionRules.IsOwnRequest(identity, approver))
            {
                throw ApprovalDecisionRules.OwnRequestRefusal();
            }

            var now = _timeProvider.GetUtcNow();
            var grantUntil = ApprovalDecisionRules.GrantUntil(approve, grantFor, now, _options.MaxGrant);
            if (grantUntil is { } grantEnd)
            {
                _grants[new GrantKey(identity.Subject, identity.Issuer, entry.Ticket.Rule)] = new StandingGrant(grantEnd, ticketId, approver, reason);
            }

            decided = entry.Ticket with
            {
                State = approve ? ApprovalState.Approved : ApprovalState.Denied,
                DecidedBy = approver,
                DecidedAt = now,
                DecisionReason = reason,
                GrantUntil = grantUntil,
            };
            _pending.Remove(ticketId);
            RememberDecided(decided);
        }

        entry.Timer?.Dispose();
        entry.Completion.TrySetResult(decided);
        _logger.LogInformation("Approval {Ticket} {State} by {Approver} ({Reason}){Grant}", ticketId, decided.State, approver.DisplayName, reason ?? "no reason given", decided.GrantUntil is { } until ? $", standing grant until {until:O}" : "");
        return decided;
    }

    /// <summary>A pending or recently decided ticket (the last <see cref="DecidedCapacity"/> decided are kept); null when unknown.</summary>
    /// <param name="id">The ticket id.</param>
    public ApprovalTicket? Find(string id)
    {
        ArgumentNullException.ThrowIfNull(id);
        lock (_gate)
        {
            return _pending.TryGetValue(id, out var entry) ? entry.Ticket : _decided.GetValueOrDefault(id);
        }
    }

    /// <summary>Refuses every ticket still waiting (as <see cref="ApprovalState.TimedOut"/>: fail closed) and releases the timers.</summary>
    public void Dispose()
    {
        List<(PendingEntry Entry, ApprovalTicket Ticket)> released;
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            var now = _timeProvider.GetUtcNow();
            released = _pending.Values.Select(e => (e, e.Ticket with { State = ApprovalState.TimedOut, DecidedAt = now, DecisionReason = "the gateway is shutting down" })).ToList();
            _pending.Clear();
        }

        foreach (var (entry, ticket) in released)
        {
            entry.Timer?.Dispose();
            entry.Completion.TrySetResult(ticket);
        }

        _webhook.Dispose();
    }

    private void TimeOut(string ticketId)
    {
        PendingEntry? entry;
        ApprovalTicket timedOut;
        lock (_gate)
        {
            if (!_pending.Remove(ticketId, out entry))
            {
                return;
            }

            timedOut = entry.Ticket with { State = ApprovalState.TimedOut, DecidedAt = _timeProvider.GetUtcNow(), DecisionReason = "no approver decided in time" };
            RememberDecided(timedOut);
        }

        entry.Timer?.Dispose();
        entry.Completion.TrySetResult(timedOut);
        _logger.LogWarning("Approval {Ticket} for {Identity} under rule {Rule} timed out", ticketId, timedOut.Request.Identity.DisplayName, timedOut.Rule);
    }

    private void RememberDecided(ApprovalTicket ticket)
    {
        _decided[ticket.Id] = ticket;
        _decidedOrder.Enqueue(ticket.Id);
        while (_decidedOrder.Count > DecidedCapacity)
        {
            _decided.Remove(_decidedOrder.Dequeue());
        }
    }

    private string NewId()
    {
        while (true)
        {
            var id = ApprovalDecisionRules.NewTicketId();
            if (!_pending.ContainsKey(id) && !_decided.ContainsKey(id))
            {
                return id;
            }
        }
    }

    private readonly record struct GrantKey(string Subject, string Issuer, string Rule);

    private sealed record StandingGrant(DateTimeOffset Until, string TicketId, WorkloadIdentity DecidedBy, string? Reason);

    private sealed class PendingEntry(ApprovalTicket ticket)
    {
        public ApprovalTicket Ticket { get; } = ticket;

        public TaskCompletionSource<ApprovalTicket> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public ITimer? Timer { get; set; }
    }

    private sealed class TimeoutState(InMemoryApprovalBroker broker, string ticketId)
    {
        public void Fire() => broker.TimeOut(ticketId);
    }
}
