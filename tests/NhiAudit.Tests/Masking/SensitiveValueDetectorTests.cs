using NhiAudit.Masking;

namespace NhiAudit.Tests.Masking;

/// <summary>Each detector alone, with Redact: what it finds (replaced by <c>****</c>) and what it leaves.</summary>
public sealed class SensitiveValueDetectorTests
{
    private static string Detect(string detector, string text, out SensitiveValueKinds found) =>
        MaskingTestPolicies.Redacting(detector).MaskDetected(text, out found);

    private static void AssertMasked(string detector, SensitiveValueKinds kind, string text, string expected)
    {
        Assert.Equal(expected, Detect(detector, text, out var found));
        Assert.Equal(kind, found);
        Assert.Equal(expected, MaskingTestPolicies.Redacting("all").MaskDetected(text, out _));
    }

    private static void AssertUntouched(string detector, string text)
    {
        Assert.Same(text, Detect(detector, text, out var found));
        Assert.Equal(SensitiveValueKinds.None, found);
    }

    [Theory]
    [InlineData("mail alice@contoso.com now", "mail **** now")]
    [InlineData("<first.last+tag@mail.example.co.uk>", "<****>")]
    [InlineData("a_b%c-d@sub-domain.example.org.", "****.")]
    [InlineData("x@host.com, y@host.net", "****, ****")]
    [InlineData("a@b@c.io", "a@****")]
    [InlineData("user@example.com.123", "****.123")]
    public void Email_found(string text, string expected) => AssertMasked("email", SensitiveValueKinds.Email, text, expected);

    [Theory]
    [InlineData("root@localhost")]
    [InlineData("user@example.c")]
    [InlineData("user@example.123")]
    [InlineData("@example.com")]
    [InlineData("user@ example.com")]
    [InlineData("no at sign here.com")]
    public void Email_not_found(string text) => AssertUntouched("email", text);

    [Theory]
    [InlineData("card 4111 1111 1111 1111 ok", "card **** ok")]
    [InlineData("card 4111-1111-1111-1111", "card ****")]
    [InlineData("4111111111111111", "****")]
    [InlineData("(5555555555554444)", "(****)")]
    [InlineData("amex 378282246310005.", "amex ****.")]
    [InlineData("4111111111111111 5555555555554444", "**** ****")]
    [InlineData("id 7 4111111111111111", "id 7 ****")]
    public void Credit_card_found(string text, string expected) => AssertMasked("credit-card", SensitiveValueKinds.CreditCard, text, expected);

    [Theory]
    [InlineData("4111 1111 1111 1112")]
    [InlineData("411111111111")]
    [InlineData("x4111111111111111")]
    [InlineData("4111111111111111x")]
    [InlineData("14111111111111111111")]
    [InlineData("4111  1111  1111  1111")]
    [InlineData("4111--1111--1111--1111")]
    public void Credit_card_not_found(string text) => AssertUntouched("credit-card", text);

    [Theory]
    [InlineData("iban GB82 WEST 1234 5698 7654 32 paid", "iban **** paid")]
    [InlineData("DE89370400440532013000", "****")]
    [InlineData("to:GB82WEST12345698765432.", "to:****.")]
    [InlineData("GB82 WEST 1234 5698 7654 32 NEXT", "**** NEXT")]
    public void Iban_found(string text, string expected) => AssertMasked("iban", SensitiveValueKinds.Iban, text, expected);

    [Theory]
    [InlineData("GB82 WEST 1234 5698 7654 33")]
    [InlineData("DE89370400440532013001")]
    [InlineData("XGB82WEST12345698765432")]
    [InlineData("GB82WEST12345698765432x")]
    [InlineData("gb82west12345698765432")]
    [InlineData("GB82 WEST")]
    public void Iban_not_found(string text) => AssertUntouched("iban", text);

    [Theory]
    [InlineData("ssn 123-45-6789", "ssn ****")]
    [InlineData("123-45-6789,078-05-1120", "****,****")]
    [InlineData("(899-99-9999)", "(****)")]
    public void Us_ssn_found(string text, string expected) => AssertMasked("us-ssn", SensitiveValueKinds.UsSsn, text, expected);

