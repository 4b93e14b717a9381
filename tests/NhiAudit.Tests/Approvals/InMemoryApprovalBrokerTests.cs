using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Options;
using NhiAudit.Approvals;

namespace NhiAudit.Tests.Approvals;

public sealed class InMemoryApprovalBrokerTests
{
    private static readonly WorkloadIdentity Job = Identity("ci-job", WorkloadKind.FederatedWorkload);
    private static readonly WorkloadIdentity OtherJob = Identity("other-job", WorkloadKind.FederatedWorkload);
    private static readonly WorkloadIdentity Alice = Identity("alice", WorkloadKind.User);

    private static WorkloadIdentity Identity(string subject, WorkloadKind kind) =>
        new() { Kind = kind, Subject = subject, Issuer = "https://issuer.local", DisplayName = subject, Roles = ["NhiAudit.Approver"] };

    private static AccessRequest Request(WorkloadIdentity identity, string action = "DELETE") => new()
    {
        Protocol = "postgres",
        Target = "orders",
        Action = action,
        Text = $"{action} FROM orders",
        Resources = ["public.orders"],
        Identity = identity,
    };

    private static InMemoryApprovalBroker Broker(TimeSpan? timeout = null, string? webhook = null, TimeSpan? maxGrant = null) =>
        new(Options.Create(new ApprovalOptions { Timeout = timeout ?? TimeSpan.FromMinutes(5), WebhookUrl = webhook, MaxGrant = maxGrant ?? TimeSpan.FromHours(8) }));

    [Fact]
    public async Task Approve_releases_the_waiter_with_the_decision()
    {
        using var broker = Broker();
        var ticket = broker.Submit(Request(Job), "bulk-delete", "s1");
        Assert.Equal(ApprovalState.Pending, ticket.State);
        Assert.Matches("^[a-z2-9]{10}$", ticket.Id);
        Assert.Equal(ticket.RequestedAt + TimeSpan.FromMinutes(5), ticket.ExpiresAt);
        Assert.Equal(ticket.Id, Assert.Single(broker.Pending).Id);

        var wait = broker.WaitAsync(ticket.Id);
        Assert.False(wait.IsCompleted);
        var decided = broker.Decide(ticket.Id, approve: true, Alice, "looks fine");
        var final = await wait.WaitAsync(TimeSpan.FromSeconds(5));

        Assert.Equal(ApprovalState.Approved, final.State);
        Assert.Equal(decided, final);
        Assert.Equal(Alice, final.DecidedBy);
        Assert.Equal("looks fine", final.DecisionReason);
        Assert.Null(final.GrantUntil);
        Assert.Empty(broker.Pending);
        Assert.Equal(final, broker.Find(ticket.Id));
        Assert.Equal(final, await broker.WaitAsync(ticket.Id));
    }

    [Fact]
    public async Task Deny_releases_the_waiter_refused()
    {
        using var broker = Broker();
        var ticket = broker.Submit(Request(Job), "bulk-delete", "s1");
        var wait = broker.WaitAsync(ticket.Id);
        broker.Decide(ticket.Id, approve: false, Alice, "no", TimeSpan.FromHours(1));
        var final = await wait.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(ApprovalState.Denied, final.State);
        Assert.Null(final.GrantUntil);
        Assert.Equal(ApprovalState.Pending, broker.Submit(Request(Job), "bulk-delete", "s1").State);
    }

    [Fact]
    public async Task Nobody_deciding_times_out()
    {
        using var broker = Broker(TimeSpan.FromMilliseconds(300));
        var ticket = broker.Submit(Request(Job), "bulk-delete", "s1");
        var final = await broker.WaitAsync(ticket.Id).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(ApprovalState.TimedOut, final.State);
        Assert.Empty(broker.Pending);
        Assert.Throws<KeyNotFoundException>(() => broker.Decide(ticket.Id, true, Alice, null));
        Assert.Equal(ApprovalState.TimedOut, broker.Find(ticket.Id)!.State);
    }

    [Fact]
    public void A_workload_never_approves_its_own_request()
    {
        using var broker = Broker();
        var ticket = broker.Submit(Request(Job), "bulk-delete", "s1");
        var ex = Assert.Throws<UnauthorizedAccessException>(() => broker.Decide(ticket.Id, true, Job with { Kind = WorkloadKind.User, DisplayName = "me" }, null));
        Assert.Equal("a workload never approves its own request", ex.Message);
        Assert.Single(broker.Pending);

        // Same subject from another issuer is another identity.
        broker.Decide(ticket.Id, true, Job with { Issuer = "https://login.example" }, null);
        Assert.Empty(broker.Pending);
    }

