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

    /// <summary>Issues a fresh random client-facing key for an upstream backend.</summary>
    public (int ProcessId, int SecretKey) Register(UpstreamCancelKey upstream)
    {
        Span<int> pair = stackalloc int[2];
        while (true)
        {
            RandomNumberGenerator.Fill(System.Runtime.InteropServices.MemoryMarshal.AsBytes(pair));
            var processId = pair[0] & 0x7FFFFFFF;
            if (processId == 0)
            {
                continue;
            }

            if (_keys.TryAdd(Combine(processId, pair[1]), upstream))
            {
                return (processId, pair[1]);
            }
        }
    }

    public bool TryGet(int processId, int secretKey, out UpstreamCancelKey upstream) =>
        _keys.TryGetValue(Combine(processId, secretKey), out upstream!);

    public void Remove(int processId, int secretKey) => _keys.TryRemove(Combine(processId, secretKey), out _);

    private static long Combine(int processId, int secretKey) => ((long)processId << 32) | (uint)secretKey;
}

/// <summary>The upstream backend's cancel key and where its server listens.</summary>
internal sealed record UpstreamCancelKey(EndPoint Server, int ProcessId, byte[] SecretKey, string SessionId);
