using System.Security.Cryptography;

namespace NhiAudit.Ssh.Transport;

/// <summary>SSH_MSG_KEXINIT (RFC 4253 §7.1).</summary>
internal sealed record KexInitMessage(
    string[] KeyExchange,
    string[] HostKey,
    string[] EncryptionClientToServer,
    string[] EncryptionServerToClient,
    string[] MacClientToServer,
    string[] MacServerToClient,
    string[] CompressionClientToServer,
    string[] CompressionServerToClient,
    bool FirstKexPacketFollows)
{
    public static KexInitMessage Parse(ReadOnlySpan<byte> payload)
    {
        var reader = new SshReader(payload);
        if (reader.ReadByte() != (byte)SshMessageNumber.KexInit)
        {
            throw new SshProtocolException("not a KEXINIT");
        }

        reader.ReadBytes(16); // cookie
        var message = new KexInitMessage(
            reader.ReadNameList(), reader.ReadNameList(), reader.ReadNameList(), reader.ReadNameList(),
            reader.ReadNameList(), reader.ReadNameList(), reader.ReadNameList(), reader.ReadNameList(),
            FirstKexPacketFollows: false);
        reader.ReadNameList(); // languages client to server
        reader.ReadNameList(); // languages server to client
        var follows = reader.ReadBoolean();
        reader.ReadUInt32(); // reserved
        return message with { FirstKexPacketFollows = follows };
    }

    public byte[] Serialize()
    {
        var writer = new SshWriter(SshMessageNumber.KexInit, 512);
        Span<byte> cookie = stackalloc byte[16];
        RandomNumberGenerator.Fill(cookie);
        writer.WriteRaw(cookie)
            .WriteNameList(KeyExchange).WriteNameList(HostKey)
            .WriteNameList(EncryptionClientToServer).WriteNameList(EncryptionServerToClient)
            .WriteNameList(MacClientToServer).WriteNameList(MacServerToClient)
            .WriteNameList(CompressionClientToServer).WriteNameList(CompressionServerToClient)
            .WriteNameList([]).WriteNameList([])
            .WriteBoolean(FirstKexPacketFollows).WriteUInt32(0);
        return writer.ToArray();
    }
}

/// <summary>The outcome of algorithm negotiation (RFC 4253 §7.1): the first client choice the server also offers.</summary>
internal sealed record NegotiatedAlgorithms(
    string KeyExchange,
    string HostKey,
    string EncryptionClientToServer,
    string EncryptionServerToClient,
    string? MacClientToServer,
    string? MacServerToClient)
{
    public static NegotiatedAlgorithms Negotiate(KexInitMessage client, KexInitMessage server)
    {
        var encryptionCs = Choose(client.EncryptionClientToServer, server.EncryptionClientToServer, "client->server cipher");
        var encryptionSc = Choose(client.EncryptionServerToClient, server.EncryptionServerToClient, "server->client cipher");

        // AEAD ciphers authenticate by themselves; the MAC lists are not consulted for them (OpenSSH does the same).
        var macCs = SshAlgorithms.IsAead(encryptionCs) ? null : Choose(client.MacClientToServer, server.MacClientToServer, "client->server MAC");
        var macSc = SshAlgorithms.IsAead(encryptionSc) ? null : Choose(client.MacServerToClient, server.MacServerToClient, "server->client MAC");
        Choose(client.CompressionClientToServer, server.CompressionClientToServer, "compression");
        Choose(client.CompressionServerToClient, server.CompressionServerToClient, "compression");
        return new NegotiatedAlgorithms(
            Choose(client.KeyExchange, server.KeyExchange, "key exchange"),
            Choose(client.HostKey, server.HostKey, "host key algorithm"),
            encryptionCs,
            encryptionSc,
            macCs,
            macSc);
    }

    private static string Choose(string[] client, string[] server, string what)
    {
        foreach (var name in client)
        {
            if (Array.IndexOf(server, name) >= 0)
            {
                return name;
            }
        }

        throw new SshProtocolException(SshDisconnectReason.KeyExchangeFailed, $"no matching {what} (client offers {string.Join(',', client)})");
    }
}
