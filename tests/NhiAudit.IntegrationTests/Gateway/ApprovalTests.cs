using System.Globalization;
using NhiAudit.IntegrationTests.Infrastructure;
using Npgsql;

namespace NhiAudit.IntegrationTests.Gateway;

/// <summary>
/// Just-in-time approval through the real gateway process: a DELETE without WHERE is held on the live connection,
/// and an approver decides with <c>nhiaudit approvals</c>.
/// </summary>
[Collection(PostgresCollectionDefinition.Name)]
public sealed class ApprovalTests(PostgresServerFixture fixture) : IAsyncLifetime
{
    private GatewayProcess _gateway = null!;
    private int _adminPort;
    private string _table = "";
    private string _approverToken = "";

    public async Task InitializeAsync()
    {
        _adminPort = FreePort.Get();
        _gateway = await GatewayProcess.StartAsync(fixture.Server, configure: section =>
        {
            section["Policy"] = new
            {
                Rules = new[] { new { Name = "bulk-delete", When = "request.action == 'DELETE' && !request.hasWhere", Effect = "RequireApproval" } },
            };
            section["Approvals"] = new { Timeout = "00:00:15" };
            section["Admin"] = new { Listen = $"127.0.0.1:{_adminPort.ToString(CultureInfo.InvariantCulture)}" };
        });
        Assert.True(await FreePort.WaitForListeningAsync(_adminPort, TimeSpan.FromSeconds(30)), "the admin listener did not start");
        _approverToken = await _gateway.MintTokenAsync("alice", "--kind", "User", "--role", "NhiAudit.Approver");
        _table = "held_" + Guid.NewGuid().ToString("N")[..8];
        await using var admin = new NpgsqlConnection(fixture.Server.ConnectionString());
        await admin.OpenAsync();
        await using var create = new NpgsqlCommand($"CREATE TABLE {_table} (id int); INSERT INTO {_table} SELECT generate_series(1, 10)", admin);
        await create.ExecuteNonQueryAsync();
    }

    public async Task DisposeAsync() => await _gateway.DisposeAsync();

    private Task<(NpgsqlConnection Connection, Task<string> Ticket)> OpenAsync(string subject) => _gateway.OpenWatchingForTicketAsync(subject, commandTimeoutSeconds: 60);

    private Task<ProcessResult> ApprovalsAsync(params string[] args) => GatewayProcess.ApprovalsCliAsync(_adminPort, _approverToken, args);

    [Fact]
    public async Task A_held_delete_runs_once_an_approver_grants_it_through_the_cli()
    {
        var (connection, ticketTask) = await OpenAsync("held-approve");
        await using var _ = connection;
        await using var delete = new NpgsqlCommand($"DELETE FROM {_table}", connection);
        var running = delete.ExecuteNonQueryAsync();
        var ticket = await ticketTask.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.False(running.IsCompleted);
        Assert.Equal(10, await fixture.Server.ExecuteScalarIntAsync($"SELECT count(*) FROM {_table}"));

        var list = await ApprovalsAsync("list");
        Assert.True(list.Succeeded, list.Describe("approvals list"));
        Assert.Contains(ticket, list.StandardOutput, StringComparison.Ordinal);

        var approve = await ApprovalsAsync("approve", ticket, "--reason", "cleanup before release 1.4.2");
        Assert.True(approve.Succeeded, approve.Describe("approvals approve"));
        Assert.Equal(10, await running.WaitAsync(TimeSpan.FromSeconds(10)));

        var records = GatewayHost.ReadRecords(_gateway.AuditDirectory);
        var decided = records.OfType("pg.approval.decided").Single(r => r.Str("approval") == ticket);
        Assert.Equal("Approved", decided.Str("state"));
        Assert.Equal("alice", decided.GetProperty("decidedBy").GetProperty("subject").GetString());
        Assert.Equal("cleanup before release 1.4.2", decided.Str("why"));
        var executed = records.OfType("pg.request").Single(r => r.Str("approval") == ticket);
        Assert.Equal("DELETE", executed.Str("kind"));
        Assert.Contains(records.OfType("pg.approval.requested"), r => r.Str("approval") == ticket && r.Subject() == "held-approve");
    }

