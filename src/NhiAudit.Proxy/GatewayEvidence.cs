using Azure.Core;
using Azure.Identity;
using Azure.Security.KeyVault.Secrets;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using NhiAudit.Audit;

namespace NhiAudit.Proxy;

/// <summary>The reference gateway's evidence wiring: the secondary sinks configured under <c>NhiAudit:Sinks</c> and a Key Vault signing key.</summary>
internal static class GatewayEvidence
{
    /// <summary>Adds each sink whose section is present, and the Key Vault checkpoint key when <c>Audit:SigningKeySecretUri</c> is set.</summary>
    public static INhiAuditBuilder AddConfiguredEvidence(this INhiAuditBuilder engine, IConfigurationSection section)
    {
        var sinks = section.GetSection("Sinks");
        if (sinks.GetSection("Postgres").Exists())
        {
            engine.AddPostgresSink(sinks.GetSection("Postgres"));
        }

        if (sinks.GetSection("AzureBlob").Exists())
        {
            engine.AddAzureBlobSink(sinks.GetSection("AzureBlob"));
        }

        if (sinks.GetSection("OpenTelemetry").Exists())
        {
            engine.AddOpenTelemetrySink(sinks.GetSection("OpenTelemetry"));
        }

        if (section["Audit:SigningKeySecretUri"] is { Length: > 0 } secretUri)
        {
            if (!Uri.TryCreate(secretUri, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttps)
            {
                throw new InvalidOperationException($"NhiAudit:Audit:SigningKeySecretUri '{secretUri}' is not an https Key Vault secret URI (https://VAULT.vault.azure.net/secrets/NAME)");
            }

            // Read once at start: the key signs checkpoints for the life of the process and never reaches the log.
            engine.Services.AddSingleton(sp => LoadSigningKey(uri, sp.GetService<TokenCredential>() ?? new DefaultAzureCredential()));
        }

        return engine;
    }

    private static AuditCheckpointSigner LoadSigningKey(Uri secretUri, TokenCredential credential)
    {
        var id = new KeyVaultSecretIdentifier(secretUri);
        var client = new SecretClient(id.VaultUri, credential);
        var secret = client.GetSecret(id.Name, id.Version).Value;
        try
        {
            return AuditCheckpointSigner.FromPem(secret.Value);
        }
        catch (FormatException ex)
        {
            throw new InvalidOperationException($"the Key Vault secret {id.Name} does not hold a usable checkpoint signing key: {ex.Message}", ex);
        }
    }
}
