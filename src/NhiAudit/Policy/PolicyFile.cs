using System.Text.Json;

namespace NhiAudit.Policy;

/// <summary>Reads a policy file (<see cref="PolicyOptions.File"/>) over the configured options.</summary>
internal static class PolicyFile
{
    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNameCaseInsensitive = true,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() },
    };

    /// <summary>
    /// Returns the options that result from <paramref name="path"/>'s content over <paramref name="configured"/>: the
    /// file's rules (and masking rules) replace the configured ones. Throws <see cref="InvalidDataException"/> when the
    /// file is not a policy, and <see cref="ArgumentException"/> when a masking rule is invalid.
    /// </summary>
    public static PolicyOptions Apply(PolicyOptions configured, string path, string content)
    {
        try
        {
            using var document = JsonDocument.Parse(content, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
            var policy = FindPolicy(document.RootElement)
                ?? throw new InvalidDataException($"policy file '{path}' has no \"Policy\" or \"NhiAudit\": {{\"Policy\"}} object");
            var result = new PolicyOptions
            {
                Rules = configured.Rules,
                DefaultEffect = configured.DefaultEffect,
                UnclassifiedEffect = configured.UnclassifiedEffect,
                File = configured.File,
                Masking = configured.Masking,
                MaskingKeyFile = configured.MaskingKeyFile,
            };
            foreach (var property in policy.EnumerateObject())
            {
                if (property.NameEquals("Rules") || string.Equals(property.Name, "Rules", StringComparison.OrdinalIgnoreCase))
                {
                    result.Rules = property.Value.Deserialize<List<PolicyRuleOptions>>(JsonOptions)
                        ?? throw new InvalidDataException($"policy file '{path}': Rules is null");
                }
                else if (string.Equals(property.Name, nameof(PolicyOptions.Masking), StringComparison.OrdinalIgnoreCase))
                {
                    result.Masking = property.Value.Deserialize<List<Masking.MaskingRuleOptions>>(JsonOptions)
                        ?? throw new InvalidDataException($"policy file '{path}': Masking is null");
                    _ = Masking.MaskingPolicy.Create(result.Masking, new byte[32]);
                }
                else if (string.Equals(property.Name, nameof(PolicyOptions.DefaultEffect), StringComparison.OrdinalIgnoreCase))
                {
                    result.DefaultEffect = property.Value.Deserialize<PolicyEffect>(JsonOptions);
                }
                else if (string.Equals(property.Name, nameof(PolicyOptions.UnclassifiedEffect), StringComparison.OrdinalIgnoreCase))
                {
                    result.UnclassifiedEffect = property.Value.Deserialize<PolicyEffect>(JsonOptions);
                }
            }

            return result;
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"policy file '{path}' is not valid JSON: {ex.Message}", ex);
        }
    }

    private static JsonElement? FindPolicy(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            return null;
        }

        foreach (var property in root.EnumerateObject())
        {
            if (string.Equals(property.Name, "Policy", StringComparison.OrdinalIgnoreCase) && property.Value.ValueKind == JsonValueKind.Object)
            {
                return property.Value;
            }

            if (string.Equals(property.Name, "NhiAudit", StringComparison.OrdinalIgnoreCase) && property.Value.ValueKind == JsonValueKind.Object)
            {
                var nested = FindPolicy(property.Value);
                if (nested is not null)
                {
                    return nested;
                }
            }
        }

        return null;
    }
}
