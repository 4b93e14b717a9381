using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using System.Threading.Channels;

namespace NhiAudit.IntegrationTests.Kubernetes.Infrastructure;

/// <summary>A change to a stored object, delivered to watchers.</summary>
internal sealed record KubeWatchEvent(string Type, string Resource, string? Namespace, JsonObject Object);

/// <summary>A resource type the fake serves (core/v1 only).</summary>
internal sealed record KubeResourceType(string Name, string Singular, string Kind, bool Namespaced, string[] ShortNames);

/// <summary>A failure that maps to a Kubernetes Status response.</summary>
internal sealed class KubeApiException(int code, string reason, string message) : Exception(message)
{
    public int Code { get; } = code;

    public string Reason { get; } = reason;
}

/// <summary>The in-memory object store of <see cref="FakeKubeApiServer"/>: core/v1 objects keyed by resource, namespace and name.</summary>
internal sealed class KubeStore
{
    public static readonly KubeResourceType[] Types =
    [
        new("pods", "pod", "Pod", true, ["po"]),
        new("secrets", "secret", "Secret", true, []),
        new("configmaps", "configmap", "ConfigMap", true, ["cm"]),
        new("services", "service", "Service", true, ["svc"]),
        new("events", "event", "Event", true, ["ev"]),
        new("namespaces", "namespace", "Namespace", false, ["ns"]),
    ];

    private readonly Lock gate = new();
    private readonly Dictionary<(string Resource, string Namespace, string Name), JsonObject> objects = [];
    private readonly List<Watcher> watchers = [];
    private long resourceVersion = 100;

    public KubeStore()
    {
        foreach (var ns in new[] { "default", "kube-system", "kube-public" })
        {
            Create("namespaces", null, new JsonObject { ["metadata"] = new JsonObject { ["name"] = ns } });
        }
    }

    /// <summary>Called with (namespace, name) after a pod is created.</summary>
    public Action<string, string>? PodCreated { get; set; }

    public long CurrentResourceVersion
    {
        get
        {
            lock (gate)
            {
                return resourceVersion;
            }
        }
    }

    public static KubeResourceType? Find(string resource) => Types.FirstOrDefault(t => t.Name == resource);

    public static KubeResourceType Require(string resource) =>
        Find(resource) ?? throw new KubeApiException(404, "NotFound", $"the server could not find the requested resource ({resource})");

    public JsonObject Get(string resource, string? ns, string name)
    {
        lock (gate)
        {
            return objects.TryGetValue((resource, ns ?? "", name), out var o)
                ? (JsonObject)o.DeepClone()
                : throw NotFound(resource, name);
        }
    }

    public bool TryGet(string resource, string? ns, string name, out JsonObject? value)
    {
        lock (gate)
        {
            value = objects.TryGetValue((resource, ns ?? "", name), out var o) ? (JsonObject)o.DeepClone() : null;
            return value is not null;
        }
    }

    public (List<JsonObject> Items, long ResourceVersion) List(string resource, string? ns, Func<JsonObject, bool>? filter = null)
    {
        lock (gate)
        {
            var items = objects
                .Where(kv => kv.Key.Resource == resource && (ns is null || kv.Key.Namespace == ns) && (filter is null || filter(kv.Value)))
                .OrderBy(kv => kv.Key.Namespace, StringComparer.Ordinal)
                .ThenBy(kv => kv.Key.Name, StringComparer.Ordinal)
                .Select(kv => (JsonObject)kv.Value.DeepClone())
                .ToList();
            return (items, resourceVersion);
        }
    }

