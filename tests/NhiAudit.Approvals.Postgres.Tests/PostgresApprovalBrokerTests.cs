using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using NhiAudit.IntegrationTests.Infrastructure;
using Npgsql;

namespace NhiAudit.Approvals.Postgres.Tests;

/// <summary>
/// Two brokers on one database play two gateway replicas: what one holds, the other lists and decides, and exactly one
/// decision counts.
/// </summary>
public sealed class PostgresApprovalBrokerTests(PostgresServerFixture fixture) : IClassFixture<PostgresServerFixture>, IAsyncLifetime
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);
    private static readonly WorkloadIdentity Job = Identity("ci-job", WorkloadKind.FederatedWorkload);
    private static readonly WorkloadIdentity Alice = Identity("alice", WorkloadKind.User);
    private static readonly WorkloadIdentity Bob = Identity("bob", WorkloadKind.User);

    private readonly string _schema = "approvals_" + Guid.NewGuid().ToString("N")[..10];
    private readonly List<PostgresApprovalBroker> _brokers = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var broker in _brokers)
        {
            await broker.DisposeAsync();
        }
    }

    private static WorkloadIdentity Identity(string subject, WorkloadKind kind) =>
        new() { Kind = kind, Subject = subject, Issuer = "https://issuer.local", DisplayName = subject, Roles = ["NhiAudit.Approver"] };

    private static AccessRequest Request(WorkloadIdentity identity) => new()
    {
        Protocol = "postgres",
        Target = "orders",
        Action = "DELETE",
        Text = "DELETE FROM orders WHERE id = 1",
        Resources = ["public.orders"],
        Attributes = new Dictionary<string, object?> { ["hasWhere"] = true, ["rows"] = 3L, ["note"] = null },
        Identity = identity,
    };

    private PostgresApprovalBroker Replica(string name, TimeSpan? timeout = null, string? connectionString = null)
    {
        var broker = new PostgresApprovalBroker(
            Options.Create(new PostgresApprovalOptions { ConnectionString = connectionString ?? fixture.Server.ConnectionString(), Schema = _schema }),
            Options.Create(new ApprovalOptions { Timeout = timeout ?? TimeSpan.FromMinutes(5) }),
            name);
        _brokers.Add(broker);
        return broker;
    }

    /// <summary>Holds a request and waits until it is stored (Submit stores in the background), so it can be decided.</summary>
    private static async Task<ApprovalTicket> HoldAsync(PostgresApprovalBroker broker, AccessRequest request, string rule, string sessionId)
    {
        var ticket = broker.Submit(request, rule, sessionId);
        Assert.Equal(ApprovalState.Pending, ticket.State);
        await WaitUntilAsync(() => broker.Pending.Any(t => t.Id == ticket.Id), $"ticket {ticket.Id} is stored");
        return ticket;
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting until {what}");
            await Task.Delay(20);
        }
    }

    private async Task<string> StateInTableAsync(string ticketId) =>
        (string)(await fixture.Server.ExecuteScalarAsync($"SELECT state FROM \"{_schema}\".approval_tickets WHERE id = '{ticketId}'"))!;

    [Fact]
    public async Task A_ticket_held_on_one_replica_is_listed_and_approved_on_another_and_released_where_it_is_held()
    {
        var a = Replica("gw-a");
        var b = Replica("gw-b");
        var ticket = await HoldAsync(a, Request(Job), "bulk-delete", "session-1");
        Assert.Equal(ApprovalState.Pending, ticket.State);
        Assert.Matches("^[a-z2-9]{10}$", ticket.Id);
        var wait = a.WaitAsync(ticket.Id);

        var listed = Assert.Single(b.Pending);
        Assert.Equal(ticket, listed with { Request = ticket.Request });
        Assert.Equal(ticket.Request.Text, listed.Request.Text);
        Assert.Equal(Job, listed.Request.Identity with { Roles = Job.Roles });
        Assert.Equal(Job.Roles, listed.Request.Identity.Roles);
        Assert.Equal(true, listed.Request.Attributes["hasWhere"]);
        Assert.Equal(3L, listed.Request.Attributes["rows"]);
        Assert.Null(listed.Request.Attributes["note"]);
        Assert.Equal(["public.orders"], listed.Request.Resources);
        Assert.Equal(ticket.Id, Assert.Single(a.Pending).Id);

        var decided = b.Decide(ticket.Id, approve: true, Alice, "looks fine");
        var final = await wait.WaitAsync(Patience);

        Assert.Equal(ApprovalState.Approved, final.State);
        Assert.Equal("alice", final.DecidedBy!.Subject);
        Assert.Equal("looks fine", final.DecisionReason);
        Assert.Equal(decided.DecidedAt, final.DecidedAt);
        Assert.Empty(a.Pending);
        Assert.Empty(b.Pending);
        Assert.Equal("approved", await StateInTableAsync(ticket.Id));
        Assert.Equal(ApprovalState.Approved, (await a.WaitAsync(ticket.Id)).State);
        Assert.Throws<KeyNotFoundException>(() => a.Decide(ticket.Id, approve: false, Bob, "too late"));
    }

    [Fact]
    public async Task A_denial_on_another_replica_refuses_the_held_request()
    {
        var a = Replica("gw-a");
        var b = Replica("gw-b");
        var ticket = await HoldAsync(a, Request(Job), "bulk-delete", "session-1");
        var wait = a.WaitAsync(ticket.Id);
        b.Decide(ticket.Id, approve: false, Alice, "not now");
        var final = await wait.WaitAsync(Patience);
        Assert.Equal(ApprovalState.Denied, final.State);
        Assert.Equal("not now", final.DecisionReason);
    }

    [Fact]
    public async Task Of_concurrent_decisions_on_two_replicas_exactly_one_wins()
    {
        var a = Replica("gw-a");
        var b = Replica("gw-b");
        for (var round = 0; round < 10; round++)
        {
            var ticket = await HoldAsync(a, Request(Job), "bulk-delete", $"session-{round}");
            var wait = a.WaitAsync(ticket.Id);
            using var start = new Barrier(2);
            var approveOnA = Task.Run(() => Attempt(() => { start.SignalAndWait(); return a.Decide(ticket.Id, approve: true, Alice, "a"); }));
            var denyOnB = Task.Run(() => Attempt(() => { start.SignalAndWait(); return b.Decide(ticket.Id, approve: false, Bob, "b"); }));
            var outcomes = await Task.WhenAll(approveOnA, denyOnB);

            var winner = Assert.Single(outcomes, o => o.Ticket is not null).Ticket!;
            Assert.IsType<KeyNotFoundException>(Assert.Single(outcomes, o => o.Error is not null).Error);
            var final = await wait.WaitAsync(Patience);
            Assert.Equal(winner.State, final.State);
            Assert.Equal(winner.DecidedBy!.Subject, final.DecidedBy!.Subject);
            Assert.Equal(winner.State == ApprovalState.Approved ? "approved" : "denied", await StateInTableAsync(ticket.Id));
        }

        static (ApprovalTicket? Ticket, Exception? Error) Attempt(Func<ApprovalTicket> decide)
        {
            try
            {
                return (decide(), null);
            }
            catch (KeyNotFoundException ex)
            {
                return (null, ex);
            }
        }
    }

    [Fact]
    public async Task A_workload_cannot_approve_its_own_request_on_any_replica()
    {
        var a = Replica("gw-a");
        var b = Replica("gw-b");
        var ticket = await HoldAsync(a, Request(Job), "bulk-delete", "s1");
        var ex = Assert.Throws<UnauthorizedAccessException>(() => b.Decide(ticket.Id, approve: true, Job with { Kind = WorkloadKind.User }, null));
        Assert.Contains("own request", ex.Message, StringComparison.Ordinal);
        Assert.Equal("pending", await StateInTableAsync(ticket.Id));
        Assert.Throws<KeyNotFoundException>(() => b.Decide("nope", approve: true, Alice, null));
        Assert.Throws<ArgumentOutOfRangeException>(() => b.Decide(ticket.Id, approve: true, Alice, null, TimeSpan.FromMinutes(-1)));
    }

    [Fact]
    public async Task The_holding_replica_times_out_its_ticket_and_nobody_can_decide_it_afterwards()
    {
        var a = Replica("gw-a", timeout: TimeSpan.FromSeconds(1));
        var b = Replica("gw-b", timeout: TimeSpan.FromSeconds(1));
        // Not HoldAsync: on a slow machine the one-second hold may be over before a poll sees it pending.
        var ticket = a.Submit(Request(Job), "bulk-delete", "s1");
        Assert.Equal(ApprovalState.Pending, ticket.State);
        var final = await a.WaitAsync(ticket.Id).WaitAsync(Patience);
        Assert.Equal(ApprovalState.TimedOut, final.State);
        Assert.Null(final.DecidedBy);

        // If the hold ran out before the ticket was even stored, the timeout is written once it is (fail closed meanwhile).
        var deadline = DateTime.UtcNow + Patience;
        while (await StateInTableAsync(ticket.Id) != "timed_out" && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100);
        }

        Assert.Equal("timed_out", await StateInTableAsync(ticket.Id));
        Assert.Throws<KeyNotFoundException>(() => b.Decide(ticket.Id, approve: true, Alice, null));
        Assert.Equal(ApprovalState.TimedOut, (await b.WaitAsync(ticket.Id)).State);
    }

    [Fact]
    public async Task A_standing_grant_given_on_one_replica_covers_the_same_identity_and_rule_on_every_replica()
    {
        var a = Replica("gw-a");
        var b = Replica("gw-b");
        var first = await HoldAsync(a, Request(Job), "bulk-delete", "s1");
        var wait = a.WaitAsync(first.Id);
        var decided = b.Decide(first.Id, approve: true, Alice, "maintenance", TimeSpan.FromMinutes(30));
        Assert.NotNull(decided.GrantUntil);
        Assert.Equal(ApprovalState.Approved, (await wait.WaitAsync(Patience)).State);

        foreach (var replica in new[] { a, b })
        {
            var covered = replica.Submit(Request(Job), "bulk-delete", "s2");
            Assert.Equal(ApprovalState.Approved, covered.State);
            Assert.Equal(first.Id, covered.GrantedByTicket);
            Assert.Equal("alice", covered.DecidedBy!.Subject);
            Assert.Equal(decided.GrantUntil, covered.GrantUntil);
        }

        // Another rule, or another identity, still asks.
        Assert.Equal(ApprovalState.Pending, a.Submit(Request(Job), "other-rule", "s3").State);
        Assert.Equal(ApprovalState.Pending, b.Submit(Request(Identity("other-job", WorkloadKind.FederatedWorkload)), "bulk-delete", "s4").State);
    }

    [Fact]
    public async Task A_decision_made_while_the_listener_is_disconnected_is_seen_after_it_reconnects()
    {
        var a = Replica("gw-a-listener");
        var b = Replica("gw-b-listener");
        await WaitUntilAsync(() => a.ListenerConnections >= 1, "replica A listens");
        var ticket = await HoldAsync(a, Request(Job), "bulk-delete", "s1");
        var wait = a.WaitAsync(ticket.Id);

        // Hold the reconnect until the decision is made, so it surely falls into the gap.
        var reconnecting = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var mayReconnect = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        a.BeforeListenerReconnect = ct =>
        {
            reconnecting.TrySetResult();
            mayReconnect.Task.Wait(ct);
        };
        var terminated = await fixture.Server.ExecuteScalarIntAsync(
            $"SELECT count(*)::int FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{PostgresApprovalBroker.ListenerApplicationName("gw-a-listener")}') AS t");
        Assert.Equal(1, terminated);
        await reconnecting.Task.WaitAsync(Patience);

        b.Decide(ticket.Id, approve: true, Alice, "during the outage");
        Assert.False(wait.IsCompleted, "nothing but the listener tells replica A about B's decision");
        mayReconnect.SetResult();

        var final = await wait.WaitAsync(Patience);
        Assert.Equal(ApprovalState.Approved, final.State);
        Assert.Equal("during the outage", final.DecisionReason);
        Assert.True(a.ListenerConnections >= 2);
    }

    [Fact]
    public async Task Stopping_a_replica_refuses_what_it_holds_so_no_other_replica_approves_it()
    {
        var a = Replica("gw-a");
        var b = Replica("gw-b");
        var ticket = await HoldAsync(a, Request(Job), "bulk-delete", "s1");
        var wait = a.WaitAsync(ticket.Id);
        await a.DisposeAsync();
        var final = await wait.WaitAsync(Patience);
        Assert.Equal(ApprovalState.TimedOut, final.State);
        Assert.Equal("timed_out", await StateInTableAsync(ticket.Id));
        Assert.Empty(b.Pending);
        Assert.Throws<KeyNotFoundException>(() => b.Decide(ticket.Id, approve: true, Alice, null));
    }

    [Fact]
    public async Task A_replica_that_restarts_times_out_the_tickets_its_previous_run_left_pending()
    {
        var crashed = Replica("gw-a");
        var ticket = await HoldAsync(crashed, Request(Job), "bulk-delete", "s1");
        Assert.Equal("pending", await StateInTableAsync(ticket.Id));

        // Same replica name, a later start: as after a crash that ran no shutdown code.
        var restarted = Replica("gw-a");
        await WaitUntilAsync(() => restarted.ListenerConnections >= 1, "the restarted replica listens");
        var deadline = DateTime.UtcNow + Patience;
        while (await StateInTableAsync(ticket.Id) == "pending")
        {
            Assert.True(DateTime.UtcNow < deadline, "the leftover ticket was not timed out");
            await Task.Delay(20);
        }

        Assert.Equal("timed_out", await StateInTableAsync(ticket.Id));
        Assert.Empty(restarted.Pending);
    }

    [Fact]
    public async Task Without_the_database_a_held_request_is_refused_at_once_and_nothing_can_be_decided()
    {
        var unreachable = new NpgsqlConnectionStringBuilder(fixture.Server.ConnectionString()) { Port = FreePort.Get(), Timeout = 2 }.ConnectionString;
        var a = Replica("gw-down", connectionString: unreachable);
        var ticket = a.Submit(Request(Job), "bulk-delete", "s1");
        Assert.Equal(ApprovalState.Pending, ticket.State);
        var final = await a.WaitAsync(ticket.Id).WaitAsync(Patience);
        Assert.Equal(ApprovalState.TimedOut, final.State);
        Assert.Contains("cannot be reached", final.DecisionReason, StringComparison.Ordinal);
        Assert.ThrowsAny<NpgsqlException>(() => a.Decide(ticket.Id, approve: true, Alice, null));
    }

    [Fact]
    public async Task AddPostgresApprovals_replaces_the_in_memory_broker_and_holds_tickets_under_the_audit_replica_name()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["NhiAudit:Audit:Directory"] = Path.Combine(Path.GetTempPath(), "unused-" + Guid.NewGuid().ToString("N")),
            ["NhiAudit:Audit:Replica"] = "gw-di",
            ["NhiAudit:Approvals:Postgres:ConnectionString"] = fixture.Server.ConnectionString(),
            ["NhiAudit:Approvals:Postgres:Schema"] = _schema,
        }).Build();
        var section = configuration.GetSection("NhiAudit");
        var services = new ServiceCollection();
        services.AddNhiAuditing(section).AddPostgresApprovals(section.GetSection("Approvals:Postgres"));
        await using var provider = services.BuildServiceProvider();

        var broker = Assert.IsType<PostgresApprovalBroker>(provider.GetRequiredService<IApprovalBroker>());
        var ticket = await HoldAsync(broker, Request(Job), "bulk-delete", "s1");
        Assert.Equal("gw-di", await fixture.Server.ExecuteScalarAsync($"SELECT replica FROM \"{_schema}\".approval_tickets WHERE id = '{ticket.Id}'"));
        Assert.Equal(ticket.Id, Assert.Single(Replica("gw-other").Pending).Id);
    }

    [Fact]
    public void Invalid_settings_are_refused_without_echoing_the_connection_string()
    {
        var ex = Assert.Throws<OptionsValidationException>(() => new PostgresApprovalBroker(
            Options.Create(new PostgresApprovalOptions { ConnectionString = "Host=x;Password=hunter2;Bogus Key=1", Schema = "bad-name" }),
            Options.Create(new ApprovalOptions()),
            "gw-a"));
        Assert.Equal(2, ex.Failures.Count());
        Assert.DoesNotContain("hunter2", ex.Message, StringComparison.Ordinal);
        Assert.Throws<OptionsValidationException>(() => new PostgresApprovalBroker(Options.Create(new PostgresApprovalOptions()), Options.Create(new ApprovalOptions()), "gw-a"));
    }
}
