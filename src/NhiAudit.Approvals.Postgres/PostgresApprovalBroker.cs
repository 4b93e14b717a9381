using System.Data.Common;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Npgsql;

namespace NhiAudit.Approvals.Postgres;

/// <summary>
/// The approval broker of a set of gateway replicas: tickets and standing grants live in PostgreSQL, so
/// <c>nhiaudit approvals list</c> on any replica shows every held request and an approval given on one replica
/// releases the request held on another. Same semantics as <see cref="InMemoryApprovalBroker"/>. Thread-safe.
/// </summary>
/// <remarks>
/// <para>
/// A decision is one conditional <c>UPDATE … WHERE state = 'pending'</c> plus <c>NOTIFY nhiaudit_approvals</c> in the
/// same transaction: of two deciders (two approvers, an approver and the holder's timeout, two replicas) exactly one
/// changes the row, and the loser gets the same <see cref="KeyNotFoundException"/> as from the in-memory broker.
/// </para>
/// <para>
/// Only the replica that holds a ticket releases its request: its waiter completes once, with the state the row
/// ended in. Each replica keeps one LISTEN connection; after it reconnects it re-reads the tickets it waits for
/// (notifications sent while it was away are lost), and it re-reads them every few seconds anyway.
/// </para>
/// <para>
/// <see cref="Submit"/> does no database I/O on its caller's thread: the relay calls it on a socket-completion thread,
/// and with inline completions a blocking wait there can wait for I/O that only that thread would complete. It checks
/// this replica's copy of the standing grants and stores the ticket on a pool thread. All other database I/O is
/// synchronous (the interface is), on pool threads, timer threads or the listener's own thread.
/// </para>
/// <para>
/// When the database cannot be reached, nothing can be approved: a new held request is refused at once (its ticket
/// ends <see cref="ApprovalState.TimedOut"/>, so the protocol answers with its usual refusal), and deciding fails.
/// </para>
/// </remarks>
public sealed class PostgresApprovalBroker : IApprovalBroker, IAsyncDisposable, IDisposable
{
    /// <summary>The NOTIFY channel; the payload is the decided ticket's id.</summary>
    public const string NotificationChannel = ApprovalTicketSql.Channel;

    /// <summary>How many tickets refused locally (the database unreachable) <see cref="WaitAsync"/> still knows.</summary>
    private const int LocallySettledCapacity = 1000;

    /// <summary>A safety net under NOTIFY: a waiter also learns its decision from this periodic re-read.</summary>
    private static readonly TimeSpan RecheckInterval = TimeSpan.FromSeconds(10);

    /// <summary>How long one wait for notifications lasts, so that stopping is noticed promptly.</summary>
    private static readonly TimeSpan ListenSlice = TimeSpan.FromSeconds(1);

    private static readonly TimeSpan FirstReconnectDelay = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan MaxReconnectDelay = TimeSpan.FromSeconds(30);

    private readonly ApprovalOptions _approvalOptions;
    private readonly bool _createSchema;
    private readonly string _replica;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private readonly ApprovalWebhook _webhook;
    private readonly ApprovalTicketSql _sql;
    private readonly NpgsqlDataSource _dataSource;
    private readonly string _listenerConnectionString;
    private readonly DateTimeOffset _startedAt;
    private readonly object _gate = new();
    private readonly Dictionary<string, Waiter> _waiters = new(StringComparer.Ordinal);
    private readonly HashSet<string> _unrecordedTimeouts = new(StringComparer.Ordinal);
    private readonly Dictionary<GrantKey, StandingGrant> _grants = [];
    private readonly Dictionary<string, ApprovalTicket> _locallySettled = new(StringComparer.Ordinal);
    private readonly Queue<string> _locallySettledOrder = new();
    private readonly object _schemaGate = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly Thread _listener;
    private volatile bool _schemaReady;
    private volatile bool _storeKnownDown;
    private int _listenerConnections;
    private int _disposed;

