using System.Text;
using NhiAudit.Masking;

namespace NhiAudit.Tests.Masking;

/// <summary>The per-value paths the relays call allocate nothing once warm (a MemoryDiagnoser-style check).</summary>
public sealed class MaskingAllocationTests
{
    private static readonly byte[] Text = Encoding.UTF8.GetBytes(
        "user alice@contoso.com paid with 4111 1111 1111 1111 from GB82 WEST 1234 5698 7654 32, ssn 123-45-6789, "
        + "Authorization: Bearer abcdefgh12345678, id_token eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln; AccountKey=c2VjcmV0;x key "
        + MaskingTestPolicies.StorageKey(4) + "\n-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\nand some plain text without secrets at the end é😀");

    private static long Allocated(Action action)
    {
        action();
        action();
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 100; i++)
        {
            action();
        }

        return GC.GetAllocatedBytesForCurrentThread() - before;
    }

    [Theory]
    [InlineData(MaskingStrategy.Redact)]
    [InlineData(MaskingStrategy.Partial)]
    [InlineData(MaskingStrategy.Hash)]
    [InlineData(MaskingStrategy.Null)]
    public void MaskValue_allocates_nothing(MaskingStrategy strategy)
    {
        var policy = MaskingTestPolicies.Redacting("all");
        var destination = new byte[MaskingPolicy.MaxMaskedLength(Text.Length)];
        Assert.Equal(0, Allocated(() => policy.MaskValue(Text, strategy, destination)));
    }

    [Theory]
    [InlineData(MaskingStrategy.Redact)]
    [InlineData(MaskingStrategy.Partial)]
    [InlineData(MaskingStrategy.Hash)]
    [InlineData(MaskingStrategy.Null)]
    public void MaskDetected_allocates_nothing(MaskingStrategy strategy)
    {
        var policy = MaskingTestPolicies.With(strategy, "all");
        var destination = new byte[MaskingPolicy.MaxDetectedLength(Text.Length)];
        var n = policy.MaskDetected(Text, destination, out var found, out _);
        Assert.True(n > 0);
        Assert.Equal(SensitiveValueKinds.All, found);
        Assert.Equal(0, Allocated(() => policy.MaskDetected(Text, destination, out _, out _)));
    }

    [Fact]
    public void MaskDetected_allocates_nothing_when_nothing_is_found()
    {
        var policy = MaskingTestPolicies.Redacting("all");
        var plain = Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("plain text, numbers 12 345 and = signs; nothing secret. ", 50)));
        var destination = new byte[MaskingPolicy.MaxDetectedLength(plain.Length)];
        Assert.Equal(-1, policy.MaskDetected(plain, destination, out _, out _));
        Assert.Equal(0, Allocated(() => policy.MaskDetected(plain, destination, out _, out _)));
    }
}
