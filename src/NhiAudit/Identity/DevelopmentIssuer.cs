using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace NhiAudit.Identity;

/// <summary>
/// A local token issuer for development, demos and tests, so none of them needs a cloud tenant. It keeps an ECDSA P-256
/// key in <c>dev-issuer.key.pem</c> and publishes the public half as <c>jwks.json</c>, which an issuer entry with
/// <see cref="IssuerOptions.JwksFile"/> trusts. Never configure this issuer in production: whoever reads the key file can
/// mint any identity.
/// </summary>
public sealed class DevelopmentIssuer : IDisposable
{
    /// <summary>The private key's file name inside the directory.</summary>
    public const string KeyFileName = "dev-issuer.key.pem";

    /// <summary>The public JWKS's file name inside the directory.</summary>
    public const string JwksFileName = "jwks.json";

    private readonly ECDsa _key;
    private readonly ECDsaSecurityKey _signingKey;
    private readonly SigningCredentials _credentials;
    private readonly TimeProvider _timeProvider;
    private readonly JsonWebTokenHandler _handler = new() { SetDefaultTimesOnTokenCreation = false };

    private DevelopmentIssuer(ECDsa key, string issuer, string jwksPath, string keyId, TimeProvider timeProvider)
    {
        _key = key;
        Issuer = issuer;
        JwksPath = jwksPath;
        KeyId = keyId;
        _timeProvider = timeProvider;
        _signingKey = new ECDsaSecurityKey(key) { KeyId = keyId };
        _credentials = new SigningCredentials(_signingKey, SecurityAlgorithms.EcdsaSha256);
    }

    /// <summary>The issuer (<c>iss</c>) of minted tokens; configure the same value as <see cref="IssuerOptions.Issuer"/>.</summary>
    public string Issuer { get; }

    /// <summary>The full path of the public <c>jwks.json</c>; configure it as <see cref="IssuerOptions.JwksFile"/>.</summary>
    public string JwksPath { get; }

    /// <summary>The key id (<c>kid</c>): the RFC 7638 thumbprint of the public key.</summary>
    public string KeyId { get; }

    /// <summary>
    /// Loads the issuer key from <paramref name="directory"/>, creating the directory and key (mode 600 on Unix) the first
    /// time, and (re)writes <c>jwks.json</c> beside it.
    /// </summary>
    /// <param name="directory">Where the key and JWKS live.</param>
    /// <param name="issuer">The <c>iss</c> of minted tokens.</param>
    /// <param name="timeProvider">The clock for <c>iat</c>; the system clock when null.</param>
    /// <exception cref="InvalidDataException">The existing key file is not an ECDSA P-256 private key.</exception>
    public static DevelopmentIssuer LoadOrCreate(string directory, string issuer = "https://issuer.local", TimeProvider? timeProvider = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        ArgumentException.ThrowIfNullOrWhiteSpace(issuer);
        directory = Path.GetFullPath(directory);
        Directory.CreateDirectory(directory);

        var key = LoadOrCreateKey(Path.Combine(directory, KeyFileName));
        try
        {
            var parameters = key.ExportParameters(includePrivateParameters: false);
            var keyId = Base64UrlEncoder.Encode(new ECDsaSecurityKey(key).ComputeJwkThumbprint());
            var jwksPath = Path.Combine(directory, JwksFileName);
            WriteIfChanged(jwksPath, Jwks(parameters, keyId));
            return new DevelopmentIssuer(key, issuer, jwksPath, keyId, timeProvider ?? TimeProvider.System);
        }
        catch
        {
            key.Dispose();
            throw;
        }
    }

    /// <summary>Mints a signed (ES256) token whose claims have the shape of <see cref="TokenRequest.Kind"/>.</summary>
    /// <param name="request">The token's contents.</param>
    /// <returns>The compact JWT.</returns>
    public string MintToken(TokenRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentException.ThrowIfNullOrWhiteSpace(request.Subject);

        var issuedAt = request.IssuedAt ?? _timeProvider.GetUtcNow();
        var claims = new Dictionary<string, object>(StringComparer.Ordinal) { ["sub"] = request.Subject };
        ShapeClaims(request, claims);
        if (request.TenantId is not null)
        {
            claims["tid"] = request.TenantId;
        }

        if (request.Sha is not null)
        {
            claims["sha"] = request.Sha;
        }

        if (request.Roles.Count > 0)
        {
            claims["roles"] = request.Roles.ToArray();
        }

        if (request.ExtraClaims is not null)
        {
            foreach (var (name, value) in request.ExtraClaims)
            {
                claims[name] = value;
            }
        }

        var descriptor = new SecurityTokenDescriptor
        {
            Issuer = Issuer,
            Audience = request.Audience,
            IssuedAt = issuedAt.UtcDateTime,
            NotBefore = (request.NotBefore ?? issuedAt).UtcDateTime,
            Expires = (issuedAt + request.Lifetime).UtcDateTime,
            Claims = claims,
            SigningCredentials = _credentials,
        };
        return _handler.CreateToken(descriptor);
    }

