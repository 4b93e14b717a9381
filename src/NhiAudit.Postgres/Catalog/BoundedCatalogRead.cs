namespace NhiAudit.Postgres.Catalog;

/// <summary>
/// How the gateway's catalogs (masking, code) read the target's catalog: within a time limit, so that a server that
/// stalls cannot hold every session of a database waiting; on any failure the catalog connection is dropped (its
/// protocol state is unknown) and the error goes to the sessions, which fail closed.
/// </summary>
internal static class BoundedCatalogRead
{
    /// <summary>Runs <paramref name="load"/> within <paramref name="limit"/>.</summary>
    /// <param name="load">Reads the catalog.</param>
    /// <param name="limit">How long it may take.</param>
    /// <param name="what">The catalog, for the timeout's message (e.g. <c>the masking catalog</c>).</param>
    /// <param name="dropConnection">Closes the catalog connection after a failure.</param>
    /// <param name="ct">The caller's cancellation (not a timeout).</param>
    /// <exception cref="TimeoutException">The limit passed.</exception>
    public static async Task<T> RunAsync<T>(Func<CancellationToken, Task<T>> load, TimeSpan limit, string what, Func<ValueTask> dropConnection, CancellationToken ct)
    {
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(ct);
        bounded.CancelAfter(limit);
        try
        {
            return await load(bounded.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            await dropConnection().ConfigureAwait(false);
            throw new TimeoutException($"{what} was not read within {limit.TotalSeconds:0} s");
        }
        catch
        {
            await dropConnection().ConfigureAwait(false);
            throw;
        }
    }
}
