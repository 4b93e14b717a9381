using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Microsoft.IdentityModel.Tokens;
using NhiAudit.Identity;

namespace NhiAudit.Tests.Identity;

/// <summary>Whatever arrives, the validator answers with a refusal and a reason, never an exception, never an echo of the input.</summary>
public sealed class WorkloadTokenPropertyTests : IDisposable
{
    private static readonly Gen<char> Base64UrlChar =
        Gen.Elements("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".ToCharArray());

    private static readonly string[] Fragments =
    [
        "{", "}", "[", "]", "\"alg\":", "\"none\"", "\"ES256\"", "\"HS256\"", "\"iss\":", "\"https://issuer.local\"", "\"kid\":", "\"aud\":",
        "\"nhiaudit\"", "\"exp\":", "1", "99999999999", "-1", ",", ":", "null", "true", "\"\"", "\"\\u0000\"", "1e999",
    ];

    private readonly DevIssuerContext _context = new();

    public void Dispose() => _context.Dispose();

    [Property(MaxTest = 300)]
    public Property Random_strings_are_refused_without_echo() =>
        Prop.ForAll(ArbMap.Default.ArbFor<string>(), input => AssertRefusedAsync(input ?? ""));

    [Property(MaxTest = 300)]
    public Property Random_three_segment_base64url_strings_are_refused_without_echo()
    {
        var segment = Gen.Sized(size => Gen.Choose(0, 4 * size + 8).SelectMany(n => Gen.ArrayOf(Base64UrlChar, n)).Select(c => new string(c)));
        var token = segment.SelectMany(a => segment, (a, b) => (a, b)).SelectMany(p => segment, (p, c) => $"{p.a}.{p.b}.{c}");
        return Prop.ForAll(token.ToArbitrary(), AssertRefusedAsync);
    }

    [Property(MaxTest = 300)]
    public Property Random_json_ish_headers_and_payloads_are_refused_without_echo()
    {
        var json = Gen.ListOf(Gen.Elements(Fragments)).Select(parts => TokenForge.B64(string.Concat(parts)));
        var signature = Gen.ArrayOf(ArbMap.Default.ArbFor<byte>().Generator).Select(Base64UrlEncoder.Encode);
        var token = json.SelectMany(h => json, (h, p) => (h, p)).SelectMany(hp => signature, (hp, s) => $"{hp.h}.{hp.p}.{s}");
        return Prop.ForAll(token.ToArbitrary(), AssertRefusedAsync);
    }

    [Property(MaxTest = 200)]
    public Property Mutating_one_character_of_a_valid_token_never_yields_another_identity()
    {
        var valid = _context.Issuer.MintToken(new TokenRequest { Subject = "job", Roles = ["Reader"] });
        var mutation = Gen.Choose(0, valid.Length - 1).SelectMany(_ => Base64UrlChar, (index, c) => (index, c));
        return Prop.ForAll(mutation.ToArbitrary(), async m =>
        {
            var chars = valid.ToCharArray();
            chars[m.index] = m.c;
            var mutated = new string(chars);
            var result = await _context.Validator.AuthenticateAsync(mutated);
            if (mutated == valid)
            {
                Assert.True(result.Succeeded);
                return;
            }

            // The signature's last base64url character carries unused bits, so a mutation there can decode to the same
            // signature: still the same token. Any other change (header or payload text is what is signed) must be refused.
            if (result.Succeeded)
            {
                Assert.True(m.index > valid.LastIndexOf('.'), $"a mutation at {m.index} was accepted");
                Assert.Equal(Base64UrlEncoder.DecodeBytes(valid.Split('.')[2]), Base64UrlEncoder.DecodeBytes(mutated.Split('.')[2]));
                Assert.Equal("job", result.Identity!.Subject);
                Assert.Equal(["Reader"], result.Identity.Roles);
            }
            else
            {
                Assert.DoesNotContain(mutated, result.Failure!, StringComparison.Ordinal);
            }
        });
    }

    private async Task AssertRefusedAsync(string input)
    {
        var result = await _context.Validator.AuthenticateAsync(input);

        Assert.False(result.Succeeded);
        Assert.False(string.IsNullOrWhiteSpace(result.Failure));

        // Reasons are short fixed phrases, so a very short input can appear in one by chance ("a" in "token"); from
        // eight characters on, an echo would be the validator's fault.
        if (input.Trim().Length >= 8)
        {
            Assert.DoesNotContain(input.Trim(), result.Failure, StringComparison.Ordinal);
        }

        Assert.True(result.Failure!.Length <= 200, result.Failure);
        Assert.DoesNotContain(result.Failure, c => char.IsControl(c));
    }
}