    /// <summary>Releases the private key.</summary>
    public void Dispose() => _key.Dispose();

    private static void ShapeClaims(TokenRequest request, Dictionary<string, object> claims)
    {
        // Each shape mirrors what the real issuer sends, closely enough that the validator's mapping is exercised as in
        // production: Entra for managed identities, apps and users, GitHub Actions for federated workloads.
        switch (request.Kind)
        {
            case WorkloadKind.ManagedIdentity:
                claims["oid"] = request.Subject;
                claims["idtyp"] = "app";
                claims["xms_mirid"] = request.ManagedIdentityResourceId
                    ?? $"/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/dev/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{request.Subject}";
                claims["appid"] = request.ApplicationId ?? request.Subject;
                break;
            case WorkloadKind.ServicePrincipal:
                claims["oid"] = request.Subject;
                claims["idtyp"] = "app";
                claims["appid"] = request.ApplicationId ?? request.Subject;
                break;
            case WorkloadKind.FederatedWorkload:
                claims["repository"] = request.Repository ?? "local/dev";
                claims["workflow"] = request.Workflow ?? "dev";
                claims["run_id"] = request.RunId ?? "1";
                claims["repository_owner"] = (request.Repository ?? "local/dev").Split('/')[0];
                claims["ref"] = "refs/heads/main";
                claims["event_name"] = "workflow_dispatch";
                if (request.ApplicationId is not null)
                {
                    claims["azp"] = request.ApplicationId;
                }

                break;
            case WorkloadKind.User:
                claims["oid"] = request.Subject;
                claims["idtyp"] = "user";
                claims["preferred_username"] = request.Subject;
                break;
            default:
                if (request.ApplicationId is not null)
                {
                    claims["azp"] = request.ApplicationId;
                }

                break;
        }
    }

    private static ECDsa LoadOrCreateKey(string path)
    {
        if (!File.Exists(path))
        {
            TryCreateKey(path);
        }

        var key = ECDsa.Create();
        try
        {
            key.ImportFromPem(File.ReadAllText(path));
            if (key.KeySize != 256 || key.ExportParameters(false).Curve.Oid.Value != ECCurve.NamedCurves.nistP256.Oid.Value)
            {
                throw new InvalidDataException($"'{path}' is not an ECDSA P-256 key.");
            }

            return key;
        }
        catch (Exception ex) when (ex is ArgumentException or CryptographicException)
        {
            key.Dispose();
            throw new InvalidDataException($"'{path}' is not an ECDSA P-256 private key in PEM form.", ex);
        }
        catch
        {
            key.Dispose();
            throw;
        }
    }

    private static void TryCreateKey(string path)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var temp = path + "." + Guid.NewGuid().ToString("N") + ".tmp";
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            // Created private from the first byte: chmod after writing would leave a window where others can read the key.
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        try
        {
            using (var stream = new FileStream(temp, options))
            {
                stream.Write(Encoding.ASCII.GetBytes(key.ExportPkcs8PrivateKeyPem()));
                stream.Flush(flushToDisk: true);
            }

            // Rename without overwrite: when two processes race, the first key wins and both use it.
            File.Move(temp, path, overwrite: false);
        }
        catch (IOException) when (File.Exists(path))
        {
        }
        finally
        {
            File.Delete(temp);
        }
    }

    private static byte[] Jwks(ECParameters parameters, string keyId)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            writer.WriteStartObject();
            writer.WriteStartArray("keys");
            writer.WriteStartObject();
            writer.WriteString("kty", "EC");
            writer.WriteString("crv", "P-256");
            writer.WriteString("x", Base64UrlEncoder.Encode(parameters.Q.X));
            writer.WriteString("y", Base64UrlEncoder.Encode(parameters.Q.Y));
            writer.WriteString("kid", keyId);
            writer.WriteString("alg", "ES256");
            writer.WriteString("use", "sig");
            writer.WriteEndObject();
            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        return buffer.ToArray();
    }

    private static void WriteIfChanged(string path, byte[] content)
    {
        // Rewriting an identical file would bump its timestamp and make running validators reload for nothing.
        if (File.Exists(path) && File.ReadAllBytes(path).AsSpan().SequenceEqual(content))
        {
            return;
        }

        var temp = path + "." + Guid.NewGuid().ToString("N") + ".tmp";
        File.WriteAllBytes(temp, content);
        File.Move(temp, path, overwrite: true);
    }
}
