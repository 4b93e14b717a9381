using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace NhiAudit.Tls;

/// <summary>Loads a gateway's client-facing TLS certificate, or creates a self-signed one on first run and reuses it.</summary>
public static class GatewayCertificates
{
    /// <summary>
    /// The PEM certificate (chain) and key in <paramref name="certificateFile"/>/<paramref name="keyFile"/> when set;
    /// otherwise a self-signed ECDSA P-256 certificate for localhost and 127.0.0.1, created under
    /// <paramref name="stateDirectory"/> as <c>gateway-tls.crt</c>/<c>.key</c> on first run and reused until a day before it expires.
    /// </summary>
    /// <param name="certificateFile">A PEM certificate file, or null.</param>
    /// <param name="keyFile">Its PEM key file (null when the key is in the certificate file).</param>
    /// <param name="stateDirectory">Where a self-signed certificate is kept.</param>
    /// <returns>A certificate with a private key that SslStream can use.</returns>
    public static X509Certificate2 LoadOrCreate(string? certificateFile, string? keyFile, string stateDirectory)
    {
        if (!string.IsNullOrEmpty(certificateFile))
        {
            return Exportable(X509Certificate2.CreateFromPemFile(certificateFile, keyFile));
        }

        Directory.CreateDirectory(stateDirectory);
        var certPath = Path.Combine(stateDirectory, "gateway-tls.crt");
        var keyPath = Path.Combine(stateDirectory, "gateway-tls.key");
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
