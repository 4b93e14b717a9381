namespace NhiAudit.Postgres.Protocol;

/// <summary>
/// SQLSTATE codes the gateway itself sends (PostgreSQL Appendix A, "PostgreSQL Error Codes").
/// Only the ones the gateway needs; the server's own codes pass through untouched.
/// </summary>
internal static class PgSqlState
{
    /// <summary>08000 connection_exception.</summary>
    public const string ConnectionException = "08000";

    /// <summary>08006 connection_failure, e.g. the upstream server went away.</summary>
    public const string ConnectionFailure = "08006";

    /// <summary>08P01 protocol_violation: malformed or unexpected message.</summary>
    public const string ProtocolViolation = "08P01";

    /// <summary>0A000 feature_not_supported, e.g. an unsupported protocol version or encoding.</summary>
    public const string FeatureNotSupported = "0A000";

    /// <summary>28000 invalid_authorization_specification, e.g. no user name in the startup packet.</summary>
    public const string InvalidAuthorizationSpecification = "28000";

    /// <summary>28P01 invalid_password: the client's credential was rejected.</summary>
    public const string InvalidPassword = "28P01";

    /// <summary>42501 insufficient_privilege: a policy denied the statement.</summary>
    public const string InsufficientPrivilege = "42501";

    /// <summary>53300 too_many_connections.</summary>
    public const string TooManyConnections = "53300";

    /// <summary>57014 query_canceled, e.g. an approval hold timed out.</summary>
    public const string QueryCanceled = "57014";

    /// <summary>57P01 admin_shutdown: the gateway is stopping.</summary>
    public const string AdminShutdown = "57P01";

    /// <summary>58000 system_error, e.g. the audit log cannot be written.</summary>
    public const string SystemError = "58000";
}
