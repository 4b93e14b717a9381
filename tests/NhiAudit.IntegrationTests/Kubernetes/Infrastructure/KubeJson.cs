using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace NhiAudit.IntegrationTests.Kubernetes.Infrastructure;

/// <summary>JSON helpers of the fake API server: Status objects, patches, selectors and server-side Tables.</summary>
internal static class KubeJson
{
    public static JsonObject Status(int code, string reason, string message, string? name = null, string? kind = null)
    {
        var status = new JsonObject
        {
            ["kind"] = "Status",
            ["apiVersion"] = "v1",
            ["metadata"] = new JsonObject(),
            ["status"] = code < 400 ? "Success" : "Failure",
            ["message"] = message,
            ["reason"] = reason,
            ["code"] = code,
        };
        if (name is not null || kind is not null)
        {
            status["details"] = new JsonObject { ["name"] = name, ["kind"] = kind };
        }

        return status;
    }

    /// <summary>RFC 7386 merge patch; keys starting with <c>$</c> (strategic-merge directives) are dropped.</summary>
    public static JsonNode? MergePatch(JsonNode? target, JsonNode? patch)
    {
        if (patch is not JsonObject patchObject)
        {
            return patch?.DeepClone();
        }

        var result = target is JsonObject t ? (JsonObject)t.DeepClone() : new JsonObject();
        foreach (var (key, value) in patchObject)
        {
            if (key.StartsWith('$'))
            {
                continue;
            }

            if (value is null)
            {
                result.Remove(key);
            }
            else
            {
                var merged = MergePatch(result[key], value);
                result[key] = merged;
            }
        }

        return result;
    }

    /// <summary>RFC 6902 JSON patch (add, remove, replace, test, copy, move).</summary>
    public static JsonNode ApplyJsonPatch(JsonNode target, JsonArray operations)
    {
        var doc = target.DeepClone();
        foreach (var op in operations.OfType<JsonObject>())
        {
            var kind = (string?)op["op"];
            var path = (string?)op["path"] ?? "";
            switch (kind)
            {
                case "add":
                    Add(ref doc, path, op["value"]?.DeepClone());
                    break;
                case "remove":
                    Remove(doc, path);
                    break;
                case "replace":
                    Remove(doc, path);
                    Add(ref doc, path, op["value"]?.DeepClone());
                    break;
                case "test":
                    if (!JsonNode.DeepEquals(Resolve(doc, path), op["value"]))
                    {
                        throw new KubeApiException(422, "Invalid", $"the json patch test operation failed at {path}");
                    }

                    break;
                case "copy":
                    Add(ref doc, path, Resolve(doc, (string?)op["from"] ?? "")?.DeepClone());
                    break;
                case "move":
                    var from = (string?)op["from"] ?? "";
                    var moved = Resolve(doc, from)?.DeepClone();
                    Remove(doc, from);
                    Add(ref doc, path, moved);
                    break;
                default:
                    throw new KubeApiException(400, "BadRequest", $"unknown json patch operation {kind}");
            }
        }

        return doc;
    }

