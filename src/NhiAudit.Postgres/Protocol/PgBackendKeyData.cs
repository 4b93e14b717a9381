namespace NhiAudit.Postgres.Protocol;

/// <summary>
/// BackendKeyData ('K'): <c>Int32 process id | secret key</c>; the key is 4 bytes in protocol
/// 3.0 and variable (at most 256 bytes) in 3.2. A view over the payload.
/// </summary>
internal readonly ref struct PgBackendKeyData
{
    private PgBackendKeyData(int processId, ReadOnlySpan<byte> secretKey)
    {
        ProcessId = processId;
        SecretKey = secretKey;
    }

    /// <summary>The server process id.</summary>
    public int ProcessId { get; }

    /// <summary>The secret key bytes.</summary>
    public ReadOnlySpan<byte> SecretKey { get; }

    /// <summary>Parses the body of a 'K' message.</summary>
    /// <exception cref="PgProtocolException">Shorter than 4 bytes or a key longer than 256 bytes.</exception>
    public static PgBackendKeyData Parse(ReadOnlySpan<byte> payload)
    {
        var reader = new PgPayloadReader(payload, "BackendKeyData");
        int pid = reader.ReadInt32();
        ReadOnlySpan<byte> key = reader.ReadRest();
        if (key.Length > PgStartupCodes.MaxCancelKeyLength)
        {
            throw new PgProtocolException($"invalid BackendKeyData message: secret key of {key.Length} bytes exceeds 256");
        }

        return new PgBackendKeyData(pid, key);
    }
}
