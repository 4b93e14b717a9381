using System.Text;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using NhiAudit.Audit.Sinks;
using NhiAudit.Sinks.Postgres.Tests.Infrastructure;
using Npgsql;

namespace NhiAudit.Sinks.Postgres.Tests;

/// <summary>The sink as an application wires it (configuration, <c>AddPostgresSink</c>, the hosted pumps), against PostgreSQL 15.</summary>
[Collection(SinkPostgresCollectionDefinition.Name)]
public sealed class PostgresSinkHostTests(SinkPostgresFixture postgres) : IDisposable
{
    private readonly string _auditDirectory = Path.Combine(Path.GetTempPath(), "nhiaudit-pgsink-tests", Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_auditDirectory))
        {
            Directory.Delete(_auditDirectory, recursive: true);
        }
    }

    [Fact]
    public async Task ConfiguredHost_CopiesTheGatewaysLogIntoTheTable()
    {
        var sinkOptions = postgres.NewSinkOptions();
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["NhiAudit:Audit:Directory"] = _auditDirectory,
            ["NhiAudit:Audit:Replica"] = "gateway-1",
            ["NhiAudit:Sinks:Postgres:ConnectionString"] = sinkOptions.ConnectionString,
            ["NhiAudit:Sinks:Postgres:Schema"] = sinkOptions.Schema,
        });
        builder.Services.AddNhiAuditing(builder.Configuration.GetSection("NhiAudit"))
            .AddPostgresSink(builder.Configuration.GetSection("NhiAudit:Sinks:Postgres"));
        var host = builder.Build();
        await host.StartAsync();
        try
        {
            var log = host.Services.GetRequiredService<IAuditLog>();
            long last = 0;
            for (var i = 0; i < 50; i++)
            {
                last = await log.AppendAsync(TestAuditLog.Body(json =>
                {
                    json.WriteString("type", "pg.request");
                    json.WriteString("text", "select * from customers");
                }));
            }

            var pump = Assert.Single(host.Services.GetRequiredService<AuditSinkPumps>().Pumps);
            Assert.Equal("postgres", pump.Sink.Name);
            await pump.WaitForDeliveredAsync(last).WaitAsync(TimeSpan.FromSeconds(90));
        }
        finally
        {
            await host.StopAsync();
            // Tolerated core bug (reported, not this package's): the container disposes the one AuditSinkPumps instance
            // twice (as itself and as the IHostedService factory's result), and AuditSinkPump.DisposeAsync is not
            // idempotent, so the second call throws ObjectDisposedException. Passes unchanged once that is fixed.
            var disposal = await Record.ExceptionAsync(() => ((IAsyncDisposable)host).DisposeAsync().AsTask());
            Assert.True(disposal is null or ObjectDisposedException, disposal?.ToString());
        }

        var rows = await SinkTable.ReadRowsAsync(sinkOptions, "gateway-1");
        Assert.True(rows.Count >= 51, $"expected log.opened and 50 requests, found {rows.Count} rows");
        SinkTable.AssertCompleteChain(rows, rows.Count);
        Assert.Equal(50, rows.Count(r => r.Type == "pg.request"));

        // The jsonb copy answers queries on the record's fields.
        await using var connection = new NpgsqlConnection(sinkOptions.ConnectionString);
        await connection.OpenAsync();
        await using var query = new NpgsqlCommand(
            $"SELECT count(*) FROM \"{sinkOptions.Schema}\".audit_records WHERE type = 'pg.request' AND record->>'text' ILIKE '%customers%'", connection);
        Assert.Equal(50L, await query.ExecuteScalarAsync());
    }

    [Theory]
    [InlineData("""{"s":"\u0000"}""", false)]
    [InlineData("""{"s":"\uD83D"}""", false)]
    [InlineData("""{"s":"\uDE00"}""", false)]
    [InlineData("""{"s":"\uD83D\n"}""", false)]
    [InlineData("""{"s":"\u00e9\uD83D\uDE00"}""", true)]
    [InlineData("""{"s":"\\u0000"}""", true)]
    public async Task JsonbCompatibility_AgreesWithPostgreSql(string line, bool accepted)
    {
        Assert.Equal(accepted, JsonbCompatibility.CanStoreAsJsonb(Encoding.UTF8.GetBytes(line)));
        await using var connection = new NpgsqlConnection(postgres.Server.ConnectionString());
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT $1::text::jsonb IS NOT NULL", connection);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = line });
        if (accepted)
        {
            Assert.Equal(true, await command.ExecuteScalarAsync());
        }
        else
        {
            await Assert.ThrowsAsync<PostgresException>(() => command.ExecuteScalarAsync());
        }
    }
}
