namespace NhiAudit.Kubernetes.Masking;

/// <summary>What the Kubernetes gateway masks in responses and in the audit copy of request bodies (<c>NhiAudit:Kubernetes:Masking</c>).</summary>
public sealed class KubernetesMaskingOptions
{
    /// <summary>Mask every value of a Secret's <c>data</c> and <c>stringData</c> (and of its last-applied annotation). On by default.</summary>
    public bool Secrets { get; set; } = true;

    /// <summary>
    /// ConfigMap keys whose values are masked, as <c>namespace/name/key</c>; <c>*</c> in a part matches any run of characters
    /// within that part (<c>*/*/password</c>, <c>prod/app-*/*</c>).
    /// </summary>
    public List<string> ConfigMapKeys { get; set; } = [];

    /// <summary>
    /// Run the configured value detectors (<see cref="IValueMasker.MaskDetected"/>) over every other JSON string value of a
    /// response and over text bodies (pod logs), when detectors are configured. On by default.
    /// </summary>
    public bool DetectorsInResponses { get; set; } = true;
}
