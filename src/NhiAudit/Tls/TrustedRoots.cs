using System.Security.Cryptography.X509Certificates;

namespace NhiAudit.Tls;

/// <summary>Trust in an upstream server's certificate through configured CA certificates only, as every protocol's upstream uses it.</summary>
public static class TrustedRoots
{
    /// <summary>
    /// A chain policy that trusts exactly <paramref name="roots"/> (not the system store) and checks no revocation: a
    /// private cluster's or database's CA rarely publishes any. The host name is still checked by the TLS layer.
    /// </summary>
    /// <param name="roots">The CA certificates, e.g. from <see cref="X509Certificate2Collection.ImportFromPemFile"/>.</param>
    /// <returns>The policy for <c>SslClientAuthenticationOptions.CertificateChainPolicy</c>.</returns>
    public static X509ChainPolicy ChainPolicy(X509Certificate2Collection roots)
    {
        ArgumentNullException.ThrowIfNull(roots);
        var policy = new X509ChainPolicy
        {
            TrustMode = X509ChainTrustMode.CustomRootTrust,
            RevocationMode = X509RevocationMode.NoCheck,
        };
        policy.CustomTrustStore.AddRange(roots);
        return policy;
    }
}
