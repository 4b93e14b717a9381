using System.Text;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using NhiAudit.Masking;

namespace NhiAudit.Tests.Masking;

/// <summary>Whatever arrives, masking never throws, stays within its bounds and never lets a planted secret through.</summary>
public sealed class MaskingPropertyTests
{
    private static readonly MaskingPolicy[] Policies =
    [
        MaskingTestPolicies.With(MaskingStrategy.Redact, "all"),
        MaskingTestPolicies.With(MaskingStrategy.Partial, "all"),
        MaskingTestPolicies.With(MaskingStrategy.Hash, "all"),
        MaskingTestPolicies.With(MaskingStrategy.Null, "all"),
    ];

    private static readonly string[] Fragments =
    [
        "@", "a@b.cc", "x.y", ".com", "4111", " ", "-", "1111", "4111111111111111", "123-45-6789", "GB82", " WEST", " 1234", "32",
        "eyJ", "eyJhbGciOiJub25lIn0", ".", "Bearer ", "abcdefgh", "==", "AccountKey=", "sig=", ";", "&", "\"", "-----BEGIN",
        " PRIVATE KEY-----", "-----END", "\n", "é", "😀", "\\", "\0", "9", "0",
    ];

    private static readonly Gen<string> Fragmented = Gen.ListOf(Gen.Elements(Fragments)).Select(string.Concat);

    private static bool IsAllowedMaskedByte(byte b) =>
        SensitiveValueScanner.IsAsciiLetterOrDigit(b) || b is (byte)'*' or (byte)'-' or (byte)'.' or (byte)'@' or (byte)'_' or (byte)'/'
            or (byte)':' or (byte)'+' or (byte)' ';

    private static bool DetectedStaysInBounds(byte[] value)
    {
        foreach (var policy in Policies)
        {
            var destination = new byte[MaskingPolicy.MaxDetectedLength(value.Length)];
            var n = policy.MaskDetected(value, destination, out var found, out _);
            if (n > destination.Length || (n < 0) != (found == SensitiveValueKinds.None))
            {
                return false;
            }
        }

        return true;
    }

    private static bool MaskedStaysInBoundsAndSafe(byte[] value)
    {
        foreach (var strategy in Enum.GetValues<MaskingStrategy>())
        {
            var destination = new byte[MaskingPolicy.MaxMaskedLength(value.Length)];
            var n = Policies[0].MaskValue(value, strategy, destination);
            if (n > MaskingPolicy.MaxMaskedLength(value.Length) || !destination.AsSpan(0, n).ToArray().All(IsAllowedMaskedByte))
            {
                return false;
            }
        }

        return true;
    }

    [Property(MaxTest = 500)]
    public bool MaskDetected_never_throws_and_stays_within_bounds_for_random_bytes(byte[]? value) => DetectedStaysInBounds(value ?? []);

    [Property(MaxTest = 500)]
    public bool MaskDetected_never_throws_and_stays_within_bounds_for_random_strings(string? text)
    {
        text ??= "";
        foreach (var policy in Policies)
        {
            var masked = policy.MaskDetected(text, out var found);
            if (found == SensitiveValueKinds.None && !ReferenceEquals(masked, text))
            {
                return false;
            }
        }

        return DetectedStaysInBounds(Encoding.UTF8.GetBytes(text));
    }

    [Property(MaxTest = 500)]
    public Property MaskDetected_stays_within_bounds_for_fragments_of_secrets() =>
        Prop.ForAll(Fragmented.ToArbitrary(), text => DetectedStaysInBounds(Encoding.UTF8.GetBytes(text)));

    [Fact]
    public void MaskDetected_stays_within_bounds_for_the_densest_matches()
    {
        var dense = string.Concat(Enumerable.Repeat("sig=ab&", 100)) + string.Concat(Enumerable.Repeat("a@b.cc ", 100));
        Assert.True(DetectedStaysInBounds(Encoding.UTF8.GetBytes(dense)));
    }

    [Property(MaxTest = 500)]
    public bool MaskValue_writes_safe_ascii_within_bounds_for_random_bytes(byte[]? value) => MaskedStaysInBoundsAndSafe(value ?? []);

    [Property(MaxTest = 500)]
    public bool MaskValue_writes_safe_ascii_within_bounds_for_random_strings(string? text) =>
        MaskedStaysInBoundsAndSafe(Encoding.UTF8.GetBytes(text ?? ""));

    [Property(MaxTest = 500)]
    public Property Planted_cards_and_ssns_never_come_through()
    {
        var secrets = Gen.Elements(
            "4111111111111111", "4111 1111 1111 1111", "4111-1111-1111-1111", "5555555555554444", "378282246310005", "123-45-6789", "078-05-1120");
        var noise = ArbMap.Default.GeneratorFor<string>().Select(s => s ?? "");
        var gen = noise.SelectMany(_ => secrets, (prefix, secret) => (prefix, secret)).SelectMany(_ => noise, (p, suffix) => (p.prefix, p.secret, suffix));
        return Prop.ForAll(gen.ToArbitrary(), t =>
        {
            var text = t.prefix + " " + t.secret + " " + t.suffix;
            foreach (var policy in new[] { Policies[0], Policies[2], Policies[3] })
            {
                var masked = policy.MaskDetected(text, out var found);
                if (found == SensitiveValueKinds.None || masked.Contains(t.secret, StringComparison.Ordinal))
                {
                    return false;
                }
            }

            var partial = Policies[1].MaskDetected(text, out _);
            return !partial.Contains(t.secret[..^4], StringComparison.Ordinal);
        });
    }
}
