using System.Buffers;
using System.Buffers.Binary;

namespace NhiAudit.Postgres.Protocol;

/// <summary>
/// A parsed StartupMessage: protocol version and the ordered parameter list
/// (<c>user</c>, <c>database</c>, <c>application_name</c>, <c>options</c>, GUCs, <c>_pq_.</c> options).
/// </summary>
/// <remarks>
/// Layout: <c>Int32 length | Int32 version | (name NUL value NUL)* | NUL</c>.
/// Stricter than PostgreSQL on two points, on purpose: a duplicated name is refused (PostgreSQL
/// lets the last one win, so a gateway that read the first <c>user</c> would audit a different
/// identity than the server logs in), and names/values must be valid UTF-8 (they are identities).
/// </remarks>
internal sealed class PgStartupMessage
{
    private readonly KeyValuePair<string, string>[] _parameters;

    private PgStartupMessage(int protocolVersion, KeyValuePair<string, string>[] parameters, string user)
    {
        ProtocolVersion = protocolVersion;
        _parameters = parameters;
        User = user;
        Database = GetParameter("database") is { Length: > 0 } database ? database : user;
    }

    /// <summary>The requested protocol version, e.g. <see cref="PgStartupCodes.Protocol30"/>.</summary>
    public int ProtocolVersion { get; }

    /// <summary>All parameters in the order the client sent them.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Parameters => _parameters;

    /// <summary>The <c>user</c> parameter; never empty.</summary>
    public string User { get; }

    /// <summary>The <c>database</c> parameter, or <see cref="User"/> when absent or empty (PostgreSQL's default).</summary>
    public string Database { get; }

    /// <summary>The <c>application_name</c> parameter, if sent.</summary>
    public string? ApplicationName => GetParameter("application_name");

    /// <summary>The <c>options</c> parameter (command-line style <c>-c name=value</c> switches), if sent.</summary>
    public string? Options => GetParameter("options");

    /// <summary>The <c>replication</c> parameter (<c>true</c>, <c>database</c>, ...), if sent.</summary>
    public string? Replication => GetParameter("replication");

    /// <summary>Returns a parameter's value by exact (case-sensitive, as PostgreSQL) name, or null.</summary>
    public string? GetParameter(string name)
    {
        foreach (KeyValuePair<string, string> pair in _parameters)
        {
            if (string.Equals(pair.Key, name, StringComparison.Ordinal))
            {
                return pair.Value;
            }
        }

        return null;
    }

    /// <summary>Parses a whole startup packet held in a sequence (copies it when split across segments; startup packets are small and rare).</summary>
    public static PgStartupMessage Parse(in ReadOnlySequence<byte> packet) =>
        packet.IsSingleSegment ? Parse(packet.FirstSpan) : Parse(packet.ToArray());

