using System.Text.Json;
using System.Text.Json.Serialization;

namespace NhiAudit.Approvals.Postgres;

/// <summary>
/// The JSON a ticket's request and approver are stored as, so that any replica can list and decide a request held on
/// another. An <see cref="AccessRequest"/> carries no credentials (the token was validated and dropped before policy
/// ran), so nothing secret reaches the table beyond what the approver is shown anyway.
/// </summary>
internal static class ApprovalTicketJson
{
    private static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        Converters = { new JsonStringEnumConverter() },
    };

    public static string WriteIdentity(WorkloadIdentity identity) => JsonSerializer.Serialize(identity, Options);

    public static WorkloadIdentity ReadIdentity(string json) =>
        JsonSerializer.Deserialize<WorkloadIdentity>(json, Options) ?? throw new JsonException("an approval ticket's identity is null");

    public static string WriteRequest(AccessRequest request)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("protocol", request.Protocol);
            writer.WriteString("target", request.Target);
            writer.WriteString("action", request.Action);
            writer.WriteStartArray("resources");
            foreach (var resource in request.Resources)
            {
                writer.WriteStringValue(resource);
            }

            writer.WriteEndArray();
            writer.WriteString("text", request.Text);
            writer.WriteStartObject("attributes");
            foreach (var (name, value) in request.Attributes)
            {
                writer.WritePropertyName(name);
                WriteAttribute(writer, value);
            }

            writer.WriteEndObject();
            writer.WritePropertyName("identity");
            JsonSerializer.Serialize(writer, request.Identity, Options);
            writer.WriteEndObject();
        }

        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }

    public static AccessRequest ReadRequest(string json)
    {
        using var document = JsonDocument.Parse(json);
        var root = document.RootElement;
        var attributes = new Dictionary<string, object?>(StringComparer.Ordinal);
        if (root.TryGetProperty("attributes", out var stored))
        {
            foreach (var attribute in stored.EnumerateObject())
            {
                attributes[attribute.Name] = ReadAttribute(attribute.Value);
            }
        }

        return new AccessRequest
        {
            Protocol = root.GetProperty("protocol").GetString() ?? "",
            Target = root.GetProperty("target").GetString() ?? "",
            Action = root.GetProperty("action").GetString() ?? "",
            Resources = root.TryGetProperty("resources", out var resources) ? resources.EnumerateArray().Select(r => r.GetString() ?? "").ToList() : [],
            Text = root.TryGetProperty("text", out var text) ? text.GetString() ?? "" : "",
            Attributes = attributes,
            Identity = root.GetProperty("identity").Deserialize<WorkloadIdentity>(Options) ?? throw new JsonException("an approval ticket's identity is null"),
        };
    }

    private static void WriteAttribute(Utf8JsonWriter writer, object? value)
    {
        if (value is null)
        {
            writer.WriteNullValue();
            return;
        }

        JsonElement element;
        try
        {
            // Into an element first: a serializer that fails halfway must not leave half a value in the writer.
            element = JsonSerializer.SerializeToElement(value, value.GetType(), Options);
        }
        catch (Exception ex) when (ex is NotSupportedException or JsonException or InvalidOperationException)
        {
            // A protocol extra JSON cannot represent is still worth showing the approver in its text form.
            writer.WriteStringValue(value.ToString());
            return;
        }

        element.WriteTo(writer);
    }

    private static object? ReadAttribute(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Null or JsonValueKind.Undefined => null,
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.String => value.GetString(),
        JsonValueKind.Number when value.TryGetInt64(out var whole) => whole,
        JsonValueKind.Number => value.GetDouble(),
        _ => value.Clone(),
    };
}
