using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using NhiAudit.Policy;

namespace NhiAudit.Masking;

/// <summary>
/// The masking policy in force. It follows the policy file: when <see cref="CelPolicyEngine"/> reloads it, the file's
/// <c>Masking</c> rules take effect for the next statement of every session, without dropping connections. The Hash
/// key stays the one loaded at start, so pseudonyms stay stable across reloads.
/// </summary>
public sealed class MaskingPolicySource : IValueMasker
{
    private readonly byte[] _key;
    private readonly ILogger _logger;
    private MaskingPolicy _current;

    /// <summary>Compiles the configured rules and, when <paramref name="engine"/> reloads its file, the file's.</summary>
    /// <param name="options">The policy options (masking rules and the key file).</param>
    /// <param name="engine">The policy engine; a <see cref="CelPolicyEngine"/> is followed on reload.</param>
    /// <param name="logger">Where a rejected reload is logged.</param>
    public MaskingPolicySource(PolicyOptions options, IPolicyEngine? engine = null, ILogger<MaskingPolicySource>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _key = MaskingKeys.Load(options.MaskingKeyFile);
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        var initial = engine is CelPolicyEngine cel ? cel.CurrentOptions.Masking : options.Masking;
        _current = MaskingPolicy.Create(initial, _key);
        if (engine is CelPolicyEngine watched)
        {
            watched.Reloaded += OnReloaded;
        }
    }

    /// <summary>The masking policy in force now.</summary>
    public MaskingPolicy Current => Volatile.Read(ref _current);

    /// <inheritdoc/>
    public bool HasDetectors => Current.HasDetectors;

    /// <inheritdoc/>
    public string? Mask(string value, MaskingStrategy strategy) => Current.Mask(value, strategy);

    /// <inheritdoc/>
    public string MaskDetected(string text, out SensitiveValueKinds found) => Current.MaskDetected(text, out found);

    private void OnReloaded(PolicyOptions options)
    {
        try
        {
            Volatile.Write(ref _current, MaskingPolicy.Create(options.Masking, _key));
        }
        catch (ArgumentException ex)
        {
            _logger.LogError(ex, "The reloaded masking rules are invalid; the previous ones stay in force");
        }
    }
}