    [Fact]
    public async Task A_grant_for_a_duration_lets_the_same_identity_and_rule_through_without_another_hold()
    {
        var (connection, ticketTask) = await OpenAsync("held-grant");
        await using var _ = connection;
        await using var first = new NpgsqlCommand($"DELETE FROM {_table}", connection);
        var running = first.ExecuteNonQueryAsync();
        var ticket = await ticketTask.WaitAsync(TimeSpan.FromSeconds(10));
        var approve = await ApprovalsAsync("approve", ticket, "--grant-for", "10", "--reason", "maintenance window");
        Assert.True(approve.Succeeded, approve.Describe("approvals approve --grant-for"));
        Assert.Equal(10, await running.WaitAsync(TimeSpan.FromSeconds(10)));

        // Same identity, same rule, inside the window: runs at once, and its record names the grant.
        await using var second = new NpgsqlCommand($"DELETE FROM {_table}", connection);
        Assert.Equal(0, await second.ExecuteNonQueryAsync().WaitAsync(TimeSpan.FromSeconds(5)));
        var records = GatewayHost.ReadRecords(_gateway.AuditDirectory);
        var executed = records.OfType("pg.request").Where(r => r.Subject() == "held-grant" && r.Str("kind") == "DELETE").ToList();
        Assert.Equal(2, executed.Count);
        Assert.All(executed, r => Assert.Equal(ticket, r.Str("approval")));
        Assert.Single(records.OfType("pg.approval.requested"), r => r.Subject() == "held-grant");
    }

