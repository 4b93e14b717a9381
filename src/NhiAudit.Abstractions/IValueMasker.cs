namespace NhiAudit;

/// <summary>How a sensitive value is replaced before it reaches a client.</summary>
public enum MaskingStrategy
{
    /// <summary>Replaced whole by <c>****</c>.</summary>
    Redact,

    /// <summary>Only the last four letters or digits kept; every other letter or digit becomes <c>*</c>, separators stay (<c>***-**-6789</c>).</summary>
    Partial,

    /// <summary>Replaced by a keyed HMAC-SHA256 pseudonym, <c>hmac:</c> and 16 hex digits: equal values stay equal, so joins and counts still work.</summary>
    Hash,

    /// <summary>Replaced by NULL (in free text, where NULL cannot stand, the value is redacted).</summary>
    Null,
}

/// <summary>The kinds of sensitive value the value detectors find in free text.</summary>
[Flags]
public enum SensitiveValueKinds
{
    /// <summary>Nothing.</summary>
    None = 0,

    /// <summary>An e-mail address.</summary>
    Email = 1 << 0,

    /// <summary>A payment card number of 13 to 19 digits (spaces or dashes between groups allowed) that passes the Luhn check.</summary>
    CreditCard = 1 << 1,

    /// <summary>An IBAN whose ISO 7064 mod-97 check holds.</summary>
    Iban = 1 << 2,

    /// <summary>A US social security number written <c>AAA-GG-SSSS</c>, within the valid number ranges.</summary>
    UsSsn = 1 << 3,

    /// <summary>A JSON Web Token (<c>eyJ…</c> header, payload and signature).</summary>
    Jwt = 1 << 4,

    /// <summary>The credential after <c>Bearer </c> (an HTTP Authorization value).</summary>
    BearerToken = 1 << 5,

    /// <summary>An Azure storage account key (88 base64 characters ending in <c>==</c>).</summary>
    AzureStorageKey = 1 << 6,

    /// <summary>The secret parts of an Azure connection string or SAS (<c>AccountKey=</c>, <c>SharedAccessKey=</c>, <c>sig=</c> …).</summary>
    AzureConnectionString = 1 << 7,

    /// <summary>A PEM private key block, from its BEGIN line to its END line.</summary>
    PemPrivateKey = 1 << 8,

    /// <summary>Every kind.</summary>
    All = Email | CreditCard | Iban | UsSsn | Jwt | BearerToken | AzureStorageKey | AzureConnectionString | PemPrivateKey,
}

/// <summary>
/// Masks values for every protocol: whole values by a strategy (a protected column, a Secret's data), and the sensitive
/// values the configured detectors find inside free text (a note, an error message, a log line).
/// </summary>
public interface IValueMasker
{
    /// <summary>True when at least one value detector is configured.</summary>
    bool HasDetectors { get; }

    /// <summary>Masks a whole value; null for <see cref="MaskingStrategy.Null"/>.</summary>
    /// <param name="value">The value in clear.</param>
    /// <param name="strategy">How to mask it.</param>
    /// <returns>The masked value.</returns>
    string? Mask(string value, MaskingStrategy strategy);

    /// <summary>Masks every sensitive value the configured detectors find in <paramref name="text"/>.</summary>
    /// <param name="text">Free text.</param>
    /// <param name="found">The kinds found; <see cref="SensitiveValueKinds.None"/> when nothing was.</param>
    /// <returns>The masked text; the same instance when nothing was found.</returns>
    string MaskDetected(string text, out SensitiveValueKinds found);
}
