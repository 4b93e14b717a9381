using Microsoft.Extensions.Options;

namespace NhiAudit.Policy;

/// <summary>
/// Refuses, at startup, a policy that cannot be enforced as written: unnamed or duplicate rules, conditions that do
/// not compile or refer to unknown variables, and effects that do not exist. A configured policy file must exist and be
/// valid too. <see cref="PolicyEffect.RequireApproval"/> is accepted: the approval broker holds such requests.
/// </summary>
internal sealed class PolicyOptionsValidator : IValidateOptions<PolicyOptions>
{
    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, PolicyOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = Collect(options);
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    /// <summary>Throws <see cref="OptionsValidationException"/> listing every problem; used when options come without DI.</summary>
    public static void ThrowIfInvalid(PolicyOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = Collect(options);
        if (failures.Count > 0)
        {
            throw new OptionsValidationException(Options.DefaultName, typeof(PolicyOptions), failures);
        }
    }

    /// <summary>Every problem of <paramref name="options"/>, including its policy file's.</summary>
    public static List<string> Collect(PolicyOptions options)
    {
        var failures = CollectRules(options, "NhiAudit:Policy");
        if (!string.IsNullOrWhiteSpace(options.File))
        {
            try
            {
                var fromFile = PolicyFile.Apply(options, options.File, System.IO.File.ReadAllText(options.File));
                failures.AddRange(CollectRules(fromFile, $"NhiAudit:Policy:File '{options.File}'"));
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidDataException or ArgumentException or NotSupportedException)
            {
                failures.Add($"NhiAudit:Policy:File '{options.File}' cannot be read: {ex.Message}");
            }
        }

        return failures;
    }

    /// <summary>The problems of the rules and effects themselves (not the file), each prefixed by <paramref name="where"/>.</summary>
    public static List<string> CollectRules(PolicyOptions options, string where)
    {
        var failures = new List<string>();
        CheckEffect(options.DefaultEffect, $"{where}:DefaultEffect", failures);
        CheckEffect(options.UnclassifiedEffect, $"{where}:UnclassifiedEffect", failures);

        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < (options.Rules?.Count ?? 0); i++)
        {
            var rule = options.Rules![i];
            if (rule is null)
            {
                failures.Add($"{where}:Rules:{i} is empty.");
                continue;
            }

            var label = string.IsNullOrWhiteSpace(rule.Name) ? $"Rules:{i}" : $"rule '{rule.Name}'";
            if (string.IsNullOrWhiteSpace(rule.Name))
            {
                failures.Add($"{where}:Rules:{i}: Name must not be empty.");
            }
            else if (!names.Add(rule.Name))
            {
                failures.Add($"{where}: rule name '{rule.Name}' is used twice.");
            }

            CheckEffect(rule.Effect, $"{where} {label}: Effect", failures);
            if (string.IsNullOrWhiteSpace(rule.When))
            {
                failures.Add($"{where} {label}: When (a CEL condition) must not be empty; use 'true' to match every request.");
            }
            else if (PolicyCel.Check(rule.When) is { } problem)
            {
                failures.Add($"{where} {label}: When does not compile: {problem}");
            }

            if (rule.Protocols?.Exists(string.IsNullOrWhiteSpace) == true)
            {
                failures.Add($"{where} {label}: Protocols must not hold empty entries.");
            }

            if (rule.Actions?.Exists(string.IsNullOrWhiteSpace) == true)
            {
                failures.Add($"{where} {label}: Actions must not hold empty entries.");
            }
        }

        return failures;
    }

    private static void CheckEffect(PolicyEffect effect, string where, List<string> failures)
    {
        if (!Enum.IsDefined(effect))
        {
            failures.Add($"{where}: '{effect}' is not an effect (Allow, Deny or RequireApproval).");
        }
    }
}
