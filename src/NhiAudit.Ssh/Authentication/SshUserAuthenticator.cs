using System.Globalization;
using System.Net;
using Microsoft.Extensions.Logging;
using NhiAudit.Ssh.Transport;

namespace NhiAudit.Ssh.Authentication;

/// <summary>
/// The server side of ssh-userauth (RFC 4252) for one connection: publickey with registered keys and OpenSSH user
/// certificates (§7, PROTOCOL.certkeys), keyboard-interactive answering a workload token (RFC 4256), a bound on
/// failed attempts. Runs on the connection's loop; one instance per connection.
/// </summary>
internal sealed class SshUserAuthenticator
{
    public const byte UserAuthPkOk = 60;
    public const byte UserAuthInfoRequest = 60;
    public const byte UserAuthInfoResponse = 61;
    private const string PublicKey = "publickey";
    private const string KeyboardInteractive = "keyboard-interactive";
    private const string ForceCommand = "force-command";
    private const string SourceAddress = "source-address";

    private readonly SshAuthenticationOptions _options;
    private readonly bool _acceptNoneForTesting;
    private readonly IPAddress? _clientAddress;
    private readonly ILogger _logger;
    private readonly Func<SshWriter, CancellationToken, ValueTask> _send;
    private bool _bannerSent;
    private int _failures;
    private string? _pendingInteractiveUser;

    public SshUserAuthenticator(
        SshAuthenticationOptions options,
        bool acceptNoneForTesting,
        IPAddress? clientAddress,
        ILogger logger,
        Func<SshWriter, CancellationToken, ValueTask> send)
    {
        _options = options;
        _acceptNoneForTesting = acceptNoneForTesting;
        _clientAddress = clientAddress is { IsIPv4MappedToIPv6: true } ? clientAddress.MapToIPv4() : clientAddress;
        _logger = logger;
        _send = send;
    }

    /// <summary>Who the client is, once authentication succeeded.</summary>
    public SshAuthenticatedUser? User { get; private set; }

    /// <summary>The connection's id, passed on in every attempt reported to the audit hook.</summary>
    public string? ConnectionId { get; init; }

    /// <summary>Failed attempts so far.</summary>
    public int Failures => _failures;

    /// <summary>Handles SSH_MSG_USERAUTH_REQUEST (the message with its number byte).</summary>
    public async ValueTask HandleRequestAsync(ReadOnlyMemory<byte> message, ReadOnlyMemory<byte> sessionId, CancellationToken cancellationToken)
    {
        if (User is not null)
        {
            return; // RFC 4252 §5.1: requests after success are ignored.
        }

        _pendingInteractiveUser = null; // RFC 4256 §3.1: a new request abandons the exchange.
        var request = Parse(message.Span, sessionId.Span);
        if (request.Service != "ssh-connection")
        {
            throw new SshProtocolException(SshDisconnectReason.ServiceNotAvailable, $"service {request.Service} not available");
        }

        if (!_bannerSent && _options.Banner is { Length: > 0 } banner)
        {
            _bannerSent = true;
            await _send(new SshWriter(SshMessageNumber.UserAuthBanner).WriteString(banner).WriteString(""), cancellationToken).ConfigureAwait(false);
        }

        switch (request.Method)
        {
            case "none" when _acceptNoneForTesting:
                _logger.LogWarning("SSH user {User} accepted without authentication (test-only setting)", request.User);
                await SucceedAsync(
                    new SshAuthenticatedUser
                    {
                        UserName = request.User,
                        Method = "none",
                        Identity = new WorkloadIdentity { Kind = WorkloadKind.Unknown, Subject = request.User, Issuer = "nhiaudit:insecure-test-none" },
                    },
                    null,
                    cancellationToken).ConfigureAwait(false);
                return;
            case "none":
                // The client asks which methods exist (RFC 4252 §5.2); not counted as an attempt.
                await SendFailureAsync(cancellationToken).ConfigureAwait(false);
                return;
            case PublicKey:
                await OnPublicKeyAsync(request, cancellationToken).ConfigureAwait(false);
                return;
            case KeyboardInteractive when _options.WorkloadAuthenticator is not null:
                _pendingInteractiveUser = request.User;
                await _send(
                    new SshWriter().WriteByte(UserAuthInfoRequest).WriteString("NhiAudit").WriteString("Answer with your workload token.")
                        .WriteString("").WriteUInt32(1).WriteString("Workload token: ").WriteBoolean(false),
                    cancellationToken).ConfigureAwait(false);
                return;
            default:
                await FailAsync(request.User, request.Method, $"method {request.Method} is not offered", null, cancellationToken).ConfigureAwait(false);
                return;
        }
    }

