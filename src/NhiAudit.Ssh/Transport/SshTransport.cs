using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Security.Cryptography;
using NhiAudit.Ssh.HostKeys;
using NhiAudit.Ssh.Transport.Ciphers;

namespace NhiAudit.Ssh.Transport;

/// <summary>
/// The SSH transport layer (RFC 4253) over a pipe, for either role: version exchange, binary packets, key
/// exchange and rekeying, strict kex, EXT_INFO. The layer above calls <see cref="ReceiveMessageAsync"/> in a loop
/// (one reader) and <see cref="SendMessageAsync"/> from anywhere; transport messages never reach it.
/// </summary>
internal sealed class SshTransport : IAsyncDisposable
{
    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private readonly SshTransportOptions _options;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly List<byte[]> _deferredMessages = [];

    private PacketCipher _incomingCipher = NoneCipher.Instance;
    private PacketCipher _outgoingCipher = NoneCipher.Instance;
    private uint _incomingSequence;
    private uint _outgoingSequence;
    private long _bytesSinceKex;
    private long _packetsSinceKex;
    private long _packetsReceived;

    // Key exchange state. A key exchange runs from the first KEXINIT (either side's) until NEWKEYS went both ways.
    private byte[]? _ourKexInit;
    private byte[]? _peerKexInit;
    private NegotiatedAlgorithms? _negotiated;
    private EphemeralKeyAgreement? _clientEphemeral;
    private PacketCipher? _pendingIncomingCipher;
    private bool _sentNewKeys;
    private bool _ignoreNextKexPacket;
    private bool _initialKexDone;
    private bool _peerOffersExtInfo;
    private int _completedKeyExchanges;
    private int _disposed;

    public SshTransport(IDuplexPipe pipe, SshRole role, SshTransportOptions options)
    {
        ArgumentNullException.ThrowIfNull(pipe);
        _input = pipe.Input;
        _output = pipe.Output;
        Role = role;
        _options = options;
        OurVersion = "SSH-2.0-" + options.SoftwareVersion;
    }

    public SshRole Role { get; }

    public string OurVersion { get; }

    public string? PeerVersion { get; private set; }

    /// <summary>H of the first key exchange (RFC 4253 §7.2), or null before it.</summary>
    public byte[]? SessionId { get; private set; }

    /// <summary>Whether both sides agreed on strict key exchange.</summary>
    public bool StrictKeyExchange { get; private set; }

    /// <summary>Algorithms of the latest key exchange.</summary>
    public NegotiatedAlgorithms? Algorithms { get; private set; }

    /// <summary>Key exchanges completed so far (1 after the initial one).</summary>
    public int CompletedKeyExchanges => Volatile.Read(ref _completedKeyExchanges);

    private bool KexInProgress => _ourKexInit is not null || _peerKexInit is not null;

    /// <summary>Sends our identification line and KEXINIT, then reads the peer's identification line.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        VersionExchange.WriteVersion(_output, OurVersion);
        await _output.FlushAsync(cancellationToken).ConfigureAwait(false);
        PeerVersion = await VersionExchange.ReadVersionAsync(_input, cancellationToken).ConfigureAwait(false);
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await SendKexInitLockedAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>
    /// Returns the next message for the layer above. Key exchange messages are handled here; IGNORE, DEBUG and
    /// UNIMPLEMENTED are dropped; DISCONNECT throws <see cref="SshConnectionClosedException"/>.
    /// </summary>
    public async ValueTask<ReadOnlyMemory<byte>> ReceiveMessageAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            await RekeyIfDueAsync(cancellationToken).ConfigureAwait(false);
            var payload = await ReadPacketAsync(cancellationToken).ConfigureAwait(false);
            var message = (SshMessageNumber)payload.Span[0];
            if (!_initialKexDone)
            {
                EnsureAllowedDuringInitialKex(message);
            }
            else if (_peerKexInit is not null && !IsKeyExchangeOrGenericTransportMessage((byte)message))
            {
                // RFC 4253 §7.1: after its KEXINIT the peer sends only transport messages until its NEWKEYS.
                throw new SshProtocolException($"message {(byte)message} during key exchange");
            }

