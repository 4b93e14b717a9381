using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using NhiAudit.IntegrationTests.Infrastructure;
using Npgsql;

namespace NhiAudit.IntegrationTests.Gateway;

/// <summary>
/// Every wait in the relay ends on a cause: the client's cancel or close, the server's answer or close, a timeout.
/// Each case checks on the server, over a direct connection, that nothing is left running or half done.
/// </summary>
[Collection(PostgresCollectionDefinition.Name)]
public sealed class NoHangTests(PostgresServerFixture fixture) : IAsyncLifetime
{
    private GatewayHost _gateway = null!;
    private string _table = "";

    public async Task InitializeAsync()
    {
        _gateway = await GatewayHost.StartAsync(fixture.Server, o => o.ClientTlsRequired = false);
        _table = "nohang_" + Guid.NewGuid().ToString("N")[..8];
        await using var app = new NpgsqlConnection(fixture.Server.ConnectionString());
        await app.OpenAsync();
        await using var create = new NpgsqlCommand($"CREATE TABLE {_table} (id int, note text)", app);
        await create.ExecuteNonQueryAsync();
    }

    public async Task DisposeAsync() => await _gateway.DisposeAsync();

    private async Task<int> ServerBackendsAsync(string query) =>
        await fixture.Server.ExecuteScalarIntAsync($"SELECT count(*)::int FROM pg_stat_activity WHERE query = '{query.Replace("'", "''", StringComparison.Ordinal)}' AND state = 'active'");

    private async Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan within, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!await condition())
        {
            Assert.True(clock.Elapsed < within, $"{what} did not happen within {within.TotalSeconds:0} s");
            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task A_client_that_vanishes_while_its_query_runs_does_not_leave_the_query_running_on_the_server()
    {
        var client = await RawPgClient.LoginAsync(_gateway.Port, _gateway.MintToken("vanish-running"));
        const string sleep = "SELECT pg_sleep(60) AS vanish_running";
        await client.SendAsync(RawPgClient.Query(sleep));
        await WaitUntilAsync(async () => await ServerBackendsAsync(sleep) == 1, TimeSpan.FromSeconds(10), "the query starting on the server");

        await client.DisposeAsync();

        // The gateway cancels what nobody will read; direct, the server would sleep on for the whole minute.
        await WaitUntilAsync(async () => await ServerBackendsAsync(sleep) == 0, TimeSpan.FromSeconds(10), "the server's statement ending");
        // The session's end is recorded after the cancel went upstream, so it may come a moment after the statement ended.
        await WaitUntilAsync(
            async () => (await _gateway.ReadRecordsAsync()).OfType("pg.session.end").Any(r => r.Subject() == "vanish-running"),
            TimeSpan.FromSeconds(10),
            "the session's end being recorded");
    }

    [Fact]
    public async Task A_client_that_vanishes_in_the_middle_of_copy_in_leaves_no_rows_and_no_backend()
    {
        var client = await RawPgClient.LoginAsync(_gateway.Port, _gateway.MintToken("vanish-copy"));
        await client.SendAsync(RawPgClient.Query($"COPY {_table} (id, note) FROM STDIN"));
        var copyIn = await client.ReadMessageAsync(TimeSpan.FromSeconds(10));
        Assert.Equal((byte)'G', copyIn.Type);
        await client.SendAsync(RawPgClient.Message((byte)'d', System.Text.Encoding.UTF8.GetBytes("1\tfirst\n2\tsecond\n")));
        await Task.Delay(200);
        await client.DisposeAsync();

        await WaitUntilAsync(
            async () => await fixture.Server.ExecuteScalarIntAsync($"SELECT count(*)::int FROM pg_stat_activity WHERE query LIKE 'COPY {_table}%'") == 0,
            TimeSpan.FromSeconds(10),
            "the COPY's backend ending");
        Assert.Equal(0, await fixture.Server.ExecuteScalarIntAsync($"SELECT count(*)::int FROM {_table}"));
    }

    [Fact]
    public async Task A_cancelled_copy_in_fails_as_direct_and_the_session_goes_on()
    {
        async Task<string> CancelledCopyAsync(string connectionString)
        {
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync();
            var writer = await connection.BeginTextImportAsync($"COPY {_table} (id, note) FROM STDIN");
            await writer.WriteAsync("7\tseven\n");
            await writer.FlushAsync();
            // Npgsql's cancel of an import is a CopyFail.
            var error = await Record.ExceptionAsync(async () =>
            {
                ((NpgsqlCopyTextWriter)writer).Cancel();
                await writer.DisposeAsync();
            });
            await using var after = new NpgsqlCommand("SELECT 'usable'", connection);
            return $"{(error as PostgresException ?? error?.InnerException as PostgresException)?.SqlState}|{await after.ExecuteScalarAsync()}";
        }

        var direct = await CancelledCopyAsync(fixture.Server.ConnectionString());
        var through = await CancelledCopyAsync(_gateway.ConnectionString(_gateway.MintToken("cancel-copy")));
        Assert.Equal(direct, through);
        Assert.Equal(0, await fixture.Server.ExecuteScalarIntAsync($"SELECT count(*)::int FROM {_table}"));
    }

    [Fact]
    public async Task An_upstream_that_accepts_and_never_answers_fails_the_login_within_the_connect_timeout()
    {
        using var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        var port = ((IPEndPoint)silent.LocalEndpoint).Port;
        var accepted = new List<Socket>();
        var accepting = Task.Run(async () =>
        {
            while (true)
            {
                accepted.Add(await silent.AcceptSocketAsync());
            }
        });

        await using var stalled = await GatewayHost.StartAsync(fixture.Server, o =>
        {
            o.Extra["NhiAudit:Postgres:Targets:0:Upstream:Port"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture);
            o.Extra["NhiAudit:Postgres:Targets:0:Upstream:ConnectTimeout"] = "00:00:02";
            o.SslMode = "Disable";
        });
        var clock = Stopwatch.StartNew();
        await using var connection = new NpgsqlConnection(stalled.ConnectionString(stalled.MintToken("stalled-upstream"), b => b.Timeout = 30));
        var error = await Assert.ThrowsAnyAsync<NpgsqlException>(() => connection.OpenAsync());
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), $"the login failed only after {clock.Elapsed}");
        var postgres = error as PostgresException ?? error.InnerException as PostgresException;
        Assert.Equal("08006", postgres?.SqlState);
        Assert.Contains("did not complete the login", postgres!.MessageText, StringComparison.Ordinal);
        silent.Stop();
        foreach (var socket in accepted)
        {
            socket.Dispose();
        }
    }
}
