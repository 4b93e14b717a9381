using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using NhiAudit.Masking;
using NhiAudit.Postgres.Masking;
using NhiAudit.Postgres.Protocol;
using static NhiAudit.Postgres.Tests.Masking.MaskingTestData;

namespace NhiAudit.Postgres.Tests.Masking;

/// <summary>Hostile input for the masking parsers and rewriters: nothing but <see cref="PgProtocolException"/> escapes.</summary>
public class PgMaskingFuzzTests
{
    private static readonly MaskingPolicy Pii = PiiPolicy();

    private static readonly PgColumnMask[] Plan =
    [
        Keep,
        Masked(MaskingStrategy.Redact),
        Masked(MaskingStrategy.Hash, PgValueShape.Json),
        Detected(),
    ];

    private static readonly PgColumnMask[] BinaryPlan =
    [
        Keep with { Binary = true },
        Masked(MaskingStrategy.Partial, binary: true),
        Masked(MaskingStrategy.Redact, PgValueShape.Jsonb, binary: true),
        Detected(PgValueShape.Jsonb, binary: true),
    ];

    private static readonly string[] CopyStatements =
    [
        "COPY t TO STDOUT",
        "COPY t TO STDOUT (FORMAT csv, HEADER)",
        "COPY t TO STDOUT WITH CSV QUOTE '''' ESCAPE '\\'",
        "COPY t TO STDOUT (FORMAT binary)",
    ];

    private static readonly byte[][] Samples =
    [
        DataRow("1", "123-45-6789", "{\"a\":1}", "bob@example.com"),
        DataRow("1", null, null, "x"),
        Frame('d', Utf8("1\t123-45-6789\t\\N\tbob@example.com\n")),
        Frame('d', Utf8("id,ssn,j,n\n1,\"12,3\",\"{\"\"a\"\":1}\",x\n")),
        Frame('d', [.. "PGCOPY\n\xff\r\n\0"u8.ToArray()[..7], 0xFF, (byte)'\r', (byte)'\n', 0, 0, 0, 0, 0, 0, 0, 0, 0, .. Fields(Utf8("1"), Utf8("2"), [1, 0x7B, 0x7D], null), 0xFF, 0xFF]),
        Frame('E', new Protocol.PgTestMessages().Byte((byte)'C').CString("23505").Byte((byte)'D').CString("Key (a)=(b(c)) x").Byte((byte)'t').CString("customers").Byte(0).ToArray()),
        Frame('E', new Protocol.PgTestMessages().Byte((byte)'C').CString("22P02").Byte((byte)'M').CString("bad \"x\" for bob@example.com").Byte(0).ToArray()),
        new Protocol.PgTestMessages().Int16(1).CString("ssn").Int32(1).Int16(2).Int32(25).Int16(-1).Int32(-1).Int16(0).ToArray(),
    ];

    private static void Only(Action action, byte[] input, string what)
    {
        try
        {
            action();
        }
        catch (PgProtocolException)
        {
        }
        catch (Exception ex)
        {
            Assert.Fail($"{what} threw {ex.GetType().Name} for [{Convert.ToHexString(input)}]: {ex}");
        }
    }

    private static void AssertOnlyProtocolErrors(byte[] input)
    {
        Check(input);

        // The same bytes behind a correct header, and behind each message type's header.
        if (input.Length > 0)
        {
            Check(Frame((char)input[0], input[1..]));
            foreach (char type in "DdEN")
            {
                Check(Frame(type, input));
            }
        }
    }

    private static void Check(byte[] input)
    {
        var counters = new PgMaskCounters();
        var buffer = new ArrayBufferWriter<byte>();
        Only(() => PgRowDescription.Parse(input), input, "RowDescription");
        Only(() => PgDataRowMasker.TryRewrite(input, Plan, Pii, buffer, ref counters), input, "DataRow");
        Only(() => PgDataRowMasker.TryRewrite(input, BinaryPlan, Pii, buffer, ref counters), input, "DataRow binary");
        Only(() => PgErrorMasker.TryRewrite(input, new PgErrorMaskContext(true, false, (_, _) => true), Pii, buffer, ref counters), input, "Error");
        foreach (string sql in CopyStatements)
        {
            PgCopyStatementParser.Parse(sql, out var statement, out _);
            var masker = new PgCopyOutMasker(statement!, statement!.Format == PgCopyFormat.Binary ? BinaryPlan : Plan, Pii);
            Only(() => masker.TryRewrite(input, buffer, ref counters), input, "COPY " + sql);
            Only(() => masker.TryRewrite(input, buffer, ref counters), input, "COPY again " + sql);
        }
    }

    [Property(MaxTest = 1000)]
    public void Random_bytes_only_raise_protocol_errors(byte[] input)
    {
        AssertOnlyProtocolErrors(input ?? []);
    }

    [Property(MaxTest = 1000)]
    public void Truncated_and_mutated_samples_only_raise_protocol_errors(int which, int cut, int at, byte value)
    {
        byte[] sample = Samples[Math.Abs(which % Samples.Length)];
        byte[] mutated = [.. sample];
        mutated[Math.Abs(at % mutated.Length)] = value;
        AssertOnlyProtocolErrors(mutated);
        AssertOnlyProtocolErrors(sample[..Math.Abs(cut % (sample.Length + 1))]);
    }

    [Property(MaxTest = 500)]
    public void Random_sql_never_throws(string sql, int which)
    {
        sql ??= "";
        string[] prefixes = ["", "COPY ", "COPY t TO STDOUT ", "COPY (", "COPY t TO STDOUT ("];
        string text = prefixes[Math.Abs(which % prefixes.Length)] + sql;
        var result = PgCopyStatementParser.Parse(text, out var statement, out string? error);
        Assert.Equal(result == PgCopyParseResult.CopyToStdout, statement is not null);
        Assert.Equal(result == PgCopyParseResult.Unreadable, error is not null);
    }

    [Property(MaxTest = 500)]
    public void Rewritten_rows_are_well_formed(NonEmptyArray<byte[]?> values, int seed)
    {
        var random = new Random(seed);
        byte[]?[] row = values.Get;
        var plan = new PgColumnMask[row.Length];
        for (int i = 0; i < plan.Length; i++)
        {
            plan[i] = random.Next(4) switch
            {
                0 => Keep,
                1 => Masked((MaskingStrategy)random.Next(4), (PgValueShape)random.Next(4), random.Next(2) == 1),
                2 => Detected((PgValueShape)random.Next(3), random.Next(2) == 1),
                _ => Keep,
            };
        }

        byte[] message = DataRow(row);
        var buffer = new ArrayBufferWriter<byte>();
        var counters = new PgMaskCounters();
        if (!PgDataRowMasker.TryRewrite(message, plan, Pii, buffer, ref counters))
        {
            Assert.Equal(0, buffer.WrittenCount);
            return;
        }

        byte[] written = buffer.WrittenSpan.ToArray();
        var rewritten = ParseRow(written);
        Assert.Equal(row.Length, rewritten.Length);
        for (int i = 0; i < row.Length; i++)
        {
            if (plan[i].IsNone || row[i] is null)
            {
                Assert.Equal(row[i], rewritten[i]);
            }
        }
    }
}