    /// <summary>Parses a whole startup packet, starting at its length word.</summary>
    /// <exception cref="PgProtocolException">08P01 for layout errors and duplicates, 28000 when no user is given.</exception>
    public static PgStartupMessage Parse(ReadOnlySpan<byte> packet)
    {
        if (packet.Length < PgMessageFraming.StartupHeaderLength)
        {
            throw new PgProtocolException("invalid length of startup packet");
        }

        int length = BinaryPrimitives.ReadInt32BigEndian(packet);
        if (length != packet.Length)
        {
            throw new PgProtocolException($"invalid length of startup packet: header says {length}, packet has {packet.Length} bytes");
        }

        int version = BinaryPrimitives.ReadInt32BigEndian(packet[4..]);
        if ((uint)version >> 16 != 3)
        {
            throw new PgProtocolException(
                PgSqlState.FeatureNotSupported,
                $"unsupported frontend protocol {(uint)version >> 16}.{version & 0xFFFF}: server supports 3.0 to 3.2");
        }

        ReadOnlySpan<byte> body = packet[PgMessageFraming.StartupHeaderLength..];
        if (body.IsEmpty || body[^1] != 0)
        {
            throw new PgProtocolException("invalid startup packet layout: expected terminator as last byte");
        }

        var parameters = new List<KeyValuePair<string, string>>(8);
        string? user = null;
        int offset = 0;
        while (true)
        {
            ReadOnlySpan<byte> rest = body[offset..];
            int nameEnd = rest.IndexOf((byte)0);

            // The final NUL is guaranteed above, so nameEnd >= 0 here.
            if (nameEnd == 0)
            {
                if (offset != body.Length - 1)
                {
                    throw new PgProtocolException(
                        $"invalid startup packet layout: {body.Length - 1 - offset} bytes after the terminating NUL");
                }

                break;
            }

            ReadOnlySpan<byte> nameBytes = rest[..nameEnd];
            int valueStart = nameEnd + 1;
            if (valueStart >= rest.Length)
            {
                throw new PgProtocolException(
                    $"invalid startup packet layout: parameter \"{PgText.DecodeText(nameBytes)}\" has no value");
            }

            ReadOnlySpan<byte> afterName = rest[valueStart..];
            int valueEnd = afterName.IndexOf((byte)0);
            if (offset + valueStart + valueEnd == body.Length - 1)
            {
                // The value's NUL is the packet's last byte, so the list terminator is missing.
                throw new PgProtocolException(
                    $"invalid startup packet layout: parameter list after \"{PgText.DecodeText(nameBytes)}\" is not terminated");
            }

            string name = PgText.DecodeName(nameBytes, "startup packet parameter name");
            string value = PgText.DecodeName(afterName[..valueEnd], $"startup packet parameter \"{name}\"");
            foreach (KeyValuePair<string, string> existing in parameters)
            {
                if (string.Equals(existing.Key, name, StringComparison.Ordinal))
                {
                    throw new PgProtocolException($"invalid startup packet: duplicate parameter \"{name}\"");
                }
            }

            if (string.Equals(name, "user", StringComparison.Ordinal))
            {
                user = value;
            }

            parameters.Add(new KeyValuePair<string, string>(name, value));
            offset += valueStart + valueEnd + 1;
        }

        if (string.IsNullOrEmpty(user))
        {
            throw new PgProtocolException(PgSqlState.InvalidAuthorizationSpecification, "no PostgreSQL user name specified in startup packet");
        }

        return new PgStartupMessage(version, [.. parameters], user);
    }

    /// <summary>Writes a StartupMessage (for the gateway's upstream connection).</summary>
    /// <param name="writer">Destination.</param>
    /// <param name="protocol">Protocol version, normally <see cref="PgStartupCodes.Protocol30"/>.</param>
    /// <param name="parameters">Name/value pairs in order; must include <c>user</c>.</param>
    /// <returns>Bytes written.</returns>
    public static int WriteStartupMessage(IBufferWriter<byte> writer, int protocol, IEnumerable<KeyValuePair<string, string>> parameters)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(parameters);

        // Materialize once: the length prefix needs the size before the bytes are written.
        KeyValuePair<string, string>[] list = parameters as KeyValuePair<string, string>[] ?? [.. parameters];
        int length = PgMessageFraming.StartupHeaderLength + 1;
        foreach (KeyValuePair<string, string> pair in list)
        {
            ArgumentException.ThrowIfNullOrEmpty(pair.Key, nameof(parameters));
            ArgumentNullException.ThrowIfNull(pair.Value, nameof(parameters));
            length += PgWire.CStringLength(pair.Key) + PgWire.CStringLength(pair.Value);
        }

        if (length > PgStartupCodes.MaxStartupPacketLength)
        {
            throw new ArgumentException($"Startup packet of {length} bytes exceeds PostgreSQL's limit of {PgStartupCodes.MaxStartupPacketLength}.", nameof(parameters));
        }

        Span<byte> span = writer.GetSpan(length);
        BinaryPrimitives.WriteInt32BigEndian(span, length);
        BinaryPrimitives.WriteInt32BigEndian(span[4..], protocol);
        int offset = PgMessageFraming.StartupHeaderLength;
        foreach (KeyValuePair<string, string> pair in list)
        {
            offset += PgWire.WriteCString(span[offset..], pair.Key, nameof(parameters));
            offset += PgWire.WriteCString(span[offset..], pair.Value, nameof(parameters));
        }

        span[offset] = 0;
        writer.Advance(length);
        return length;
    }
}
