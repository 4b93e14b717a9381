using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using NhiAudit.IntegrationTests.Infrastructure;
using Npgsql;

namespace NhiAudit.IntegrationTests.Gateway;

/// <summary>
/// Two real gateway replicas sharing approvals through PostgreSQL: a statement held on replica A is listed and decided
/// through replica B's admin API with <c>nhiaudit approvals</c>, and runs on A exactly once.
/// </summary>
[Collection(PostgresCollectionDefinition.Name)]
public sealed class ReplicaApprovalTests(PostgresServerFixture fixture) : IAsyncLifetime
{
    private readonly string _approvalSchema = "approvals_" + Guid.NewGuid().ToString("N")[..8];
    private readonly string _table = "replica_held_" + Guid.NewGuid().ToString("N")[..8];
    private Replica _a = null!;
    private Replica _b = null!;
    private string _approverToken = "";

    private string Deletes => _table + "_deletes";

    public async Task InitializeAsync()
    {
        // The table a held DELETE touches, and a statement-level trigger counting the DELETEs the server ran on it.
        await using (var admin = new NpgsqlConnection(fixture.Server.ConnectionString()))
        {
            await admin.OpenAsync();
            await using var create = new NpgsqlCommand(
                $"""
                CREATE TABLE {_table} (id int);
                INSERT INTO {_table} SELECT generate_series(1, 3);
                CREATE TABLE {Deletes} (at timestamptz NOT NULL DEFAULT clock_timestamp());
                CREATE FUNCTION {Deletes}_count() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO {Deletes} DEFAULT VALUES; RETURN NULL; END $$;
                CREATE TRIGGER {Deletes}_trigger AFTER DELETE ON {_table} FOR EACH STATEMENT EXECUTE FUNCTION {Deletes}_count();
                """,
                admin);
            await create.ExecuteNonQueryAsync();
        }

        _a = await StartReplicaAsync("gw-a");
        _b = await StartReplicaAsync("gw-b");
        _approverToken = await _b.Gateway.MintTokenAsync("alice", "--kind", "User", "--role", "NhiAudit.Approver");
    }

    public async Task DisposeAsync()
    {
        if (_a is not null)
        {
            await _a.Gateway.DisposeAsync();
        }

        if (_b is not null)
        {
            await _b.Gateway.DisposeAsync();
        }
    }

    private async Task<Replica> StartReplicaAsync(string name)
    {
        var adminPort = FreePort.Get();
        var directory = Path.Combine(PostgresServer.TempRoot, "gwr-" + name + "-" + Guid.NewGuid().ToString("N")[..8]);
        var gateway = await GatewayProcess.StartAsync(fixture.Server, directory, configure: section =>
        {
            section["Audit"] = new { Directory = Path.Combine(directory, "audit"), Durability = "WriteAhead", Replica = name };
            section["Policy"] = new
            {
                Rules = new[] { new { Name = "hold-deletes", When = "request.action == 'DELETE'", Effect = "RequireApproval" } },
            };
            section["Approvals"] = new
            {
                Timeout = "00:01:00",
                Postgres = new { ConnectionString = fixture.Server.ConnectionString(), Schema = _approvalSchema },
            };
            section["Admin"] = new { Listen = $"127.0.0.1:{adminPort.ToString(CultureInfo.InvariantCulture)}" };
        });
        Assert.True(await FreePort.WaitForListeningAsync(adminPort, TimeSpan.FromSeconds(30)), $"the admin listener of {name} did not start");
        return new Replica(name, gateway, adminPort);
    }

    private Task<(NpgsqlConnection Connection, Task<string> Ticket)> OpenOnAAsync(string subject) => _a.Gateway.OpenWatchingForTicketAsync(subject, commandTimeoutSeconds: 90);

    private Task<ProcessResult> ApprovalsOnBAsync(params string[] args) => GatewayProcess.ApprovalsCliAsync(_b.AdminPort, _approverToken, args);

    private async Task ListedOnBAsync(string ticket)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            var list = await ApprovalsOnBAsync("list");
            Assert.True(list.Succeeded, list.Describe("approvals list on B"));
            if (list.StandardOutput.Contains(ticket, StringComparison.Ordinal))
            {
                return;
            }