    private static string[] Split(string pointer) =>
        pointer.Length == 0 ? [] : pointer[1..].Split('/').Select(s => s.Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal)).ToArray();

    private static JsonNode? Resolve(JsonNode? node, string pointer)
    {
        foreach (var part in Split(pointer))
        {
            node = node switch
            {
                JsonObject o => o[part],
                JsonArray a when int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out var i) && i < a.Count => a[i],
                _ => throw new KubeApiException(422, "Invalid", $"json patch path {pointer} not found"),
            };
        }

        return node;
    }

    private static void Add(ref JsonNode doc, string pointer, JsonNode? value)
    {
        var parts = Split(pointer);
        if (parts.Length == 0)
        {
            doc = value ?? new JsonObject();
            return;
        }

        var parent = parts.Length == 1
            ? doc
            : Resolve(doc, "/" + string.Join('/', parts[..^1].Select(p => p.Replace("~", "~0", StringComparison.Ordinal).Replace("/", "~1", StringComparison.Ordinal))));

        var last = parts[^1];
        switch (parent)
        {
            case JsonObject o:
                o[last] = value;
                break;
            case JsonArray a when last == "-":
                a.Add(value);
                break;
            case JsonArray a:
                a.Insert(int.Parse(last, CultureInfo.InvariantCulture), value);
                break;
            default:
                throw new KubeApiException(422, "Invalid", $"json patch path {pointer} not found");
        }
    }

    private static void Remove(JsonNode doc, string pointer)
    {
        var parts = Split(pointer);
        var parent = parts.Length == 1 ? doc : Resolve(doc, "/" + string.Join('/', parts[..^1]));
        switch (parent)
        {
            case JsonObject o when o.ContainsKey(parts[^1]):
                o.Remove(parts[^1]);
                break;
            case JsonArray a when int.TryParse(parts[^1], NumberStyles.None, CultureInfo.InvariantCulture, out var i) && i < a.Count:
                a.RemoveAt(i);
                break;
            default:
                throw new KubeApiException(422, "Invalid", $"json patch path {pointer} not found");
        }
    }

    /// <summary>A filter for <c>labelSelector</c> (=, ==, !=, existence, !existence, in/notin not supported) and
    /// <c>fieldSelector</c> (metadata.name, metadata.namespace, = and !=).</summary>
    public static Func<JsonObject, bool> Selector(string? labelSelector, string? fieldSelector)
    {
        var tests = new List<Func<JsonObject, bool>>();
        foreach (var term in Terms(labelSelector))
        {
            tests.Add(LabelTest(term));
        }

        foreach (var term in Terms(fieldSelector))
        {
            var negate = term.Contains("!=", StringComparison.Ordinal);
            var parts = term.Split(negate ? "!=" : term.Contains("==", StringComparison.Ordinal) ? "==" : "=", 2);
            var field = parts[0].Trim();
            var value = parts.Length > 1 ? parts[1].Trim() : "";
            tests.Add(o =>
            {
                var actual = FieldValue(o, field);
                return negate ? actual != value : actual == value;
            });
        }

        return o => tests.TrueForAll(t => t(o));
    }

    private static string[] Terms(string? selector) =>
        string.IsNullOrWhiteSpace(selector) ? [] : selector.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private static Func<JsonObject, bool> LabelTest(string term)
    {
        string? Label(JsonObject o, string key) => o["metadata"]?["labels"]?[key]?.GetValue<string>();
        if (term.Contains("!=", StringComparison.Ordinal))
        {
            var p = term.Split("!=", 2);
            return o => Label(o, p[0].Trim()) != p[1].Trim();
        }

        if (term.Contains('=', StringComparison.Ordinal))
        {
            var p = term.Split(term.Contains("==", StringComparison.Ordinal) ? "==" : "=", 2);
            return o => Label(o, p[0].Trim()) == p[1].Trim();
        }

        if (term.StartsWith('!'))
        {
            return o => Label(o, term[1..].Trim()) is null;
        }

        return o => Label(o, term) is not null;
    }

    private static string? FieldValue(JsonObject o, string path)
    {
        JsonNode? node = o;
        foreach (var part in path.Split('.'))
        {
            node = node?[part];
        }

        return node is JsonValue v ? v.ToString() : null;
    }

    public static string Age(JsonObject o)
    {
        var created = (string?)o["metadata"]?["creationTimestamp"];
        if (!DateTime.TryParse(created, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out var t))
        {
            return "<unknown>";
        }

        var d = DateTime.UtcNow - t;
        if (d < TimeSpan.Zero)
        {
            d = TimeSpan.Zero;
        }

        return d.TotalSeconds < 120 ? $"{(int)d.TotalSeconds}s"
            : d.TotalMinutes < 10 ? $"{(int)d.TotalMinutes}m{d.Seconds}s"
            : d.TotalHours < 3 ? $"{(int)d.TotalMinutes}m"
            : d.TotalHours < 48 ? $"{(int)d.TotalHours}h"
            : $"{(int)d.TotalDays}d";
    }

    private static JsonObject Column(string name, string type, string description, int priority = 0, string format = "") => new()
    {
        ["name"] = name,
        ["type"] = type,
        ["format"] = format,
        ["description"] = description,
        ["priority"] = priority,
    };

    public static JsonArray Columns(string resource) => resource switch
    {
        "pods" => new JsonArray(
            Column("Name", "string", "Name must be unique within a namespace.", format: "name"),
            Column("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
            Column("Status", "string", "The aggregate status of the containers in this pod."),
            Column("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
            Column("Age", "string", "CreationTimestamp is a timestamp representing the server time when this object was created."),
            Column("IP", "string", "podIP address allocated to the pod.", 1),
            Column("Node", "string", "Name of the Node where the Pod is running.", 1)),
        "secrets" => new JsonArray(
            Column("Name", "string", "Name must be unique within a namespace.", format: "name"),
            Column("Type", "string", "Used to facilitate programmatic handling of secret data."),
            Column("Data", "integer", "Data contains the secret data."),
            Column("Age", "string", "CreationTimestamp is a timestamp representing the server time when this object was created.")),
        "configmaps" => new JsonArray(
            Column("Name", "string", "Name must be unique within a namespace.", format: "name"),
            Column("Data", "integer", "Data contains the configuration data."),
            Column("Age", "string", "CreationTimestamp is a timestamp representing the server time when this object was created.")),
        "namespaces" => new JsonArray(
            Column("Name", "string", "Name must be unique within a namespace.", format: "name"),
            Column("Status", "string", "The status of the namespace"),
            Column("Age", "string", "CreationTimestamp is a timestamp representing the server time when this object was created.")),
        "services" => new JsonArray(
            Column("Name", "string", "Name must be unique within a namespace.", format: "name"),
            Column("Type", "string", "Type determines how the Service is exposed."),
            Column("Cluster-IP", "string", "ClusterIP is the IP address of the service."),
            Column("External-IP", "string", "External IPs."),
            Column("Port(s)", "string", "The list of ports that are exposed by this service."),
            Column("Age", "string", "CreationTimestamp is a timestamp representing the server time when this object was created.")),
        _ => new JsonArray(
            Column("Name", "string", "Name must be unique within a namespace.", format: "name"),
            Column("Created At", "date", "CreationTimestamp is a timestamp representing the server time when this object was created.")),
    };

    public static JsonArray Cells(string resource, JsonObject o)
    {
        var name = (string?)o["metadata"]?["name"] ?? "";
        int Count(string field) => (o[field] as JsonObject)?.Count ?? 0;
        switch (resource)
        {
            case "pods":
                var statuses = (o["status"]?["containerStatuses"] as JsonArray)?.OfType<JsonObject>().ToList() ?? [];
                var containers = (o["spec"]?["containers"] as JsonArray)?.Count ?? 0;
                var ready = statuses.Count(s => (bool?)s["ready"] == true);
                var restarts = statuses.Sum(s => (int?)s["restartCount"] ?? 0);
                return new JsonArray(
                    name,
                    $"{ready}/{containers}",
                    (string?)o["status"]?["phase"] ?? "Pending",
                    restarts.ToString(CultureInfo.InvariantCulture),
                    Age(o),
                    (string?)o["status"]?["podIP"] ?? "<none>",
                    (string?)o["spec"]?["nodeName"] ?? "<none>");
            case "secrets":
                return new JsonArray(name, (string?)o["type"] ?? "Opaque", Count("data") + Count("binaryData"), Age(o));
            case "configmaps":
                return new JsonArray(name, Count("data") + Count("binaryData"), Age(o));
            case "namespaces":
                return new JsonArray(name, (string?)o["status"]?["phase"] ?? "Active", Age(o));
            case "services":
                var ports = (o["spec"]?["ports"] as JsonArray)?.OfType<JsonObject>()
                    .Select(p => $"{p["port"]}/{(string?)p["protocol"] ?? "TCP"}") ?? [];
                var portText = string.Join(',', ports);
                return new JsonArray(
                    name,
                    (string?)o["spec"]?["type"] ?? "ClusterIP",
                    (string?)o["spec"]?["clusterIP"] ?? "<none>",
                    "<none>",
                    portText.Length == 0 ? "<none>" : portText,
                    Age(o));
            default:
                return new JsonArray(name, (string?)o["metadata"]?["creationTimestamp"]);
        }
    }

    /// <summary>A meta.k8s.io/v1 Table for <paramref name="items"/>; includeObject is None, Metadata (default) or Object.</summary>
    public static JsonObject Table(string resource, IEnumerable<JsonObject> items, long resourceVersion, string? includeObject, string tableVersion = "v1")
    {
        var rows = new JsonArray();
        foreach (var o in items)
        {
            var row = new JsonObject { ["cells"] = Cells(resource, o) };
            switch (includeObject)
            {
                case "None":
                    break;
                case "Object":
                    row["object"] = o.DeepClone();
                    break;
                default:
                    row["object"] = new JsonObject
                    {
                        ["kind"] = "PartialObjectMetadata",
                        ["apiVersion"] = "meta.k8s.io/v1",
                        ["metadata"] = o["metadata"]?.DeepClone(),
                    };
                    break;
            }

            rows.Add(row);
        }

        return new JsonObject
        {
            ["kind"] = "Table",
            ["apiVersion"] = $"meta.k8s.io/{tableVersion}",
            ["metadata"] = new JsonObject { ["resourceVersion"] = resourceVersion.ToString(CultureInfo.InvariantCulture) },
            ["columnDefinitions"] = Columns(resource),
            ["rows"] = rows,
        };
    }

    public static string Base64(string s) => Convert.ToBase64String(Encoding.UTF8.GetBytes(s));
}
