using System.Text;
using NhiAudit.Masking;

namespace NhiAudit.Tests.Masking;

public sealed class MaskingPolicyTests
{
    private static readonly MaskingPolicy Policy = MaskingTestPolicies.Redacting("all");

    [Theory]
    [InlineData("123-45-6789", "***-**-6789")]
    [InlineData("4111 1111 1111 1111", "**** **** **** 1111")]
    [InlineData("abc", "***")]
    [InlineData("abcd", "****")]
    [InlineData("abcde", "*bcde")]
    [InlineData("", "")]
    [InlineData("john.doe@example.com", "****.***@******e.com")]
    [InlineData("a\"b\\c\td,e\u0001fgh", "********e*fgh")]
    [InlineData("héllo wörld", "***** w*rld")]
    [InlineData("1:2/3+4_5", "*:2/3+4_5")]
    public void Partial_keeps_the_last_four_letters_or_digits_and_safe_separators(string value, string expected) =>
        Assert.Equal(expected, Policy.Mask(value, MaskingStrategy.Partial));

    [Fact]
    public void Partial_writes_one_star_per_multibyte_sequence()
    {
        Assert.Equal("******", Policy.Mask("日本語😀ab", MaskingStrategy.Partial));
        Assert.Equal("******", Policy.Mask("日本cdef", MaskingStrategy.Partial));
        Assert.Equal("***defg", Policy.Mask("日本cdefg", MaskingStrategy.Partial));
    }

    [Theory]
    [InlineData("")]
    [InlineData("x")]
    [InlineData("a very long secret value that is much longer than thirty-two bytes")]
    public void Redact_writes_four_stars(string value) => Assert.Equal("****", Policy.Mask(value, MaskingStrategy.Redact));

    [Fact]
    public void Null_strategy_returns_null_for_strings_and_redacts_bytes()
    {
        Assert.Null(Policy.Mask("secret", MaskingStrategy.Null));
        var destination = new byte[32];
        var n = Policy.MaskValue("secret"u8, MaskingStrategy.Null, destination);
        Assert.Equal("****", Encoding.ASCII.GetString(destination, 0, n));
    }

    [Fact]
    public void Hash_is_stable_keyed_and_sixteen_hex_digits()
    {
        var a = Policy.Mask("alice@contoso.com", MaskingStrategy.Hash);
        var again = MaskingTestPolicies.Redacting("email").Mask("alice@contoso.com", MaskingStrategy.Hash);
        var other = Policy.Mask("bob@contoso.com", MaskingStrategy.Hash);
        var otherKey = MaskingPolicy.Create([], Enumerable.Repeat((byte)7, 16).ToArray()).Mask("alice@contoso.com", MaskingStrategy.Hash);

        Assert.Matches("^hmac:[0-9a-f]{16}$", a);
        Assert.Equal(a, again);
        Assert.NotEqual(a, other);
        Assert.NotEqual(a, otherKey);

        var expected = Convert.ToHexStringLower(System.Security.Cryptography.HMACSHA256.HashData(MaskingTestPolicies.Key, "alice@contoso.com"u8))[..16];
        Assert.Equal("hmac:" + expected, a);
    }

    [Fact]
    public void MaskValue_refuses_a_destination_too_small()
    {
        Assert.Throws<ArgumentException>(() => Policy.MaskValue("123456789"u8, MaskingStrategy.Hash, new byte[10]));
        Assert.Throws<ArgumentException>(() => Policy.MaskValue("123456789"u8, MaskingStrategy.Partial, new byte[8]));
        Assert.Throws<ArgumentException>(() => Policy.MaskValue("1"u8, MaskingStrategy.Redact, new byte[3]));
    }

    [Fact]
    public void Create_refuses_a_short_hash_key() =>
        Assert.Throws<ArgumentException>(() => MaskingPolicy.Create([], new byte[15]));