    [Fact]
    public async Task A_denied_hold_fails_cleanly_and_the_session_goes_on()
    {
        var (connection, ticketTask) = await OpenAsync("held-deny");
        await using var _ = connection;
        await using var delete = new NpgsqlCommand($"DELETE FROM {_table}", connection);
        var running = delete.ExecuteNonQueryAsync();
        var ticket = await ticketTask.WaitAsync(TimeSpan.FromSeconds(10));
        var deny = await ApprovalsAsync("deny", ticket, "--reason", "not during business hours");
        Assert.True(deny.Succeeded, deny.Describe("approvals deny"));

        var error = await Assert.ThrowsAsync<PostgresException>(() => running.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal("42501", error.SqlState);
        Assert.Contains("denied by", error.MessageText, StringComparison.Ordinal);
        Assert.Contains("not during business hours", error.MessageText, StringComparison.Ordinal);
        Assert.Equal(10, await fixture.Server.ExecuteScalarIntAsync($"SELECT count(*) FROM {_table}"));

        await using var next = new NpgsqlCommand("SELECT 'still here'", connection);
        Assert.Equal("still here", await next.ExecuteScalarAsync());
        var decided = GatewayHost.ReadRecords(_gateway.AuditDirectory).OfType("pg.approval.decided").Single(r => r.Str("approval") == ticket);
        Assert.Equal("Denied", decided.Str("state"));
        Assert.Equal("alice", decided.GetProperty("decidedBy").GetProperty("subject").GetString());
    }

    [Fact]
    public async Task A_hold_nobody_decides_times_out_and_fails_cleanly()
    {
        var (connection, ticketTask) = await OpenAsync("held-timeout");
        await using var _ = connection;
        await using var delete = new NpgsqlCommand($"DELETE FROM {_table}", connection);
        var running = delete.ExecuteNonQueryAsync();
        var ticket = await ticketTask.WaitAsync(TimeSpan.FromSeconds(10));
        var error = await Assert.ThrowsAsync<PostgresException>(() => running.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal("42501", error.SqlState);
        Assert.Contains("timed out", error.MessageText, StringComparison.Ordinal);
        Assert.Equal(10, await fixture.Server.ExecuteScalarIntAsync($"SELECT count(*) FROM {_table}"));
        var decided = GatewayHost.ReadRecords(_gateway.AuditDirectory).OfType("pg.approval.decided").Single(r => r.Str("approval") == ticket);
        Assert.Equal("TimedOut", decided.Str("state"));
    }

    [Fact]
    public async Task A_cancel_while_held_fails_the_statement_as_cancelled_and_the_session_goes_on()
    {
        var (connection, ticketTask) = await OpenAsync("held-cancel");
        await using var _ = connection;
        await using var delete = new NpgsqlCommand($"DELETE FROM {_table}", connection);
        using var cancel = new CancellationTokenSource();
        var running = delete.ExecuteNonQueryAsync(cancel.Token);
        var ticket = await ticketTask.WaitAsync(TimeSpan.FromSeconds(10));
        await cancel.CancelAsync();

        // As direct: a cancelled statement fails with 57014, well before the 15 s approval timeout.
        var error = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => running.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.Equal("57014", Assert.IsType<PostgresException>(error.InnerException).SqlState);
        Assert.Equal(10, await fixture.Server.ExecuteScalarIntAsync($"SELECT count(*) FROM {_table}"));

        await using var after = new NpgsqlCommand("SELECT 'still usable'", connection);
        Assert.Equal("still usable", await after.ExecuteScalarAsync());
        var late = await ApprovalsAsync("approve", ticket, "--reason", "too late");
        Assert.NotNull(late);
        Assert.Equal(10, await fixture.Server.ExecuteScalarIntAsync($"SELECT count(*) FROM {_table}"));
        var records = GatewayHost.ReadRecords(_gateway.AuditDirectory);
        Assert.Contains(records.OfType("pg.approval.cancelled"), r => r.Str("approval") == ticket && r.Subject() == "held-cancel");
        var refused = records.OfType("pg.request").Single(r => r.Subject() == "held-cancel" && r.Str("kind") == "DELETE");
        Assert.StartsWith("canceling statement due to user request", refused.Str("refused"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_client_that_vanishes_while_held_is_noticed_at_once_and_recorded()
    {
        var client = await RawPgClient.LoginAsync(_gateway.Port, await _gateway.MintTokenAsync("held-vanish"));
        await client.SendAsync(RawPgClient.Query($"DELETE FROM {_table}"));
        var notice = await client.ReadMessageAsync(TimeSpan.FromSeconds(10));
        Assert.Equal((byte)'N', notice.Type);
        var ticket = System.Text.RegularExpressions.Regex.Match(RawPgClient.ErrorField(notice.Body, 'M'), @"held for approval (\S+)").Groups[1].Value;

        // The process dies: its socket closes without a Terminate message.
        await client.DisposeAsync();

        List<System.Text.Json.JsonElement> records = [];
        for (var i = 0; i < 50 && !records.OfType("pg.approval.abandoned").Any(); i++)
        {
            await Task.Delay(100);
            records = GatewayHost.ReadRecords(_gateway.AuditDirectory);
        }

        Assert.Contains(records.OfType("pg.approval.abandoned"), r => r.Str("approval") == ticket && r.Subject() == "held-vanish");
        Assert.Contains(records.OfType("pg.session.end"), r => r.Subject() == "held-vanish" && r.Str("endReason")!.Contains("held for approval", StringComparison.Ordinal));
        _ = await ApprovalsAsync("approve", ticket, "--reason", "nobody is waiting");
        await Task.Delay(500);
        Assert.Equal(10, await fixture.Server.ExecuteScalarIntAsync($"SELECT count(*) FROM {_table}"));
    }

    [Fact]
    public async Task A_workload_cannot_approve_its_own_request()
    {
        var selfToken = await _gateway.MintTokenAsync("self-approver", "--role", "NhiAudit.Approver");
        var (connection, ticketTask) = await OpenAsync("self-approver");
        await using var _ = connection;
        await using var delete = new NpgsqlCommand($"DELETE FROM {_table}", connection);
        var running = delete.ExecuteNonQueryAsync();
        var ticket = await ticketTask.WaitAsync(TimeSpan.FromSeconds(10));
        var result = await GatewayProcess.RunCliAsync(["approvals", "approve", ticket, "--admin", $"http://127.0.0.1:{_adminPort.ToString(CultureInfo.InvariantCulture)}", "--token", selfToken]);
        Assert.Equal(1, result.ExitCode);
        var deny = await ApprovalsAsync("deny", ticket);
        Assert.True(deny.Succeeded, deny.Describe("approvals deny"));
        await Assert.ThrowsAsync<PostgresException>(() => running.WaitAsync(TimeSpan.FromSeconds(10)));
    }

}
