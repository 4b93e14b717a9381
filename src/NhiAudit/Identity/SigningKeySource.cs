namespace NhiAudit.Identity;

/// <summary>Where one trusted issuer's signing keys come from (JWKS file, JWKS URL or OIDC discovery).</summary>
internal abstract class SigningKeySource
{
    /// <summary>Returns the current keys; may fetch or re-read them. Throws when no keys can be had at all.</summary>
    public abstract ValueTask<IssuerKeys> GetKeysAsync(CancellationToken cancellationToken);

    /// <summary>Asks for fresh keys on the next call, e.g. after a token named a key id we do not know (key rotation).</summary>
    public virtual void RequestRefresh()
    {
    }
}
