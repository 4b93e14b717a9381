using System.Buffers;

namespace NhiAudit.Postgres.Tests.Protocol;

/// <summary>A linked buffer segment for building multi-segment sequences (after Bedrock's TestSequenceSegment).</summary>
internal sealed class TestSequenceSegment : ReadOnlySequenceSegment<byte>
{
    public TestSequenceSegment(ReadOnlyMemory<byte> memory) => Memory = memory;

    public TestSequenceSegment Append(ReadOnlyMemory<byte> memory)
    {
        var next = new TestSequenceSegment(memory) { RunningIndex = RunningIndex + Memory.Length };
        Next = next;
        return next;
    }

    /// <summary>A sequence made of the given chunks, one segment each (empty chunks allowed).</summary>
    public static ReadOnlySequence<byte> Create(params byte[][] chunks)
    {
        if (chunks.Length == 0)
        {
            return ReadOnlySequence<byte>.Empty;
        }

        var first = new TestSequenceSegment(chunks[0]);
        TestSequenceSegment last = first;
        for (int i = 1; i < chunks.Length; i++)
        {
            last = last.Append(chunks[i]);
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    /// <summary><paramref name="data"/> cut at the given ascending positions.</summary>
    public static ReadOnlySequence<byte> Split(byte[] data, params int[] positions)
    {
        var chunks = new List<byte[]>();
        int previous = 0;
        foreach (int position in positions)
        {
            chunks.Add(data[previous..position]);
            previous = position;
        }

        chunks.Add(data[previous..]);
        return Create([.. chunks]);
    }

    /// <summary><paramref name="data"/> as one-byte segments.</summary>
    public static ReadOnlySequence<byte> Bytewise(byte[] data) =>
        Create([.. data.Select(b => new[] { b })]);
}
