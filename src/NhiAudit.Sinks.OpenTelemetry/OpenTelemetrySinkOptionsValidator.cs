using Microsoft.Extensions.Options;
using OpenTelemetry.Exporter;

namespace NhiAudit.Sinks.OpenTelemetry;

/// <summary>Rejects OTLP sink settings that could only fail later, naming the setting at fault.</summary>
internal sealed class OpenTelemetrySinkOptionsValidator : IValidateOptions<OpenTelemetrySinkOptions>
{
    /// <summary>The configuration path named in messages, so an operator finds the setting.</summary>
    private const string SectionPath = OpenTelemetrySinkOptions.SectionName;

    public ValidateOptionsResult Validate(string? name, OpenTelemetrySinkOptions options)
    {
        var problems = FindProblems(options);
        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }

    /// <summary>Every problem with <paramref name="options"/>, one message each; empty when they are usable.</summary>
    public static List<string> FindProblems(OpenTelemetrySinkOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var problems = new List<string>();
        if (options.Endpoint is null)
        {
            problems.Add($"{SectionPath}:Endpoint is required (the collector's OTLP endpoint, e.g. http://collector:4318/v1/logs).");
        }
        else if (!options.Endpoint.IsAbsoluteUri || (options.Endpoint.Scheme != Uri.UriSchemeHttp && options.Endpoint.Scheme != Uri.UriSchemeHttps))
        {
            problems.Add($"{SectionPath}:Endpoint must be an absolute http or https URI (got '{options.Endpoint.OriginalString}').");
        }

        if (!Enum.IsDefined(options.Protocol))
        {
            problems.Add($"{SectionPath}:Protocol must be HttpProtobuf or Grpc (got '{options.Protocol}').");
        }

        if (string.IsNullOrWhiteSpace(options.ServiceName))
        {
            problems.Add($"{SectionPath}:ServiceName must not be empty.");
        }

        if (options.Timeout <= TimeSpan.Zero || options.Timeout.TotalMilliseconds > int.MaxValue)
        {
            problems.Add($"{SectionPath}:Timeout must be positive and below {int.MaxValue} ms (got {options.Timeout}).");
        }

        if (options.CursorFile is { } cursor && string.IsNullOrWhiteSpace(cursor))
        {
            problems.Add($"{SectionPath}:CursorFile must not be blank; leave it unset for the default under the audit directory.");
        }

        if (options.Headers is { Length: > 0 } headers && !HeadersAreWellFormed(headers))
        {
            // The value is not echoed: headers usually carry an API key.
            problems.Add($"{SectionPath}:Headers must be comma-separated key=value pairs (OTLP header format).");
        }

        return problems;
    }

    /// <summary>Throws <see cref="ArgumentException"/> listing every problem, for callers that build the sink without DI.</summary>
    public static void ThrowIfInvalid(OpenTelemetrySinkOptions options)
    {
        var problems = FindProblems(options);
        if (problems.Count > 0)
        {
            throw new ArgumentException("invalid OpenTelemetry sink options: " + string.Join(" ", problems), nameof(options));
        }
    }

    private static bool HeadersAreWellFormed(string headers)
    {
        foreach (var pair in headers.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            var equals = pair.IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0 || string.IsNullOrWhiteSpace(pair[..equals]))
            {
                return false;
            }
        }

        return true;
    }
}
