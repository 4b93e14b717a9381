namespace NhiAudit.Masking;

/// <summary>
/// One masking rule, bound from <c>NhiAudit:Policy:Masking</c>. A rule protects whole columns, finds sensitive values
/// anywhere in results with its detectors, or both; its strategy says how either is replaced.
/// </summary>
public sealed class MaskingRuleOptions
{
    /// <summary>The rule's name, written in the response records of what it masked.</summary>
    public string Name { get; set; } = "";

    /// <summary>
    /// Protected columns as <c>schema.table.column</c>; <c>*</c> stands for any name in a part (<c>*.*.ssn</c>,
    /// <c>public.customers.*</c>). Names compare case-insensitively.
    /// </summary>
    public List<string> Columns { get; set; } = [];

    /// <summary>
    /// Value detectors: <c>email</c>, <c>credit-card</c>, <c>iban</c>, <c>us-ssn</c>, <c>jwt</c>, <c>bearer-token</c>,
    /// <c>azure-storage-key</c>, <c>azure-connection-string</c>, <c>pem-private-key</c>, or <c>all</c>.
    /// </summary>
    public List<string> Detectors { get; set; } = [];

    /// <summary>How matched values are replaced. Default <see cref="MaskingStrategy.Redact"/>.</summary>
    public MaskingStrategy Strategy { get; set; } = MaskingStrategy.Redact;
}