    /// <summary>Creates the broker and starts its LISTEN connection (in the background: a database that is down does not stop the gateway).</summary>
    /// <param name="options">Where the tables are.</param>
    /// <param name="approvalOptions">Timeout, grant cap and webhook, as for every broker.</param>
    /// <param name="replica">This replica's name (<c>AuditOptions.GetReplicaName()</c>); tickets it holds carry it. Must be unique among the replicas.</param>
    /// <param name="timeProvider">The clock and timers; the system clock when null.</param>
    /// <param name="logger">Where decisions, timeouts and connection trouble are logged (never the connection string).</param>
    /// <param name="httpClient">The webhook's client; one is created when null and a webhook is configured.</param>
    public PostgresApprovalBroker(IOptions<PostgresApprovalOptions> options, IOptions<ApprovalOptions> approvalOptions, string replica, TimeProvider? timeProvider = null, ILogger? logger = null, HttpClient? httpClient = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(approvalOptions);
        ArgumentException.ThrowIfNullOrWhiteSpace(replica);
        var settings = options.Value;
        var failures = PostgresApprovalOptionsValidator.Collect(settings);
        if (failures.Count > 0)
        {
            throw new OptionsValidationException(Options.DefaultName, typeof(PostgresApprovalOptions), failures);
        }

        // The rest of ApprovalOptions is checked where it is bound (AddNhiAuditing validates it at startup).
        _approvalOptions = approvalOptions.Value;
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(_approvalOptions.Timeout, TimeSpan.Zero, nameof(approvalOptions));

        _createSchema = settings.CreateSchema;
        _replica = replica;
        _timeProvider = timeProvider ?? TimeProvider.System;
        _logger = logger ?? NullLogger.Instance;
        _webhook = new ApprovalWebhook(_approvalOptions, _logger, httpClient);
        _sql = new ApprovalTicketSql(settings.Schema);

        var builder = new NpgsqlDataSourceBuilder(settings.ConnectionString);
        if (string.IsNullOrEmpty(builder.ConnectionStringBuilder.ApplicationName))
        {
            builder.ConnectionStringBuilder.ApplicationName = "nhiaudit-approvals:" + replica;
        }

        _dataSource = builder.Build();

        // The listener holds its connection for the process's life, so it stays out of the pool, and it is named per
        // replica so a DBA (or a test) can find it in pg_stat_activity.
        _listenerConnectionString = new NpgsqlConnectionStringBuilder(settings.ConnectionString)
        {
            Pooling = false,
            ApplicationName = ListenerApplicationName(replica),
            KeepAlive = 30,
        }.ConnectionString;

        _startedAt = Now();
        _listener = new Thread(Listen) { IsBackground = true, Name = "nhiaudit-approvals-listener" };
        _listener.Start();
    }

    /// <summary>How many times the LISTEN connection was (re)established; for tests and diagnostics.</summary>
    internal int ListenerConnections => Volatile.Read(ref _listenerConnections);

    /// <summary>A test hook run on the listener thread before each reconnect (not before the first connect).</summary>
    internal Action<CancellationToken>? BeforeListenerReconnect { get; set; }

    /// <summary>The application_name of a replica's LISTEN connection.</summary>
    internal static string ListenerApplicationName(string replica) => "nhiaudit-approvals-listener:" + replica;

