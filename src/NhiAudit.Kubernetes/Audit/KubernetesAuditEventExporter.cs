using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace NhiAudit.Kubernetes.Audit;

/// <summary>
/// Turns the gateway's audit records (<c>k8s.request</c> and <c>k8s.response</c>) into Kubernetes audit events
/// (<c>audit.k8s.io/v1</c> <c>Event</c>), one per request, for tools that read the API server's audit log.
/// </summary>
/// <remarks>
/// A request with its response record becomes an event at stage <c>ResponseComplete</c>; one without (the gateway stopped,
/// or the log was cut) at stage <c>RequestReceived</c>. The level is <c>RequestResponse</c> when the request record holds
/// the (masked) body, else <c>Metadata</c>. Events come out in the order of the request records; other record types are skipped.
/// </remarks>
public static class KubernetesAuditEventExporter
{
    /// <summary>The group every exported workload is in.</summary>
    public const string WorkloadsGroup = "nhiaudit:workloads";

    /// <summary>Converts records to audit events.</summary>
    /// <param name="records">The audit log's records, in log order.</param>
    /// <returns>One <c>audit.k8s.io/v1</c> Event per <c>k8s.request</c> record.</returns>
    public static IEnumerable<JsonObject> Export(IEnumerable<JsonElement> records)
    {
        ArgumentNullException.ThrowIfNull(records);

        var requests = new List<JsonElement>();
        var responsesBySeq = new Dictionary<long, JsonElement>();
        var responsesById = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (var record in records)
        {
            if (record.ValueKind != JsonValueKind.Object)
            {
                continue;
            }

            switch (String(record, "type"))
            {
                case "k8s.request":
                    requests.Add(record.Clone());
                    break;
                case "k8s.response":
                    var response = record.Clone();
                    if (Long(response, "request") is { } requestSeq)
                    {
                        responsesBySeq[requestSeq] = response;
                    }

                    if (String(response, "requestId") is { } requestId)
                    {
                        responsesById[requestId] = response;
                    }

                    break;
            }
        }

        foreach (var request in requests)
        {
            JsonElement? response = null;
            if (Long(request, "seq") is { } seq && responsesBySeq.TryGetValue(seq, out var bySeq))
            {
                response = bySeq;
            }
            else if (Object(request, "request") is { } r && String(r, "id") is { } id && responsesById.TryGetValue(id, out var byId))
            {
                response = byId;
            }

            yield return ToEvent(request, response);
        }
    }

    private static JsonObject ToEvent(JsonElement record, JsonElement? response)
    {
        var request = Object(record, "request");
        var hasBody = record.TryGetProperty("body", out var body) && body.ValueKind is not JsonValueKind.Null and not JsonValueKind.Undefined;

        var ev = new JsonObject
        {
            ["kind"] = "Event",
            ["apiVersion"] = "audit.k8s.io/v1",
            ["level"] = hasBody ? "RequestResponse" : "Metadata",
            ["auditID"] = request is { } r0 ? String(r0, "id") ?? "" : "",
            ["stage"] = response is null ? "RequestReceived" : "ResponseComplete",
            ["requestURI"] = request is { } r1 ? String(r1, "uri") ?? "" : "",
            ["verb"] = request is { } r2 ? String(r2, "verb") ?? "" : "",
            ["user"] = User(Object(record, "identity")),
        };

        if (Object(record, "impersonated") is { } impersonated)
        {
            var user = new JsonObject { ["username"] = String(impersonated, "user") ?? "" };
            if (impersonated.TryGetProperty("groups", out var groups) && groups.ValueKind == JsonValueKind.Array)
            {
                user["groups"] = JsonNode.Parse(groups.GetRawText());
            }

            ev["impersonatedUser"] = user;
        }

        if (request is { } req)
        {
            if (String(req, "client") is { } client && HostOf(client) is { Length: > 0 } ip)
            {
                ev["sourceIPs"] = new JsonArray(ip);
            }

            if (String(req, "userAgent") is { Length: > 0 } userAgent)
            {
                ev["userAgent"] = userAgent;
            }

            var objectRef = new JsonObject();
            foreach (var (from, to) in ObjectRefFields)
            {
                if (String(req, from) is { Length: > 0 } value)
                {
                    objectRef[to] = value;
                }
            }

            if (objectRef.Count > 0)
            {
                ev["objectRef"] = objectRef;
            }
        }

        if (response is { } resp && Long(resp, "status") is { } status)
        {
            ev["responseStatus"] = new JsonObject { ["metadata"] = new JsonObject(), ["code"] = (int)Math.Clamp(status, 0, 999) };
        }
        else if (String(record, "refused") is { } refused)
        {
            ev["responseStatus"] = new JsonObject { ["metadata"] = new JsonObject(), ["status"] = "Failure", ["message"] = refused, ["code"] = 403 };
        }

        if (hasBody)
        {
            ev["requestObject"] = JsonNode.Parse(body.GetRawText());
        }

        if (String(record, "time") is { } received)
        {
            ev["requestReceivedTimestamp"] = received;
        }

        var stageTime = response is { } done ? String(done, "time") : null;
        ev["stageTimestamp"] = stageTime ?? String(record, "time");

        var annotations = new JsonObject();
        if (Long(record, "seq") is { } seqNumber)
        {
            annotations["nhiaudit.io/seq"] = seqNumber.ToString(CultureInfo.InvariantCulture);
        }

        if (Object(record, "policy") is { } policy)
        {
            var effect = String(policy, "effect");
            annotations["authorization.k8s.io/decision"] = string.Equals(effect, "allow", StringComparison.OrdinalIgnoreCase) ? "allow" : "forbid";
            if (String(policy, "rule") is { } rule)
            {
                annotations["authorization.k8s.io/reason"] = rule;
            }

            if (String(policy, "version") is { } version)
            {
                annotations["nhiaudit.io/policy-version"] = version;
            }
        }
        else if (String(record, "refused") is not null)
        {
            annotations["authorization.k8s.io/decision"] = "forbid";
        }

        if (String(record, "reason") is { } reason)
        {
            annotations["nhiaudit.io/reason"] = reason;
        }

        if (request is { } target && String(target, "target") is { } targetName)
        {
            annotations["nhiaudit.io/target"] = targetName;
        }

        if (response is { } masked && masked.TryGetProperty("masked", out var maskedInfo) && maskedInfo.ValueKind != JsonValueKind.Null)
        {
            annotations["nhiaudit.io/masked"] = maskedInfo.GetRawText();
        }

        ev["annotations"] = annotations;
        return ev;
    }