    [Fact]
    public void A_standing_grant_covers_the_same_identity_and_rule_only()
    {
        using var broker = Broker();
        var first = broker.Submit(Request(Job), "bulk-delete", "s1");
        var decided = broker.Decide(first.Id, true, Alice, "deploy window", TimeSpan.FromMinutes(30));
        Assert.Equal(decided.DecidedAt + TimeSpan.FromMinutes(30), decided.GrantUntil);

        var second = broker.Submit(Request(Job, "UPDATE"), "bulk-delete", "s2");
        Assert.Equal(ApprovalState.Approved, second.State);
        Assert.Equal(first.Id, second.GrantedByTicket);
        Assert.Equal(Alice, second.DecidedBy);
        Assert.Equal(decided.GrantUntil, second.GrantUntil);
        Assert.Empty(broker.Pending);
        Assert.Equal(second, broker.Find(second.Id));

        Assert.Equal(ApprovalState.Pending, broker.Submit(Request(OtherJob), "bulk-delete", "s3").State);
        Assert.Equal(ApprovalState.Pending, broker.Submit(Request(Job), "other-rule", "s4").State);
        Assert.Equal(ApprovalState.Pending, broker.Submit(Request(Job with { Issuer = "https://other" }), "bulk-delete", "s5").State);
    }

    [Fact]
    public async Task A_standing_grant_expires_and_is_capped_by_MaxGrant()
    {
        using var broker = Broker(maxGrant: TimeSpan.FromMilliseconds(300));
        var first = broker.Submit(Request(Job), "bulk-delete", "s1");
        var decided = broker.Decide(first.Id, true, Alice, null, TimeSpan.FromHours(5));
        Assert.Equal(decided.DecidedAt + TimeSpan.FromMilliseconds(300), decided.GrantUntil);
        Assert.Equal(ApprovalState.Approved, broker.Submit(Request(Job), "bulk-delete", "s2").State);

        await Task.Delay(500);
        Assert.Equal(ApprovalState.Pending, broker.Submit(Request(Job), "bulk-delete", "s3").State);
    }

    [Fact]
    public async Task Deciding_twice_or_an_unknown_id_is_KeyNotFound()
    {
        using var broker = Broker();
        var ticket = broker.Submit(Request(Job), "bulk-delete", "s1");
        broker.Decide(ticket.Id, false, Alice, null);
        Assert.Throws<KeyNotFoundException>(() => broker.Decide(ticket.Id, true, Alice, null));
        Assert.Throws<KeyNotFoundException>(() => broker.Decide("nope", true, Alice, null));
        Assert.Null(broker.Find("nope"));
        await Assert.ThrowsAsync<KeyNotFoundException>(() => broker.WaitAsync("nope"));
        Assert.Throws<ArgumentOutOfRangeException>(() => broker.Decide(broker.Submit(Request(Job), "r", "s").Id, true, Alice, null, TimeSpan.FromMinutes(-1)));
    }

    [Fact]
    public async Task Many_waiters_and_concurrent_decisions_each_get_their_own_result()
    {
        using var broker = Broker();
        var tickets = Enumerable.Range(0, 64).Select(i => broker.Submit(Request(Identity($"job-{i}", WorkloadKind.FederatedWorkload)), "bulk-delete", $"s{i}")).ToList();
        var waits = tickets.Select(t => (t.Id, First: broker.WaitAsync(t.Id), Second: broker.WaitAsync(t.Id))).ToList();
        await Parallel.ForEachAsync(tickets.Select((t, i) => (t, i)), (item, _) =>
        {
            broker.Decide(item.t.Id, item.i % 2 == 0, Alice, null);
            return ValueTask.CompletedTask;
        });

        for (var i = 0; i < waits.Count; i++)
        {
            var expected = i % 2 == 0 ? ApprovalState.Approved : ApprovalState.Denied;
            Assert.Equal(expected, (await waits[i].First.WaitAsync(TimeSpan.FromSeconds(5))).State);
            Assert.Equal(expected, (await waits[i].Second.WaitAsync(TimeSpan.FromSeconds(5))).State);
        }

        Assert.Empty(broker.Pending);
    }