    /// <inheritdoc />
    public IReadOnlyList<ApprovalTicket> Pending
    {
        get
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            EnsureSchema();
            using var connection = _dataSource.OpenConnection();
            using var command = _sql.Pending(connection, Now());
            using var reader = command.ExecuteReader();
            var tickets = new List<ApprovalTicket>();
            while (reader.Read())
            {
                tickets.Add(ApprovalTicketSql.ReadTicket(reader));
            }

            return tickets;
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// Does no database I/O on the caller's thread (see the class remarks): a standing grant is found in this
    /// replica's copy of the grants (kept current from every decision's notification), and the ticket is stored in
    /// the background. If storing fails, or a grant given a moment ago on another replica covers the request, the
    /// wait ends at once with that outcome.
    /// </remarks>
    public ApprovalTicket Submit(AccessRequest request, string rule, string sessionId)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(request.Identity);
        ArgumentException.ThrowIfNullOrEmpty(rule);
        ArgumentNullException.ThrowIfNull(sessionId);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

        var now = Now();
        var ticket = new ApprovalTicket
        {
            Id = ApprovalDecisionRules.NewTicketId(),
            Request = request,
            Rule = rule,
            SessionId = sessionId,
            RequestedAt = now,
            ExpiresAt = now + _approvalOptions.Timeout,
        };
        if (_storeKnownDown)
        {
            // Until the listener is back this replica could not learn of a decision anyway: refuse without trying.
            RefuseUnreachable(ticket, new NpgsqlException("the approval listener has lost the database"));
            return ticket;
        }

        StandingGrant? grant;
        lock (_gate)
        {
            grant = _grants.GetValueOrDefault(new GrantKey(request.Identity.Subject, request.Identity.Issuer, rule));
        }

        if (grant is not null && grant.Until > now)
        {
            var granted = Granted(ticket, grant, now);
            _ = Task.Run(() => RecordGranted(granted));
            _logger.LogInformation("Approval {Ticket} for {Identity} under rule {Rule} granted by standing grant {Grant} (until {Until:O})", granted.Id, request.Identity.DisplayName, rule, grant.TicketId, grant.Until);
            return granted;
        }

        // Registered before the row exists: once another replica can see the ticket, its decision finds a waiter.
        var waiter = new Waiter(ticket, holder: true);
        lock (_gate)
        {
            _waiters.Add(ticket.Id, waiter);
        }

        waiter.Timer = _timeProvider.CreateTimer(static state => ((TimeoutCallback)state!).Fire(), new TimeoutCallback(this, ticket.Id), _approvalOptions.Timeout, Timeout.InfiniteTimeSpan);
        _ = Task.Run(() => Store(ticket));
        return ticket;
    }

    /// <inheritdoc />
    public async Task<ApprovalTicket> WaitAsync(string ticketId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ticketId);
        Waiter? waiter;
        lock (_gate)
        {
            if (_locallySettled.TryGetValue(ticketId, out var settled))
            {
                return settled;
            }

            _waiters.TryGetValue(ticketId, out waiter);
        }

        if (waiter is not null)
        {
            return await WaitFor(waiter, cancellationToken).ConfigureAwait(false);
        }

        // A ticket this replica does not hold: the table knows its state (read off the caller's thread, see remarks).
        var ticket = await Task.Run(() => FindTicket(ticketId), cancellationToken).ConfigureAwait(false)
            ?? throw new KeyNotFoundException($"No approval ticket '{ticketId}'.");
        if (ticket.State != ApprovalState.Pending)
        {
            return ticket;
        }

        // Pending on another replica: wait for its NOTIFY like for our own (the holder times it out and notifies).
        Waiter remote;
        lock (_gate)
        {
            if (!_waiters.TryGetValue(ticketId, out remote!))
            {
                remote = new Waiter(ticket, holder: false);
                _waiters.Add(ticketId, remote);
            }
        }