    /// <summary>Handles SSH_MSG_USERAUTH_INFO_RESPONSE (RFC 4256 §3.4).</summary>
    public async ValueTask HandleInfoResponseAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
    {
        if (_pendingInteractiveUser is not { } user || User is not null || _options.WorkloadAuthenticator is not { } authenticator)
        {
            throw new SshProtocolException("USERAUTH_INFO_RESPONSE without an INFO_REQUEST");
        }

        _pendingInteractiveUser = null;
        var token = ParseSingleResponse(message.Span);
        if (token is null)
        {
            await FailAsync(user, KeyboardInteractive, "expected exactly one answer (the workload token)", null, cancellationToken).ConfigureAwait(false);
            return;
        }

        var result = await authenticator.AuthenticateAsync(token.Trim(), cancellationToken).ConfigureAwait(false);
        if (result.Identity is not { } identity)
        {
            await FailAsync(user, KeyboardInteractive, "workload token refused: " + (result.Failure ?? "invalid"), null, cancellationToken).ConfigureAwait(false);
            return;
        }

        await SucceedAsync(new SshAuthenticatedUser { UserName = user, Method = KeyboardInteractive, Identity = identity }, null, cancellationToken).ConfigureAwait(false);
    }

    private static string? ParseSingleResponse(ReadOnlySpan<byte> message)
    {
        var reader = new SshReader(message[1..]);
        var count = reader.ReadUInt32();
        if (count != 1)
        {
            return null;
        }

        var answer = reader.ReadUtf8String();
        reader.EnsureEnd();
        return answer;
    }

