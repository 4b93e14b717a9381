namespace NhiAudit.Ssh.Transport;

/// <summary>SSH message numbers (RFC 4250 §4.1, RFC 8308, RFC 5656).</summary>
public enum SshMessageNumber : byte
{
    /// <summary>SSH_MSG_DISCONNECT.</summary>
    Disconnect = 1,
    /// <summary>SSH_MSG_IGNORE.</summary>
    Ignore = 2,
    /// <summary>SSH_MSG_UNIMPLEMENTED.</summary>
    Unimplemented = 3,
    /// <summary>SSH_MSG_DEBUG.</summary>
    Debug = 4,
    /// <summary>SSH_MSG_SERVICE_REQUEST.</summary>
    ServiceRequest = 5,
    /// <summary>SSH_MSG_SERVICE_ACCEPT.</summary>
    ServiceAccept = 6,
    /// <summary>SSH_MSG_EXT_INFO (RFC 8308).</summary>
    ExtInfo = 7,
    /// <summary>SSH_MSG_KEXINIT.</summary>
    KexInit = 20,
    /// <summary>SSH_MSG_NEWKEYS.</summary>
    NewKeys = 21,
    /// <summary>SSH_MSG_KEX_ECDH_INIT (RFC 5656 §7.1; also curve25519, RFC 8731).</summary>
    KexEcdhInit = 30,
    /// <summary>SSH_MSG_KEX_ECDH_REPLY.</summary>
    KexEcdhReply = 31,
    /// <summary>SSH_MSG_USERAUTH_REQUEST.</summary>
    UserAuthRequest = 50,
    /// <summary>SSH_MSG_USERAUTH_FAILURE.</summary>
    UserAuthFailure = 51,
    /// <summary>SSH_MSG_USERAUTH_SUCCESS.</summary>
    UserAuthSuccess = 52,
    /// <summary>SSH_MSG_USERAUTH_BANNER.</summary>
    UserAuthBanner = 53,
    /// <summary>SSH_MSG_GLOBAL_REQUEST.</summary>
    GlobalRequest = 80,
    /// <summary>SSH_MSG_REQUEST_SUCCESS.</summary>
    RequestSuccess = 81,
    /// <summary>SSH_MSG_REQUEST_FAILURE.</summary>
    RequestFailure = 82,
    /// <summary>SSH_MSG_CHANNEL_OPEN.</summary>
    ChannelOpen = 90,
    /// <summary>SSH_MSG_CHANNEL_OPEN_CONFIRMATION.</summary>
    ChannelOpenConfirmation = 91,
    /// <summary>SSH_MSG_CHANNEL_OPEN_FAILURE.</summary>
    ChannelOpenFailure = 92,
    /// <summary>SSH_MSG_CHANNEL_WINDOW_ADJUST.</summary>
    ChannelWindowAdjust = 93,
    /// <summary>SSH_MSG_CHANNEL_DATA.</summary>
    ChannelData = 94,
    /// <summary>SSH_MSG_CHANNEL_EXTENDED_DATA.</summary>
    ChannelExtendedData = 95,
    /// <summary>SSH_MSG_CHANNEL_EOF.</summary>
    ChannelEof = 96,
    /// <summary>SSH_MSG_CHANNEL_CLOSE.</summary>
    ChannelClose = 97,
    /// <summary>SSH_MSG_CHANNEL_REQUEST.</summary>
    ChannelRequest = 98,
    /// <summary>SSH_MSG_CHANNEL_SUCCESS.</summary>
    ChannelSuccess = 99,
    /// <summary>SSH_MSG_CHANNEL_FAILURE.</summary>
    ChannelFailure = 100,
}

/// <summary>Reason codes of SSH_MSG_DISCONNECT (RFC 4253 §11.1).</summary>
public enum SshDisconnectReason : uint
{
    /// <summary>SSH_DISCONNECT_HOST_NOT_ALLOWED_TO_CONNECT.</summary>
    HostNotAllowedToConnect = 1,
    /// <summary>SSH_DISCONNECT_PROTOCOL_ERROR.</summary>
    ProtocolError = 2,
    /// <summary>SSH_DISCONNECT_KEY_EXCHANGE_FAILED.</summary>
    KeyExchangeFailed = 3,
    /// <summary>SSH_DISCONNECT_RESERVED.</summary>
    Reserved = 4,
    /// <summary>SSH_DISCONNECT_MAC_ERROR.</summary>
    MacError = 5,
    /// <summary>SSH_DISCONNECT_COMPRESSION_ERROR.</summary>
    CompressionError = 6,
    /// <summary>SSH_DISCONNECT_SERVICE_NOT_AVAILABLE.</summary>
    ServiceNotAvailable = 7,
    /// <summary>SSH_DISCONNECT_PROTOCOL_VERSION_NOT_SUPPORTED.</summary>
    ProtocolVersionNotSupported = 8,
    /// <summary>SSH_DISCONNECT_HOST_KEY_NOT_VERIFIABLE.</summary>
    HostKeyNotVerifiable = 9,
    /// <summary>SSH_DISCONNECT_CONNECTION_LOST.</summary>
    ConnectionLost = 10,
    /// <summary>SSH_DISCONNECT_BY_APPLICATION.</summary>
    ByApplication = 11,
    /// <summary>SSH_DISCONNECT_TOO_MANY_CONNECTIONS.</summary>
    TooManyConnections = 12,
    /// <summary>SSH_DISCONNECT_AUTH_CANCELLED_BY_USER.</summary>
    AuthCancelledByUser = 13,
    /// <summary>SSH_DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE.</summary>
    NoMoreAuthMethodsAvailable = 14,
    /// <summary>SSH_DISCONNECT_ILLEGAL_USER_NAME.</summary>
    IllegalUserName = 15,
}