        return await WaitFor(remote, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public ApprovalTicket Decide(string ticketId, bool approve, WorkloadIdentity approver, string? reason, TimeSpan? grantFor = null)
    {
        ArgumentNullException.ThrowIfNull(ticketId);
        ArgumentNullException.ThrowIfNull(approver);
        ApprovalDecisionRules.ThrowIfInvalidGrantPeriod(grantFor);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

        var now = Now();
        var grantUntil = ApprovalDecisionRules.GrantUntil(approve, grantFor, now, _approvalOptions.MaxGrant);
        EnsureSchema();
        ApprovalTicket decided;
        using (var connection = _dataSource.OpenConnection())
        using (var transaction = connection.BeginTransaction())
        {
            string requesterSubject, requesterIssuer;
            using (var update = _sql.Decide(connection, transaction, ticketId, approve ? ApprovalState.Approved : ApprovalState.Denied, approver, now, reason, grantUntil))
            using (var reader = update.ExecuteReader())
            {
                if (!reader.Read())
                {
                    reader.Close();
                    transaction.Rollback();
                    throw WhyNotDecided(connection, ticketId, approver, now);
                }

                decided = ApprovalTicketSql.ReadTicket(reader);
                requesterSubject = reader.GetString(13);
                requesterIssuer = reader.GetString(14);
            }

            if (grantUntil is { } until)
            {
                using var grant = _sql.UpsertGrant(connection, transaction, requesterSubject, requesterIssuer, decided.Rule, until, ticketId, approver, reason);
                grant.ExecuteNonQuery();
            }

            using (var notify = ApprovalTicketSql.Notify(connection, transaction, ticketId))
            {
                notify.ExecuteNonQuery();
            }

            transaction.Commit();
            if (grantUntil is { } given)
            {
                lock (_gate)
                {
                    _grants[new GrantKey(requesterSubject, requesterIssuer, decided.Rule)] = new StandingGrant(given, ticketId, approver, reason);
                }
            }
        }

        // Held here: release it now rather than on our own notification (which then finds nothing to do).
        Complete(decided);
        _logger.LogInformation("Approval {Ticket} {State} by {Approver} on replica {Replica} ({Reason}){Grant}", ticketId, decided.State, approver.DisplayName, _replica, reason ?? "no reason given", decided.GrantUntil is { } end ? $", standing grant until {end:O}" : "");
        return decided;
    }

    /// <summary>
    /// Stops listening and refuses every request still held here (as <see cref="ApprovalState.TimedOut"/>: fail
    /// closed), marking their rows so that no other replica approves a request nobody will run.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _stopping.Cancel();

        // At most one listen slice, or a connect attempt that is under way (the connection string's Timeout).
        _listener.Join(TimeSpan.FromSeconds(30));
        List<Waiter> held;
        lock (_gate)
        {
            held = _waiters.Values.ToList();
            _waiters.Clear();
        }

        const string Reason = "the gateway is shutting down";
        var now = Now();
        foreach (var waiter in held.Where(w => w.Holder))
        {
            waiter.Timer?.Dispose();
            var final = TryRecordTimeout(waiter.Ticket.Id, now, Reason);
            waiter.Completion.TrySetResult(final is { State: not ApprovalState.Pending } ? final : TimedOut(waiter.Ticket, now, Reason));
        }

        foreach (var waiter in held.Where(w => !w.Holder))
        {
            waiter.Completion.TrySetCanceled();
        }

        _webhook.Dispose();
        _dataSource.Dispose();
        _stopping.Dispose();
    }

    /// <inheritdoc cref="Dispose" />
    public ValueTask DisposeAsync() => new(Task.Run(Dispose));

    private static bool IsDatabaseFailure(Exception ex) => ex is DbException or TimeoutException or System.Net.Sockets.SocketException or IOException;

    private static async Task<ApprovalTicket> WaitFor(Waiter waiter, CancellationToken cancellationToken) =>
        await waiter.Completion.Task.WaitAsync(cancellationToken).ConfigureAwait(false);

    private static ApprovalTicket TimedOut(ApprovalTicket ticket, DateTimeOffset now, string reason) =>
        ticket with { State = ApprovalState.TimedOut, DecidedAt = now, DecisionReason = reason };

    /// <summary>Now, in microseconds like timestamptz, so a ticket read back equals the one handed out.</summary>
    private DateTimeOffset Now()
    {
        var now = _timeProvider.GetUtcNow().ToUniversalTime();
        return new DateTimeOffset(now.Ticks - (now.Ticks % 10), TimeSpan.Zero);
    }

