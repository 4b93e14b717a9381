using System.Text.Json;
using Microsoft.Win32.SafeHandles;
using NhiAudit.Audit;
using NhiAudit.IntegrationTests.Infrastructure;
using Npgsql;

namespace NhiAudit.IntegrationTests.Gateway;

/// <summary>
/// The audit log on a real filesystem that fills up: a 2 MiB tmpfs under the real <c>nhiaudit</c> process, no injected
/// errors (<see cref="AuditFailureTests"/> injects them in-process).
/// </summary>
[Collection(PostgresCollectionDefinition.Name)]
public sealed class FullDiskTests(PostgresServerFixture fixture)
{
    private const string AuditLogUnavailable = "58030";

    [Fact]
    public async Task A_full_log_filesystem_refuses_statements_until_space_is_freed_and_the_chain_has_no_gap()
    {
        Assert.True(Environment.IsPrivilegedProcess, "this test mounts a small tmpfs for the audit log and must run as root (as eng/test.sh does)");
        var table = "fulldisk_" + Guid.NewGuid().ToString("N")[..8];
        await fixture.Server.ExecuteAsync($"CREATE TABLE {table} (id int); GRANT ALL ON {table} TO {PostgresServer.AppUser}");

        var directory = Path.Combine(PostgresServer.TempRoot, "gwp-fulldisk-" + Guid.NewGuid().ToString("N")[..6]);
        await using var filesystem = await SmallTmpfs.MountAsync(Path.Combine(directory, "logfs"), "2m");
        var auditDirectory = Path.Combine(filesystem.MountPoint, "audit");
        var adminPort = FreePort.Get();
        await using var gateway = await GatewayProcess.StartAsync(fixture.Server, directory, "WriteAhead", section =>
        {
            section["Audit"] = new { Directory = auditDirectory, Durability = "WriteAhead" };
            section["Admin"] = new { Listen = $"127.0.0.1:{adminPort.ToString(System.Globalization.CultureInfo.InvariantCulture)}" };
        });
        using var admin = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{adminPort.ToString(System.Globalization.CultureInfo.InvariantCulture)}/") };
        Assert.Equal(System.Net.HttpStatusCode.OK, (await admin.GetAsync(new Uri("readyz", UriKind.Relative))).StatusCode);
        var token = await gateway.MintTokenAsync("full-disk-job");
        var connectionString = $"Host=127.0.0.1;Port={gateway.Port};Username=ci-job;Password={token};Database=app;SSL Mode=Disable;Pooling=false";

        await using var session = new NpgsqlConnection(connectionString);
        await session.OpenAsync();
        await using var concurrentSession = new NpgsqlConnection(connectionString);
        await concurrentSession.OpenAsync();
        await ExecuteAsync(session, $"INSERT INTO {table} VALUES (0)");

        var filler = Path.Combine(filesystem.MountPoint, "filler");
        FillUntilFull(filler);

        // tmpfs hands out whole pages, so the rest of the segment's last page may still take a record or two: the
        // statement that finds no room is the one refused.
        PostgresException? refusal = null;
        var refusedValue = 0;
        for (var value = 1; value <= 100 && refusal is null; value++)
        {
            try
            {
                await ExecuteAsync(session, $"INSERT INTO {table} VALUES ({value})");
            }
            catch (PostgresException error)
            {
                refusal = error;
                refusedValue = value;
            }
        }

        Assert.NotNull(refusal);
        Assert.Equal(AuditLogUnavailable, refusal.SqlState);
        Assert.Contains("audit log cannot be written", refusal.MessageText, StringComparison.Ordinal);
        Assert.Contains("No space left on device", refusal.MessageText, StringComparison.Ordinal);

        // Another session that was already open is refused too (its statement's record is longer than the one that
        // did not fit, so no leftover bytes can take it), and so is a new login: its session start cannot be recorded.
        var concurrentRefusal = await Assert.ThrowsAsync<PostgresException>(() =>
            ExecuteAsync(concurrentSession, $"SELECT count(*) AS rows_seen_by_the_concurrent_session FROM {table} WHERE id >= 0"));
        Assert.Equal(AuditLogUnavailable, concurrentRefusal.SqlState);
        await using (var newSession = new NpgsqlConnection(connectionString))
        {
            var loginRefusal = await Assert.ThrowsAsync<PostgresException>(() => newSession.OpenAsync());
            Assert.Equal(AuditLogUnavailable, loginRefusal.SqlState);
        }

        // A load balancer sees it too: the replica is not ready while its log cannot be written.
        var notReady = await admin.GetAsync(new Uri("readyz", UriKind.Relative));
        Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, notReady.StatusCode);
        Assert.Contains("audit log cannot be written", await notReady.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        var refusedStatement = $"INSERT INTO {table} VALUES ({refusedValue})";
        Assert.Equal(0, await fixture.Server.ExecuteScalarIntAsync($"SELECT count(*) FROM {table} WHERE id = {refusedValue}"));
        Assert.DoesNotContain(refusedStatement, await fixture.Server.ReadLogAsync(), StringComparison.Ordinal);

        // Space comes back: the same gateway process takes statements again and the chain continues without a gap.
        File.Delete(filler);
        await using (var afterRecovery = new NpgsqlConnection(connectionString))
        {
            await afterRecovery.OpenAsync();
            await ExecuteAsync(afterRecovery, $"INSERT INTO {table} VALUES (1000)");
        }

        Assert.Equal(System.Net.HttpStatusCode.OK, (await admin.GetAsync(new Uri("readyz", UriKind.Relative))).StatusCode);

        // Everything before the refusal and the statement after recovery ran; nothing else did.
        Assert.Equal(refusedValue + 1, await fixture.Server.ExecuteScalarIntAsync($"SELECT count(*) FROM {table}"));
        var records = GatewayHost.ReadRecords(auditDirectory);
        Assert.Contains(records.OfType("pg.request"), r => r.Str("text") == $"INSERT INTO {table} VALUES (1000)");

        // The relay appends a batch's request records to the chain and then commits them; when the commit fails they
        // stay in the chain and reach the disk once it has room again. So a refused statement may have a request
        // record: then its response record must say it was not executed, and its session's end record why.
        var refusedRequests = records.OfType("pg.request").Where(r => r.Str("text") == refusedStatement).ToList();
        Assert.NotEmpty(refusedRequests);
        foreach (var refusedRequest in refusedRequests)
        {
            var response = records.OfType("pg.response").Single(r => r.TryGetProperty("request", out var request) && request.GetInt64() == Sequence(refusedRequest));
            Assert.False(response.GetProperty("executed").GetBoolean());
            Assert.Equal("58030", response.Str("sqlstate"));
            Assert.Equal("not sent to the server: the audit log could not be written", response.Str("error"));
            var sessionEnd = records.OfType("pg.session.end").Single(r => r.SessionId() == refusedRequest.SessionId());
            Assert.Equal("audit log unavailable", sessionEnd.Str("endReason"));
            Assert.True(Sequence(sessionEnd) > Sequence(response), "the session end comes after the refused statement's response record");
        }

        var verification = AuditVerifier.Verify(auditDirectory);
        Assert.True(verification.IsIntact, verification.Problem?.Message);
    }

