using System.Runtime.ExceptionServices;
using Microsoft.IdentityModel.Protocols;
using Microsoft.IdentityModel.Protocols.OpenIdConnect;

namespace NhiAudit.Identity;

/// <summary>
/// Keys from OIDC discovery or a JWKS URL, cached and refreshed by a <see cref="ConfigurationManager{T}"/> (which also
/// rate-limits refreshes once it holds a configuration, so tokens with unknown key ids cannot make the gateway hammer
/// the issuer).
/// </summary>
internal sealed class ConfigurationManagerKeySource : SigningKeySource
{
    /// <summary>
    /// How long a failed first fetch is remembered. Until the manager holds a configuration it would fetch again for every
    /// token, so an unreachable issuer plus a stream of tokens would become a stream of outbound requests.
    /// </summary>
    public static readonly TimeSpan FailureBackoff = TimeSpan.FromSeconds(10);

    // One client for all issuers: bounded time and size, because the metadata host is outside our control and a slow or
    // huge answer must not stall authentication or eat memory.
    private static readonly HttpClient SharedClient = new(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) })
    {
        Timeout = TimeSpan.FromSeconds(10),
        MaxResponseContentBufferSize = 1024 * 1024,
    };

    private readonly IConfigurationManager<OpenIdConnectConfiguration> _manager;
    private readonly TimeProvider _timeProvider;
    private Snapshot? _last;
    private Failure? _failure;

    /// <summary>Wraps a configuration manager.</summary>
    public ConfigurationManagerKeySource(IConfigurationManager<OpenIdConnectConfiguration> manager, TimeProvider timeProvider)
    {
        _manager = manager;
        _timeProvider = timeProvider;
    }

    /// <summary>Creates the source for an OIDC authority (<c>&lt;authority&gt;/.well-known/openid-configuration</c>).</summary>
    public static ConfigurationManagerKeySource ForAuthority(string authority, TimeProvider timeProvider)
    {
        var metadata = authority.TrimEnd('/') + "/.well-known/openid-configuration";
        return new ConfigurationManagerKeySource(
            new ConfigurationManager<OpenIdConnectConfiguration>(metadata, new OpenIdConnectConfigurationRetriever(), CreateDocumentRetriever(authority)),
            timeProvider);
    }

    /// <summary>Creates the source for a bare JWKS endpoint.</summary>
    public static ConfigurationManagerKeySource ForJwksUri(string jwksUri, TimeProvider timeProvider) =>
        new(new ConfigurationManager<OpenIdConnectConfiguration>(jwksUri, new JwksUriRetriever(), CreateDocumentRetriever(jwksUri)), timeProvider);

    /// <inheritdoc />
    public override async ValueTask<IssuerKeys> GetKeysAsync(CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _failure) is { } failure && _timeProvider.GetUtcNow() < failure.RetryAfter)
        {
            failure.Error.Throw();
        }

        OpenIdConnectConfiguration configuration;
        try
        {
            configuration = await _manager.GetConfigurationAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            Volatile.Write(ref _failure, new Failure(ExceptionDispatchInfo.Capture(ex), _timeProvider.GetUtcNow() + FailureBackoff));
            throw;
        }

        Volatile.Write(ref _failure, null);
        if (Volatile.Read(ref _last) is { } last && ReferenceEquals(last.Configuration, configuration))
        {
            return last.Keys;
        }

        var keys = new IssuerKeys(string.IsNullOrEmpty(configuration.Issuer) ? null : configuration.Issuer, IssuerKeys.AsymmetricOnly(configuration.SigningKeys));
        Volatile.Write(ref _last, new Snapshot(configuration, keys));
        return keys;
    }

    /// <inheritdoc />
    public override void RequestRefresh() => _manager.RequestRefresh();

    private static HttpDocumentRetriever CreateDocumentRetriever(string url) =>
        // Keys fetched over plain http could be swapped by anyone on the path; loopback is the one exception so tests
        // can serve discovery from 127.0.0.1 (the options validator refuses any other http URL).
        new(SharedClient) { RequireHttps = !(Uri.TryCreate(url, UriKind.Absolute, out var uri) && uri.Scheme == Uri.UriSchemeHttp && uri.IsLoopback) };

    private sealed record Snapshot(OpenIdConnectConfiguration Configuration, IssuerKeys Keys);

    private sealed record Failure(ExceptionDispatchInfo Error, DateTimeOffset RetryAfter);
}
