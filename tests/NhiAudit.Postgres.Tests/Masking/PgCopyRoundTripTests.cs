using System.Buffers;
using System.Text;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using NhiAudit.Masking;
using NhiAudit.Postgres.Masking;
using static NhiAudit.Postgres.Tests.Masking.MaskingTestData;

namespace NhiAudit.Postgres.Tests.Masking;

/// <summary>
/// Rows encoded the way PostgreSQL writes COPY text and CSV, masked, and decoded again by an independent reader: the
/// row keeps its fields, unmasked fields keep their values, masked ones read as the mask.
/// </summary>
public class PgCopyRoundTripTests
{
    private static readonly MaskingPolicy Pii = PiiPolicy();
    private const string Alphabet = "ab1 ,;|\t\n\r\\\"'*N-@.";

    private static string? Value(int seed, int index)
    {
        var random = new Random(HashCode.Combine(seed, index));
        if (random.Next(6) == 0)
        {
            return null;
        }

        var text = new StringBuilder();
        int length = random.Next(8);
        for (int i = 0; i < length; i++)
        {
            text.Append(Alphabet[random.Next(Alphabet.Length)]);
        }

        return text.ToString();
    }

    private static string EncodeText(string? value, char delimiter, string nullString)
    {
        if (value is null)
        {
            return nullString;
        }

        var text = new StringBuilder();
        foreach (char c in value)
        {
            text.Append(c switch
            {
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                '\\' => "\\\\",
                _ when c == delimiter => "\\" + c,
                _ => c.ToString(),
            });
        }

        return text.ToString();
    }

    private static List<string?> DecodeText(string line, char delimiter, string nullString)
    {
        var fields = new List<string?>();
        var raw = new StringBuilder();
        var value = new StringBuilder();
        for (int i = 0; i <= line.Length; i++)
        {
            if (i == line.Length || line[i] == delimiter)
            {
                fields.Add(raw.ToString() == nullString ? null : value.ToString());
                raw.Clear();
                value.Clear();
                continue;
            }

            char c = line[i];
            raw.Append(c);
            if (c == '\\' && i + 1 < line.Length)
            {
                char e = line[++i];
                raw.Append(e);
                value.Append(e switch { 'n' => '\n', 'r' => '\r', 't' => '\t', _ => e });
            }
            else
            {
                value.Append(c);
            }
        }

        return fields;
    }

    private static string EncodeCsv(string? value, char delimiter)
    {
        if (value is null)
        {
            return "";
        }

        bool quote = value.Length == 0 || value.IndexOfAny([delimiter, '"', '\n', '\r']) >= 0;
        return quote ? "\"" + value.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : value;
    }

    private static List<string?> DecodeCsv(string line, char delimiter)
    {
        var fields = new List<string?>();
        int i = 0;
        while (true)
        {
            var value = new StringBuilder();
            bool quoted = false;
            if (i < line.Length && line[i] == '"')
            {
                quoted = true;
                i++;
                while (true)
                {
                    if (line[i] == '"' && i + 1 < line.Length && line[i + 1] == '"')
                    {
                        value.Append('"');
                        i += 2;
                    }
                    else if (line[i] == '"')
                    {
                        i++;
                        break;
                    }
                    else
                    {
                        value.Append(line[i++]);
                    }
                }
            }

            while (i < line.Length && line[i] != delimiter)
            {
                value.Append(line[i++]);
            }

            fields.Add(!quoted && value.Length == 0 ? null : value.ToString());
            if (i >= line.Length)
            {
                return fields;
            }

            i++;
        }
    }

    [Property(MaxTest = 300)]
    public void Text_and_csv_rows_survive_masking(int seed, bool csv, byte delimiterChoice)
    {
        char delimiter = ",;|\t*"[delimiterChoice % 5];
        string sql = csv
            ? $"COPY t TO STDOUT (FORMAT csv, DELIMITER E'\\{(delimiter == '\t' ? "t" : delimiter.ToString())}')"
            : $"COPY t TO STDOUT (DELIMITER E'\\{(delimiter == '\t' ? "t" : delimiter.ToString())}')";
        Assert.Equal(PgCopyParseResult.CopyToStdout, PgCopyStatementParser.Parse(sql, out var statement, out string? error));
        Assert.True(statement!.Delimiter == (byte)delimiter, error);
        PgColumnMask[] plan = [Keep, Masked(MaskingStrategy.Redact), Masked(MaskingStrategy.Hash), Detected(), Masked(MaskingStrategy.Null), Keep];
        string?[] values = [.. Enumerable.Range(0, plan.Length).Select(i => Value(seed, i))];
        string line = string.Join(delimiter, values.Select(v => csv ? EncodeCsv(v, delimiter) : EncodeText(v, delimiter, "\\N")));

        var masker = new PgCopyOutMasker(statement, plan, Pii);
        var buffer = new ArrayBufferWriter<byte>();
        var counters = new PgMaskCounters();
        byte[] message = Frame('d', Utf8(line + "\n"));
        string output = masker.TryRewrite(message, buffer, ref counters) ? Encoding.UTF8.GetString(buffer.WrittenSpan[5..]) : line + "\n";

        Assert.EndsWith("\n", output, StringComparison.Ordinal);
        string body = output[..^1];
        List<string?> decoded = csv ? DecodeCsv(body, delimiter) : DecodeText(body, delimiter, "\\N");
        Assert.Equal(plan.Length, decoded.Count);
        Assert.Equal(values[0], decoded[0]);
        Assert.Equal(values[5], decoded[5]);
        Assert.Equal(values[1] is null ? null : "****", decoded[1]);
        Assert.Equal(values[2] is null ? null : MaskOf(Pii, values[2]!, MaskingStrategy.Hash), decoded[2]);
        Assert.Equal(values[3] is null ? null : DetectedOf(Pii, values[3]!) ?? values[3], decoded[3]);
        Assert.Null(decoded[4]);
    }
}