    private static ApprovalTicket Granted(ApprovalTicket ticket, StandingGrant grant, DateTimeOffset now) => ticket with
    {
        ExpiresAt = now,
        State = ApprovalState.Approved,
        DecidedBy = grant.DecidedBy,
        DecidedAt = now,
        DecisionReason = grant.Reason,
        GrantUntil = grant.Until,
        GrantedByTicket = grant.TicketId,
    };

    /// <summary>Stores a new held request (on a pool thread); a grant the local copy did not know yet still lets it through.</summary>
    private void Store(ApprovalTicket ticket)
    {
        try
        {
            EnsureSchema();
            using var connection = _dataSource.OpenConnection();
            var grant = FindGrant(connection, ticket.Request.Identity, ticket.Rule, ticket.RequestedAt);
            var stored = grant is null ? ticket : Granted(ticket, grant, ticket.RequestedAt);
            using (var insert = _sql.Insert(connection, stored, _replica))
            {
                insert.ExecuteNonQuery();
            }

            if (grant is not null)
            {
                RememberGrant(ticket.Request.Identity, ticket.Rule, grant);
                Complete(stored);
                _logger.LogInformation("Approval {Ticket} for {Identity} under rule {Rule} granted by standing grant {Grant} (until {Until:O})", ticket.Id, ticket.Request.Identity.DisplayName, ticket.Rule, grant.TicketId, grant.Until);
                return;
            }

            bool stillWaiting;
            lock (_gate)
            {
                stillWaiting = _waiters.ContainsKey(ticket.Id);
            }

            if (!stillWaiting)
            {
                // The hold ran out before the ticket reached the table (a slow store): record that now, so the
                // stored ticket never looks pending to another replica.
                TryRecordTimeout(ticket.Id, Now(), "no approver decided in time");
                return;
            }

            _logger.LogInformation("Approval {Ticket} pending on replica {Replica} for {Identity} under rule {Rule}: {Action} on {Target} (expires {ExpiresAt:O})", ticket.Id, _replica, ticket.Request.Identity.DisplayName, ticket.Rule, ticket.Request.Action, ticket.Request.Target, ticket.ExpiresAt);
            _webhook.Announce(ticket);
        }
        catch (Exception ex) when (IsDatabaseFailure(ex))
        {
            // Includes the 1-in-2^50 clash of a random id with a stored one: refused like an unreachable store.
            Complete(RefuseUnreachable(ticket, ex));
        }
    }

    /// <summary>Records a request let through by a standing grant, for the table's history; the request does not wait for it.</summary>
    private void RecordGranted(ApprovalTicket granted)
    {
        try
        {
            EnsureSchema();
            using var connection = _dataSource.OpenConnection();
            using var insert = _sql.Insert(connection, granted, _replica);
            insert.ExecuteNonQuery();
        }
        catch (Exception ex) when (IsDatabaseFailure(ex))
        {
            _logger.LogWarning("Approval {Ticket} (standing grant {Grant}) could not be recorded in the approval store: {Message}", granted.Id, granted.GrantedByTicket, ex.Message);
        }
    }

    private void RememberGrant(WorkloadIdentity identity, string rule, StandingGrant grant)
    {
        lock (_gate)
        {
            _grants[new GrantKey(identity.Subject, identity.Issuer, rule)] = grant;
        }
    }

    private StandingGrant? FindGrant(NpgsqlConnection connection, WorkloadIdentity identity, string rule, DateTimeOffset now)
    {
        using var command = _sql.FindGrant(connection, identity, rule, now);
        using var reader = command.ExecuteReader();
        return reader.Read()
            ? new StandingGrant(reader.GetFieldValue<DateTimeOffset>(0), reader.GetString(1), ApprovalTicketJson.ReadIdentity(reader.GetString(2)), reader.IsDBNull(3) ? null : reader.GetString(3))
            : null;
    }

    private ApprovalTicket? FindTicket(string ticketId)
    {
        EnsureSchema();
        using var connection = _dataSource.OpenConnection();
        using var command = _sql.Find(connection, ticketId);
        using var reader = command.ExecuteReader();
        return reader.Read() ? ApprovalTicketSql.ReadTicket(reader) : null;
    }

