using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;

namespace NhiAudit.Postgres.Gateway;

/// <summary>
/// Maps the BackendKeyData the gateway gave each client to the upstream backend's own key, so that a
/// CancelRequest (which arrives on a fresh connection) reaches the right backend and only that one.
/// </summary>
internal sealed class CancelKeyRegistry
{
    private readonly ConcurrentDictionary<long, UpstreamCancelKey> _keys = new();

    /// <summary>
    /// Issues the client-facing key for an upstream backend: the backend's real process id (clients and tests act on
    /// the backend by it: pg_terminate_backend, pg_stat_activity, LISTEN/NOTIFY's sender pid) with a fresh random secret
    /// of the gateway's own, so that the backend's secret never leaves the gateway and only the gateway can cancel.
    /// </summary>
    public (int ProcessId, int SecretKey) Register(UpstreamCancelKey upstream)
    {
        ArgumentNullException.ThrowIfNull(upstream);
        Span<int> secret = stackalloc int[1];
        while (true)
        {
            RandomNumberGenerator.Fill(System.Runtime.InteropServices.MemoryMarshal.AsBytes(secret));
            if (_keys.TryAdd(Combine(upstream.ProcessId, secret[0]), upstream))
            {
                return (upstream.ProcessId, secret[0]);
            }
        }
    }

    public bool TryGet(int processId, int secretKey, out UpstreamCancelKey upstream) =>
        _keys.TryGetValue(Combine(processId, secretKey), out upstream!);

    public void Remove(int processId, int secretKey) => _keys.TryRemove(Combine(processId, secretKey), out _);

    private static long Combine(int processId, int secretKey) => ((long)processId << 32) | (uint)secretKey;
}

/// <summary>The upstream backend's cancel key and where its server listens.</summary>
internal sealed record UpstreamCancelKey(EndPoint Server, int ProcessId, byte[] SecretKey, string SessionId)
{
    /// <summary>Ends the session's approval hold, if a statement is held (it has not reached the server); true when one was.</summary>
    public Func<bool>? CancelHeld { get; init; }
}
