namespace NhiAudit.Masking;

/// <summary>A protected column pattern of one rule: <c>schema.table.column</c> parts, each a name or <c>*</c>, lower-cased.</summary>
/// <param name="Schema">Schema name or <c>*</c>.</param>
/// <param name="Table">Table (or view) name or <c>*</c>.</param>
/// <param name="Column">Column name or <c>*</c>.</param>
/// <param name="Strategy">How the column's values are masked.</param>
/// <param name="Rule">The rule's name.</param>
public sealed record ColumnMaskRule(string Schema, string Table, string Column, MaskingStrategy Strategy, string Rule)
{
    /// <summary>True when the column <paramref name="schema"/>.<paramref name="table"/>.<paramref name="column"/> matches (case-insensitive).</summary>
    public bool Matches(string schema, string table, string column)
    {
        ArgumentNullException.ThrowIfNull(schema);
        ArgumentNullException.ThrowIfNull(table);
        ArgumentNullException.ThrowIfNull(column);
        return PartMatches(Schema, schema) && PartMatches(Table, table) && PartMatches(Column, column);
    }

    private static bool PartMatches(string pattern, string name) =>
        pattern == "*" || string.Equals(pattern, name, StringComparison.OrdinalIgnoreCase);
}

/// <summary>
/// The compiled masking rules: which columns are protected, which detectors run with which strategy, and the
/// allocation-free value rewriting the protocol relays call per value.
/// </summary>
public sealed class MaskingPolicy : IValueMasker
{
    private const int HashHexDigits = 16;
    private const int MinHashKeyBytes = 16;

    private static readonly Dictionary<string, SensitiveValueKinds> DetectorNames = new(StringComparer.OrdinalIgnoreCase)
    {
        ["email"] = SensitiveValueKinds.Email,
        ["credit-card"] = SensitiveValueKinds.CreditCard,
        ["iban"] = SensitiveValueKinds.Iban,
        ["us-ssn"] = SensitiveValueKinds.UsSsn,
        ["jwt"] = SensitiveValueKinds.Jwt,
        ["bearer-token"] = SensitiveValueKinds.BearerToken,
        ["azure-storage-key"] = SensitiveValueKinds.AzureStorageKey,
        ["azure-connection-string"] = SensitiveValueKinds.AzureConnectionString,
        ["pem-private-key"] = SensitiveValueKinds.PemPrivateKey,
        ["all"] = SensitiveValueKinds.All,
    };

    private readonly ColumnMaskRule[] _columnRules;
    private readonly SensitiveValueKinds _detectors;
    private readonly MaskingStrategy[] _strategies;
    private readonly string[] _rules;
    private readonly byte[] _hashKey;

    [ThreadStatic]
    private static System.Security.Cryptography.IncrementalHash? t_hmac;

    [ThreadStatic]
    private static MaskingPolicy? t_hmacOwner;

    private MaskingPolicy(ColumnMaskRule[] columnRules, SensitiveValueKinds detectors, MaskingStrategy[] strategies, string[] rules, byte[] hashKey)
    {
        _columnRules = columnRules;
        _detectors = detectors;
        _strategies = strategies;
        _rules = rules;
        _hashKey = hashKey;
    }

    /// <summary>The longest output <see cref="MaskValue"/> writes for a value of <paramref name="valueLength"/> bytes.</summary>
    public static int MaxMaskedLength(int valueLength) => Math.Max(valueLength, 32);

    /// <summary>Compiles rules. Throws <see cref="ArgumentException"/> naming the rule for an unknown detector or a malformed column pattern.</summary>
    /// <param name="rules">The configured rules.</param>
    /// <param name="hashKey">The HMAC key of <see cref="MaskingStrategy.Hash"/>; at least 16 bytes.</param>
    public static MaskingPolicy Create(IReadOnlyList<MaskingRuleOptions> rules, ReadOnlySpan<byte> hashKey)
    {
        ArgumentNullException.ThrowIfNull(rules);
        if (hashKey.Length < MinHashKeyBytes)
        {
            throw new ArgumentException($"The masking hash key must be at least {MinHashKeyBytes} bytes; it is {hashKey.Length}.", nameof(hashKey));
        }

        var columns = new List<ColumnMaskRule>();
        var detectors = SensitiveValueKinds.None;
        var strategies = new MaskingStrategy[SensitiveValueScanner.KindCount];
        var ruleNames = new string[SensitiveValueScanner.KindCount];
        foreach (var rule in rules)
        {
            ArgumentNullException.ThrowIfNull(rule, nameof(rules));
            if (!Enum.IsDefined(rule.Strategy))
            {
                throw new ArgumentException($"Masking rule '{rule.Name}' has an unknown strategy '{rule.Strategy}'.", nameof(rules));
            }

            foreach (var pattern in rule.Columns ?? [])
            {
                columns.Add(CompileColumn(rule, pattern));
            }

            foreach (var name in rule.Detectors ?? [])
            {
                if (name is null || !DetectorNames.TryGetValue(name.Trim(), out var kinds))
                {
                    throw new ArgumentException(
                        $"Masking rule '{rule.Name}' names an unknown detector '{name}'; known: {string.Join(", ", DetectorNames.Keys)}.", nameof(rules));
                }

                for (var k = 0; k < SensitiveValueScanner.KindCount; k++)
                {
                    var kind = (SensitiveValueKinds)(1 << k);
                    if ((kinds & kind) != 0 && (detectors & kind) == 0)
                    {
                        detectors |= kind;
                        strategies[k] = rule.Strategy;
                        ruleNames[k] = rule.Name;
                    }
                }
            }
        }

        return new MaskingPolicy([.. columns], detectors, strategies, ruleNames, hashKey.ToArray());
    }