    /// <summary>The same refusal as the in-memory broker's: the approver's own request, or no pending ticket of that id.</summary>
    private Exception WhyNotDecided(NpgsqlConnection connection, string ticketId, WorkloadIdentity approver, DateTimeOffset now)
    {
        using var command = _sql.Find(connection, ticketId);
        using var reader = command.ExecuteReader();
        if (reader.Read())
        {
            var current = ApprovalTicketSql.ReadTicket(reader);
            if (current.State == ApprovalState.Pending && current.ExpiresAt > now && ApprovalDecisionRules.IsOwnRequest(current.Request.Identity, approver))
            {
                return ApprovalDecisionRules.OwnRequestRefusal();
            }
        }

        return ApprovalDecisionRules.NotPending(ticketId);
    }

    /// <summary>
    /// Fail closed without the database: the request is told it is held (so the protocol's usual path runs) and its
    /// wait ends at once, refused, with the reason in the audit record.
    /// </summary>
    private ApprovalTicket RefuseUnreachable(ApprovalTicket ticket, Exception ex)
    {
        var refused = TimedOut(ticket with { ExpiresAt = ticket.RequestedAt }, Now(), "the approval store (PostgreSQL) cannot be reached, so nobody can approve the request");
        lock (_gate)
        {
            _locallySettled[ticket.Id] = refused;
            _locallySettledOrder.Enqueue(ticket.Id);
            while (_locallySettledOrder.Count > LocallySettledCapacity)
            {
                _locallySettled.Remove(_locallySettledOrder.Dequeue());
            }
        }

        _logger.LogError(ex, "Approval store unreachable: request of {Identity} under rule {Rule} refused as {Ticket} ({Message})", ticket.Request.Identity.DisplayName, ticket.Rule, ticket.Id, ex.Message);
        return refused;
    }

    /// <summary>Releases the waiter of a decided ticket (if any waits here); the first completion wins.</summary>
    private void Complete(ApprovalTicket decided)
    {
        Waiter? waiter;
        lock (_gate)
        {
            if (!_waiters.Remove(decided.Id, out waiter))
            {
                return;
            }
        }

        waiter.Timer?.Dispose();
        waiter.Completion.TrySetResult(decided);
    }

    private void OnTimeout(string ticketId)
    {
        Waiter? waiter;
        lock (_gate)
        {
            if (!_waiters.TryGetValue(ticketId, out waiter))
            {
                return;
            }
        }

        const string Reason = "no approver decided in time";
        var now = Now();
        var final = TryRecordTimeout(ticketId, now, Reason);
        if (final is null or { State: ApprovalState.Pending })
        {
            // Unrecorded: refuse anyway (fail closed) and write it once the database is back, so no other replica
            // approves what nobody runs.
            lock (_gate)
            {
                _unrecordedTimeouts.Add(ticketId);
            }

            final = TimedOut(waiter.Ticket, now, Reason);
        }

        Complete(final);
        if (final.State == ApprovalState.TimedOut)
        {
            _logger.LogWarning("Approval {Ticket} for {Identity} under rule {Rule} timed out", ticketId, final.Request.Identity.DisplayName, final.Rule);
        }
    }

