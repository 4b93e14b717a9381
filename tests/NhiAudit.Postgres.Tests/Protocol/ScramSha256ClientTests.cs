using NhiAudit.Postgres.Protocol;

namespace NhiAudit.Postgres.Tests.Protocol;

public class ScramSha256ClientTests
{
    // RFC 7677 section 3.
    private const string ServerFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    private const string ClientFinal = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    private const string ServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    [Fact]
    public void Rfc7677_test_vector()
    {
        var client = new ScramSha256Client("pencil", "rOprNGfwEbeRWgbNEkqO", "user");
        Assert.Equal("n,,n=user,r=rOprNGfwEbeRWgbNEkqO", client.CreateClientFirst());
        Assert.Equal(ClientFinal, client.CreateClientFinal(ServerFirst));
        client.VerifyServerFinal(ServerFinal);
        Assert.True(client.IsServerVerified);
    }

    [Fact]
    public void Default_client_sends_the_postgres_style_first_message()
    {
        var client = new ScramSha256Client("secret");
        string first = client.CreateClientFirst();
        Assert.StartsWith("n,,n=*,r=", first, StringComparison.Ordinal);
        Assert.Equal(24, first["n,,n=*,r=".Length..].Length); // 18 random bytes in base64
        Assert.NotEqual(first, new ScramSha256Client("secret").CreateClientFirst());
    }

    [Fact]
    public void Wrong_server_signature_fails_closed()
    {
        var client = new ScramSha256Client("pencil", "rOprNGfwEbeRWgbNEkqO", "user");
        client.CreateClientFirst();
        client.CreateClientFinal(ServerFirst);
        var ex = Assert.Throws<PgProtocolException>(() => client.VerifyServerFinal("v=" + Convert.ToBase64String(new byte[32])));
        Assert.Equal("28000", ex.SqlState);
        Assert.False(client.IsServerVerified);
        Assert.Throws<PgProtocolException>(() => client.VerifyServerFinal("v=not base64!"));
        Assert.Throws<PgProtocolException>(() => client.VerifyServerFinal(string.Empty));
        Assert.Contains("invalid-proof", Assert.Throws<PgProtocolException>(() => client.VerifyServerFinal("e=invalid-proof")).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Wrong_password_produces_a_different_proof_and_cannot_verify()
    {
        var client = new ScramSha256Client("pencil!", "rOprNGfwEbeRWgbNEkqO", "user");
        client.CreateClientFirst();
        Assert.NotEqual(ClientFinal, client.CreateClientFinal(ServerFirst));
        Assert.Throws<PgProtocolException>(() => client.VerifyServerFinal(ServerFinal));
    }

    [Theory]
    [InlineData("r=someoneelse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")]
    [InlineData("r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")]
    [InlineData("r=rOprNGfwEbeRWgbNEkqOxyz,s=***,i=4096")]
    [InlineData("r=rOprNGfwEbeRWgbNEkqOxyz,s=,i=4096")]
    [InlineData("r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0")]
    [InlineData("r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-5")]
    [InlineData("r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999")]
    [InlineData("r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==")]
    [InlineData("m=ext,r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1")]
    [InlineData("garbage")]
    [InlineData("")]
    public void Bad_server_first_messages_are_refused(string serverFirst)
    {
        var client = new ScramSha256Client("pencil", "rOprNGfwEbeRWgbNEkqO", "user");
        client.CreateClientFirst();
        Assert.Throws<PgProtocolException>(() => client.CreateClientFinal(serverFirst));
    }

    [Fact]
    public void Calls_out_of_order_are_programming_errors()
    {
        var client = new ScramSha256Client("pencil");
        Assert.Throws<InvalidOperationException>(() => client.CreateClientFinal(ServerFirst));
        Assert.Throws<InvalidOperationException>(() => client.VerifyServerFinal(ServerFinal));
    }

    [Fact]
    public void SaslPrep_maps_spaces_and_normalizes_but_leaves_ascii_alone()
    {
        Assert.Equal("pencil", ScramSha256Client.SaslPrep("pencil"));
        Assert.Equal("a\tb", ScramSha256Client.SaslPrep("a\tb"));
        Assert.Equal("a b", ScramSha256Client.SaslPrep("a\u00A0b"));
        Assert.Equal("ab", ScramSha256Client.SaslPrep("a\u00ADb"));
        Assert.Equal("IX", ScramSha256Client.SaslPrep("\u2168"));
        Assert.Equal("a\u0007\u00E9", ScramSha256Client.SaslPrep("a\u0007\u00E9"));
    }
}
