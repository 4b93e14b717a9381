namespace NhiAudit.Kubernetes.Masking;

/// <summary>What one masking pass replaced.</summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1051:Do not declare visible instance fields", Justification = "A plain result record filled while masking.")]
[System.Diagnostics.CodeAnalysis.SuppressMessage("Performance", "CA1815:Override equals and operator equals on value types", Justification = "Never compared.")]
public struct KubernetesMaskReport
{
    /// <summary>How many values were replaced.</summary>
    public int MaskedValues;

    /// <summary>
    /// Where, at most <see cref="MaxFields"/> entries: <c>default/secrets/db data.password</c>,
    /// <c>default/secrets/db last-applied-configuration</c>, <c>$.items[0].spec.containers[0].env[0].value</c>; null when nothing was.
    /// </summary>
    public List<string>? Fields;

    /// <summary>The kinds of sensitive value the detectors found.</summary>
    public SensitiveValueKinds Detected;

    /// <summary>The most entries <see cref="Fields"/> holds.</summary>
    public const int MaxFields = 64;

    /// <summary>True when anything was masked.</summary>
    public readonly bool Any => MaskedValues > 0;

    internal void Add(string field)
    {
        MaskedValues++;
        Fields ??= [];
        if (Fields.Count < MaxFields)
        {
            Fields.Add(field);
        }
    }
}
