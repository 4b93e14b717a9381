using Azure.Storage.Blobs;
using Microsoft.Extensions.Options;

namespace NhiAudit.Sinks.AzureBlob;

/// <summary>
/// Refuses, at startup, options the sink could not work with, naming the field: both or neither of
/// <see cref="AzureBlobSinkOptions.ConnectionString"/> and <see cref="AzureBlobSinkOptions.ServiceUri"/>, a connection
/// string the SDK cannot parse, a relative or non-HTTPS URI (the SDK sends a bearer token only over TLS), and a container name the service would reject.
/// </summary>
internal sealed class AzureBlobSinkOptionsValidator(string sectionPath) : IValidateOptions<AzureBlobSinkOptions>
{
    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, AzureBlobSinkOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = Collect(options, sectionPath);
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    /// <summary>Throws <see cref="OptionsValidationException"/> listing every problem; used when options come without DI.</summary>
    public static void ThrowIfInvalid(AzureBlobSinkOptions options, string sectionPath = AzureBlobSinkOptions.SectionName)
    {
        var failures = Collect(options, sectionPath);
        if (failures.Count > 0)
        {
            throw new OptionsValidationException(Options.DefaultName, typeof(AzureBlobSinkOptions), failures);
        }
    }

    /// <summary>Every problem of <paramref name="options"/>, each starting with the field's configuration path.</summary>
    public static List<string> Collect(AzureBlobSinkOptions options, string sectionPath)
    {
        ArgumentNullException.ThrowIfNull(options);
        var where = string.IsNullOrEmpty(sectionPath) ? "" : sectionPath + ":";
        var failures = new List<string>();
        var hasConnectionString = !string.IsNullOrWhiteSpace(options.ConnectionString);
        var hasServiceUri = options.ServiceUri is not null;
        if (hasConnectionString && hasServiceUri)
        {
            failures.Add($"{where}ConnectionString and {where}ServiceUri are both set; set exactly one (a connection string, or the service URI used with the host's Azure credential).");
        }
        else if (!hasConnectionString && !hasServiceUri)
        {
            failures.Add($"{where}ConnectionString or {where}ServiceUri must be set (a connection string, or the service URI used with the host's Azure credential).");
        }

        if (hasConnectionString)
        {
            try
            {
                _ = new BlobServiceClient(options.ConnectionString);
            }
            catch (Exception ex) when (ex is FormatException or ArgumentException or InvalidOperationException)
            {
                failures.Add($"{where}ConnectionString is not a storage connection string: {ex.Message}");
            }
        }

        if (options.ServiceUri is { } uri && (!uri.IsAbsoluteUri || uri.Scheme != Uri.UriSchemeHttps))
        {
            failures.Add($"{where}ServiceUri '{uri}' must be an absolute https:// URI of the blob service (https://ACCOUNT.blob.core.windows.net).");
        }

        if (DescribeInvalidContainerName(options.ContainerName) is { } problem)
        {
            failures.Add($"{where}ContainerName '{options.ContainerName}' {problem}.");
        }

        return failures;
    }

    /// <summary>Why the service would reject <paramref name="name"/> as a container name, or <see langword="null"/> when it would not.</summary>
    internal static string? DescribeInvalidContainerName(string? name)
    {
        if (string.IsNullOrEmpty(name))
        {
            return "must not be empty";
        }

        if (name.Length is < 3 or > 63)
        {
            return "must be 3 to 63 characters long";
        }

        foreach (var c in name)
        {
            if (c is not ((>= 'a' and <= 'z') or (>= '0' and <= '9') or '-'))
            {
                return "may contain only lowercase letters, digits and hyphens";
            }
        }

        if (name[0] == '-' || name[^1] == '-')
        {
            return "must start and end with a letter or digit";
        }

        return name.Contains("--", StringComparison.Ordinal) ? "must not contain two hyphens in a row" : null;
    }
}
