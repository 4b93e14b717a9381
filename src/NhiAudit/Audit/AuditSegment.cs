namespace NhiAudit.Audit;

/// <summary>One segment file of the log: <c>audit-&lt;first seq, 12+ digits&gt;.jsonl</c>.</summary>
internal readonly record struct AuditSegment(string Path, string Name, long FirstSequence);
