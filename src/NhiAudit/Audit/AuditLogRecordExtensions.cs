using System.Text.Json;

namespace NhiAudit.Audit;

/// <summary>Writing one record through <see cref="AuditRecordWriter"/>, as the protocol gateways do.</summary>
public static class AuditLogRecordExtensions
{
    /// <summary>
    /// Appends a record of <paramref name="type"/> whose fields <paramref name="fields"/> writes. A
    /// <see cref="AuditAppendMode.Request"/> record is also committed (made as durable as configured) before this
    /// returns, so the request it describes may go on; other records ride with the next commit.
    /// </summary>
    /// <param name="auditLog">The log.</param>
    /// <param name="type">The record type, e.g. <c>ssh.request</c>.</param>
    /// <param name="fields">Writes the record's fields after the common ones.</param>
    /// <param name="mode">Whether the record describes a request about to be forwarded.</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>The record's sequence number.</returns>
    /// <exception cref="AuditLogUnavailableException">The log cannot be written.</exception>
    public static async Task<long> AppendRecordAsync(this IAuditLog auditLog, string type, Action<Utf8JsonWriter> fields, AuditAppendMode mode, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(auditLog);
        ArgumentNullException.ThrowIfNull(fields);
        using var records = new AuditRecordWriter();
        fields(records.Begin(type));
        var seq = await auditLog.AppendAsync(records.End(), mode, cancellationToken).ConfigureAwait(false);
        if (mode == AuditAppendMode.Request)
        {
            await auditLog.CommitAsync(cancellationToken).ConfigureAwait(false);
        }

        return seq;
    }
}
