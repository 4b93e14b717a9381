using System.Security.Cryptography;
using System.Text;
using NhiAudit.Postgres.Protocol;

namespace NhiAudit.Postgres.Tests.Protocol;

public class Md5PasswordTests
{
    [Fact]
    public void Known_value_for_postgres_postgres()
    {
        // Computed independently: python3 -c "import hashlib; h=lambda b: hashlib.md5(b).hexdigest(); print('md5'+h(h(b'postgrespostgres').encode()+bytes([1,2,3,4])))"
        Assert.Equal("md568be9ed08db75f318087ab337aaea044", Md5Password.Compute("postgres", "postgres", [1, 2, 3, 4]));
    }

    [Fact]
    public void Matches_the_formula_computed_here_for_other_inputs()
    {
        byte[] salt = [0xFF, 0x00, 0x7F, 0x80];
#pragma warning disable CA5351 // the protocol's algorithm
        static string Hex(byte[] data) => Convert.ToHexStringLower(MD5.HashData(data));
        string inner = Hex(Encoding.UTF8.GetBytes("s3cr3t" + "app_user"));
        string expected = "md5" + Hex([.. Encoding.ASCII.GetBytes(inner), .. salt]);
#pragma warning restore CA5351
        Assert.Equal(expected, Md5Password.Compute("app_user", "s3cr3t", salt));
        Assert.Equal(35, expected.Length);
    }

    [Fact]
    public void Salt_must_be_four_bytes()
    {
        Assert.Throws<ArgumentException>(() => Md5Password.Compute("u", "p", [1, 2, 3]));
    }
}
