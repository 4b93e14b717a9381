using Microsoft.IdentityModel.Tokens;

namespace NhiAudit.Identity;

/// <summary>Token lifetime validation against an injected <see cref="TimeProvider"/>.</summary>
internal static class LifetimeCheck
{
    /// <summary>Returns true when the token is within its lifetime; otherwise throws the IdentityModel exception that says why.</summary>
    /// <exception cref="SecurityTokenNoExpirationException">The token has no <c>exp</c>.</exception>
    /// <exception cref="SecurityTokenInvalidLifetimeException"><c>nbf</c> is after <c>exp</c>.</exception>
    /// <exception cref="SecurityTokenNotYetValidException">The token is not valid yet.</exception>
    /// <exception cref="SecurityTokenExpiredException">The token has expired.</exception>
    public static bool Validate(DateTime? notBefore, DateTime? expires, TimeSpan clockSkew, TimeProvider timeProvider)
    {
        if (expires is null)
        {
            throw new SecurityTokenNoExpirationException("token has no expiry");
        }

        if (notBefore is { } nbf && nbf > expires.Value)
        {
            throw new SecurityTokenInvalidLifetimeException("nbf is after exp") { NotBefore = nbf, Expires = expires.Value };
        }

        var now = timeProvider.GetUtcNow().UtcDateTime;
        if (notBefore is { } start && start > now + clockSkew)
        {
            throw new SecurityTokenNotYetValidException("token is not valid yet") { NotBefore = start };
        }

        if (expires.Value < now - clockSkew)
        {
            throw new SecurityTokenExpiredException("token has expired") { Expires = expires.Value };
        }

        return true;
    }
}
