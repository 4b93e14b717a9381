using NhiAudit.Masking;

namespace NhiAudit.Tests.Masking;

internal static class MaskingTestPolicies
{
    public static readonly byte[] Key = [.. Enumerable.Range(1, 32).Select(i => (byte)i)];

    public static MaskingPolicy With(MaskingStrategy strategy, params string[] detectors) =>
        MaskingPolicy.Create([new MaskingRuleOptions { Name = "test", Detectors = [.. detectors], Strategy = strategy }], Key);

    public static MaskingPolicy Redacting(params string[] detectors) => With(MaskingStrategy.Redact, detectors);

    /// <summary>An Azure storage key: 64 random bytes in base64 are 86 characters and <c>==</c>.</summary>
    public static string StorageKey(int seed)
    {
        var bytes = new byte[64];
        new Random(seed).NextBytes(bytes);
        return Convert.ToBase64String(bytes);
    }
}
