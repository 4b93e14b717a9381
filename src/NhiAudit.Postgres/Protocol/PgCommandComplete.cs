namespace NhiAudit.Postgres.Protocol;

/// <summary>
/// CommandComplete ('C'): the command tag, e.g. <c>SELECT 5</c>, <c>INSERT 0 3</c>,
/// <c>UPDATE 2</c>, <c>CREATE TABLE</c>. A view over the payload; <see cref="Command"/> returns a
/// cached string for the row-counting commands so the per-statement audit path does not allocate.
/// </summary>
internal readonly ref struct PgCommandComplete
{
    private static readonly string[] RowCommands = ["SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "COPY", "MOVE", "FETCH"];

    private readonly int _commandIndex;

    private PgCommandComplete(ReadOnlySpan<byte> tag, long? rows, int commandIndex)
    {
        TagUtf8 = tag;
        Rows = rows;
        _commandIndex = commandIndex;
    }

    /// <summary>The whole tag's bytes, without the terminating NUL.</summary>
    public ReadOnlySpan<byte> TagUtf8 { get; }

    /// <summary>
    /// Rows affected or returned, parsed from the last number of the tag for SELECT, INSERT
    /// (<c>INSERT oid rows</c>), UPDATE, DELETE, MERGE, COPY, MOVE and FETCH; null for other commands
    /// (and if the count does not fit a long).
    /// </summary>
    public long? Rows { get; }

    /// <summary>The whole tag as a string, e.g. "INSERT 0 3".</summary>
    public string Tag => PgText.DecodeText(TagUtf8);

    /// <summary>
    /// The tag without its counts: "INSERT" for "INSERT 0 3", "CREATE TABLE" for "CREATE TABLE".
    /// Cached (no allocation) for the row-counting commands.
    /// </summary>
    public string Command => _commandIndex >= 0 ? RowCommands[_commandIndex] : Tag;

    /// <summary>Parses the body of a 'C' message.</summary>
    /// <exception cref="PgProtocolException">The tag is not terminated or bytes trail it.</exception>
    public static PgCommandComplete Parse(ReadOnlySpan<byte> payload)
    {
        var reader = new PgPayloadReader(payload, "CommandComplete");
        ReadOnlySpan<byte> tag = reader.ReadCString();
        reader.EnsureEnd();

        int firstSpace = tag.IndexOf((byte)' ');
        if (firstSpace <= 0)
        {
            return new PgCommandComplete(tag, null, -1);
        }

        int commandIndex = IndexOfRowCommand(tag[..firstSpace]);
        if (commandIndex < 0)
        {
            return new PgCommandComplete(tag, null, -1);
        }

        ReadOnlySpan<byte> count = tag[(tag.LastIndexOf((byte)' ') + 1)..];
        return new PgCommandComplete(tag, TryParseCount(count, out long rows) ? rows : null, commandIndex);
    }

    private static int IndexOfRowCommand(ReadOnlySpan<byte> word)
    {
        for (int i = 0; i < RowCommands.Length; i++)
        {
            string candidate = RowCommands[i];
            if (candidate.Length != word.Length)
            {
                continue;
            }

            bool equal = true;
            for (int j = 0; j < word.Length; j++)
            {
                if (word[j] != candidate[j])
                {
                    equal = false;
                    break;
                }
            }

            if (equal)
            {
                return i;
            }
        }

        return -1;
    }

    private static bool TryParseCount(ReadOnlySpan<byte> digits, out long value)
    {
        value = 0;
        if (digits.IsEmpty || digits.Length > 19)
        {
            return false;
        }

        foreach (byte b in digits)
        {
            uint d = (uint)(b - '0');
            if (d > 9)
            {
                return false;
            }

            // 19 digits can exceed long.MaxValue; check before multiplying.
            if (value > (long.MaxValue - d) / 10)
            {
                return false;
            }

            value = (value * 10) + d;
        }

        return true;
    }
}
