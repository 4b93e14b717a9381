using System.Collections;
using System.Globalization;
using Cel;

namespace NhiAudit.Policy;

/// <summary>The bridge to the <c>Cel</c> package: compiling conditions and shaping a request into CEL variables.</summary>
internal static class PolicyCel
{
    /// <summary>Compiles <paramref name="expression"/>; throws <see cref="CelException"/> for a syntax error.</summary>
    public static CelProgramDelegate Compile(string expression) =>
        // The environment holds the function table; a fresh one per compilation keeps compilations independent.
        new CelEnvironment(null!, "").Compile(expression);

    /// <summary>
    /// Returns null when <paramref name="expression"/> compiles and refers only to known variables and functions
    /// (checked by evaluating it once over a sample request), otherwise the problem.
    /// </summary>
    public static string? Check(string expression)
    {
        CelProgramDelegate program;
        try
        {
            program = Compile(expression);
        }
        catch (Exception ex)
        {
            return ex.Message;
        }

        try
        {
            program(Variables(SampleRequest));
        }
        catch (CelUndeclaredReferenceException ex)
        {
            return $"{ex.Message} (the variables are 'request' and 'identity')";
        }
        catch (CelUnboundFunctionException ex)
        {
            return ex.Message;
        }
        catch (Exception)
        {
            // Anything else depends on the request (a missing attribute, a type mismatch) and is decided per request.
        }

        return null;
    }

    /// <summary>The CEL variables <c>request</c> and <c>identity</c> for <paramref name="request"/>.</summary>
    public static Dictionary<string, object?> Variables(AccessRequest request)
    {
        var requestMap = new Dictionary<string, object?>(8 + request.Attributes.Count, StringComparer.Ordinal)
        {
            ["hasWhere"] = false,
            ["via"] = "",
        };
        foreach (var (key, value) in request.Attributes)
        {
            requestMap[key] = ToCel(value);
        }

        requestMap["protocol"] = request.Protocol;
        requestMap["target"] = request.Target;
        requestMap["action"] = request.Action;
        requestMap["resources"] = ToList(request.Resources);
        requestMap["text"] = request.Text;
        requestMap["effects"] = Effects(request.Effects);

        var identity = request.Identity;
        var identityMap = new Dictionary<string, object?>(12, StringComparer.Ordinal)
        {
            ["kind"] = identity.Kind.ToString(),
            ["subject"] = identity.Subject,
            ["issuer"] = identity.Issuer,
            ["name"] = identity.DisplayName,
            ["tenant"] = identity.TenantId,
            ["app"] = identity.ApplicationId,
            ["mirid"] = identity.ManagedIdentityResourceId,
            ["repository"] = identity.Repository,
            ["workflow"] = identity.Workflow,
            ["runId"] = identity.RunId,
            ["sha"] = identity.Sha,
            ["roles"] = ToList(identity.Roles),
        };

        return new Dictionary<string, object?>(2, StringComparer.Ordinal)
        {
            ["request"] = requestMap,
            ["identity"] = identityMap,
        };
    }

    private static readonly object[] NoEffects = [];

    /// <summary><c>request.effects</c>: one map per effect with action, via, objectKind, resources (also as tables), hasWhere, text and its extras.</summary>
    private static object[] Effects(IReadOnlyList<AccessEffect> effects)
    {
        if (effects.Count == 0)
        {
            return NoEffects;
        }

        var list = new object[effects.Count];
        for (var i = 0; i < list.Length; i++)
        {
            var effect = effects[i];
            var resources = ToList(effect.Resources);
            var map = new Dictionary<string, object?>(8 + effect.Attributes.Count, StringComparer.Ordinal);
            foreach (var (key, value) in effect.Attributes)
            {
                map[key] = ToCel(value);
            }

            map["action"] = effect.Action;
            map["via"] = effect.Via;
            map["objectKind"] = effect.ObjectKind ?? "";
            map["resources"] = resources;
            map["tables"] = resources;
            map["hasWhere"] = effect.HasWhere ?? false;
            map["text"] = effect.Text ?? "";
            list[i] = map;
        }

        return list;
    }

    private static object[] ToList(IReadOnlyList<string> values)
    {
        var list = new object[values.Count];
        for (var i = 0; i < list.Length; i++)
        {
            list[i] = values[i];
        }

        return list;
    }

    private static object? ToCel(object? value) => value switch
    {
        // CEL integers are 64-bit and its doubles are double; narrower CLR numbers would not compare.
        null or string or bool or long or double or ulong => value,
        int i => (long)i,
        short s => (long)s,
        byte b => (long)b,
        uint u => (ulong)u,
        float f => (double)f,
        decimal d => (double)d,
        Enum e => e.ToString(),
        IEnumerable<string> strings => strings.Cast<object>().ToArray(),
        IDictionary => value,
        IEnumerable items => items.Cast<object?>().Select(ToCel).ToArray(),
        IFormattable formattable => formattable.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString(),
    };

    private static readonly AccessRequest SampleRequest = new()
    {
        Protocol = "postgres",
        Target = "sample",
        Action = "SELECT",
        Resources = ["sample"],
        Text = "SELECT 1",
        Identity = new WorkloadIdentity
        {
            Kind = WorkloadKind.FederatedWorkload,
            Subject = "sample",
            Issuer = "https://issuer.sample",
            Repository = "sample/sample",
            Roles = ["sample"],
        },
    };
}