    private async ValueTask OnPublicKeyAsync(Request request, CancellationToken cancellationToken)
    {
        var fingerprint = SshPublicKeyBlob.Fingerprint(request.KeyBlob);
        var (user, reason) = Check(request);
        if (user is null)
        {
            await FailAsync(request.User, PublicKey, reason, fingerprint, cancellationToken).ConfigureAwait(false);
            return;
        }

        if (request.Signature is null)
        {
            // RFC 4252 §7: the key would do; the client may now sign.
            await _send(new SshWriter().WriteByte(UserAuthPkOk).WriteString(request.Algorithm).WriteString(request.KeyBlob), cancellationToken).ConfigureAwait(false);
            return;
        }

        if (!SshPublicKeyBlob.Verify(request.VerifyKeyBlob!, request.SignatureAlgorithm!, request.SignedData!, request.Signature))
        {
            await FailAsync(request.User, PublicKey, "signature does not verify", fingerprint, cancellationToken).ConfigureAwait(false);
            return;
        }

        await SucceedAsync(user, fingerprint, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Decides whether the offered key (plain or certificate) may stand for an identity; the signature aside.</summary>
    private (SshAuthenticatedUser? User, string Reason) Check(Request request)
    {
        if (request.Algorithm is "ssh-rsa" or "ssh-rsa-cert-v01@openssh.com" or "ssh-dss")
        {
            return (null, $"signature algorithm {request.Algorithm} is refused (SHA-1)");
        }

        if (SshCertificate.ForAlgorithm(request.Algorithm) is { } certificateAlgorithm)
        {
            return CheckCertificate(request, certificateAlgorithm.CertificateType, certificateAlgorithm.SignatureAlgorithm);
        }

        if (!SshPublicKeyBlob.TryGetKeyType(request.KeyBlob, out var keyType, out var error))
        {
            return (null, error);
        }

        if (!SshPublicKeyBlob.AlgorithmMatchesKeyType(request.Algorithm, keyType))
        {
            return (null, $"algorithm {request.Algorithm} does not fit a {keyType} key");
        }

        var registered = _options.AuthorizedKeys.FirstOrDefault(k => k.PublicKeyBlob.Span.SequenceEqual(request.KeyBlob));
        if (registered is null)
        {
            return (null, "key is not registered to an identity");
        }

        request.VerifyKeyBlob = request.KeyBlob;
        request.SignatureAlgorithm = request.Algorithm;
        return (new SshAuthenticatedUser
        {
            UserName = request.User,
            Method = PublicKey,
            Identity = registered.Identity,
            KeyFingerprint = registered.Fingerprint,
            PublicKeyAlgorithm = request.Algorithm,
        }, "");
    }

    private (SshAuthenticatedUser? User, string Reason) CheckCertificate(Request request, string certificateType, string signatureAlgorithm)
    {
        if (!SshCertificate.TryParse(request.KeyBlob, out var certificate, out var error))
        {
            return (null, error);
        }

        if (certificate.CertificateType != certificateType)
        {
            return (null, $"algorithm {request.Algorithm} does not fit a {certificate.CertificateType} certificate");
        }

        var authority = _options.CertificateAuthorities.FirstOrDefault(ca => ca.PublicKeyBlob.Span.SequenceEqual(certificate.SignatureKeyBlob.Span));
        if (authority is null)
        {
            return (null, $"certificate signed by an untrusted CA ({certificate.CertificateAuthorityFingerprint})");
        }

        if (!certificate.VerifyCertificateAuthoritySignature())
        {
            return (null, "certificate's CA signature does not verify");
        }

        if (certificate.Kind != SshCertificateKind.User)
        {
            return (null, "certificate is not a user certificate");
        }

        var now = (ulong)Math.Max(0, _options.TimeProvider.GetUtcNow().ToUnixTimeSeconds());
        var skew = (ulong)Math.Max(0, (long)_options.CertificateClockSkew.TotalSeconds);
        if (now + skew < certificate.ValidAfter)
        {
            return (null, "certificate is not yet valid");
        }

        if (certificate.ValidBefore != ulong.MaxValue && now >= SaturatingAdd(certificate.ValidBefore, skew))
        {
            return (null, "certificate has expired");
        }

        if (certificate.Principals.Count == 0)
        {
            return (null, "certificate lists no principals");
        }

        var principal = _options.PrincipalForUser.TryGetValue(request.User, out var mapped) ? mapped : request.User;
        if (!certificate.Principals.Contains(principal, StringComparer.Ordinal))
        {
            return (null, $"certificate does not list principal {principal}");
        }

        if (certificate.KeyId.Length == 0)
        {
            return (null, "certificate has an empty key id");
        }

        foreach (var (name, value) in certificate.CriticalOptions)
        {
            switch (name)
            {
                case SourceAddress when !SourceAddressAllows(value):
                    return (null, $"client address {_clientAddress?.ToString() ?? "(unknown)"} is outside the certificate's source-address");
                case SourceAddress:
                    break;
                case ForceCommand:
                    // The gateway does not (yet) run a forced command in place of the client's; refusing is the safe reading.
                    return (null, "certificate critical option force-command is not supported");
                default:
                    return (null, $"certificate critical option {name} is not understood");
            }
        }

        request.VerifyKeyBlob = certificate.PublicKeyBlob.ToArray();
        request.SignatureAlgorithm = signatureAlgorithm;
        DateTimeOffset expires = certificate.ValidBefore >= (ulong)DateTimeOffset.MaxValue.ToUnixTimeSeconds()
            ? DateTimeOffset.MaxValue
            : DateTimeOffset.FromUnixTimeSeconds((long)certificate.ValidBefore);
        return (new SshAuthenticatedUser
        {
            UserName = request.User,
            Method = PublicKey,
            Identity = new WorkloadIdentity
            {
                Kind = authority.Kind,
                Subject = certificate.KeyId,
                Issuer = "ssh-ca:" + authority.Name,
                DisplayName = certificate.KeyId,
                ExpiresAt = expires,
            },
            KeyFingerprint = SshPublicKeyBlob.Fingerprint(certificate.PublicKeyBlob.Span),
            PublicKeyAlgorithm = request.Algorithm,
            CertificateKeyId = certificate.KeyId,
            CertificateSerial = certificate.Serial,
            CertificatePrincipals = certificate.Principals,
            CertificateAuthorityFingerprint = authority.Fingerprint,
        }, "");
    }

    private static ulong SaturatingAdd(ulong a, ulong b) => a > ulong.MaxValue - b ? ulong.MaxValue : a + b;

    /// <summary>
    /// source-address: comma-separated addresses or CIDR ranges (PROTOCOL.certkeys). As in OpenSSH, a range with host
    /// bits set after the prefix is invalid (it matches nothing here). An unknown client address never matches.
    /// </summary>
    private bool SourceAddressAllows(string value)
    {
        if (_clientAddress is null)
        {
            return false;
        }

        var client = _clientAddress.GetAddressBytes();
        foreach (var entry in value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            var slash = entry.IndexOf('/', StringComparison.Ordinal);
            if (!IPAddress.TryParse(slash < 0 ? entry : entry[..slash], out var network))
            {
                continue;
            }

            var bytes = network.GetAddressBytes();
            var prefix = bytes.Length * 8;
            if (bytes.Length != client.Length
                || (slash >= 0 && (!int.TryParse(entry[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out prefix) || prefix > bytes.Length * 8)))
            {
                continue;
            }

            if (HostBitsClear(bytes, prefix) && PrefixMatches(client, bytes, prefix))
            {
                return true;
            }
        }

        return false;
    }

    private static bool HostBitsClear(byte[] network, int prefix)
    {
        for (var bit = prefix; bit < network.Length * 8; bit++)
        {
            if ((network[bit / 8] & (0x80 >> (bit % 8))) != 0)
            {
                return false;
            }
        }

        return true;
    }

    private static bool PrefixMatches(byte[] address, byte[] network, int prefix)
    {
        var whole = prefix / 8;
        if (!address.AsSpan(0, whole).SequenceEqual(network.AsSpan(0, whole)))
        {
            return false;
        }

        var rest = prefix % 8;
        if (rest == 0)
        {
            return true;
        }

        var mask = (byte)(0xFF << (8 - rest));
        return (address[whole] & mask) == (network[whole] & mask);
    }

    private async ValueTask SucceedAsync(SshAuthenticatedUser user, string? fingerprint, CancellationToken cancellationToken)
    {
        User = user;
        _logger.LogInformation(
            "SSH user {User} authenticated by {Method} as {Subject} ({Issuer})",
            user.UserName,
            user.Method,
            user.Identity.Subject,
            user.Identity.Issuer);
        await RecordAsync(new SshAuthenticationAttempt
        {
            Succeeded = true,
            UserName = user.UserName,
            Method = user.Method,
            User = user,
            ClientAddress = _clientAddress,
            KeyFingerprint = fingerprint,
            FailedAttempts = _failures,
        }, cancellationToken).ConfigureAwait(false);
        await _send(new SshWriter(SshMessageNumber.UserAuthSuccess), cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask FailAsync(string user, string method, string reason, string? fingerprint, CancellationToken cancellationToken)
    {
        _failures++;
        _logger.LogInformation("SSH user {User} refused ({Method}): {Reason}", user, method, reason);
        await RecordAsync(new SshAuthenticationAttempt
        {
            Succeeded = false,
            UserName = user,
            Method = method,
            Reason = reason,
            ClientAddress = _clientAddress,
            KeyFingerprint = fingerprint,
            FailedAttempts = _failures,
        }, cancellationToken).ConfigureAwait(false);
        if (_failures >= _options.MaxAttempts)
        {
            throw new SshProtocolException(SshDisconnectReason.NoMoreAuthMethodsAvailable, "too many authentication failures");
        }

        await SendFailureAsync(cancellationToken).ConfigureAwait(false);
    }

    private ValueTask SendFailureAsync(CancellationToken cancellationToken) =>
        _send(new SshWriter(SshMessageNumber.UserAuthFailure).WriteNameList(_options.Methods).WriteBoolean(false), cancellationToken);

    private ValueTask RecordAsync(SshAuthenticationAttempt attempt, CancellationToken cancellationToken) =>
        _options.Audit?.RecordAsync(attempt with { ConnectionId = ConnectionId }, cancellationToken) ?? ValueTask.CompletedTask;

    private static Request Parse(ReadOnlySpan<byte> message, ReadOnlySpan<byte> sessionId)
    {
        var reader = new SshReader(message[1..]);
        var request = new Request
        {
            User = reader.ReadUtf8String(),
            Service = reader.ReadUtf8String(),
            Method = reader.ReadUtf8String(),
        };
        if (request.User.Length == 0 || request.User.Length > 256)
        {
            throw new SshProtocolException(SshDisconnectReason.IllegalUserName, "user name must have 1 to 256 characters");
        }

        if (request.Method != PublicKey)
        {
            return request; // none: nothing follows; keyboard-interactive: language and submethods, unused.
        }

        var hasSignature = reader.ReadBoolean();
        request.Algorithm = reader.ReadUtf8String();
        request.KeyBlob = reader.ReadStringBytes().ToArray();
        if (hasSignature)
        {
            var signedLength = message.Length - reader.Remaining;
            request.Signature = reader.ReadStringBytes().ToArray();
            reader.EnsureEnd();

            // RFC 4252 §7: string session_id || the request up to the signature, with the boolean TRUE.
            request.SignedData = new SshWriter(signedLength + sessionId.Length + 8).WriteString(sessionId).WriteRaw(message[..signedLength]).ToArray();
        }
        else
        {
            reader.EnsureEnd();
        }

        return request;
    }

    private sealed class Request
    {
        public string User { get; init; } = "";

        public string Service { get; init; } = "";

        public string Method { get; init; } = "";

        public string Algorithm { get; set; } = "";

        public byte[] KeyBlob { get; set; } = [];

        public byte[]? Signature { get; set; }

        public byte[]? SignedData { get; set; }

        public byte[]? VerifyKeyBlob { get; set; }

        public string? SignatureAlgorithm { get; set; }

        public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Method} for {User}");
    }
}
