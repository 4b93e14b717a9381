using System.Buffers.Binary;
using NhiAudit.Audit;
using NhiAudit.IntegrationTests.Infrastructure;
using Npgsql;

namespace NhiAudit.IntegrationTests.Gateway;

/// <summary>
/// What no real client sends: every bad connection ends with an ErrorResponse in PostgreSQL's own terms, while a
/// concurrent well-behaved session and the audit log carry on.
/// </summary>
[Collection(PostgresCollectionDefinition.Name)]
public sealed class ProtocolRobustnessTests(PostgresServerFixture fixture) : IAsyncLifetime
{
    private GatewayHost _gateway = null!;
    private NpgsqlConnection _bystander = null!;

    public async Task InitializeAsync()
    {
        _gateway = await GatewayHost.StartAsync(fixture.Server, o =>
        {
            o.ClientTlsRequired = false;
            o.MaxInspectedMessageBytes = 1024 * 1024;
        });
        _bystander = new NpgsqlConnection(_gateway.ConnectionString(_gateway.MintToken("bystander")));
        await _bystander.OpenAsync();
    }

    public async Task DisposeAsync()
    {
        await _bystander.DisposeAsync();
        await _gateway.DisposeAsync();
    }

    private async Task AssertBystanderStillWorksAsync()
    {
        await using var command = new NpgsqlCommand("SELECT 'alive'", _bystander);
        Assert.Equal("alive", await command.ExecuteScalarAsync());
    }

    private static void AssertFatal((byte Type, byte[] Body) message, string sqlState)
    {
        Assert.Equal((byte)'E', message.Type);
        Assert.Equal(sqlState, RawPgClient.ErrorField(message.Body, 'C'));
        Assert.Equal("FATAL", RawPgClient.ErrorField(message.Body, 'S'));
    }

    [Theory]
    [InlineData(2, 0)]
    [InlineData(4, 0)]
    [InlineData(3, 99)]
    public async Task An_unknown_protocol_version_is_refused_with_0A000(int major, int minor)
    {
        await using var client = await RawPgClient.ConnectAsync(_gateway.Port);
        await client.SendAsync(RawPgClient.StartupPacket((major << 16) | minor, ("user", "raw"), ("database", "app")));
        if (major == 3)
        {
            // A newer 3.x minor is negotiated down to 3.0, the way PostgreSQL does it, and the login goes on.
            Assert.Equal((byte)'v', (await client.ReadMessageAsync()).Type);
            Assert.Equal((byte)'R', (await client.ReadMessageAsync()).Type);
        }
        else
        {
            AssertFatal(Assert.Single(await client.ReadUntilClosedAsync()), "0A000");
        }

        await AssertBystanderStillWorksAsync();
    }

    [Fact]
    public async Task A_message_length_below_four_ends_the_connection_with_08P01()
    {
        await using var client = await RawPgClient.LoginAsync(_gateway.Port, _gateway.MintToken("raw-malformed"));
        await client.SendAsync([(byte)'Q', 0, 0, 0, 2]);
        AssertFatal(Assert.Single(await client.ReadUntilClosedAsync()), "08P01");
        await AssertBystanderStillWorksAsync();
    }

    [Fact]
    public async Task An_oversized_query_is_refused_with_54000_before_its_body_is_read()
    {
        await using var client = await RawPgClient.LoginAsync(_gateway.Port, _gateway.MintToken("raw-oversized"));
        var header = new byte[5];
        header[0] = (byte)'Q';
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(1), 64 * 1024 * 1024);
        await client.SendAsync(header);
        try
        {
            await client.SendAsync(new byte[4096]);
        }
        catch (IOException)
        {
            // The gateway may already have hung up after the header: that is the point.
        }