    private static ColumnMaskRule CompileColumn(MaskingRuleOptions rule, string? pattern)
    {
        var parts = (pattern ?? "").Split('.');
        if (parts.Length != 3 || Array.Exists(parts, p => !IsPatternPart(p)))
        {
            throw new ArgumentException(
                $"Masking rule '{rule.Name}' has a malformed column pattern '{pattern}': expected schema.table.column, each part a name or *.", nameof(rule));
        }

#pragma warning disable CA1308 // identifiers are folded to lower case, as PostgreSQL folds unquoted names
        return new ColumnMaskRule(
            parts[0].ToLowerInvariant(), parts[1].ToLowerInvariant(), parts[2].ToLowerInvariant(), rule.Strategy, rule.Name);
#pragma warning restore CA1308
    }

    private static bool IsPatternPart(string part) =>
        part == "*" || (part.Length > 0 && !part.Contains('*', StringComparison.Ordinal) && part.AsSpan().Trim().Length == part.Length);

    /// <summary>A policy with no rules (masking off).</summary>
    public static MaskingPolicy None { get; } = new(
        [], SensitiveValueKinds.None, new MaskingStrategy[SensitiveValueScanner.KindCount], new string[SensitiveValueScanner.KindCount],
        System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));

    /// <summary>True when any rule is configured.</summary>
    public bool IsEnabled => _columnRules.Length > 0 || _detectors != SensitiveValueKinds.None;

    /// <summary>The column rules in configuration order (the first match decides a column's strategy).</summary>
    public IReadOnlyList<ColumnMaskRule> ColumnRules => _columnRules;

    /// <summary>Every detector kind some rule enables.</summary>
    public SensitiveValueKinds Detectors => _detectors;

    /// <inheritdoc/>
    public bool HasDetectors => _detectors != SensitiveValueKinds.None;

    /// <summary>The first column rule matching the column, or null.</summary>
    public ColumnMaskRule? FindColumnRule(string schema, string table, string column)
    {
        foreach (var rule in _columnRules)
        {
            if (rule.Matches(schema, table, column))
            {
                return rule;
            }
        }

        return null;
    }

    /// <summary>
    /// Writes the masked form of a whole UTF-8 value (<see cref="MaskingStrategy.Null"/> is the caller's: it writes NULL;
    /// here it redacts). The output is ASCII from <c>*</c>, letters, digits and <c>-.@_/:+ </c> only, so it is safe inside
    /// COPY text, CSV and JSON strings without escaping, and at most <see cref="MaxMaskedLength"/> bytes.
    /// </summary>
    /// <remarks>
    /// <see cref="MaskingStrategy.Partial"/> keeps the last four ASCII letters or digits (none when the value has four or
    /// fewer), turns every other letter or digit into <c>*</c>, keeps <c>-.@_/:+</c> and space, and writes one <c>*</c> for
    /// any other byte or whole multi-byte UTF-8 sequence. <see cref="MaskingStrategy.Hash"/> writes <c>hmac:</c> and the
    /// first 16 lowercase hex digits of HMAC-SHA256 under the policy's key. Never allocates.
    /// </remarks>
    /// <param name="utf8Value">The value in clear.</param>
    /// <param name="strategy">How to mask it.</param>
    /// <param name="destination">At least <see cref="MaxMaskedLength"/> bytes always suffice.</param>
    /// <returns>The number of bytes written to <paramref name="destination"/>.</returns>
    /// <exception cref="ArgumentException"><paramref name="destination"/> is too small.</exception>
    public int MaskValue(ReadOnlySpan<byte> utf8Value, MaskingStrategy strategy, Span<byte> destination)
    {
        switch (strategy)
        {
            case MaskingStrategy.Partial:
                return MaskPartial(utf8Value, destination);
            case MaskingStrategy.Hash:
                return MaskHash(utf8Value, destination);
            default:
                EnsureRoom(destination, 4);
                "****"u8.CopyTo(destination);
                return 4;
        }
    }

    private static int MaskPartial(ReadOnlySpan<byte> value, Span<byte> destination)
    {
        var alnum = 0;
        var outputLength = 0;
        for (var i = 0; i < value.Length; i++)
        {
            var b = value[i];
            if (SensitiveValueScanner.IsAsciiLetterOrDigit(b))
            {
                alnum++;
            }

            outputLength++;
            i += ContinuationBytes(value, i);
        }

        EnsureRoom(destination, outputLength);
        var keepFrom = alnum > 4 ? alnum - 4 : alnum;
        var seen = 0;
        var w = 0;
        for (var i = 0; i < value.Length; i++)
        {
            var b = value[i];
            if (SensitiveValueScanner.IsAsciiLetterOrDigit(b))
            {
                destination[w++] = seen++ >= keepFrom ? b : (byte)'*';
            }
            else if (b is (byte)'-' or (byte)'.' or (byte)'@' or (byte)'_' or (byte)'/' or (byte)':' or (byte)'+' or (byte)' ')
            {
                destination[w++] = b;
            }
            else
            {
                destination[w++] = (byte)'*';
                i += ContinuationBytes(value, i);
            }
        }

        return w;
    }

    /// <summary>How many continuation bytes follow the UTF-8 lead byte at <paramref name="i"/> (0 for ASCII and stray bytes).</summary>
    private static int ContinuationBytes(ReadOnlySpan<byte> value, int i)
    {
        var b = value[i];
        var expected = b switch
        {
            >= 0xF0 and <= 0xF7 => 3,
            >= 0xE0 => 2,
            >= 0xC0 => 1,
            _ => 0,
        };
        if (b > 0xF7)
        {
            expected = 0;
        }

        var n = 0;
        while (n < expected && i + n + 1 < value.Length && (value[i + n + 1] & 0xC0) == 0x80)
        {
            n++;
        }

        return n;
    }

    private int MaskHash(ReadOnlySpan<byte> value, Span<byte> destination)
    {
        EnsureRoom(destination, 5 + HashHexDigits);
        Span<byte> mac = stackalloc byte[32];

        // One keyed HMAC per thread, reused: the one-shot HashData sets the key up on every call (~4 µs per value).
        var hmac = t_hmac;
        if (hmac is null || !ReferenceEquals(t_hmacOwner, this))
        {
            hmac?.Dispose();
            hmac = System.Security.Cryptography.IncrementalHash.CreateHMAC(System.Security.Cryptography.HashAlgorithmName.SHA256, _hashKey);
            t_hmac = hmac;
            t_hmacOwner = this;
        }

        hmac.AppendData(value);
        hmac.GetHashAndReset(mac);
        "hmac:"u8.CopyTo(destination);
        var hex = "0123456789abcdef"u8;
        for (var i = 0; i < HashHexDigits / 2; i++)
        {
            destination[5 + (2 * i)] = hex[mac[i] >> 4];
            destination[6 + (2 * i)] = hex[mac[i] & 0xF];
        }

        return 5 + HashHexDigits;
    }

    private static void EnsureRoom(Span<byte> destination, int needed)
    {
        if (destination.Length < needed)
        {
            throw new ArgumentException($"The destination holds {destination.Length} bytes; the masked value needs {needed}.", nameof(destination));
        }
    }

    /// <summary>
    /// Replaces every span the enabled detectors find in a UTF-8 value by its masked form (each kind with the strategy of
    /// the first rule that enables it). Never allocates.
    /// </summary>
    /// <remarks>
    /// Matches never overlap: the leftmost wins, then the longest (then the lower <see cref="SensitiveValueKinds"/> bit), and
    /// scanning resumes after it, so a JWT after <c>Bearer </c> is replaced once. The text between matches is copied as is.
    /// </remarks>
    /// <param name="utf8Value">The value.</param>
    /// <param name="destination">At least <c>MaxMaskedLength(utf8Value.Length) + 32 * matches</c>; <see cref="MaxDetectedLength"/> bounds it.</param>
    /// <param name="found">The kinds found.</param>
    /// <param name="wholeValueNull">True when a found kind's strategy is <see cref="MaskingStrategy.Null"/>: the whole value must become NULL.</param>
    /// <returns>-1 when nothing was found (the value stays as it is), otherwise the bytes written.</returns>
    /// <exception cref="ArgumentException"><paramref name="destination"/> is too small.</exception>
    public int MaskDetected(ReadOnlySpan<byte> utf8Value, Span<byte> destination, out SensitiveValueKinds found, out bool wholeValueNull)
    {
        found = SensitiveValueKinds.None;
        wholeValueNull = false;
        if (_detectors == SensitiveValueKinds.None || utf8Value.IsEmpty)
        {
            return -1;
        }

        // Per detector, its next match (start, length) at or after pos: -2 = not searched yet, -1 = no more.
        Span<int> starts = stackalloc int[SensitiveValueScanner.KindCount];
        Span<int> lengths = stackalloc int[SensitiveValueScanner.KindCount];
        starts.Fill(-2);
        var pos = 0;
        var written = 0;
        while (true)
        {
            var best = -1;
            var bestStart = int.MaxValue;
            var bestLength = 0;
            for (var k = 0; k < SensitiveValueScanner.KindCount; k++)
            {
                if (((int)_detectors & (1 << k)) == 0 || starts[k] == -1)
                {
                    continue;
                }

                if (starts[k] < pos)
                {
                    starts[k] = SensitiveValueScanner.Find(k, utf8Value, pos, out var s, out var l) ? s : -1;
                    lengths[k] = l;
                }

                if (starts[k] >= 0 && (starts[k] < bestStart || (starts[k] == bestStart && lengths[k] > bestLength)))
                {
                    best = k;
                    bestStart = starts[k];
                    bestLength = lengths[k];
                }
            }

            if (best < 0)
            {
                break;
            }

            var gap = utf8Value[pos..bestStart];
            gap.CopyTo(destination[written..]);
            written += gap.Length;
            var strategy = _strategies[best];
            if (strategy == MaskingStrategy.Null)
            {
                wholeValueNull = true;
                strategy = MaskingStrategy.Redact;
            }

            written += MaskValue(utf8Value.Slice(bestStart, bestLength), strategy, destination[written..]);
            found |= (SensitiveValueKinds)(1 << best);
            pos = bestStart + bestLength;
        }

        if (found == SensitiveValueKinds.None)
        {
            return -1;
        }

        var rest = utf8Value[pos..];
        rest.CopyTo(destination[written..]);
        return written + rest.Length;
    }

    /// <summary>The destination size <see cref="MaskDetected(ReadOnlySpan{byte}, Span{byte}, out SensitiveValueKinds, out bool)"/> never exceeds.</summary>
    public static int MaxDetectedLength(int valueLength) => (valueLength * 4) + 32;

    /// <inheritdoc/>
    public string? Mask(string value, MaskingStrategy strategy)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (strategy == MaskingStrategy.Null)
        {
            return null;
        }

        var utf8 = System.Text.Encoding.UTF8.GetBytes(value);
        var destination = new byte[MaxMaskedLength(utf8.Length)];
        var n = MaskValue(utf8, strategy, destination);
        return System.Text.Encoding.ASCII.GetString(destination, 0, n);
    }

    /// <inheritdoc/>
    public string MaskDetected(string text, out SensitiveValueKinds found)
    {
        ArgumentNullException.ThrowIfNull(text);
        found = SensitiveValueKinds.None;
        if (_detectors == SensitiveValueKinds.None || text.Length == 0)
        {
            return text;
        }

        var utf8 = System.Buffers.ArrayPool<byte>.Shared.Rent(System.Text.Encoding.UTF8.GetMaxByteCount(text.Length));
        byte[]? destination = null;
        try
        {
            var length = System.Text.Encoding.UTF8.GetBytes(text, utf8);
            destination = System.Buffers.ArrayPool<byte>.Shared.Rent(MaxDetectedLength(length));
            var n = MaskDetected(utf8.AsSpan(0, length), destination, out found, out _);
            return n < 0 ? text : System.Text.Encoding.UTF8.GetString(destination, 0, n);
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(utf8, clearArray: true);
            if (destination is not null)
            {
                System.Buffers.ArrayPool<byte>.Shared.Return(destination, clearArray: true);
            }
        }
    }

    /// <summary>The rule whose detectors found <paramref name="kind"/> (for the record).</summary>
    /// <param name="kind">A kind, or several (the lowest enabled one decides).</param>
    /// <returns>The rule's name; empty when no rule enables any of <paramref name="kind"/>.</returns>
    public string RuleFor(SensitiveValueKinds kind)
    {
        var enabled = (int)(kind & _detectors);
        return enabled == 0 ? "" : _rules[System.Numerics.BitOperations.TrailingZeroCount(enabled)];
    }
}
