namespace Microsoft.Extensions.DependencyInjection;

/// <summary>
/// Returned by <c>AddNhiAuditing</c>; protocol packages hang their registration off it as extension methods
/// (for example <c>.AddPostgres(...)</c>), so they can only be added once the engine is.
/// </summary>
public interface INhiAuditBuilder
{
    /// <summary>The service collection the engine was added to.</summary>
    IServiceCollection Services { get; }
}
