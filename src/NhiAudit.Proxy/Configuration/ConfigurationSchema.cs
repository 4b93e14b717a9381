using System.Collections;
using System.ComponentModel;
using System.Globalization;
using System.Reflection;
using Microsoft.Extensions.Configuration;
using NhiAudit.Approvals;
using NhiAudit.Approvals.Postgres;
using NhiAudit.Audit;
using NhiAudit.Identity;
using NhiAudit.Kubernetes;
using NhiAudit.Policy;
using NhiAudit.Postgres;
using NhiAudit.Proxy.Admin;
using NhiAudit.Sinks.AzureBlob;
using NhiAudit.Sinks.OpenTelemetry;
using NhiAudit.Sinks.Postgres;
using NhiAudit.Ssh;

namespace NhiAudit.Proxy.Configuration;

/// <summary>
/// The shape of the gateway's <c>NhiAudit</c> section, read from the options types themselves: walks the configuration
/// tree (file and environment variables merged) and reports every key no options type has (with the nearest name when
/// it looks misspelled), every value its property cannot take, and lists and sections given where the other was expected.
/// </summary>
internal static class ConfigurationSchema
{
    /// <summary>Keys a sealed options type does not have but the gateway reads next to it.</summary>
    private static readonly Dictionary<Type, Dictionary<string, Type>> Extras = new()
    {
        [typeof(ApprovalOptions)] = new(StringComparer.OrdinalIgnoreCase) { ["Postgres"] = typeof(PostgresApprovalOptions) },
    };

    /// <summary>Every problem of the <c>NhiAudit</c> section's keys and values, in the order they appear.</summary>
    public static List<ConfigurationProblem> Check(IConfigurationSection section)
    {
        var problems = new List<ConfigurationProblem>();
        Walk(section, typeof(GatewaySettings), problems);
        return problems;
    }

    private static void Walk(IConfigurationSection section, Type type, List<ConfigurationProblem> problems)
    {
        var members = Members(type);
        foreach (var child in section.GetChildren())
        {
            if (members.TryGetValue(child.Key, out var memberType))
            {
                CheckValue(child, memberType, problems);
                continue;
            }

            var suggestion = Nearest(child.Key, members.Keys);
            problems.Add(new ConfigurationProblem(child.Path, suggestion is null ? "unknown key" : $"unknown key (did you mean {suggestion}?)"));
        }
    }

    private static void CheckValue(IConfigurationSection section, Type type, List<ConfigurationProblem> problems)
    {
        type = Nullable.GetUnderlyingType(type) ?? type;
        var hasChildren = section.GetChildren().Any();
        if (IsScalar(type))
        {
            if (hasChildren)
            {
                problems.Add(new ConfigurationProblem(section.Path, $"expected {Describe(type)}, found a section"));
            }
            else if (!string.IsNullOrEmpty(section.Value) && !CanConvert(section.Value, type))
            {
                problems.Add(new ConfigurationProblem(section.Path, $"'{section.Value}' is not {Describe(type)}"));
            }

            return;
        }

        if (!hasChildren)
        {
            if (!string.IsNullOrEmpty(section.Value))
            {
                problems.Add(new ConfigurationProblem(section.Path, DictionaryValueType(type) is not null || ElementType(type) is not null
                    ? $"expected a list, found the value '{section.Value}'"
                    : $"expected a section of keys, found the value '{section.Value}'"));
            }

            return;
        }

        if (DictionaryValueType(type) is { } valueType)
        {
            foreach (var child in section.GetChildren())
            {
                CheckValue(child, valueType, problems);
            }

            return;
        }

        if (ElementType(type) is { } elementType)
        {
            foreach (var child in section.GetChildren())
            {
                if (!int.TryParse(child.Key, NumberStyles.None, CultureInfo.InvariantCulture, out _))
                {
                    problems.Add(new ConfigurationProblem(child.Path, "not a list index (a list's items are numbered 0, 1, ...)"));
                    continue;
                }

                CheckValue(child, elementType, problems);
            }

            return;
        }

        Walk(section, type, problems);
    }

    /// <summary>The bindable members of <paramref name="type"/> by name (case-insensitive, as the binder matches them), with their types.</summary>
    public static Dictionary<string, Type> Members(Type type)
    {
        var members = new Dictionary<string, Type>(StringComparer.OrdinalIgnoreCase);
        foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            if (property.GetIndexParameters().Length > 0 || property.GetMethod is null)
            {
                continue;
            }

            // The binder sets writable properties and fills read-only collections and objects in place.
            if (property.SetMethod?.IsPublic == true || !IsScalar(property.PropertyType))
            {
                var name = property.GetCustomAttribute<ConfigurationKeyNameAttribute>()?.Name ?? property.Name;
                members[name] = property.PropertyType;
            }
        }

        if (Extras.TryGetValue(type, out var extras))
        {
            foreach (var (name, extraType) in extras)
            {
                members[name] = extraType;
            }
        }