            switch (message)
            {
                case SshMessageNumber.Disconnect:
                    throw ParseDisconnect(payload.Span);
                case SshMessageNumber.Ignore or SshMessageNumber.Debug or SshMessageNumber.Unimplemented:
                    continue;
                case SshMessageNumber.KexInit:
                    await OnKexInitAsync(payload, cancellationToken).ConfigureAwait(false);
                    continue;
                case SshMessageNumber.NewKeys:
                    await OnNewKeysAsync(payload, cancellationToken).ConfigureAwait(false);
                    continue;
                case >= (SshMessageNumber)30 and <= (SshMessageNumber)49:
                    await OnKexMethodMessageAsync(payload, cancellationToken).ConfigureAwait(false);
                    continue;
                case SshMessageNumber.ExtInfo when Role == SshRole.Client:
                    continue;
                case SshMessageNumber.ServiceRequest or SshMessageNumber.ServiceAccept:
                    return payload;
                case >= (SshMessageNumber)1 and <= (SshMessageNumber)19:
                    // Reserved transport numbers the layer above must not see; RFC 4253 §11.4 asks for UNIMPLEMENTED.
                    await SendUnimplementedAsync(cancellationToken).ConfigureAwait(false);
                    continue;
                case >= (SshMessageNumber)20 and <= (SshMessageNumber)29:
                    throw new SshProtocolException($"unexpected key exchange message {(byte)message}");
                default:
                    return payload;
            }
        }
    }

    /// <summary>
    /// Sends one message. During a key exchange we started, messages other than transport messages wait until
    /// our NEWKEYS is out (RFC 4253 §7.1), so callers never need to know a rekey is running.
    /// </summary>
    public async ValueTask SendMessageAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        if (payload.IsEmpty)
        {
            throw new ArgumentException("empty message", nameof(payload));
        }

        await RekeyIfDueAsync(cancellationToken).ConfigureAwait(false);
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_ourKexInit is not null && !_sentNewKeys && !IsKeyExchangeOrGenericTransportMessage(payload.Span[0]))
            {
                _deferredMessages.Add(payload.ToArray());
                return;
            }

            WritePacket(payload.Span);
            await _output.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>
    /// Messages allowed while a key exchange runs (RFC 4253 §7.1): the generic transport messages (DISCONNECT,
    /// IGNORE, UNIMPLEMENTED, DEBUG) and the key exchange itself (20-49).
    /// </summary>
    private static bool IsKeyExchangeOrGenericTransportMessage(byte message) => message is (>= 1 and <= 4) or (>= 20 and <= 49);

    /// <summary>Starts a key exchange now unless one is running (RFC 4253 §9: either side may at any time).</summary>
    public async Task RequestKeyExchangeAsync(CancellationToken cancellationToken)
    {
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_initialKexDone && _ourKexInit is null)
            {
                await SendKexInitLockedAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>Sends SSH_MSG_DISCONNECT (best effort) and completes the output.</summary>
    public async Task DisconnectAsync(SshDisconnectReason reason, string description, CancellationToken cancellationToken)
    {
        var payload = new SshWriter(SshMessageNumber.Disconnect).WriteUInt32((uint)reason).WriteString(description).WriteString("").ToArray();
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            WritePacket(payload);
            await _output.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _input.CompleteAsync().ConfigureAwait(false);
        await _output.CompleteAsync().ConfigureAwait(false);
        _clientEphemeral?.Dispose();
        _pendingIncomingCipher?.Dispose();
        _incomingCipher.Dispose();
        _outgoingCipher.Dispose();
        _writeLock.Dispose();
    }

    private void EnsureAllowedDuringInitialKex(SshMessageNumber message)
    {
        if (_packetsReceived == 1 && message != SshMessageNumber.KexInit)
        {
            // Whether strict kex applies is known only once the peer's KEXINIT arrives; remember the order till then.
            _firstPacketWasNotKexInit = true;
        }

        switch (message)
        {
            case SshMessageNumber.KexInit or SshMessageNumber.NewKeys or SshMessageNumber.Disconnect:
            case >= (SshMessageNumber)30 and <= (SshMessageNumber)49:
                return;
            case SshMessageNumber.Ignore or SshMessageNumber.Debug or SshMessageNumber.Unimplemented when !StrictKeyExchange:
                return;
            default:
                throw new SshProtocolException(
                    StrictKeyExchange
                        ? $"strict key exchange violation: message {(byte)message} during the initial key exchange"
                        : $"message {(byte)message} before the initial key exchange completed");
        }
    }

    private bool _firstPacketWasNotKexInit;

    private bool StrictKeyExchangeOffered => _options.OfferStrictKeyExchange;

    private async ValueTask OnKexInitAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        if (_peerKexInit is not null)
        {
            throw new SshProtocolException("second KEXINIT during a key exchange");
        }

        var peer = KexInitMessage.Parse(payload.Span);
        _peerKexInit = payload.ToArray();
        if (!_initialKexDone)
        {
            var peerStrict = Array.IndexOf(peer.KeyExchange, Role == SshRole.Server ? SshAlgorithms.StrictKexClient : SshAlgorithms.StrictKexServer) >= 0;
            StrictKeyExchange = StrictKeyExchangeOffered && peerStrict;
            if (StrictKeyExchange && _firstPacketWasNotKexInit)
            {
                throw new SshProtocolException("strict key exchange violation: KEXINIT was not the first packet");
            }

            _peerOffersExtInfo = Role == SshRole.Server && Array.IndexOf(peer.KeyExchange, SshAlgorithms.ExtInfoClient) >= 0;
        }

        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_ourKexInit is null)
            {
                await SendKexInitLockedAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            _writeLock.Release();
        }

        var ours = KexInitMessage.Parse(_ourKexInit);
        var (client, server) = Role == SshRole.Server ? (peer, ours) : (ours, peer);
        _negotiated = NegotiatedAlgorithms.Negotiate(client, server);

        // RFC 4253 §7: a guessed first packet is ignored when the guess (first kex and host key algorithm) was wrong.
        if (peer.FirstKexPacketFollows)
        {
            _ignoreNextKexPacket = client.KeyExchange.FirstOrDefault() != server.KeyExchange.FirstOrDefault()
                || client.HostKey.FirstOrDefault() != server.HostKey.FirstOrDefault();
        }

        if (Role == SshRole.Client)
        {
            _clientEphemeral = EphemeralKeyAgreement.Create(_negotiated.KeyExchange);
            var init = new SshWriter(SshMessageNumber.KexEcdhInit).WriteString(_clientEphemeral.PublicKey).ToArray();
            await SendTransportMessageAsync(init, cancellationToken).ConfigureAwait(false);
        }
    }

    private async ValueTask OnKexMethodMessageAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        if (_ignoreNextKexPacket)
        {
            _ignoreNextKexPacket = false;
            return;
        }

        if (_negotiated is null || _pendingIncomingCipher is not null)
        {
            throw new SshProtocolException($"unexpected key exchange message {payload.Span[0]}");
        }

        var message = (SshMessageNumber)payload.Span[0];
        if (Role == SshRole.Server && message == SshMessageNumber.KexEcdhInit)
        {
            await ReplyToEcdhInitAsync(payload, cancellationToken).ConfigureAwait(false);
        }
        else if (Role == SshRole.Client && message == SshMessageNumber.KexEcdhReply && _clientEphemeral is not null)
        {
            await AcceptEcdhReplyAsync(payload, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            throw new SshProtocolException($"unexpected key exchange message {(byte)message}");
        }
    }

    /// <summary>Server side of RFC 5656 §4 / RFC 8731 §3.</summary>
    private async ValueTask ReplyToEcdhInitAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        var negotiated = _negotiated!;
        var reader = new SshReader(payload.Span[1..]);
        var clientPublic = reader.ReadStringBytes().ToArray();
        reader.EnsureEnd();

        using var ephemeral = EphemeralKeyAgreement.Create(negotiated.KeyExchange);
        var sharedSecret = ephemeral.DeriveSharedSecret(clientPublic);
        var serverPublic = ephemeral.PublicKey;
        var hostKey = _options.HostKeys.First(k => k.SignatureAlgorithms.Contains(negotiated.HostKey));
        var exchangeHash = KeyDerivation.ExchangeHash(
            PeerVersion!, OurVersion, _peerKexInit, _ourKexInit, hostKey.PublicKeyBlob.Span, clientPublic, serverPublic, sharedSecret);
        SessionId ??= exchangeHash;
        var signature = hostKey.Sign(negotiated.HostKey, exchangeHash);
        var reply = new SshWriter(SshMessageNumber.KexEcdhReply, 1024)
            .WriteString(hostKey.PublicKeyBlob.Span).WriteString(serverPublic).WriteString(signature).ToArray();
        await SendTransportMessageAsync(reply, cancellationToken).ConfigureAwait(false);
        await SwitchKeysAsync(sharedSecret, exchangeHash, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Client side: check the host key and its signature over H before trusting anything derived from K.</summary>
    private async ValueTask AcceptEcdhReplyAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        var negotiated = _negotiated!;
        var reader = new SshReader(payload.Span[1..]);
        var hostKey = reader.ReadStringBytes().ToArray();
        var serverPublic = reader.ReadStringBytes().ToArray();
        var signature = reader.ReadStringBytes().ToArray();
        reader.EnsureEnd();
        if (!_options.AcceptHostKey(hostKey))
        {
            throw new SshProtocolException(SshDisconnectReason.HostKeyNotVerifiable, "server host key is not the one expected");
        }

        var clientPublic = _clientEphemeral!.PublicKey;
        var sharedSecret = _clientEphemeral.DeriveSharedSecret(serverPublic);
        _clientEphemeral.Dispose();
        _clientEphemeral = null;
        var exchangeHash = KeyDerivation.ExchangeHash(
            OurVersion, PeerVersion!, _ourKexInit, _peerKexInit, hostKey, clientPublic, serverPublic, sharedSecret);
        if (!SshHostKey.Verify(hostKey, negotiated.HostKey, exchangeHash, signature))
        {
            throw new SshProtocolException(SshDisconnectReason.KeyExchangeFailed, "host key signature over the exchange hash does not verify");
        }

        SessionId ??= exchangeHash;
        await SwitchKeysAsync(sharedSecret, exchangeHash, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Derives both directions' keys (RFC 4253 §7.2), sends NEWKEYS and switches our outgoing direction.</summary>
    private async ValueTask SwitchKeysAsync(byte[] sharedSecret, byte[] exchangeHash, CancellationToken cancellationToken)
    {
        var negotiated = _negotiated!;
        var sessionId = SessionId!;
        PacketCipher Build(string encryption, string? mac, char ivLetter, char keyLetter, char macLetter)
        {
            var (keyLength, ivLength) = SshAlgorithms.KeySizes(encryption);
            var iv = ivLength == 0 ? [] : KeyDerivation.DeriveKey(sharedSecret, exchangeHash, ivLetter, sessionId, ivLength);
            var key = KeyDerivation.DeriveKey(sharedSecret, exchangeHash, keyLetter, sessionId, keyLength);
            var macKey = mac is null ? [] : KeyDerivation.DeriveKey(sharedSecret, exchangeHash, macLetter, sessionId, SshAlgorithms.MacKeyLength(mac));
            try
            {
                return SshAlgorithms.CreateCipher(encryption, mac, key, iv, macKey);
            }
            finally
            {
                CryptographicOperations.ZeroMemory(key);
                CryptographicOperations.ZeroMemory(macKey);
            }
        }

        var clientToServer = Build(negotiated.EncryptionClientToServer, negotiated.MacClientToServer, 'A', 'C', 'E');
        var serverToClient = Build(negotiated.EncryptionServerToClient, negotiated.MacServerToClient, 'B', 'D', 'F');
        CryptographicOperations.ZeroMemory(sharedSecret);
        var (outgoing, incoming) = Role == SshRole.Server ? (serverToClient, clientToServer) : (clientToServer, serverToClient);
        _pendingIncomingCipher = incoming;

        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            WritePacket([(byte)SshMessageNumber.NewKeys]);
            _outgoingCipher.Dispose();
            _outgoingCipher = outgoing;
            _sentNewKeys = true;
            if (StrictKeyExchange)
            {
                // Strict kex resets the sequence number with every NEWKEYS, so no packet can be dropped or
                // inserted unnoticed across the switch (the Terrapin attack).
                _outgoingSequence = 0;
            }

            if (!_initialKexDone && _peerOffersExtInfo)
            {
                // RFC 8308 §2.4: EXT_INFO as the next packet after the server's first NEWKEYS.
                WritePacket(BuildExtInfo());
            }

            foreach (var deferred in _deferredMessages)
            {
                WritePacket(deferred);
            }

            _deferredMessages.Clear();
            await _output.FlushAsync(cancellationToken).ConfigureAwait(false);
            Algorithms = negotiated;
            CompleteKexIfDone();
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private byte[] BuildExtInfo()
    {
        var signatureAlgorithms = _options.Algorithms.HostKey.Where(SshAlgorithms.HostKey.Contains);
        return new SshWriter(SshMessageNumber.ExtInfo).WriteUInt32(1)
            .WriteString("server-sig-algs").WriteNameList(signatureAlgorithms).ToArray();
    }

    private async ValueTask OnNewKeysAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        if (payload.Length != 1 || _pendingIncomingCipher is null)
        {
            throw new SshProtocolException("unexpected NEWKEYS");
        }

        _incomingCipher.Dispose();
        _incomingCipher = _pendingIncomingCipher;
        _pendingIncomingCipher = null;
        if (StrictKeyExchange)
        {
            _incomingSequence = 0;
        }

        _initialKexDone = true;
        _peerKexInit = null;
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            CompleteKexIfDone();
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private void CompleteKexIfDone()
    {
        // Done when NEWKEYS went both ways: ours is sent and the peer's pending cipher has been taken into use.
        if (_sentNewKeys && _pendingIncomingCipher is null && _peerKexInit is null && _ourKexInit is not null)
        {
            _ourKexInit = null;
            _sentNewKeys = false;
            _negotiated = null;
            Interlocked.Exchange(ref _bytesSinceKex, 0);
            Interlocked.Exchange(ref _packetsSinceKex, 0);
            Interlocked.Increment(ref _completedKeyExchanges);
        }
    }

    private async ValueTask RekeyIfDueAsync(CancellationToken cancellationToken)
    {
        if (_initialKexDone && !KexInProgress
            && (Interlocked.Read(ref _bytesSinceKex) >= _options.RekeyAfterBytes || Interlocked.Read(ref _packetsSinceKex) >= _options.RekeyAfterPackets))
        {
            await RequestKeyExchangeAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private async ValueTask SendKexInitLockedAsync(CancellationToken cancellationToken)
    {
        var preferences = _options.Algorithms;
        var kex = preferences.KeyExchange.ToList();
        if (!_initialKexDone)
        {
            // Pseudo-algorithms only in the first KEXINIT, as OpenSSH does.
            if (_options.OfferStrictKeyExchange)
            {
                kex.Add(Role == SshRole.Server ? SshAlgorithms.StrictKexServer : SshAlgorithms.StrictKexClient);
            }

            if (Role == SshRole.Client)
            {
                kex.Add(SshAlgorithms.ExtInfoClient);
            }
        }

        var hostKeyAlgorithms = Role == SshRole.Server
            ? preferences.HostKey.Where(a => _options.HostKeys.Any(k => k.SignatureAlgorithms.Contains(a))).ToArray()
            : preferences.HostKey.ToArray();
        if (hostKeyAlgorithms.Length == 0)
        {
            throw new InvalidOperationException("no host key can sign with the configured host key algorithms");
        }

        var message = new KexInitMessage(
            [.. kex], hostKeyAlgorithms,
            [.. preferences.Encryption], [.. preferences.Encryption],
            [.. preferences.Mac], [.. preferences.Mac],
            ["none"], ["none"], FirstKexPacketFollows: false);
        _ourKexInit = message.Serialize();
        WritePacket(_ourKexInit);
        await _output.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask SendTransportMessageAsync(byte[] payload, CancellationToken cancellationToken)
    {
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            WritePacket(payload);
            await _output.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>SSH_MSG_UNIMPLEMENTED for the packet just received (RFC 4253 §11.4).</summary>
    public ValueTask SendUnimplementedForLastPacketAsync(CancellationToken cancellationToken) => SendUnimplementedAsync(cancellationToken);

    private async ValueTask SendUnimplementedAsync(CancellationToken cancellationToken)
    {
        var payload = new SshWriter(SshMessageNumber.Unimplemented).WriteUInt32(_incomingSequence - 1).ToArray();
        await SendTransportMessageAsync(payload, cancellationToken).ConfigureAwait(false);
    }

    private static SshConnectionClosedException ParseDisconnect(ReadOnlySpan<byte> payload)
    {
        var reader = new SshReader(payload[1..]);
        var reason = (SshDisconnectReason)reader.ReadUInt32();
        var description = reader.ReadUtf8String();
        return new SshConnectionClosedException(reason, "peer disconnected: " + description);
    }

    /// <summary>Tests only: installs ciphers directly, as if a key exchange had completed.</summary>
    internal void UseCiphersForTesting(PacketCipher outgoing, PacketCipher incoming)
    {
        _outgoingCipher = outgoing;
        _incomingCipher = incoming;
        _initialKexDone = true;
    }

    /// <summary>Tests only: frames one packet into the output without flushing.</summary>
    internal void WritePacketForTesting(ReadOnlySpan<byte> payload) => WritePacket(payload);

    /// <summary>Frames, pads and seals one packet into the output pipe (RFC 4253 §6). Caller holds the write lock.</summary>
    private void WritePacket(ReadOnlySpan<byte> payload)
    {
        var cipher = _outgoingCipher;
        var alignment = Math.Max(8, cipher.BlockSize);
        var alignedLength = (cipher.LengthOutsideAlignment ? 1 : 5) + payload.Length;

        // At least 4 bytes of random padding, and the aligned part a multiple of the block size.
        var padding = alignment - (alignedLength % alignment);
        if (padding < 4)
        {
            padding += alignment;
        }

        var packetLength = 1 + payload.Length + padding;
        if (packetLength > _options.MaxPacketLength)
        {
            throw new InvalidOperationException($"message of {payload.Length} bytes exceeds the packet limit");
        }

        var total = 4 + packetLength + cipher.TagLength;
        var span = _output.GetSpan(total)[..total];
        BinaryPrimitives.WriteUInt32BigEndian(span, (uint)packetLength);
        span[4] = (byte)padding;
        payload.CopyTo(span[5..]);
        RandomNumberGenerator.Fill(span.Slice(5 + payload.Length, padding));
        cipher.Seal(_outgoingSequence, span[..(4 + packetLength)], span[(4 + packetLength)..]);
        _output.Advance(total);
        _outgoingSequence++;
        Interlocked.Add(ref _bytesSinceKex, total);
        Interlocked.Increment(ref _packetsSinceKex);
    }

    private async ValueTask<ReadOnlyMemory<byte>> ReadPacketAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await _input.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = result.Buffer;
            if (TryReadPacket(ref buffer, out var payload))
            {
                _input.AdvanceTo(buffer.Start);
                return payload;
            }

            _input.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted || result.IsCanceled)
            {
                throw new SshConnectionClosedException(buffer.IsEmpty ? "connection closed" : "connection closed inside a packet");
            }
        }
    }

    /// <summary>Takes one whole packet off the front of <paramref name="buffer"/>, if it is all there.</summary>
    internal bool TryReadPacket(ref ReadOnlySequence<byte> buffer, out ReadOnlyMemory<byte> payload)
    {
        payload = default;
        var cipher = _incomingCipher;
        var headerSize = cipher.LengthHeaderSize;
        if (buffer.Length < headerSize)
        {
            return false;
        }

        Span<byte> head = stackalloc byte[16];
        buffer.Slice(0, headerSize).CopyTo(head);
        var packetLength = cipher.PeekPacketLength(_incomingSequence, head[..headerSize]);
        if (packetLength < 5 || packetLength > (uint)_options.MaxPacketLength)
        {
            throw new SshProtocolException($"packet length {packetLength} out of bounds (5..{_options.MaxPacketLength})");
        }

        var alignment = Math.Max(8, cipher.BlockSize);
        var alignedLength = cipher.LengthOutsideAlignment ? packetLength : packetLength + 4;
        if (alignedLength % alignment != 0)
        {
            throw new SshProtocolException($"packet length {packetLength} is not a multiple of the block size {alignment}");
        }

        var sealedLength = 4 + (int)packetLength;
        var total = sealedLength + cipher.TagLength;
        if (buffer.Length < total)
        {
            return false;
        }

        var packet = new byte[sealedLength];
        buffer.Slice(0, sealedLength).CopyTo(packet);
        Span<byte> tag = stackalloc byte[64];
        tag = tag[..cipher.TagLength];
        buffer.Slice(sealedLength, cipher.TagLength).CopyTo(tag);
        if (!cipher.Open(_incomingSequence, packet, tag))
        {
            throw new SshProtocolException(SshDisconnectReason.MacError, "packet authentication failed");
        }

        var paddingLength = packet[4];
        var payloadLength = (int)packetLength - paddingLength - 1;
        if (paddingLength < 4 || payloadLength < 1)
        {
            throw new SshProtocolException($"padding length {paddingLength} invalid for packet length {packetLength}");
        }

        buffer = buffer.Slice(total);
        _incomingSequence++;
        _packetsReceived++;
        Interlocked.Add(ref _bytesSinceKex, total);
        Interlocked.Increment(ref _packetsSinceKex);
        if (!_initialKexDone && _incomingSequence == 0)
        {
            // OpenSSH: a sequence number wrapping during the initial key exchange is an attack, not traffic.
            throw new SshProtocolException("sequence number wrapped during the initial key exchange");
        }

        payload = packet.AsMemory(5, payloadLength);
        return true;
    }
}