    [Fact]
    public async Task Racing_approvers_decide_a_ticket_once()
    {
        using var broker = Broker();
        var ticket = broker.Submit(Request(Job), "bulk-delete", "s1");
        var winners = 0;
        await Parallel.ForEachAsync(Enumerable.Range(0, 16), (_, _) =>
        {
            try
            {
                broker.Decide(ticket.Id, true, Alice, null);
                Interlocked.Increment(ref winners);
            }
            catch (KeyNotFoundException)
            {
            }

            return ValueTask.CompletedTask;
        });
        Assert.Equal(1, winners);
    }

    [Fact]
    public async Task Cancelling_a_wait_leaves_the_ticket_pending()
    {
        using var broker = Broker();
        var ticket = broker.Submit(Request(Job), "bulk-delete", "s1");
        using var cts = new CancellationTokenSource(50);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => broker.WaitAsync(ticket.Id, cts.Token));
        Assert.Single(broker.Pending);
    }

    [Fact]
    public async Task Dispose_refuses_what_is_still_waiting()
    {
        var broker = Broker();
        var ticket = broker.Submit(Request(Job), "bulk-delete", "s1");
        var wait = broker.WaitAsync(ticket.Id);
        broker.Dispose();
        Assert.Equal(ApprovalState.TimedOut, (await wait.WaitAsync(TimeSpan.FromSeconds(5))).State);
        Assert.Throws<ObjectDisposedException>(() => broker.Submit(Request(Job), "bulk-delete", "s1"));
    }

    [Fact]
    public void Invalid_options_are_refused()
    {
        Assert.Throws<OptionsValidationException>(() => Broker(TimeSpan.Zero));
        Assert.Throws<OptionsValidationException>(() => Broker(webhook: "ftp://example"));
        Assert.Throws<OptionsValidationException>(() => Broker(maxGrant: TimeSpan.FromSeconds(-1)));
    }

    [Fact]
    public async Task The_webhook_receives_a_notice_without_holding_up_Submit()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        using var broker = Broker(webhook: $"http://127.0.0.1:{port}/hooks/approvals");

        var ticket = broker.Submit(Request(Job), "bulk-delete", "s1");
        Assert.Equal(ApprovalState.Pending, ticket.State);

        using var client = await listener.AcceptTcpClientAsync().WaitAsync(TimeSpan.FromSeconds(10));
        var stream = client.GetStream();
        var received = new StringBuilder();
        var buffer = new byte[8192];
        int bodyStart;
        while ((bodyStart = received.ToString().IndexOf("\r\n\r\n", StringComparison.Ordinal)) < 0)
        {
            var n = await stream.ReadAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
            Assert.NotEqual(0, n);
            received.Append(Encoding.UTF8.GetString(buffer, 0, n));
        }

        var head = received.ToString()[..bodyStart];
        Assert.StartsWith("POST /hooks/approvals HTTP/1.1", head, StringComparison.Ordinal);
        var length = int.Parse(head.Split("\r\n").Single(l => l.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase)).Split(':')[1].Trim(), System.Globalization.CultureInfo.InvariantCulture);
        while (Encoding.UTF8.GetByteCount(received.ToString()[(bodyStart + 4)..]) < length)
        {
            var n = await stream.ReadAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
            Assert.NotEqual(0, n);
            received.Append(Encoding.UTF8.GetString(buffer, 0, n));
        }

        await stream.WriteAsync("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"u8.ToArray());
        using var notice = JsonDocument.Parse(received.ToString()[(bodyStart + 4)..]);
        var root = notice.RootElement;
        Assert.Equal(ticket.Id, root.GetProperty("id").GetString());
        Assert.Equal("bulk-delete", root.GetProperty("rule").GetString());
        Assert.Equal("s1", root.GetProperty("sessionId").GetString());
        Assert.Equal("postgres", root.GetProperty("protocol").GetString());
        Assert.Equal("orders", root.GetProperty("target").GetString());
        Assert.Equal("DELETE", root.GetProperty("action").GetString());
        Assert.Equal("DELETE FROM orders", root.GetProperty("text").GetString());
        Assert.Equal("ci-job", root.GetProperty("identity").GetProperty("subject").GetString());
        Assert.Equal("FederatedWorkload", root.GetProperty("identity").GetProperty("kind").GetString());
        Assert.Equal(ticket.ExpiresAt, root.GetProperty("expiresAt").GetDateTimeOffset());
    }

    [Fact]
    public void An_unreachable_webhook_does_not_fail_Submit()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        using var broker = Broker(webhook: $"http://127.0.0.1:{port}/");
        Assert.Equal(ApprovalState.Pending, broker.Submit(Request(Job), "bulk-delete", "s1").State);
    }
}
