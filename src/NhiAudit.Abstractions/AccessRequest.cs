namespace NhiAudit;

/// <summary>
/// One request unit as every protocol describes it to the policy engine: a PostgreSQL statement, a Kubernetes HTTP
/// request, an SSH exec or SFTP operation. One shape for all, so one policy serves all.
/// </summary>
public sealed record AccessRequest
{
    /// <summary>The protocol: <c>postgres</c>, <c>kubernetes</c> or <c>ssh</c>.</summary>
    public required string Protocol { get; init; }

    /// <summary>The configured target's name.</summary>
    public required string Target { get; init; }

    /// <summary>
    /// What is asked, upper-case for SQL (<c>SELECT</c>, <c>DELETE</c>, <c>DROP</c>, <c>COPY</c>), lower-case verbs for
    /// the others (<c>get</c>, <c>exec</c>, <c>sftp.write</c>). <see cref="UnclassifiedAction"/> when the protocol
    /// could not tell.
    /// </summary>
    public required string Action { get; init; }

    /// <summary>What the request touches: tables; namespace/resource/name; paths.</summary>
    public IReadOnlyList<string> Resources { get; init; } = [];

    /// <summary>The request's text: SQL, request path, command line.</summary>
    public string Text { get; init; } = "";

    /// <summary>Protocol extras the policy may test, e.g. <c>hasWhere</c> (bool) for an UPDATE or DELETE.</summary>
    public IReadOnlyDictionary<string, object?> Attributes { get; init; } = new Dictionary<string, object?>();

    /// <summary>
    /// What the request may execute besides its own verb (statements inside code, triggers it fires, commands inside a
    /// shell). Empty when the request is exactly what its action says. The policy decides each, and the strictest wins.
    /// </summary>
    public IReadOnlyList<AccessEffect> Effects { get; init; } = [];

    /// <summary>Who asks.</summary>
    public required WorkloadIdentity Identity { get; init; }

    /// <summary>The action of a request the protocol could not classify.</summary>
    public const string UnclassifiedAction = "UNKNOWN";

    /// <summary>
    /// The action of an effect that would carry protected (masked) data out of masking's reach: into another table, a
    /// file, a setting, a notification, the planner's statistics. Like <see cref="UnclassifiedAction"/>, only a rule that
    /// names it may allow it; otherwise it is denied.
    /// </summary>
    public const string ProtectedCopyAction = "PROTECTED_COPY";
}
