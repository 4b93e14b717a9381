using NhiAudit.Audit;

namespace NhiAudit.Proxy.Commands;

/// <summary>Reads records back from a PostgreSQL sink for <c>nhiaudit search</c>.</summary>
internal static class PostgresSinkSource
{
    public static async IAsyncEnumerable<SearchCommand.SearchHit> ReadAsync(
        string connectionString,
        string? replica,
        DateTimeOffset? since,
        DateTimeOffset? until,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        _ = (connectionString, replica, since, until);
        await Task.CompletedTask.ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
        throw new NotSupportedException("reading a PostgreSQL sink is not wired yet");
#pragma warning disable CS0162 // the iterator needs a yield
        yield break;
#pragma warning restore CS0162
    }

    internal static AuditLogEntry? None => null;
}