    [Theory]
    [InlineData("000-12-3456")]
    [InlineData("666-12-3456")]
    [InlineData("900-12-3456")]
    [InlineData("999-12-3456")]
    [InlineData("123-00-4567")]
    [InlineData("123-45-0000")]
    [InlineData("1123-45-6789")]
    [InlineData("123-45-67890")]
    [InlineData("1-123-45-6789")]
    [InlineData("123-45-6789-1")]
    [InlineData("123456789")]
    [InlineData("123 45 6789")]
    public void Us_ssn_not_found(string text) => AssertUntouched("us-ssn", text);

    private const string Jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl-_x";

    [Theory]
    [InlineData("token=" + Jwt + "&x=1", "token=****&x=1")]
    [InlineData(Jwt, "****")]
    [InlineData("none eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0. end", "none **** end")]
    public void Jwt_found(string text, string expected) => AssertMasked("jwt", SensitiveValueKinds.Jwt, text, expected);

    [Theory]
    [InlineData("eyJhbGciOiJFUzI1NiJ9")]
    [InlineData("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0")]
    [InlineData("eyJhbGciOiJFUzI1NiJ9.e.sig")]
    [InlineData("abc.def.ghi")]
    public void Jwt_not_found(string text) => AssertUntouched("jwt", text);

    [Theory]
    [InlineData("Authorization: Bearer abcdefgh12345678", "Authorization: Bearer ****")]
    [InlineData("authorization: bearer AbC-._~+/xyz== rest", "authorization: bearer **** rest")]
    [InlineData("BEARER  mF_9.B5f-4.1JqM", "BEARER  ****")]
    public void Bearer_token_found(string text, string expected) => AssertMasked("bearer-token", SensitiveValueKinds.BearerToken, text, expected);

    [Theory]
    [InlineData("Bearer short")]
    [InlineData("Bearertoken abcdefgh12345678")]
    [InlineData("xBearer abcdefgh12345678")]
    [InlineData("the bearer of bad news")]
    public void Bearer_token_not_found(string text) => AssertUntouched("bearer-token", text);

    [Fact]
    public void A_jwt_after_bearer_is_replaced_once()
    {
        var policy = MaskingTestPolicies.Redacting("jwt", "bearer-token");
        var text = policy.MaskDetected("Authorization: Bearer " + Jwt, out var found);
        Assert.Equal("Authorization: Bearer ****", text);
        Assert.NotEqual(SensitiveValueKinds.None, found);
    }

    [Fact]
    public void Azure_storage_key_found()
    {
        var key = MaskingTestPolicies.StorageKey(1);
        Assert.Equal(88, key.Length);
        AssertMasked("azure-storage-key", SensitiveValueKinds.AzureStorageKey, "key: " + key + "\n", "key: ****\n");
        AssertMasked("azure-storage-key", SensitiveValueKinds.AzureStorageKey, "\"" + key + "\"", "\"****\"");
    }

    [Fact]
    public void Azure_storage_key_not_found()
    {
        var key = MaskingTestPolicies.StorageKey(2);
        AssertUntouched("azure-storage-key", "A" + key);
        AssertUntouched("azure-storage-key", key + "=");
        AssertUntouched("azure-storage-key", key[..^3] + "==");
        AssertUntouched("azure-storage-key", key[..^2] + "AB");
    }

