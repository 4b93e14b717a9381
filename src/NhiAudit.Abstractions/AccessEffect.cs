namespace NhiAudit;

/// <summary>
/// One thing a request may execute besides what its own verb says: a statement inside a DO block, a function,
/// procedure, trigger or rule it runs, a MERGE arm, a data-modifying CTE, a command inside <c>sh -c</c>. The policy
/// decides the request and each of its effects with the same rules, and the strictest decision wins, so a rule written
/// for <c>request.action == 'DROP'</c> also catches a DROP inside code.
/// </summary>
public sealed record AccessEffect
{
    /// <summary>
    /// What the effect does, in the same vocabulary as <see cref="AccessRequest.Action"/> (<c>DROP</c>, <c>DELETE</c>,
    /// <c>exec</c>). <see cref="AccessRequest.UnclassifiedAction"/> when it cannot be read statically (dynamic SQL, a
    /// function in another language, a computed shell command): such an effect gets
    /// <see cref="AccessRequest.UnclassifiedAction"/>'s treatment unless a rule naming <c>UNKNOWN</c> allows it.
    /// </summary>
    public required string Action { get; init; }

    /// <summary>How the request reaches this effect, e.g. <c>DO block</c>, <c>function public.purge()</c>, <c>trigger audit_t on public.orders</c>, <c>sh -c</c>.</summary>
    public required string Via { get; init; }

    /// <summary>The object kind for DDL (<c>TABLE</c>, <c>FUNCTION</c>), when known.</summary>
    public string? ObjectKind { get; init; }

    /// <summary>What the effect touches: tables, paths.</summary>
    public IReadOnlyList<string> Resources { get; init; } = [];

    /// <summary>For an UPDATE or DELETE: whether rows are restricted (a WHERE, or a MERGE arm's condition); null otherwise.</summary>
    public bool? HasWhere { get; init; }

    /// <summary>The effect's own text (the statement in the body, the command), when it has one.</summary>
    public string? Text { get; init; }

    /// <summary>Protocol extras the policy may test on this effect (e.g. an SSH command's <c>name</c>, <c>args</c>, <c>flags</c>).</summary>
    public IReadOnlyDictionary<string, object?> Attributes { get; init; } = EmptyAttributes;

    private static readonly Dictionary<string, object?> EmptyAttributes = [];
}