            Assert.True(DateTime.UtcNow < deadline, $"replica B never listed ticket {ticket}:\n{list.StandardOutput}");
            await Task.Delay(200);
        }
    }

    private Task<int> ServerDeletesAsync() => fixture.Server.ExecuteScalarIntAsync($"SELECT count(*)::int FROM {Deletes}");

    [Fact]
    public async Task A_delete_held_on_replica_A_is_approved_through_replica_B_and_runs_exactly_once()
    {
        var (connection, ticketTask) = await OpenOnAAsync("replica-approve");
        await using var _ = connection;
        var statement = $"DELETE FROM {_table} WHERE id = 1";
        await using var delete = new NpgsqlCommand(statement, connection);
        var running = delete.ExecuteNonQueryAsync();
        var ticket = await ticketTask.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.False(running.IsCompleted);

        // Replica A stores the ticket in the background, so B may list it a moment after the client is told.
        await ListedOnBAsync(ticket);

        var approve = await ApprovalsOnBAsync("approve", ticket, "--reason", "approved on the other replica");
        Assert.True(approve.Succeeded, approve.Describe("approvals approve on B"));
        Assert.Equal(1, await running.WaitAsync(TimeSpan.FromSeconds(60)));

        // Exactly once: the trigger counted one DELETE statement, one row is gone, and the server's own log shows the
        // statement once.
        Assert.Equal(1, await ServerDeletesAsync());
        Assert.Equal(2, await fixture.Server.ExecuteScalarIntAsync($"SELECT count(*)::int FROM {_table}"));
        var serverLog = await fixture.Server.ReadLogAsync();
        var executed = new Regex(@"LOG:  (statement|execute [^:]*): " + Regex.Escape(statement) + "$", RegexOptions.CultureInvariant);
        Assert.Single(serverLog.Split('\n'), line => executed.IsMatch(line.TrimEnd('\r')));

        // A second approval of the same ticket is refused: it is no longer pending anywhere.
        var again = await ApprovalsOnBAsync("approve", ticket);
        Assert.Equal(1, again.ExitCode);

        var recordsA = GatewayHost.ReadRecords(_a.Gateway.AuditDirectory);
        var decided = recordsA.OfType("pg.approval.decided").Single(r => r.Str("approval") == ticket);
        Assert.Equal("Approved", decided.Str("state"));
        Assert.Equal("alice", decided.GetProperty("decidedBy").GetProperty("subject").GetString());
        Assert.Equal("approved on the other replica", decided.Str("why"));
        Assert.Single(recordsA.OfType("pg.request"), r => r.Str("approval") == ticket && r.Str("kind") == "DELETE");
        Assert.Empty(GatewayHost.ReadRecords(_b.Gateway.AuditDirectory).OfType("pg.approval.decided"));

        AssertNamesItsReplica(_a);
        AssertNamesItsReplica(_b);
    }

    [Fact]
    public async Task A_denial_through_replica_B_refuses_the_delete_held_on_replica_A()
    {
        var (connection, ticketTask) = await OpenOnAAsync("replica-deny");
        await using var _ = connection;
        await using var delete = new NpgsqlCommand($"DELETE FROM {_table} WHERE id = 2", connection);
        var running = delete.ExecuteNonQueryAsync();
        var ticket = await ticketTask.WaitAsync(TimeSpan.FromSeconds(30));

        await ListedOnBAsync(ticket);
        var deny = await ApprovalsOnBAsync("deny", ticket, "--reason", "not on this replica's watch");
        Assert.True(deny.Succeeded, deny.Describe("approvals deny on B"));
        var error = await Assert.ThrowsAsync<PostgresException>(() => running.WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.Equal("42501", error.SqlState);
        Assert.Contains("denied by", error.MessageText, StringComparison.Ordinal);
        Assert.Contains("not on this replica's watch", error.MessageText, StringComparison.Ordinal);
        Assert.Equal(0, await ServerDeletesAsync());
        Assert.Equal(3, await fixture.Server.ExecuteScalarIntAsync($"SELECT count(*)::int FROM {_table}"));

        await using var next = new NpgsqlCommand("SELECT 'still here'", connection);
        Assert.Equal("still here", await next.ExecuteScalarAsync());
        var decided = GatewayHost.ReadRecords(_a.Gateway.AuditDirectory).OfType("pg.approval.decided").Single(r => r.Str("approval") == ticket);
        Assert.Equal("Denied", decided.Str("state"));
    }

    /// <summary>
    /// The replica's name is in its config and, once the audit log carries it, in log.opened (the field is added by
    /// a separate change; until then only the config is checked).
    /// </summary>
    private static void AssertNamesItsReplica(Replica replica)
    {
        using var config = JsonDocument.Parse(File.ReadAllText(replica.Gateway.ConfigFile));
        Assert.Equal(replica.Name, config.RootElement.GetProperty("NhiAudit").GetProperty("Audit").GetProperty("Replica").GetString());
        var opened = GatewayHost.ReadRecords(replica.Gateway.AuditDirectory).OfType("log.opened").ToList();
        Assert.NotEmpty(opened);
        foreach (var record in opened.Where(r => r.TryGetProperty("replica", out _)))
        {
            Assert.Equal(replica.Name, record.Str("replica"));
        }
    }


    private sealed record Replica(string Name, GatewayProcess Gateway, int AdminPort);
}
