using NhiAudit.Sinks.Postgres;

namespace NhiAudit.Proxy.Commands;

/// <summary>Reads records back from a PostgreSQL sink (NhiAudit.Sinks.Postgres) for <c>nhiaudit search</c>: one stream per replica, each in chain order.</summary>
internal static class PostgresSinkSource
{
    public static async Task<(List<IAsyncEnumerable<SearchCommand.SearchHit>> Sources, IAsyncDisposable Owner)> OpenAsync(
        string connectionString,
        string? replica,
        DateTimeOffset? since,
        DateTimeOffset? until,
        CancellationToken cancellationToken)
    {
        var reader = new PostgresAuditSinkReader(new PostgresSinkOptions { ConnectionString = connectionString, CreateSchema = false });
        var replicas = replica is not null ? [replica] : await reader.ListReplicasAsync(cancellationToken).ConfigureAwait(false);
        var sources = replicas.Select(name => Read(reader, name, since, until, cancellationToken)).ToList();
        return (sources, reader);
    }

    private static async IAsyncEnumerable<SearchCommand.SearchHit> Read(
        PostgresAuditSinkReader reader,
        string replica,
        DateTimeOffset? since,
        DateTimeOffset? until,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await foreach (var record in reader.ReadRecordsAsync(replica, 1, since, until, cancellationToken).ConfigureAwait(false))
        {
            yield return new SearchCommand.SearchHit(record.Replica, record.Entry);
        }
    }
}