    /// <summary>
    /// Writes the timeout with the same conditional update as a decision; when someone decided first, that decision
    /// stands and is returned. Null when the database could not be reached.
    /// </summary>
    private ApprovalTicket? TryRecordTimeout(string ticketId, DateTimeOffset now, string reason)
    {
        try
        {
            using var connection = _dataSource.OpenConnection();
            using var transaction = connection.BeginTransaction();
            ApprovalTicket? final = null;
            using (var update = _sql.Decide(connection, transaction, ticketId, ApprovalState.TimedOut, approver: null, now, reason, grantUntil: null))
            using (var reader = update.ExecuteReader())
            {
                if (reader.Read())
                {
                    final = ApprovalTicketSql.ReadTicket(reader);
                }
            }

            if (final is not null)
            {
                using var notify = ApprovalTicketSql.Notify(connection, transaction, ticketId);
                notify.ExecuteNonQuery();
                transaction.Commit();
                return final;
            }

            transaction.Rollback();
            using var find = _sql.Find(connection, ticketId);
            using var current = find.ExecuteReader();
            return current.Read() ? ApprovalTicketSql.ReadTicket(current) : null;
        }
        catch (Exception ex) when (IsDatabaseFailure(ex))
        {
            _logger.LogError(ex, "Approval {Ticket}: could not record its timeout ({Message}); it is refused here and recorded once the database is back", ticketId, ex.Message);
            return null;
        }
    }

    private void EnsureSchema()
    {
        if (_schemaReady || !_createSchema)
        {
            return;
        }

        lock (_schemaGate)
        {
            if (_schemaReady)
            {
                return;
            }

            using var connection = _dataSource.OpenConnection();
            using var transaction = connection.BeginTransaction();
            using (var lockSchema = ApprovalTicketSql.LockSchema(connection, transaction))
            {
                lockSchema.ExecuteNonQuery();
            }

            using (var create = _sql.CreateSchema(connection, transaction))
            {
                create.ExecuteNonQuery();
            }

            transaction.Commit();
            _schemaReady = true;
        }
    }

    /// <summary>
    /// The LISTEN loop, on its own thread: connect, LISTEN, then re-read what we wait for (decisions made while nobody
    /// listened were notified to nobody), then wait for notifications; on any failure reconnect with back-off.
    /// </summary>
    private void Listen()
    {
        var delay = FirstReconnectDelay;
        var first = true;
        while (!_stopping.IsCancellationRequested)
        {
            try
            {
                if (!first)
                {
                    BeforeListenerReconnect?.Invoke(_stopping.Token);
                }

                first = false;
                ListenOnce(() => delay = FirstReconnectDelay);
            }
            catch (Exception) when (_stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                _storeKnownDown = true;
                _logger.LogWarning("Approval listener of replica {Replica} lost its database connection ({Message}); reconnecting in {Delay}", _replica, ex.Message, delay);
                if (_stopping.Token.WaitHandle.WaitOne(delay))
                {
                    return;
                }

                delay = delay * 2 < MaxReconnectDelay ? delay * 2 : MaxReconnectDelay;
            }
        }
    }

    private void ListenOnce(Action connected)
    {
        using var connection = new NpgsqlConnection(_listenerConnectionString);

        // Raised inside Wait (or a command) on this thread, so a plain list is enough.
        var notified = new List<string>();
        connection.Notification += (_, e) => notified.Add(e.Payload);
        connection.Open();
        EnsureSchema();
        using (var listen = ApprovalTicketSql.Listen(connection))
        {
            listen.ExecuteNonQuery();
        }

        Interlocked.Increment(ref _listenerConnections);
        _storeKnownDown = false;
        connected();
        _logger.LogInformation("Approval listener of replica {Replica} is listening on {Channel}", _replica, NotificationChannel);
        TimeOutAbandoned(connection);
        RefreshGrants(connection);
        Settle(connection, null);
        var lastRecheck = _timeProvider.GetTimestamp();
        while (!_stopping.IsCancellationRequested)
        {
            connection.Wait(ListenSlice);
            if (notified.Count > 0)
            {
                var ids = notified.Distinct(StringComparer.Ordinal).ToList();
                notified.Clear();

                // Grants first: once a waiter here learns of an approval with a grant, the next request sees the grant.
                RefreshGrants(connection);
                Settle(connection, ids);
            }
            else if (_timeProvider.GetElapsedTime(lastRecheck) >= RecheckInterval)
            {
                lastRecheck = _timeProvider.GetTimestamp();
                Settle(connection, null);
                if (HasUnrecordedTimeouts())
                {
                    // A timeout whose write failed while this connection stayed up: write it now.
                    TimeOutAbandoned(connection);
                }
            }
        }
    }

