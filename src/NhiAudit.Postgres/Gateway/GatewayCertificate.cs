using System.Security.Cryptography.X509Certificates;
using NhiAudit.Tls;

namespace NhiAudit.Postgres.Gateway;

/// <summary>The PostgreSQL target's client-facing TLS certificate.</summary>
internal static class GatewayCertificate
{
    public static X509Certificate2 LoadOrCreate(PostgresClientTlsOptions options) =>
        GatewayCertificates.LoadOrCreate(options.CertificateFile, options.KeyFile, options.StateDirectory);
}