        return members;
    }

    private static bool IsScalar(Type type)
    {
        type = Nullable.GetUnderlyingType(type) ?? type;
        return type.IsPrimitive || type.IsEnum || type == typeof(string) || type == typeof(decimal) || type == typeof(TimeSpan)
            || type == typeof(DateTimeOffset) || type == typeof(DateTime) || type == typeof(Uri) || type == typeof(Guid)
            || (type != typeof(object) && !typeof(IEnumerable).IsAssignableFrom(type) && TypeDescriptor.GetConverter(type).CanConvertFrom(typeof(string)));
    }

    private static bool CanConvert(string value, Type type)
    {
        if (type == typeof(string))
        {
            return true;
        }

        if (type.IsEnum)
        {
            return Enum.TryParse(type, value, ignoreCase: true, out _);
        }

        try
        {
            // What the configuration binder itself uses.
            return TypeDescriptor.GetConverter(type).ConvertFromInvariantString(value) is not null;
        }
        catch (Exception ex) when (ex is FormatException or ArgumentException or NotSupportedException or OverflowException or UriFormatException)
        {
            return false;
        }
    }

    private static string Describe(Type type) => type switch
    {
        _ when type.IsEnum => "one of " + string.Join(", ", Enum.GetNames(type)),
        _ when type == typeof(bool) => "true or false",
        _ when type == typeof(int) || type == typeof(long) || type == typeof(short) => "a whole number",
        _ when type == typeof(double) || type == typeof(float) || type == typeof(decimal) => "a number",
        _ when type == typeof(TimeSpan) => "a duration (hh:mm:ss, or d.hh:mm:ss)",
        _ when type == typeof(Uri) => "a URI",
        _ => "a " + type.Name,
    };

    private static Type? DictionaryValueType(Type type)
    {
        foreach (var candidate in type.IsInterface ? [type, .. type.GetInterfaces()] : type.GetInterfaces())
        {
            if (candidate.IsGenericType && (candidate.GetGenericTypeDefinition() == typeof(IDictionary<,>) || candidate.GetGenericTypeDefinition() == typeof(IReadOnlyDictionary<,>)))
            {
                return candidate.GetGenericArguments()[1];
            }
        }

        return null;
    }

    private static Type? ElementType(Type type)
    {
        if (type.IsArray)
        {
            return type.GetElementType();
        }

        foreach (var candidate in type.IsInterface ? [type, .. type.GetInterfaces()] : type.GetInterfaces())
        {
            if (candidate.IsGenericType && candidate.GetGenericTypeDefinition() == typeof(IEnumerable<>))
            {
                return candidate.GetGenericArguments()[0];
            }
        }

        return null;
    }

    /// <summary>The known name closest to a misspelled <paramref name="key"/>, when it is close enough to be a typo.</summary>
    public static string? Nearest(string key, IEnumerable<string> known)
    {
        string? best = null;
        var bestDistance = int.MaxValue;
        foreach (var name in known)
        {
            var distance = Distance(key.ToUpperInvariant(), name.ToUpperInvariant());
            if (distance < bestDistance)
            {
                (best, bestDistance) = (name, distance);
            }
        }

        if (best is not null && bestDistance <= Math.Max(2, key.Length / 3))
        {
            return best;
        }

        // A name cut short or run long (PrivateKey for PrivateKeyFile).
        return key.Length < 4 ? null : known.FirstOrDefault(name => name.StartsWith(key, StringComparison.OrdinalIgnoreCase) || key.StartsWith(name, StringComparison.OrdinalIgnoreCase));
    }

    private static int Distance(string a, string b)
    {
        // Optimal string alignment: insertions, deletions, substitutions and swaps of neighbours each cost one.
        var d = new int[a.Length + 1, b.Length + 1];
        for (var i = 0; i <= a.Length; i++)
        {
            d[i, 0] = i;
        }

        for (var j = 0; j <= b.Length; j++)
        {
            d[0, j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                {
                    d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
                }
            }
        }

        return d[a.Length, b.Length];
    }
}

/// <summary>The keys the reference gateway reads under <c>NhiAudit</c>; used to check a configuration, never bound as a whole.</summary>
internal sealed class GatewaySettings
{
    public DevelopmentIssuerSettings? DevelopmentIssuer { get; set; }

    public IdentityOptions? Identity { get; set; }

    public AuditOptions? Audit { get; set; }

    public PolicyOptions? Policy { get; set; }

    public ApprovalOptions? Approvals { get; set; }

    public SinkSettings? Sinks { get; set; }

    public PostgresOptions? Postgres { get; set; }

    public KubernetesOptions? Kubernetes { get; set; }

    public SshOptions? Ssh { get; set; }

    public AdminOptions? Admin { get; set; }
}

/// <summary><c>NhiAudit:DevelopmentIssuer</c>: a local token issuer whose key the gateway creates on first run.</summary>
internal sealed class DevelopmentIssuerSettings
{
    public string? Directory { get; set; }

    public string? Issuer { get; set; }
}

/// <summary><c>NhiAudit:Sinks</c>: the secondary audit sinks.</summary>
internal sealed class SinkSettings
{
    public PostgresSinkOptions? Postgres { get; set; }

    public AzureBlobSinkOptions? AzureBlob { get; set; }

    public OpenTelemetrySinkOptions? OpenTelemetry { get; set; }
}

/// <summary>One problem of a configuration: the key path it concerns and what is wrong there.</summary>
/// <param name="Path">The full key path, e.g. <c>NhiAudit:Audit:Durability</c>; empty when it concerns the file as a whole.</param>
/// <param name="Message">What is wrong.</param>
internal sealed record ConfigurationProblem(string Path, string Message)
{
    /// <summary>The line printed for it: <c>config: PATH: MESSAGE</c>.</summary>
    public override string ToString() => string.IsNullOrEmpty(Path) ? $"config: {Message}" : $"config: {Path}: {Message}";
}
