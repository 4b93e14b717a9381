using System.Security.Cryptography;
using NhiAudit.Ssh.Transport.Ciphers;

namespace NhiAudit.Ssh.Transport;

/// <summary>Algorithm names this transport implements, in default order of preference.</summary>
public static class SshAlgorithms
{
    /// <summary>Key exchange methods (RFC 8731, RFC 5656).</summary>
    public static IReadOnlyList<string> KeyExchange { get; } =
        ["curve25519-sha256", "curve25519-sha256@libssh.org", "ecdh-sha2-nistp256"];

    /// <summary>Host key (signature) algorithms (RFC 8709, RFC 8332, RFC 5656).</summary>
    public static IReadOnlyList<string> HostKey { get; } =
        ["ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "rsa-sha2-256"];

    /// <summary>Encryption algorithms.</summary>
    public static IReadOnlyList<string> Encryption { get; } =
        ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com", "aes128-ctr", "aes256-ctr"];

    /// <summary>MAC algorithms (only used with the CTR ciphers; AEAD ciphers carry their own tag).</summary>
    public static IReadOnlyList<string> Mac { get; } =
        ["hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com", "hmac-sha2-256", "hmac-sha2-512"];

    /// <summary>Compression: none only.</summary>
    public static IReadOnlyList<string> Compression { get; } = ["none"];

    /// <summary>Pseudo-algorithm a server lists to offer strict key exchange (OpenSSH PROTOCOL §1.10).</summary>
    public const string StrictKexServer = "kex-strict-s-v00@openssh.com";

    /// <summary>Pseudo-algorithm a client lists to offer strict key exchange.</summary>
    public const string StrictKexClient = "kex-strict-c-v00@openssh.com";

    /// <summary>Pseudo-algorithm a client lists to accept SSH_MSG_EXT_INFO (RFC 8308 §2.1).</summary>
    public const string ExtInfoClient = "ext-info-c";

    internal static bool IsAead(string encryption) => encryption is "aes128-gcm@openssh.com" or "aes256-gcm@openssh.com" or "chacha20-poly1305@openssh.com";

    internal static (int KeyLength, int IvLength) KeySizes(string encryption) => encryption switch
    {
        "aes128-gcm@openssh.com" => (16, 12),
        "aes256-gcm@openssh.com" => (32, 12),
        "chacha20-poly1305@openssh.com" => (64, 0),
        "aes128-ctr" => (16, 16),
        "aes256-ctr" => (32, 16),
        _ => throw new SshProtocolException(SshDisconnectReason.KeyExchangeFailed, $"unsupported cipher {encryption}"),
    };

    internal static int MacKeyLength(string mac) => mac switch
    {
        "hmac-sha2-256-etm@openssh.com" or "hmac-sha2-256" => 32,
        "hmac-sha2-512-etm@openssh.com" or "hmac-sha2-512" => 64,
        _ => throw new SshProtocolException(SshDisconnectReason.KeyExchangeFailed, $"unsupported MAC {mac}"),
    };

    internal static PacketCipher CreateCipher(string encryption, string? mac, ReadOnlySpan<byte> key, ReadOnlySpan<byte> iv, ReadOnlySpan<byte> macKey) => encryption switch
    {
        "aes128-gcm@openssh.com" or "aes256-gcm@openssh.com" => new AesGcmCipher(key, iv),
        "chacha20-poly1305@openssh.com" => new ChaCha20Poly1305Cipher(key),
        "aes128-ctr" or "aes256-ctr" => mac switch
        {
            "hmac-sha2-256-etm@openssh.com" => new AesCtrHmacCipher(key, iv, HashAlgorithmName.SHA256, macKey, encryptThenMac: true),
            "hmac-sha2-512-etm@openssh.com" => new AesCtrHmacCipher(key, iv, HashAlgorithmName.SHA512, macKey, encryptThenMac: true),
            "hmac-sha2-256" => new AesCtrHmacCipher(key, iv, HashAlgorithmName.SHA256, macKey, encryptThenMac: false),
            "hmac-sha2-512" => new AesCtrHmacCipher(key, iv, HashAlgorithmName.SHA512, macKey, encryptThenMac: false),
            _ => throw new SshProtocolException(SshDisconnectReason.KeyExchangeFailed, $"unsupported MAC {mac}"),
        },
        _ => throw new SshProtocolException(SshDisconnectReason.KeyExchangeFailed, $"unsupported cipher {encryption}"),
    };
}

/// <summary>The algorithms one side offers; defaults to everything implemented.</summary>
public sealed record SshAlgorithmPreferences
{
    /// <summary>Key exchange methods in order of preference.</summary>
    public IReadOnlyList<string> KeyExchange { get; init; } = SshAlgorithms.KeyExchange;

    /// <summary>Host key algorithms; a server offers only those it has a key for.</summary>
    public IReadOnlyList<string> HostKey { get; init; } = SshAlgorithms.HostKey;

    /// <summary>Ciphers.</summary>
    public IReadOnlyList<string> Encryption { get; init; } = SshAlgorithms.Encryption;

    /// <summary>MACs.</summary>
    public IReadOnlyList<string> Mac { get; init; } = SshAlgorithms.Mac;
}