    private static readonly (string From, string To)[] ObjectRefFields =
    [
        ("resource", "resource"),
        ("namespace", "namespace"),
        ("name", "name"),
        ("apiGroup", "apiGroup"),
        ("apiVersion", "apiVersion"),
        ("subresource", "subresource"),
    ];

    private static readonly (string From, string To)[] ExtraFields =
    [
        ("kind", "nhiaudit.io/kind"),
        ("issuer", "nhiaudit.io/issuer"),
        ("name", "nhiaudit.io/name"),
        ("repository", "nhiaudit.io/repository"),
        ("workflow", "nhiaudit.io/workflow"),
        ("runId", "nhiaudit.io/run-id"),
        ("sha", "nhiaudit.io/sha"),
        ("mirid", "nhiaudit.io/mirid"),
        ("app", "nhiaudit.io/app"),
    ];

    private static JsonObject User(JsonElement? identity)
    {
        var user = new JsonObject
        {
            ["username"] = identity is { } id ? String(id, "subject") ?? "" : "",
            ["groups"] = new JsonArray(WorkloadsGroup),
        };

        if (identity is { } idn)
        {
            var extra = new JsonObject();
            foreach (var (from, to) in ExtraFields)
            {
                if (idn.TryGetProperty(from, out var value) && value.ValueKind is not JsonValueKind.Null and not JsonValueKind.Undefined)
                {
                    var text = value.ValueKind == JsonValueKind.String ? value.GetString() ?? "" : value.GetRawText();
                    if (text.Length > 0)
                    {
                        extra[to] = new JsonArray(text);
                    }
                }
            }

            if (extra.Count > 0)
            {
                user["extra"] = extra;
            }
        }

        return user;
    }

    /// <summary>The host of <c>ip:port</c>, <c>[v6]:port</c> or a bare address.</summary>
    internal static string HostOf(string endpoint)
    {
        if (endpoint.StartsWith('['))
        {
            var close = endpoint.IndexOf(']', StringComparison.Ordinal);
            return close > 0 ? endpoint[1..close] : endpoint;
        }

        var colon = endpoint.LastIndexOf(':');
        if (colon > 0 && endpoint.IndexOf(':', StringComparison.Ordinal) == colon)
        {
            return endpoint[..colon]; // ipv4:port
        }

        return endpoint; // a bare address (IPv6 without brackets, or no port)
    }

    private static JsonElement? Object(JsonElement element, string property) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(property, out var value) && value.ValueKind == JsonValueKind.Object
            ? value
            : null;

    private static string? String(JsonElement element, string property) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(property, out var value) && value.ValueKind == JsonValueKind.String
            ? value.GetString()
            : null;

    private static long? Long(JsonElement element, string property)
    {
        if (element.ValueKind != JsonValueKind.Object || !element.TryGetProperty(property, out var value))
        {
            return null;
        }

        if (value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var number))
        {
            return number;
        }

        return value.ValueKind == JsonValueKind.String && long.TryParse(value.GetString(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var parsed)
            ? parsed
            : null;
    }
}
