using System.Collections.Concurrent;
using System.Reflection;
using Microsoft.Extensions.DependencyInjection;

namespace NhiAudit.Tests.DependencyInjection;

/// <summary>
/// A minimal container over an <see cref="IServiceCollection"/>, because the test project references only
/// Microsoft.Extensions.DependencyInjection.Abstractions (no ServiceProvider implementation). Everything is a singleton
/// per closed service type, which is all these registrations need: instances, factories, types (greediest
/// satisfiable constructor), open generics and IEnumerable&lt;T&gt;. Keyed services are ignored.
/// </summary>
internal sealed class MiniServiceProvider : IServiceProvider, IAsyncDisposable
{
    private readonly List<ServiceDescriptor> _descriptors;
    private readonly ConcurrentDictionary<(ServiceDescriptor, Type), object> _instances = new();
    private readonly List<object> _created = [];

    public MiniServiceProvider(IServiceCollection services)
    {
        _descriptors = services.Where(d => !d.IsKeyedService).ToList();
    }

    public object? GetService(Type serviceType)
    {
        if (serviceType == typeof(IServiceProvider))
        {
            return this;
        }

        if (serviceType.IsGenericType && serviceType.GetGenericTypeDefinition() == typeof(IEnumerable<>))
        {
            var element = serviceType.GetGenericArguments()[0];
            var all = Matching(element).Select(d => Resolve(d, element)).ToList();
            var array = Array.CreateInstance(element, all.Count);
            for (var i = 0; i < all.Count; i++)
            {
                array.SetValue(all[i], i);
            }

            return array;
        }

        var descriptor = Matching(serviceType).LastOrDefault();
        return descriptor is null ? null : Resolve(descriptor, serviceType);
    }

    private IEnumerable<ServiceDescriptor> Matching(Type serviceType) => _descriptors.Where(d =>
        d.ServiceType == serviceType
        || (serviceType.IsGenericType && d.ServiceType.IsGenericTypeDefinition && serviceType.GetGenericTypeDefinition() == d.ServiceType));

    private object Resolve(ServiceDescriptor descriptor, Type serviceType) =>
        _instances.GetOrAdd((descriptor, serviceType), key => Create(key.Item1, key.Item2));

    private object Create(ServiceDescriptor descriptor, Type serviceType)
    {
        object instance;
        if (descriptor.ImplementationInstance is { } existing)
        {
            return existing;
        }
        else if (descriptor.ImplementationFactory is { } factory)
        {
            instance = factory(this);
        }
        else
        {
            var type = descriptor.ImplementationType!;
            if (type.IsGenericTypeDefinition)
            {
                type = type.MakeGenericType(serviceType.GetGenericArguments());
            }

            instance = Construct(type);
        }

        lock (_created)
        {
            _created.Add(instance);
        }

        return instance;
    }

    private object Construct(Type type)
    {
        foreach (var constructor in type.GetConstructors().OrderByDescending(c => c.GetParameters().Length))
        {
            var parameters = constructor.GetParameters();
            var arguments = new object?[parameters.Length];
            var satisfied = true;
            for (var i = 0; i < parameters.Length && satisfied; i++)
            {
                arguments[i] = GetService(parameters[i].ParameterType);
                if (arguments[i] is null)
                {
                    if (parameters[i].HasDefaultValue)
                    {
                        arguments[i] = parameters[i].DefaultValue;
                    }
                    else
                    {
                        satisfied = false;
                    }
                }
            }

            if (satisfied)
            {
                return constructor.Invoke(BindingFlags.DoNotWrapExceptions, binder: null, arguments, culture: null);
            }
        }

        throw new InvalidOperationException($"No constructor of {type} can be satisfied.");
    }

    public async ValueTask DisposeAsync()
    {
        List<object> created;
        lock (_created)
        {
            created = [.. _created];
        }

        created.Reverse();
        foreach (var instance in created)
        {
            switch (instance)
            {
                case IAsyncDisposable asyncDisposable:
                    await asyncDisposable.DisposeAsync();
                    break;
                case IDisposable disposable:
                    disposable.Dispose();
                    break;
            }
        }
    }
}
