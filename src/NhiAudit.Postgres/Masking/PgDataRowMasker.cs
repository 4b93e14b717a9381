using System.Buffers;
using System.Buffers.Binary;
using NhiAudit.Masking;
using NhiAudit.Postgres.Protocol;

namespace NhiAudit.Postgres.Masking;

/// <summary>Rewrites DataRow ('D') messages per a result's masking plan.</summary>
internal static class PgDataRowMasker
{
    /// <summary>
    /// Writes the masked copy of one DataRow to <paramref name="output"/> when a value changes; otherwise writes nothing
    /// (the caller forwards the original bytes). Allocation-free: one <c>GetSpan</c> of the masked row's upper bound,
    /// one <c>Advance</c>.
    /// </summary>
    /// <param name="message">The whole message: 'D', Int32 length, Int16 column count, (Int32 length or -1, bytes)*.</param>
    /// <param name="plan">One entry per column of the RowDescription.</param>
    /// <param name="policy">The masking policy.</param>
    /// <param name="output">Receives the rewritten message.</param>
    /// <param name="counters">Counted into.</param>
    /// <returns>True when a rewritten message was written.</returns>
    /// <exception cref="PgProtocolException">08P01 when the row is malformed; XX000 when its column count is not the plan's (end the session).</exception>
    public static bool TryRewrite(
        ReadOnlySpan<byte> message,
        ReadOnlySpan<PgColumnMask> plan,
        MaskingPolicy policy,
        IBufferWriter<byte> output,
        ref PgMaskCounters counters)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(output);
        ReadOnlySpan<byte> payload = PgValueMasking.Body(message, (byte)'D', "DataRow");
        var measure = new PgPayloadReader(payload, "DataRow");
        long bound = 5 + PgValueMasking.MeasureFields(ref measure, plan, "DataRow", out bool mayChange);
        measure.EnsureEnd();
        if (!mayChange)
        {
            return false;
        }

        Span<byte> destination = output.GetSpan(PgValueMasking.CheckBound(bound, "DataRow"));
        var reader = new PgPayloadReader(payload, "DataRow");
        int position = 5;
        if (!PgValueMasking.WriteFields(ref reader, plan, policy, destination, ref position, ref counters))
        {
            return false;
        }

        destination[0] = (byte)'D';
        BinaryPrimitives.WriteInt32BigEndian(destination[1..], position - 1);
        output.Advance(position);
        return true;
    }
}
