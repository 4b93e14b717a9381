using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace NhiAudit.Postgres.Gateway;

/// <summary>Loads the configured client-facing TLS certificate, or creates a self-signed one on first run and reuses it.</summary>
internal static class GatewayCertificate
{
    public static X509Certificate2 LoadOrCreate(PostgresClientTlsOptions options)
    {
        if (!string.IsNullOrEmpty(options.CertificateFile))
        {
            return Exportable(X509Certificate2.CreateFromPemFile(options.CertificateFile, options.KeyFile));
        }

        Directory.CreateDirectory(options.StateDirectory);
        var certPath = Path.Combine(options.StateDirectory, "gateway-tls.crt");
        var keyPath = Path.Combine(options.StateDirectory, "gateway-tls.key");
        if (File.Exists(certPath) && File.Exists(keyPath))
        {
            var existing = Exportable(X509Certificate2.CreateFromPemFile(certPath, keyPath));
            if (existing.NotAfter > DateTime.Now.AddDays(1))
            {
                return existing;
            }
        }

        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=nhiaudit gateway", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName("localhost");
        san.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, critical: true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], critical: false));
        using var created = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddYears(1));

        File.WriteAllText(keyPath, key.ExportPkcs8PrivateKeyPem());
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(keyPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        File.WriteAllText(certPath, created.ExportCertificatePem());
        return Exportable(X509Certificate2.CreateFromPemFile(certPath, keyPath));
    }

    // SslStream on Linux needs a certificate whose key it can use directly; a PEM-loaded ephemeral key works,
    // but round-tripping through PKCS#12 gives a key that survives being passed to the TLS layer.
    private static X509Certificate2 Exportable(X509Certificate2 certificate)
    {
        using (certificate)
        {
            return X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null);
        }
    }
}
