using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.IdentityModel.Tokens;

namespace NhiAudit.Tests.Identity;

/// <summary>Builds tokens by hand, for the shapes a well-behaved library refuses to create (alg none, HS256 key confusion, forged kid).</summary>
internal static class TokenForge
{
    public static string B64(string json) => Base64UrlEncoder.Encode(Encoding.UTF8.GetBytes(json));

    public static string B64(byte[] bytes) => Base64UrlEncoder.Encode(bytes);

    public static string Json(object value) => JsonSerializer.Serialize(value);

    /// <summary>Standard valid claims for the development issuer.</summary>
    public static Dictionary<string, object> Claims(string issuer = DevIssuerContext.IssuerUrl, string sub = "forged", TimeSpan? lifetime = null)
    {
        var now = DateTimeOffset.UtcNow;
        return new Dictionary<string, object>
        {
            ["iss"] = issuer,
            ["aud"] = "nhiaudit",
            ["sub"] = sub,
            ["iat"] = now.ToUnixTimeSeconds(),
            ["nbf"] = now.ToUnixTimeSeconds(),
            ["exp"] = (now + (lifetime ?? TimeSpan.FromHours(1))).ToUnixTimeSeconds(),
        };
    }

    public static string Unsigned(object header, object payload) => $"{B64(Json(header))}.{B64(Json(payload))}.";

    public static string SignEs256(ECDsa key, object header, object payload)
    {
        var signingInput = $"{B64(Json(header))}.{B64(Json(payload))}";
        var signature = key.SignData(Encoding.ASCII.GetBytes(signingInput), HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        return $"{signingInput}.{B64(signature)}";
    }

    public static string SignHs256(byte[] secret, object header, object payload)
    {
        var signingInput = $"{B64(Json(header))}.{B64(Json(payload))}";
        var signature = HMACSHA256.HashData(secret, Encoding.ASCII.GetBytes(signingInput));
        return $"{signingInput}.{B64(signature)}";
    }

    public static ECDsa LoadKey(string pemPath)
    {
        var key = ECDsa.Create();
        key.ImportFromPem(File.ReadAllText(pemPath));
        return key;
    }
}
