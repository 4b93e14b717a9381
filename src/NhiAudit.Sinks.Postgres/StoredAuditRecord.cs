using NhiAudit.Audit;

namespace NhiAudit.Sinks.Postgres;

/// <summary>One row of the records table: the record and the replica whose chain it belongs to.</summary>
/// <param name="Replica">The chain's replica name.</param>
/// <param name="Entry">The record; <see cref="AuditLogEntry.Line"/> is the stored line's exact bytes.</param>
public sealed record StoredAuditRecord(string Replica, AuditLogEntry Entry);
