namespace Microsoft.Extensions.DependencyInjection;

/// <summary>
/// Marks a service collection that already holds the engine's services, and remembers which configuration sections
/// were bound, so that calling <c>AddNhiAuditing</c> twice neither registers twice nor binds the same issuers twice
/// (configuration binding appends to lists).
/// </summary>
internal sealed class NhiAuditRegistration
{
    private readonly HashSet<string> _boundSections = new(StringComparer.Ordinal);

    /// <summary>Records a section's fingerprint; false when an identical section was bound before.</summary>
    public bool TryMarkBound(string fingerprint)
    {
        lock (_boundSections)
        {
            return _boundSections.Add(fingerprint);
        }
    }
}
