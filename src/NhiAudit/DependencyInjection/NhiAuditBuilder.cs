namespace Microsoft.Extensions.DependencyInjection;

/// <summary>The default <see cref="INhiAuditBuilder"/>.</summary>
internal sealed class NhiAuditBuilder : INhiAuditBuilder
{
    /// <summary>Wraps <paramref name="services"/>.</summary>
    public NhiAuditBuilder(IServiceCollection services)
    {
        Services = services;
    }

    /// <inheritdoc />
    public IServiceCollection Services { get; }
}
