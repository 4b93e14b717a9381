using System.Collections.Concurrent;
using Azure.Core;
using Microsoft.Extensions.Logging;
using NhiAudit.Masking;

namespace NhiAudit.Postgres.Masking;

/// <summary>The masking catalogs of one target, one per database its sessions use; shared by those sessions.</summary>
internal sealed class PgMaskingCatalogs(PostgresTargetOptions target, MaskingPolicySource policy, TokenCredential? credential, TimeProvider time, ILogger logger) : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, PgMaskingCatalog> _catalogs = new(StringComparer.Ordinal);

    /// <summary>The catalog of <paramref name="database"/>, created on first use (and read by its first refresh).</summary>
    public PgMaskingCatalog Get(string database) =>
        _catalogs.GetOrAdd(database, static (name, state) => new PgMaskingCatalog(state.target, name, state.policy, state.credential, state.time, state.logger), (target, policy, credential, time, logger));

    public async ValueTask DisposeAsync()
    {
        foreach (var catalog in _catalogs.Values)
        {
            await catalog.DisposeAsync().ConfigureAwait(false);
        }
    }
}
