using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using NhiAudit.Postgres.Protocol;

namespace NhiAudit.Postgres.Catalog;

/// <summary>What a catalog query returned: the row description (empty when none came) and the rows as text.</summary>
/// <param name="Fields">The columns.</param>
/// <param name="Rows">The rows, each value as text or null.</param>
internal sealed record PgCatalogQueryResult(PgFieldDescription[] Fields, List<string?[]> Rows);

/// <summary>One simple query on a catalog connection (the gateway's own login), read to its ReadyForQuery.</summary>
internal static class PgCatalogQuery
{
    /// <summary>Runs <paramref name="sql"/> and returns its text rows.</summary>
    /// <param name="stream">The catalog connection's stream.</param>
    /// <param name="sql">The query.</param>
    /// <param name="what">The catalog, for the message of a malformed answer (e.g. <c>the code catalog</c>).</param>
    /// <param name="ct">Cancellation.</param>
    /// <exception cref="PgCatalogQueryException">The server answered with an error.</exception>
    public static async Task<PgCatalogQueryResult> RunAsync(Stream stream, string sql, string what, CancellationToken ct)
    {
        var writer = new ArrayBufferWriter<byte>(sql.Length + 16);
        PgFrontendWriter.WriteQuery(writer, sql);
        await stream.WriteAsync(writer.WrittenMemory, ct).ConfigureAwait(false);
        await stream.FlushAsync(ct).ConfigureAwait(false);

        var header = new byte[5];
        PgFieldDescription[] fields = [];
        var rows = new List<string?[]>();
        string? error = null;
        while (true)
        {
            await stream.ReadExactlyAsync(header, ct).ConfigureAwait(false);
            var length = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(1));
            if (length is < 4 or > 256 * 1024 * 1024)
            {
                throw new IOException($"{what} connection received an invalid message length {length}");
            }

            var body = new byte[length - 4];
            await stream.ReadExactlyAsync(body, ct).ConfigureAwait(false);
            switch (header[0])
            {
                case (byte)'T':
                    fields = PgRowDescription.Parse(body);
                    break;
                case (byte)'D':
                    rows.Add(ReadTextRow(body));
                    break;
                case (byte)'E':
                    error = PgErrorOrNotice.Parse(body).Message;
                    break;
                case (byte)'Z':
                    return error is null ? new PgCatalogQueryResult(fields, rows) : throw new PgCatalogQueryException(error);
            }
        }
    }

    private static string?[] ReadTextRow(byte[] body)
    {
        var reader = new PgPayloadReader(body, "DataRow");
        var values = new string?[reader.ReadInt16()];
        for (var i = 0; i < values.Length; i++)
        {
            var length = reader.ReadInt32();
            values[i] = length < 0 ? null : Encoding.UTF8.GetString(reader.ReadBytes(length));
        }

        return values;
    }
}

/// <summary>A catalog query failed on the server.</summary>
internal sealed class PgCatalogQueryException(string message) : Exception(message);