    /// <summary>Reads which of the waited-for tickets (<paramref name="candidates"/>, or all) are decided, and releases their waiters.</summary>
    private void Settle(NpgsqlConnection connection, IReadOnlyList<string>? candidates)
    {
        List<string> waiting;
        lock (_gate)
        {
            waiting = candidates is null ? _waiters.Keys.ToList() : candidates.Where(_waiters.ContainsKey).ToList();
        }

        if (waiting.Count == 0)
        {
            return;
        }

        var decided = new List<ApprovalTicket>();
        using (var command = _sql.Decided(connection, waiting))
        using (var reader = command.ExecuteReader())
        {
            while (reader.Read())
            {
                decided.Add(ApprovalTicketSql.ReadTicket(reader));
            }
        }

        if (candidates is null && decided.Exists(ticket => ticket.GrantUntil is not null))
        {
            // Found by the periodic recheck before the decision's notification arrived: the grant must be known here
            // before the waiter is released, or the next request under it would be held again.
            RefreshGrants(connection);
        }

        foreach (var ticket in decided)
        {
            Complete(ticket);
            _logger.LogInformation("Approval {Ticket} {State} by {Approver} (decided on another replica)", ticket.Id, ticket.State, ticket.DecidedBy?.DisplayName ?? "nobody");
        }
    }

    private bool HasUnrecordedTimeouts()
    {
        lock (_gate)
        {
            return _unrecordedTimeouts.Count > 0;
        }
    }

    /// <summary>Replaces this replica's copy of the running standing grants, which <see cref="Submit"/> consults without I/O.</summary>
    private void RefreshGrants(NpgsqlConnection connection)
    {
        var grants = new Dictionary<GrantKey, StandingGrant>();
        using (var command = _sql.ActiveGrants(connection, Now()))
        using (var reader = command.ExecuteReader())
        {
            while (reader.Read())
            {
                grants[new GrantKey(reader.GetString(0), reader.GetString(1), reader.GetString(2))] = new StandingGrant(
                    reader.GetFieldValue<DateTimeOffset>(3), reader.GetString(4), ApprovalTicketJson.ReadIdentity(reader.GetString(5)), reader.IsDBNull(6) ? null : reader.GetString(6));
            }
        }

        lock (_gate)
        {
            _grants.Clear();
            foreach (var (key, grant) in grants)
            {
                _grants[key] = grant;
            }
        }
    }

    private void TimeOutAbandoned(NpgsqlConnection connection)
    {
        List<string> unrecorded;
        lock (_gate)
        {
            unrecorded = [.. _unrecordedTimeouts];
        }

        using var command = _sql.TimeOutAbandoned(connection, _replica, _startedAt, unrecorded, Now(), "the replica holding it stopped waiting (restart, crash or an unrecorded timeout)");
        var count = command.ExecuteNonQuery();
        lock (_gate)
        {
            _unrecordedTimeouts.ExceptWith(unrecorded);
        }

        if (count > 0)
        {
            _logger.LogWarning("Approval store: {Count} pending ticket(s) of replica {Replica} nobody waits for any more marked timed out", count, _replica);
        }
    }

    private readonly record struct GrantKey(string Subject, string Issuer, string Rule);

    private sealed record StandingGrant(DateTimeOffset Until, string TicketId, WorkloadIdentity DecidedBy, string? Reason);

    private sealed class Waiter(ApprovalTicket ticket, bool holder)
    {
        public ApprovalTicket Ticket { get; } = ticket;

        /// <summary>True on the replica that holds the request (it times the ticket out); false for a wait on another replica's ticket.</summary>
        public bool Holder { get; } = holder;

        public TaskCompletionSource<ApprovalTicket> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public ITimer? Timer { get; set; }
    }

    private sealed class TimeoutCallback(PostgresApprovalBroker broker, string ticketId)
    {
        public void Fire() => broker.OnTimeout(ticketId);
    }
}
