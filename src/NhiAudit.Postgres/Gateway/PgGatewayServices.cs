using System.Security.Cryptography.X509Certificates;
using Azure.Core;
using Microsoft.Extensions.Logging;

namespace NhiAudit.Postgres.Gateway;

/// <summary>What every session of one gateway shares.</summary>
internal sealed record PgGatewayServices(
    IAuditLog AuditLog,
    IWorkloadAuthenticator Authenticator,
    IPolicyEngine Policy,
    IApprovalBroker Approvals,
    CancelKeyRegistry CancelKeys,
    X509Certificate2 ServerCertificate,
    TokenCredential? TokenCredential,
    TimeProvider TimeProvider,
    TimeSpan SessionGrace,
    ILogger Logger,
    NhiAudit.Masking.MaskingPolicySource? Masking = null,
    Masking.PgMaskingCatalogs? MaskingCatalogs = null,
    Catalog.PgCodeCatalogs? CodeCatalogs = null);