    [Theory]
    [InlineData(
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=c2VjcmV0a2V5dmFsdWU=;EndpointSuffix=core.windows.net",
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=****;EndpointSuffix=core.windows.net")]
    [InlineData(
        "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=root;SharedAccessKey=abc+def/ghi=",
        "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=root;SharedAccessKey=****")]
    [InlineData(
        "https://acct.blob.core.windows.net/c?sv=2022-11-02&se=2030-01-01&SIG=abc%2Bdef%3D&sp=r",
        "https://acct.blob.core.windows.net/c?sv=2022-11-02&se=2030-01-01&SIG=****&sp=r")]
    [InlineData("\"accountkey=xyz123\"", "\"accountkey=****\"")]
    [InlineData("SharedAccessSignature=sv=2020&sig=abcdef", "SharedAccessSignature=****&sig=****")]
    public void Azure_connection_string_secret_found(string text, string expected) =>
        AssertMasked("azure-connection-string", SensitiveValueKinds.AzureConnectionString, text, expected);

    [Theory]
    [InlineData("AccountName=acct;EndpointSuffix=core.windows.net")]
    [InlineData("design=blue;config=x")]
    [InlineData("AccountKey=;x")]
    [InlineData("AccountKey=a;")]
    public void Azure_connection_string_secret_not_found(string text) => AssertUntouched("azure-connection-string", text);

    [Theory]
    [InlineData("k: -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----\nafter", "k: ****\nafter")]
    [InlineData("-----BEGIN RSA PRIVATE KEY-----\\nMIIE\\n-----END RSA PRIVATE KEY-----\"}", "****\"}")]
    [InlineData("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk", "****")]
    [InlineData(
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END CERTIFICATE-----\nBBBB\n-----END ENCRYPTED PRIVATE KEY-----\ntail",
        "****\ntail")]
    public void Pem_private_key_found(string text, string expected) =>
        AssertMasked("pem-private-key", SensitiveValueKinds.PemPrivateKey, text, expected);

    [Theory]
    [InlineData("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----")]
    [InlineData("-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----")]
    [InlineData("-----END PRIVATE KEY-----")]
    public void Pem_private_key_not_found(string text) => AssertUntouched("pem-private-key", text);

    [Fact]
    public void Connection_string_key_and_storage_key_overlap_in_one_replacement()
    {
        var key = MaskingTestPolicies.StorageKey(3);
        var text = MaskingTestPolicies.Redacting("all").MaskDetected("AccountName=a;AccountKey=" + key + ";EndpointSuffix=x", out var found);
        Assert.Equal("AccountName=a;AccountKey=****;EndpointSuffix=x", text);
        Assert.NotEqual(SensitiveValueKinds.None, found);
    }

    [Fact]
    public void Disabled_detectors_do_not_run() =>
        AssertUntouched("email", "card 4111 1111 1111 1111 ssn 123-45-6789 " + Jwt);

    [Theory]
    [InlineData("eyJ")]
    [InlineData("a@")]
    [InlineData("a.@b")]
    [InlineData("1 ")]
    [InlineData("12-")]
    [InlineData("AB12")]
    [InlineData("AB12 ")]
    [InlineData("Bearer ")]
    [InlineData("A==")]
    [InlineData("sig=")]
    [InlineData("-----BEGIN PRIVATE KEY-----")]
    [InlineData("-----BEGIN X-----")]
    [InlineData("-----END PRIVATE KEY-----")]
    public void Repetitive_input_is_scanned_to_the_end_within_the_output_bound(string unit)
    {
        // How fast such input is scanned is measured in MaskingBenchmarks (adversarial input), not here.
        var value = System.Text.Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat(unit, 200_000 / unit.Length)));
        var policy = MaskingTestPolicies.Redacting("all");
        var destination = new byte[MaskingPolicy.MaxDetectedLength(value.Length)];
        var written = policy.MaskDetected(value, destination, out _, out _);
        Assert.True(written <= destination.Length, $"{unit}: {written} > {destination.Length}");
    }

    [Fact]
    public void Luhn_and_mod97_helpers()
    {
        Assert.True(SensitiveValueScanner.Luhn("79927398713"u8));
        Assert.False(SensitiveValueScanner.Luhn("79927398710"u8));
        Assert.True(SensitiveValueScanner.IbanChecksumHolds("GB82 WEST 1234 5698 7654 32"u8));
        Assert.False(SensitiveValueScanner.IbanChecksumHolds("GB82 WEST 1234 5698 7654 23"u8));
    }
}
