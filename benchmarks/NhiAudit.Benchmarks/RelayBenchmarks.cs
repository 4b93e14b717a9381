using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Text;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Logging.Abstractions;
using NhiAudit.Postgres;
using NhiAudit.Postgres.Gateway;
using NhiAudit.Postgres.Relay;

namespace NhiAudit.Benchmarks;

/// <summary>
/// The PostgreSQL relay's message handling, without sockets: a result set of DataRows forwarded to the client
/// (the hot path), against a bare pipe copy of the same bytes (the baseline), and one whole audited statement.
/// </summary>
/// <remarks>
/// Latest run, 2026-11-28, 2 cores, .NET 10.0.12, <c>--job short</c> (machine busy with other builds; read the ratio):
/// <code>
/// | Method                                              | Mean        | Ratio  | Allocated |
/// |---------------------------------------------------- |------------:|-------:|----------:|
/// | bare pipe copy, per DataRow                         |     5.07 ns |   1.00 |         - |
/// | relay DataRow (frame, count, forward)               |    22.00 ns |   4.34 |         - |
/// | audited simple query round trip (request+response)  | 3,482.35 ns | 686.80 |    1184 B |
/// </code>
/// The forward path allocates nothing per message; a whole audited statement (split, classify, two JSON records)
/// allocates about 1.2 KB.
/// </remarks>
[MemoryDiagnoser]
public class RelayBenchmarks
{
    private const int Rows = 1000;
    private ReadOnlySequence<byte> _resultSet;
    private ReadOnlySequence<byte> _query;
    private ReadOnlySequence<byte> _queryResponse;
    private Pipe _pipe = null!;
    private PgRelaySession _session = null!;

    [GlobalSetup]
    public void Setup()
    {
        var rows = new List<byte>();
        for (var i = 0; i < Rows; i++)
        {
            // DataRow: 2 columns, "12345" and a 40-byte text.
            rows.AddRange(Message((byte)'D', [0, 2, .. Column("12345"), .. Column(new string('x', 40))]));
        }

        _resultSet = new ReadOnlySequence<byte>(rows.ToArray());
        _query = new ReadOnlySequence<byte>(Message((byte)'Q', Encoding.UTF8.GetBytes("SELECT abalance FROM pgbench_accounts WHERE aid = 48213;\0")));
        _queryResponse = new ReadOnlySequence<byte>(
        [
            .. Message((byte)'T', [0, 1, .. "abalance\0"u8, 0, 0, 0x40, 0, 0, 3, 0, 0, 0, 23, 0, 4, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0]),
            .. Message((byte)'D', [0, 1, .. Column("0")]),
            .. Message((byte)'C', [.. "SELECT 1\0"u8]),
            .. Message((byte)'Z', [(byte)'I']),
        ]);

        // Large enough that the writer never waits for the benchmark's reader.
        _pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 0, resumeWriterThreshold: 0));
        var services = new PgGatewayServices(new DiscardingAuditLog(), null!, new AllowAllPolicy(), null!, new CancelKeyRegistry(), null!, null, TimeProvider.System, TimeSpan.Zero, NullLogger.Instance);
        _session = new PgRelaySession(new PostgresTargetOptions(), services);
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Rows, Description = "bare pipe copy, per DataRow")]
    public void BarePipeCopy()
    {
        foreach (var segment in _resultSet)
        {
            _pipe.Writer.Write(segment.Span);
        }

        Drain();
    }

    [Benchmark(OperationsPerInvoke = Rows, Description = "relay DataRow (frame, count, forward)")]
    public void RelayDataRows()
    {
        var buffer = _resultSet;
        _session.RelayServerFrames(ref buffer, _pipe.Writer);
        Drain();
    }

    [Benchmark(Description = "audited simple query round trip (request + response records)")]
    public void AuditedStatement()
    {
        _session.OnClientMessage((byte)'Q', _query, _pipe.Writer);
        var response = _queryResponse;
        _session.RelayServerFrames(ref response, _pipe.Writer);
        Drain();
    }

    private void Drain()
    {
        // Completes synchronously: the pipe is never paused, so FlushAsync and ReadAsync have data at once.
        var flush = _pipe.Writer.FlushAsync();
        if (!flush.IsCompletedSuccessfully || !_pipe.Reader.TryRead(out var read))
        {
            throw new InvalidOperationException("the benchmark pipe was expected to complete synchronously");
        }

        _pipe.Reader.AdvanceTo(read.Buffer.End);
    }

    private static byte[] Column(string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        var column = new byte[4 + bytes.Length];
        BinaryPrimitives.WriteInt32BigEndian(column, bytes.Length);
        bytes.CopyTo(column, 4);
        return column;
    }

    private static byte[] Message(byte type, byte[] body)
    {
        var message = new byte[5 + body.Length];
        message[0] = type;
        BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(1), body.Length + 4);
        body.CopyTo(message, 5);
        return message;
    }

    /// <summary>Allows everything: the benchmark measures the relay; the policy engine has its own figures.</summary>
    private sealed class AllowAllPolicy : IPolicyEngine
    {
        private static readonly PolicyDecision Allowed = new(PolicyEffect.Allow, "(default)", "", 1);

        public PolicyDecision Evaluate(AccessRequest request) => Allowed;
    }

    /// <summary>Takes records and forgets them: the benchmark measures the relay, not the disk.</summary>
    private sealed class DiscardingAuditLog : IAuditLog
    {
        private long _seq;

        public ValueTask<long> AppendAsync(ReadOnlyMemory<byte> recordBody, AuditAppendMode mode = AuditAppendMode.Request, CancellationToken cancellationToken = default) =>
            new(++_seq);

        public ValueTask FlushAsync(CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