    [Fact]
    public void Create_refuses_an_unknown_detector_naming_rule_and_detector()
    {
        var e = Assert.Throws<ArgumentException>(() => MaskingPolicy.Create(
            [new MaskingRuleOptions { Name = "pii", Detectors = ["email", "phone"] }], MaskingTestPolicies.Key));
        Assert.Contains("'pii'", e.Message, StringComparison.Ordinal);
        Assert.Contains("'phone'", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("customers.ssn")]
    [InlineData("a.b.c.d")]
    [InlineData("public..ssn")]
    [InlineData("public.cust*.ssn")]
    [InlineData("")]
    [InlineData(" public.customers.ssn")]
    public void Create_refuses_a_malformed_column_pattern_naming_the_rule(string pattern)
    {
        var e = Assert.Throws<ArgumentException>(() => MaskingPolicy.Create(
            [new MaskingRuleOptions { Name = "cols", Columns = [pattern] }], MaskingTestPolicies.Key));
        Assert.Contains("'cols'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Column_patterns_are_lower_cased_and_match_case_insensitively_with_wildcards()
    {
        var policy = MaskingPolicy.Create(
        [
            new MaskingRuleOptions { Name = "ssn", Columns = ["Public.Customers.SSN"], Strategy = MaskingStrategy.Partial },
            new MaskingRuleOptions { Name = "any-ssn", Columns = ["*.*.ssn", "billing.*.*"], Strategy = MaskingStrategy.Hash },
        ], MaskingTestPolicies.Key);

        Assert.True(policy.IsEnabled);
        Assert.False(policy.HasDetectors);
        Assert.Equal(new ColumnMaskRule("public", "customers", "ssn", MaskingStrategy.Partial, "ssn"), policy.ColumnRules[0]);
        Assert.Equal("ssn", policy.FindColumnRule("PUBLIC", "customers", "Ssn")?.Rule);
        Assert.Equal("any-ssn", policy.FindColumnRule("other", "people", "SSN")?.Rule);
        Assert.Equal(MaskingStrategy.Hash, policy.FindColumnRule("Billing", "cards", "number")?.Strategy);
        Assert.Null(policy.FindColumnRule("public", "customers", "name"));
        Assert.True(new ColumnMaskRule("*", "*", "*", MaskingStrategy.Redact, "x").Matches("a", "b", "c"));
    }

    [Fact]
    public void None_is_disabled()
    {
        Assert.Same(MaskingPolicy.None, MaskingPolicy.None);
        Assert.False(MaskingPolicy.None.IsEnabled);
        Assert.False(MaskingPolicy.None.HasDetectors);
        Assert.Empty(MaskingPolicy.None.ColumnRules);
        Assert.Equal(SensitiveValueKinds.None, MaskingPolicy.None.Detectors);
        const string text = "mail alice@contoso.com";
        Assert.Same(text, MaskingPolicy.None.MaskDetected(text, out var found));
        Assert.Equal(SensitiveValueKinds.None, found);
        Assert.Equal(-1, MaskingPolicy.None.MaskDetected(Encoding.UTF8.GetBytes(text), new byte[200], out _, out _));
    }

    [Fact]
    public void Each_detector_takes_the_strategy_and_rule_of_the_first_rule_enabling_it()
    {
        var policy = MaskingPolicy.Create(
        [
            new MaskingRuleOptions { Name = "cards", Detectors = ["Credit-Card"], Strategy = MaskingStrategy.Partial },
            new MaskingRuleOptions { Name = "everything", Detectors = ["ALL"], Strategy = MaskingStrategy.Hash },
            new MaskingRuleOptions { Name = "late", Detectors = ["email"], Strategy = MaskingStrategy.Redact },
        ], MaskingTestPolicies.Key);

        Assert.True(policy.IsEnabled);
        Assert.Equal(SensitiveValueKinds.All, policy.Detectors);
        Assert.Equal("cards", policy.RuleFor(SensitiveValueKinds.CreditCard));
        Assert.Equal("everything", policy.RuleFor(SensitiveValueKinds.Email));
        Assert.Equal("everything", policy.RuleFor(SensitiveValueKinds.Email | SensitiveValueKinds.CreditCard));
        Assert.Equal("cards", policy.RuleFor(SensitiveValueKinds.CreditCard | SensitiveValueKinds.Jwt));
        Assert.Equal("", MaskingTestPolicies.Redacting("email").RuleFor(SensitiveValueKinds.Jwt));
        Assert.Equal("", policy.RuleFor(SensitiveValueKinds.None));

        var text = policy.MaskDetected("card 4111 1111 1111 1111 mail a@b.cc", out var found);
        Assert.Equal(SensitiveValueKinds.CreditCard | SensitiveValueKinds.Email, found);
        Assert.StartsWith("card **** **** **** 1111 mail hmac:", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Null_strategy_detection_redacts_and_asks_for_a_null_value()
    {
        var policy = MaskingTestPolicies.With(MaskingStrategy.Null, "us-ssn");
        var value = "ssn 123-45-6789."u8;
        var destination = new byte[MaskingPolicy.MaxDetectedLength(value.Length)];
        var n = policy.MaskDetected(value, destination, out var found, out var wholeValueNull);
        Assert.True(wholeValueNull);
        Assert.Equal(SensitiveValueKinds.UsSsn, found);
        Assert.Equal("ssn ****.", Encoding.UTF8.GetString(destination, 0, n));
        Assert.Equal("ssn ****.", policy.MaskDetected("ssn 123-45-6789.", out _));
    }

    [Fact]
    public void MaskDetected_returns_minus_one_and_the_same_string_when_nothing_is_found()
    {
        const string text = "nothing to see here: 12345, user at example dot com";
        Assert.Same(text, Policy.MaskDetected(text, out var found));
        Assert.Equal(SensitiveValueKinds.None, found);
        var bytes = Encoding.UTF8.GetBytes(text);
        Assert.Equal(-1, Policy.MaskDetected(bytes, new byte[MaskingPolicy.MaxDetectedLength(bytes.Length)], out found, out var isNull));
        Assert.Equal(SensitiveValueKinds.None, found);
        Assert.False(isNull);
    }

    [Fact]
    public void MaskDetected_copies_text_between_matches_and_keeps_multibyte_text()
    {
        var text = Policy.MaskDetected("héllo a@b.cc — ssn 123-45-6789 ✓, card 5555555555554444!", out var found);
        Assert.Equal("héllo **** — ssn **** ✓, card ****!", text);
        Assert.Equal(SensitiveValueKinds.Email | SensitiveValueKinds.UsSsn | SensitiveValueKinds.CreditCard, found);
    }

    [Fact]
    public void MaskDetected_refuses_a_destination_too_small() =>
        Assert.Throws<ArgumentException>(() => Policy.MaskDetected("x 123-45-6789 y"u8, new byte[5], out _, out _));
}
