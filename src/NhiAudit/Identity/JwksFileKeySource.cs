using Microsoft.Extensions.Logging;
using Microsoft.IdentityModel.Tokens;

namespace NhiAudit.Identity;

/// <summary>
/// Keys from a local JWKS file (development issuers). The file is re-read when its timestamp or size changes, checked at
/// most every <see cref="CheckInterval"/> so a busy gateway does not stat the file on every token.
/// </summary>
internal sealed class JwksFileKeySource : SigningKeySource
{
    /// <summary>How often the file's timestamp is compared at most.</summary>
    public static readonly TimeSpan CheckInterval = TimeSpan.FromSeconds(2);

    private readonly string _path;
    private readonly string _issuerName;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private IssuerKeys _current;
    private (DateTime WriteTime, long Length) _stamp;
    private DateTimeOffset _nextCheck;

    /// <summary>Loads the file now, so a missing or broken file stops the gateway at startup rather than at the first client.</summary>
    public JwksFileKeySource(string path, string issuerName, TimeProvider timeProvider, ILogger logger)
    {
        _path = Path.GetFullPath(path);
        _issuerName = issuerName;
        _timeProvider = timeProvider;
        _logger = logger;
        try
        {
            (_current, _stamp) = Load();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or InvalidOperationException)
        {
            throw new InvalidOperationException($"The JWKS file '{_path}' of issuer '{issuerName}' cannot be used: {ex.Message}", ex);
        }

        _nextCheck = timeProvider.GetUtcNow() + CheckInterval;
    }

    /// <inheritdoc />
    public override ValueTask<IssuerKeys> GetKeysAsync(CancellationToken cancellationToken)
    {
        var now = _timeProvider.GetUtcNow();
        lock (_lock)
        {
            if (now >= _nextCheck)
            {
                _nextCheck = now + CheckInterval;
                ReloadIfChanged();
            }

            return ValueTask.FromResult(_current);
        }
    }

    /// <inheritdoc />
    public override void RequestRefresh()
    {
        // The next call compares the timestamp again instead of waiting for the interval: a token signed with a new key
        // usually means the file was just rewritten.
        lock (_lock)
        {
            _nextCheck = DateTimeOffset.MinValue;
        }
    }

    private void ReloadIfChanged()
    {
        try
        {
            var info = new FileInfo(_path);
            if (!info.Exists || (info.LastWriteTimeUtc, info.Length) == _stamp)
            {
                return;
            }

            (_current, _stamp) = Load();
            _logger.LogInformation("Reloaded the JWKS file {Path} of issuer {Issuer}: {Count} signing key(s)", _path, _issuerName, _current.Keys.Count);
        }
        catch (Exception ex)
        {
            // A half-written file must not drop the keys that work: keep the previous set and try again later.
            _logger.LogWarning(ex, "Could not reload the JWKS file {Path} of issuer {Issuer}; keeping the previous keys", _path, _issuerName);
        }
    }

    private (IssuerKeys Keys, (DateTime, long) Stamp) Load()
    {
        var info = new FileInfo(_path);
        if (!info.Exists)
        {
            throw new FileNotFoundException("the file does not exist", _path);
        }

        var stamp = (info.LastWriteTimeUtc, info.Length);
        var json = File.ReadAllText(_path);
        var keys = IssuerKeys.AsymmetricOnly(new JsonWebKeySet(json).GetSigningKeys());
        if (keys.Count == 0)
        {
            throw new InvalidOperationException("it holds no asymmetric signing keys");
        }

        return (new IssuerKeys(null, keys), stamp);
    }
}