    public JsonObject Create(string resource, string? ns, JsonObject body)
    {
        var type = Require(resource);
        var metadata = body["metadata"] as JsonObject ?? new JsonObject();
        body["metadata"] = metadata;
        var name = (string?)metadata["name"];
        if (string.IsNullOrEmpty(name))
        {
            var generateName = (string?)metadata["generateName"];
            if (string.IsNullOrEmpty(generateName))
            {
                throw new KubeApiException(422, "Invalid", $"{type.Kind} \"\" is invalid: metadata.name: Required value: name or generateName is required");
            }

            name = generateName + Guid.NewGuid().ToString("N")[..5];
            metadata["name"] = name;
        }

        if (type.Namespaced)
        {
            var bodyNs = (string?)metadata["namespace"];
            if (!string.IsNullOrEmpty(bodyNs) && ns is not null && bodyNs != ns)
            {
                throw new KubeApiException(400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request");
            }

            ns ??= string.IsNullOrEmpty(bodyNs) ? "default" : bodyNs;
            metadata["namespace"] = ns;
        }
        else
        {
            ns = null;
            metadata.Remove("namespace");
        }

        body["apiVersion"] = "v1";
        body["kind"] = type.Kind;
        JsonObject stored;
        lock (gate)
        {
            if (type.Namespaced && !objects.ContainsKey(("namespaces", "", ns!)))
            {
                throw new KubeApiException(404, "NotFound", $"namespaces \"{ns}\" not found");
            }

            if (objects.ContainsKey((resource, ns ?? "", name)))
            {
                throw new KubeApiException(409, "AlreadyExists", $"{resource} \"{name}\" already exists");
            }

            metadata["uid"] = Guid.NewGuid().ToString();
            metadata["creationTimestamp"] = Now();
            metadata.Remove("resourceVersion");
            Normalize(type, body, null);
            metadata["resourceVersion"] = (++resourceVersion).ToString(CultureInfo.InvariantCulture);
            stored = (JsonObject)body.DeepClone();
            objects[(resource, ns ?? "", name)] = stored;
            Publish("ADDED", resource, ns, stored);
        }

        if (resource == "pods")
        {
            PodCreated?.Invoke(ns!, name);
        }

        return (JsonObject)stored.DeepClone();
    }

    public JsonObject Update(string resource, string? ns, string name, JsonObject body, bool statusOnly = false)
    {
        var type = Require(resource);
        lock (gate)
        {
            var key = (resource, ns ?? "", name);
            if (!objects.TryGetValue(key, out var existing))
            {
                throw NotFound(resource, name);
            }

            var metadata = body["metadata"] as JsonObject ?? new JsonObject();
            body["metadata"] = metadata;
            if ((string?)metadata["name"] is { Length: > 0 } bodyName && bodyName != name)
            {
                throw new KubeApiException(400, "BadRequest", "the name of the object does not match the name on the URL");
            }

            var requestedRv = (string?)metadata["resourceVersion"];
            var currentRv = (string?)existing["metadata"]?["resourceVersion"];
            if (!string.IsNullOrEmpty(requestedRv) && requestedRv != currentRv)
            {
                throw new KubeApiException(409, "Conflict", $"Operation cannot be fulfilled on {resource} \"{name}\": the object has been modified; please apply your changes to the latest version and try again");
            }

            if (statusOnly)
            {
                var merged = (JsonObject)existing.DeepClone();
                merged["status"] = body["status"]?.DeepClone();
                body = merged;
                metadata = (JsonObject)body["metadata"]!;
            }

            metadata["name"] = name;
            if (ns is not null)
            {
                metadata["namespace"] = ns;
            }

            metadata["uid"] = existing["metadata"]?["uid"]?.DeepClone();
            metadata["creationTimestamp"] = existing["metadata"]?["creationTimestamp"]?.DeepClone();
            body["apiVersion"] = "v1";
            body["kind"] = type.Kind;
            Normalize(type, body, existing);
            metadata["resourceVersion"] = (++resourceVersion).ToString(CultureInfo.InvariantCulture);
            var stored = (JsonObject)body.DeepClone();
            objects[key] = stored;
            Publish("MODIFIED", resource, ns, stored);
            return (JsonObject)stored.DeepClone();
        }
    }

    public JsonObject Delete(string resource, string? ns, string name)
    {
        lock (gate)
        {
            var key = (resource, ns ?? "", name);
            if (!objects.Remove(key, out var existing))
            {
                throw NotFound(resource, name);
            }

            existing["metadata"]!["resourceVersion"] = (++resourceVersion).ToString(CultureInfo.InvariantCulture);
            Publish("DELETED", resource, ns, existing);
            if (resource == "namespaces")
            {
                foreach (var k in objects.Keys.Where(k => k.Namespace == name).ToList())
                {
                    objects.Remove(k, out var child);
                    Publish("DELETED", k.Resource, k.Namespace, child!);
                }
            }

            return (JsonObject)existing.DeepClone();
        }
    }

    public Watcher Watch(string resource, string? ns, Func<JsonObject, bool> filter, long sinceResourceVersion, out List<JsonObject> initial)
    {
        lock (gate)
        {
            initial = objects
                .Where(kv => kv.Key.Resource == resource && (ns is null || kv.Key.Namespace == ns) && filter(kv.Value)
                    && ResourceVersionOf(kv.Value) > sinceResourceVersion)
                .OrderBy(kv => ResourceVersionOf(kv.Value))
                .Select(kv => (JsonObject)kv.Value.DeepClone())
                .ToList();
            var watcher = new Watcher(this, resource, ns, filter);
            watchers.Add(watcher);
            return watcher;
        }
    }

    public static long ResourceVersionOf(JsonObject o) =>
        long.TryParse((string?)o["metadata"]?["resourceVersion"], NumberStyles.Integer, CultureInfo.InvariantCulture, out var rv) ? rv : 0;

    public static string Now() => DateTime.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    private static KubeApiException NotFound(string resource, string name) => new(404, "NotFound", $"{resource} \"{name}\" not found");

    private void Publish(string type, string resource, string? ns, JsonObject o)
    {
        foreach (var w in watchers)
        {
            if (w.Resource == resource && (w.Namespace is null || w.Namespace == ns) && w.Filter(o))
            {
                w.Events.Writer.TryWrite(new KubeWatchEvent(type, resource, ns, (JsonObject)o.DeepClone()));
            }
        }
    }

    private static void Normalize(KubeResourceType type, JsonObject body, JsonObject? existing)
    {
        switch (type.Name)
        {
            case "secrets":
                NormalizeSecret(body);
                break;
            case "pods":
                NormalizePod(body, existing);
                break;
            case "namespaces":
                body["spec"] ??= new JsonObject { ["finalizers"] = new JsonArray("kubernetes") };
                body["status"] = new JsonObject { ["phase"] = "Active" };
                break;
            case "services":
                var spec = body["spec"] as JsonObject ?? new JsonObject();
                body["spec"] = spec;
                spec["type"] ??= "ClusterIP";
                spec["clusterIP"] ??= existing?["spec"]?["clusterIP"]?.DeepClone() ?? $"10.96.{Random.Shared.Next(1, 255)}.{Random.Shared.Next(1, 255)}";
                body["status"] ??= new JsonObject { ["loadBalancer"] = new JsonObject() };
                break;
        }
    }

    private static void NormalizeSecret(JsonObject body)
    {
        body["type"] ??= "Opaque";
        if (body["stringData"] is JsonObject stringData)
        {
            var data = body["data"] as JsonObject ?? new JsonObject();
            body["data"] = data;
            foreach (var (k, v) in stringData)
            {
                data[k] = Convert.ToBase64String(Encoding.UTF8.GetBytes((string?)v ?? ""));
            }
        }

        body.Remove("stringData");
    }

    private static void NormalizePod(JsonObject body, JsonObject? existing)
    {
        var spec = body["spec"] as JsonObject ?? new JsonObject();
        body["spec"] = spec;
        var containers = spec["containers"] as JsonArray ?? [];
        spec["containers"] = containers;
        if (containers.Count == 0)
        {
            containers.Add(new JsonObject { ["name"] = "main", ["image"] = "busybox" });
        }

        spec["nodeName"] ??= "fake-node";
        spec["restartPolicy"] ??= "Always";
        if (existing?["status"] is JsonObject existingStatus && body["status"] is null)
        {
            body["status"] = existingStatus.DeepClone();
            return;
        }

        var started = existing?["metadata"]?["creationTimestamp"]?.GetValue<string>() ?? Now();
        var statuses = new JsonArray();
        foreach (var c in containers)
        {
            statuses.Add(new JsonObject
            {
                ["name"] = c?["name"]?.DeepClone(),
                ["image"] = c?["image"]?.DeepClone(),
                ["imageID"] = "",
                ["ready"] = true,
                ["started"] = true,
                ["restartCount"] = 0,
                ["state"] = new JsonObject { ["running"] = new JsonObject { ["startedAt"] = started } },
            });
        }

        var status = body["status"] as JsonObject ?? new JsonObject();
        body["status"] = status;
        status["phase"] ??= "Running";
        status["podIP"] ??= "10.244.0.10";
        status["hostIP"] ??= "10.0.0.1";
        status["startTime"] ??= started;
        status["conditions"] ??= new JsonArray(
            new JsonObject { ["type"] = "Ready", ["status"] = "True", ["lastTransitionTime"] = started },
            new JsonObject { ["type"] = "ContainersReady", ["status"] = "True", ["lastTransitionTime"] = started });
        status["containerStatuses"] ??= statuses;
    }

    /// <summary>A registered watch; dispose to unregister.</summary>
    internal sealed class Watcher(KubeStore store, string resource, string? ns, Func<JsonObject, bool> filter) : IDisposable
    {
        public string Resource { get; } = resource;

        public string? Namespace { get; } = ns;

        public Func<JsonObject, bool> Filter { get; } = filter;

        public Channel<KubeWatchEvent> Events { get; } = Channel.CreateUnbounded<KubeWatchEvent>();

        public void Dispose()
        {
            lock (store.gate)
            {
                store.watchers.Remove(this);
            }

            Events.Writer.TryComplete();
        }
    }
}
