namespace NhiAudit.Audit;

/// <summary>What a gateway does with a request whose audit record cannot be written.</summary>
public enum AuditSinkFailurePolicy
{
    /// <summary>Refuse the request with the protocol's own error. The default: nothing reaches a target unrecorded.</summary>
    Deny,

    /// <summary>Forward the request without a record. Only for deployments that value availability over evidence.</summary>
    Allow,
}
