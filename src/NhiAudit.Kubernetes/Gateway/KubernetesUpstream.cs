using System.Net;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Azure.Core;

namespace NhiAudit.Kubernetes.Gateway;

/// <summary>
/// The gateway's own connection to one API server: its TLS trust (the configured CA only), its credential (a token
/// file re-read when it changes, a client certificate, or an Azure.Identity token for AKS) and the HTTP client YARP
/// forwards through. Workloads never see this credential.
/// </summary>
internal sealed class KubernetesUpstream : IDisposable
{
    private readonly KubernetesUpstreamOptions _options;
    private readonly TokenCredential? _credential;
    private readonly X509Certificate2Collection? _trust;
    private readonly X509Certificate2? _clientCertificate;
    private readonly SemaphoreSlim _tokenLock = new(1, 1);
    private (DateTime Stamp, string Token)? _fileToken;
    private readonly k8s.Authentication.ITokenProvider? _kubeconfigTokens;
    private readonly string? _kubeconfigToken;
    private AccessToken? _azureToken;

    public KubernetesUpstream(KubernetesUpstreamOptions options, TokenCredential? credential)
    {
        k8s.KubernetesClientConfiguration? kubeconfig = null;
        if (options.Kubeconfig is { Length: > 0 } kubeconfigFile)
        {
            kubeconfig = k8s.KubernetesClientConfiguration.BuildConfigFromConfigFile(kubeconfigFile, currentContext: options.Context);
            if (kubeconfig.SkipTlsVerify)
            {
                throw new InvalidOperationException($"the kubeconfig {kubeconfigFile} skips TLS verification of the API server; the gateway refuses to send its credential that way");
            }

            _kubeconfigTokens = kubeconfig.TokenProvider;
            _kubeconfigToken = kubeconfig.AccessToken;
        }

        var serverText = options.Server is { Length: > 0 } configured ? configured : kubeconfig?.Host ?? "";
        if (!Uri.TryCreate(serverText, UriKind.Absolute, out var server) || server.Scheme != Uri.UriSchemeHttps)
        {
            throw new InvalidOperationException($"Kubernetes upstream Server must be an https URL, got '{serverText}'");
        }

        if (options.UseAzureIdentity && credential is null)
        {
            throw new InvalidOperationException("Kubernetes upstream UseAzureIdentity needs an Azure.Identity TokenCredential registered in the container");
        }

        _options = options;
        _credential = credential;
        Server = server;
        if (options.CaFile is { Length: > 0 } caFile)
        {
            _trust = [];
            _trust.ImportFromPemFile(caFile);
        }

        else if (kubeconfig?.SslCaCerts is { Count: > 0 } kubeconfigCa)
        {
            _trust = [.. kubeconfigCa];
        }

        if (options.ClientCertificateFile is { Length: > 0 } certificateFile)
        {
            using var pem = X509Certificate2.CreateFromPemFile(certificateFile, options.ClientKeyFile);
            _clientCertificate = X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
        }
        else if (kubeconfig is not null && (kubeconfig.ClientCertificateData is { Length: > 0 } || kubeconfig.ClientCertificateFilePath is { Length: > 0 }))
        {
            using var pem = kubeconfig.ClientCertificateData is { Length: > 0 } data
                ? X509Certificate2.CreateFromPem(
                    System.Text.Encoding.UTF8.GetString(Convert.FromBase64String(data)),
                    System.Text.Encoding.UTF8.GetString(Convert.FromBase64String(kubeconfig.ClientCertificateKeyData ?? "")))
                : X509Certificate2.CreateFromPemFile(kubeconfig.ClientCertificateFilePath!, kubeconfig.ClientKeyFilePath);
            _clientCertificate = X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
        }

        Invoker = new HttpMessageInvoker(new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            EnableMultipleHttp2Connections = true,
            ConnectTimeout = TimeSpan.FromSeconds(15),
            ActivityHeadersPropagator = null,
            SslOptions = SslOptions(),
        });
    }

    /// <summary>The API server's base URL.</summary>
    public Uri Server { get; }

    /// <summary>The client YARP forwards through.</summary>
    public HttpMessageInvoker Invoker { get; }

    /// <summary>The TLS settings for a connection to the API server: its CA only, and the client certificate if any.</summary>
    public SslClientAuthenticationOptions SslOptions()
    {
        var ssl = new SslClientAuthenticationOptions { TargetHost = Server.IdnHost };
        if (_trust is not null)
        {
            ssl.CertificateChainPolicy = NhiAudit.Tls.TrustedRoots.ChainPolicy(_trust);
        }

        if (_clientCertificate is not null)
        {
            ssl.ClientCertificates = [_clientCertificate];
        }

        return ssl;
    }

    /// <summary>The gateway's bearer token for the API server, or null when it logs in with a client certificate.</summary>
    public async ValueTask<string?> BearerTokenAsync(CancellationToken ct)
    {
        if (_options.UseAzureIdentity)
        {
            if (_azureToken is { } cached && cached.ExpiresOn > DateTimeOffset.UtcNow.AddMinutes(5))
            {
                return cached.Token;
            }

            await _tokenLock.WaitAsync(ct).ConfigureAwait(false);
            try
            {
                if (_azureToken is not { } current || current.ExpiresOn <= DateTimeOffset.UtcNow.AddMinutes(5))
                {
                    _azureToken = await _credential!.GetTokenAsync(new TokenRequestContext([_options.AzureScope]), ct).ConfigureAwait(false);
                }

                return _azureToken.Value.Token;
            }
            finally
            {
                _tokenLock.Release();
            }
        }

        if (_options.TokenFile is null or "" && _kubeconfigTokens is { } provider)
        {
            // An exec or auth-provider plugin in the kubeconfig (kubelogin for AKS, say) hands out the token.
            var header = await provider.GetAuthenticationHeaderAsync(ct).ConfigureAwait(false);
            return header.Parameter;
        }

        if (_options.TokenFile is null or "" && _kubeconfigToken is { Length: > 0 } staticToken)
        {
            return staticToken;
        }

        if (_options.TokenFile is { Length: > 0 } tokenFile)
        {
            // Projected service account tokens rotate on disk: read the file again whenever it changes.
            var stamp = File.GetLastWriteTimeUtc(tokenFile);
            if (_fileToken is not { } known || known.Stamp != stamp)
            {
                _fileToken = (stamp, (await File.ReadAllTextAsync(tokenFile, ct).ConfigureAwait(false)).Trim());
            }

            return _fileToken.Value.Token;
        }

        return null;
    }

    public void Dispose()
    {
        Invoker.Dispose();
        _clientCertificate?.Dispose();
        _tokenLock.Dispose();
    }
}