    private static long Sequence(JsonElement record) => record.GetProperty("seq").GetInt64();

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>Writes <paramref name="path"/> until the filesystem says it is full (ENOSPC).</summary>
    private static void FillUntilFull(string path)
    {
        var chunk = new byte[64 * 1024];
        using SafeFileHandle handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.Write);
        long offset = 0;
        try
        {
            while (offset < 64L * 1024 * 1024)
            {
                RandomAccess.Write(handle, chunk, offset);
                offset += chunk.Length;
            }
        }
        catch (IOException)
        {
            return;
        }

        Assert.Fail($"{path}: 64 MiB written and the filesystem is still not full");
    }

    /// <summary>A tmpfs of a fixed size, unmounted (and its mount point removed) on dispose, whatever the test did.</summary>
    private sealed class SmallTmpfs : IAsyncDisposable
    {
        private SmallTmpfs(string mountPoint) => MountPoint = mountPoint;

        public string MountPoint { get; }

        public static async Task<SmallTmpfs> MountAsync(string mountPoint, string size)
        {
            Directory.CreateDirectory(mountPoint);
            await ProcessRunner.RunCheckedAsync("mount", ["-t", "tmpfs", "-o", $"size={size},mode=755", "tmpfs", mountPoint]);
            return new SmallTmpfs(mountPoint);
        }

        public async ValueTask DisposeAsync()
        {
            // The gateway is disposed (killed) first, so nothing holds the filesystem; -l covers a straggler.
            var unmount = await ProcessRunner.RunAsync("umount", [MountPoint]);
            if (!unmount.Succeeded)
            {
                await ProcessRunner.RunCheckedAsync("umount", ["-l", MountPoint]);
            }

            Directory.Delete(Path.GetDirectoryName(MountPoint)!, recursive: true);
        }
    }
}
