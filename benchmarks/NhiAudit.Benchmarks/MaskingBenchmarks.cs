using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using BenchmarkDotNet.Attributes;
using NhiAudit.Masking;
using NhiAudit.Postgres.Masking;

namespace NhiAudit.Benchmarks;

/// <summary>
/// The PostgreSQL masking hot path: DataRows of (int4 id, text name, text ssn) through <see cref="PgDataRowMasker"/>,
/// per row. The passthrough case is a plan that protects nothing (the decision to forward the row untouched).
/// </summary>
/// <remarks>
/// Latest run, 2026-11-28, 2 cores, .NET 10, <c>--job short</c> (machine busy with other builds; read the ratio):
/// <code>
/// | Method                                | Mean        | Ratio  | Allocated |
/// |-------------------------------------- |------------:|-------:|----------:|
/// | unmasked plan: passthrough decision   |    33.35 ns |   1.00 |         - |
/// | ssn Redact                            |    69.80 ns |   2.11 |         - |
/// | ssn Hash (HMAC-SHA256)                | 4,314.10 ns | 130.26 |         - |
/// | ssn Partial                           |   118.81 ns |   3.59 |         - |
/// | detectors over name (nothing found)   |   161.64 ns |   4.88 |         - |
/// </code>
/// No path allocates per row. Hash is dominated by <c>HMACSHA256.HashData</c>, which sets the key up on every call.
/// </remarks>
[MemoryDiagnoser]
public class MaskingBenchmarks
{
    private const int Rows = 1000;

    private static readonly PgColumnMask Keep = new(false, MaskingStrategy.Redact, false, PgValueShape.Other, false);

    private readonly ArrayBufferWriter<byte> _output = new(64 * 1024);
    private byte[][] _rows = null!;
    private MaskingPolicy _policy = null!;
    private PgColumnMask[] _none = null!;
    private PgColumnMask[] _redact = null!;
    private PgColumnMask[] _hash = null!;
    private PgColumnMask[] _partial = null!;
    private PgColumnMask[] _detect = null!;

    [GlobalSetup]
    public void Setup()
    {
        _policy = MaskingPolicy.Create(
            [new MaskingRuleOptions { Name = "pii", Columns = ["public.customers.ssn"], Detectors = ["email", "credit-card"], Strategy = MaskingStrategy.Redact }],
            Enumerable.Range(1, 32).Select(i => (byte)i).ToArray());
        _rows = new byte[Rows][];
        for (int i = 0; i < Rows; i++)
        {
            _rows[i] = Row(i, $"Customer number {i} of the bench", $"{100 + (i % 800):D3}-{10 + (i % 89):D2}-{1000 + i:D4}");
        }

        _none = [Keep, Keep, Keep];
        _redact = [Keep, Keep, Masked(MaskingStrategy.Redact)];
        _hash = [Keep, Keep, Masked(MaskingStrategy.Hash)];
        _partial = [Keep, Keep, Masked(MaskingStrategy.Partial)];
        _detect = [Keep, new PgColumnMask(false, MaskingStrategy.Redact, true, PgValueShape.Text, false), Keep];
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Rows, Description = "unmasked plan: passthrough decision")]
    public int Passthrough() => Run(_none);

    [Benchmark(OperationsPerInvoke = Rows, Description = "ssn Redact")]
    public int Redact() => Run(_redact);

    [Benchmark(OperationsPerInvoke = Rows, Description = "ssn Hash (HMAC-SHA256)")]
    public int Hash() => Run(_hash);

    [Benchmark(OperationsPerInvoke = Rows, Description = "ssn Partial")]
    public int Partial() => Run(_partial);

    [Benchmark(OperationsPerInvoke = Rows, Description = "detectors over name (nothing found)")]
    public int Detectors() => Run(_detect);

    private int Run(PgColumnMask[] plan)
    {
        var counters = new PgMaskCounters();
        int rewritten = 0;
        foreach (byte[] row in _rows)
        {
            _output.ResetWrittenCount();
            if (PgDataRowMasker.TryRewrite(row, plan, _policy, _output, ref counters))
            {
                rewritten++;
            }
        }

        return rewritten;
    }

    private static PgColumnMask Masked(MaskingStrategy strategy) => new(true, strategy, false, PgValueShape.Text, false);

    private static byte[] Row(int id, string name, string ssn)
    {
        byte[] nameBytes = Encoding.UTF8.GetBytes(name);
        byte[] ssnBytes = Encoding.UTF8.GetBytes(ssn);
        var row = new byte[5 + 2 + 4 + 4 + 4 + nameBytes.Length + 4 + ssnBytes.Length];
        row[0] = (byte)'D';
        BinaryPrimitives.WriteInt32BigEndian(row.AsSpan(1), row.Length - 1);
        BinaryPrimitives.WriteInt16BigEndian(row.AsSpan(5), 3);
        BinaryPrimitives.WriteInt32BigEndian(row.AsSpan(7), 4);
        BinaryPrimitives.WriteInt32BigEndian(row.AsSpan(11), id);
        BinaryPrimitives.WriteInt32BigEndian(row.AsSpan(15), nameBytes.Length);
        nameBytes.CopyTo(row, 19);
        int pos = 19 + nameBytes.Length;
        BinaryPrimitives.WriteInt32BigEndian(row.AsSpan(pos), ssnBytes.Length);
        ssnBytes.CopyTo(row, pos + 4);
        return row;
    }
}
