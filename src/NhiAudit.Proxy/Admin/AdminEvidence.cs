using NhiAudit.Audit;
using NhiAudit.Audit.Sinks;

namespace NhiAudit.Proxy.Admin;

/// <summary>What the admin API reports about the evidence: the primary log (readiness, newest checkpoint) and the sinks.</summary>
/// <param name="Log">The gateway's file log, when it uses one.</param>
/// <param name="Sinks">The sink pumps, when sinks are configured.</param>
internal sealed record AdminEvidence(FileAuditLog? Log, AuditSinkPumps? Sinks);