        var messages = await client.ReadUntilClosedAsync();
        AssertFatal(Assert.Single(messages), "54000");
        await AssertBystanderStillWorksAsync();
    }

    [Fact]
    public async Task An_unknown_message_type_ends_the_connection_with_08P01()
    {
        await using var client = await RawPgClient.LoginAsync(_gateway.Port, _gateway.MintToken("raw-unknown"));
        await client.SendAsync(RawPgClient.Message((byte)'z', [1, 2, 3]));
        AssertFatal(Assert.Single(await client.ReadUntilClosedAsync()), "08P01");
        await AssertBystanderStillWorksAsync();
    }

    [Fact]
    public async Task A_malformed_bind_ends_the_connection_with_08P01()
    {
        await using var client = await RawPgClient.LoginAsync(_gateway.Port, _gateway.MintToken("raw-bind"));

        // Portal "", statement "", 1 format code, then a parameter count claiming 5000 parameters that are not there.
        await client.SendAsync(RawPgClient.Message((byte)'B', [0, 0, 0, 1, 0, 0, 0x13, 0x88, 0, 0, 0, 1]));
        AssertFatal(Assert.Single(await client.ReadUntilClosedAsync()), "08P01");
        await AssertBystanderStillWorksAsync();
    }

    [Fact]
    public async Task A_truncated_message_then_a_hang_up_leaves_the_gateway_and_log_intact()
    {
        await using (var client = await RawPgClient.LoginAsync(_gateway.Port, _gateway.MintToken("raw-truncated")))
        {
            var query = RawPgClient.Query("SELECT 'never completed'");
            await client.SendAsync(query[..(query.Length / 2)]);
        }

        await AssertBystanderStillWorksAsync();
        await _gateway.ReadRecordsAsync();
        var verification = AuditVerifier.Verify(_gateway.AuditDirectory);
        Assert.True(verification.IsIntact, verification.Problem?.Message);
    }

    [Fact]
    public async Task Random_startup_packets_never_take_the_gateway_down()
    {
        var random = new Random(20261128);
        for (var i = 0; i < 60; i++)
        {
            await using var client = await RawPgClient.ConnectAsync(_gateway.Port);
            var garbage = new byte[random.Next(1, 64)];
            random.NextBytes(garbage);
            if (garbage.Length >= 4 && i % 2 == 0)
            {
                // Half of them with a plausible length word, so the parser gets past the header.
                BinaryPrimitives.WriteInt32BigEndian(garbage, garbage.Length);
            }

            await client.SendAsync(garbage);
            if (garbage.Length < 8)
            {
                continue;
            }

            var messages = await client.ReadUntilClosedAsync();
            Assert.All(messages, m => Assert.True(m.Type is (byte)'E' or (byte)'R' or (byte)'v', $"unexpected message '{(char)m.Type}'"));
        }

        await AssertBystanderStillWorksAsync();

        // Every garbage connection was let go: only the bystander's session remains.
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (_gateway.Gateway.ActiveSessions > 1 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }

        Assert.Equal(1, _gateway.Gateway.ActiveSessions);
    }

    [Fact]
    public async Task Random_frontend_messages_after_login_end_at_most_their_own_connection()
    {
        // A seeded fuzz run over the relay itself: well-framed messages of every frontend type with random bodies.
        // The gateway may pass them to the server (which answers with an error) or end the connection with an
        // ErrorResponse; it must never hang, crash, or break anyone else's session or the log.
        byte[] types = [(byte)'Q', (byte)'P', (byte)'B', (byte)'E', (byte)'C', (byte)'D', (byte)'H', (byte)'F', (byte)'d', (byte)'c', (byte)'f', (byte)'S'];
        var random = new Random(4242);
        var token = _gateway.MintToken("fuzz");
        for (var connection = 0; connection < 120; connection++)
        {
            await using var client = await RawPgClient.LoginAsync(_gateway.Port, token);
            var count = random.Next(1, 6);
            var batch = new List<byte>();
            for (var i = 0; i < count; i++)
            {
                var body = new byte[random.Next(0, 48)];
                random.NextBytes(body);
                if (body.Length > 0 && random.Next(2) == 0)
                {
                    body[^1] = 0; // often NUL-terminated, so string parsers get further
                }

                batch.AddRange(RawPgClient.Message(types[random.Next(types.Length)], body));
            }

            batch.AddRange(RawPgClient.Message((byte)'S', []));
            try
            {
                await client.SendAsync([.. batch]);
            }
            catch (IOException)
            {
                // The gateway already ended this connection over an earlier message: allowed, and what follows checks it said why.
            }

            var messages = await ReadUntilReadyOrClosedAsync(client);
            Assert.All(messages, m => Assert.True(m.Type is (byte)'E' or (byte)'Z' or (byte)'1' or (byte)'2' or (byte)'3' or (byte)'n' or (byte)'t' or (byte)'T' or (byte)'C' or (byte)'I' or (byte)'N' or (byte)'s' or (byte)'V' or (byte)'G' or (byte)'H' or (byte)'d' or (byte)'c' or (byte)'D' or (byte)'S', $"unexpected message '{(char)m.Type}'"));
        }

        await AssertBystanderStillWorksAsync();
        await _gateway.ReadRecordsAsync();
        var verification = AuditVerifier.Verify(_gateway.AuditDirectory);
        Assert.True(verification.IsIntact, verification.Problem?.Message);

        static async Task<List<(byte Type, byte[] Body)>> ReadUntilReadyOrClosedAsync(RawPgClient client)
        {
            var messages = new List<(byte Type, byte[] Body)>();
            try
            {
                while (true)
                {
                    var message = await client.ReadMessageAsync(TimeSpan.FromSeconds(10));
                    messages.Add(message);
                    if (message.Type == (byte)'Z')
                    {
                        return messages;
                    }
                }
            }
            catch (Exception ex) when (ex is EndOfStreamException or IOException)
            {
                return messages;
            }
        }
    }

    [Fact]
    public async Task A_client_without_tls_is_refused_when_tls_is_required_and_the_attempt_is_audited()
    {
        await using var strict = await GatewayHost.StartAsync(fixture.Server);
        await using var client = await RawPgClient.ConnectAsync(strict.Port);
        await client.SendAsync(RawPgClient.StartupPacket(3 << 16, ("user", "raw"), ("database", "app")));
        AssertFatal(Assert.Single(await client.ReadUntilClosedAsync()), "28000");
        var refused = Assert.Single((await strict.ReadRecordsAsync()).OfType("pg.auth.failed"));
        Assert.Contains("TLS", refused.Str("reason"), StringComparison.Ordinal);
    }
}
