namespace NhiAudit.Sinks.Postgres;

/// <summary>The outcome of <see cref="PostgresAuditSinkReader.VerifyChainAsync"/>: whether a replica's chain holds together in the table.</summary>
public sealed record PostgresChainVerification
{
    /// <summary>The replica checked.</summary>
    public required string Replica { get; init; }

    /// <summary>How many rows were checked before the first problem (all of them when there is none).</summary>
    public required long RecordsChecked { get; init; }

    /// <summary>The <c>seq</c> of the last row that checked out; 0 when none did.</summary>
    public required long LastSequence { get; init; }

    /// <summary>The <c>seq</c> where the chain breaks, or <see langword="null"/> when it holds.</summary>
    public long? FirstBadSequence { get; init; }

    /// <summary>What is wrong at <see cref="FirstBadSequence"/>, or <see langword="null"/> when nothing is.</summary>
    public string? Problem { get; init; }

    /// <summary>Whether every row checked out.</summary>
    public bool IsValid => Problem is null;
}
