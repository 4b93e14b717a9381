using System.Text.Json;
using System.Text.Json.Nodes;
using NhiAudit.Kubernetes.Audit;

namespace NhiAudit.Kubernetes.Tests.Audit;

public sealed class KubernetesAuditEventExporterTests
{
    private const string Records = """
        {"seq":1,"prev":"","time":"2026-11-28T10:00:00.000Z","type":"session.start"}
        {"seq":10,"prev":"ab","time":"2026-11-28T10:00:01.000000Z","type":"k8s.request","identity":{"kind":"github","subject":"repo:acme/api:ref:refs/heads/main","issuer":"https://token.actions.githubusercontent.com","name":"acme/api","repository":"acme/api","workflow":"deploy","runId":"123456","sha":"0123abcd"},"reason":"deploy","request":{"id":"req-1","target":"prod","client":"10.1.2.3:51234","userAgent":"kubectl/v1.31.0","method":"GET","uri":"/api/v1/namespaces/default/secrets/db?x=y","verb":"get","apiGroup":"","apiVersion":"v1","resource":"secrets","subresource":"","namespace":"default","name":"db"},"impersonated":{"user":"nhiaudit:acme-api","groups":["deployers","system:authenticated"]},"policy":{"effect":"allow","rule":"deployers-read","version":"v7"}}
        {"seq":11,"prev":"cd","time":"2026-11-28T10:00:01.500000Z","type":"k8s.request","identity":{"kind":"azure","subject":"9b1c-app","issuer":"https://sts.windows.net/t/","name":"ci","mirid":"/subscriptions/s/rg/x","app":"app-id"},"request":{"id":"req-2","target":"prod","client":"[2001:db8::1]:443","userAgent":"kubectl/v1.31.0","method":"PATCH","uri":"/apis/apps/v1/namespaces/web/deployments/api/scale","verb":"patch","apiGroup":"apps","apiVersion":"v1","resource":"deployments","subresource":"scale","namespace":"web","name":"api"},"impersonated":{"user":"nhiaudit:ci","groups":[]},"policy":{"effect":"allow","rule":"scale","version":"v7"},"body":{"spec":{"replicas":3}}}
        {"seq":12,"time":"2026-11-28T10:00:01.020000Z","type":"k8s.response","request":10,"requestId":"req-1","status":200,"durationMs":1.2,"bytes":123,"masked":{"values":2,"fields":["default/secrets/db data.password"]}}
        {"seq":13,"prev":"ef","time":"2026-11-28T10:00:02.000000Z","type":"k8s.request","identity":{"kind":"github","subject":"repo:acme/evil"},"request":{"id":"req-3","target":"prod","client":"10.9.9.9:1","method":"DELETE","uri":"/api/v1/namespaces/kube-system/secrets","verb":"deletecollection","apiGroup":"","apiVersion":"v1","resource":"secrets","namespace":"kube-system"},"policy":{"effect":"deny","rule":"no-kube-system","version":"v7"},"refused":"denied by policy"}
        {"seq":14,"time":"2026-11-28T10:00:01.600000Z","type":"k8s.response","request":11,"requestId":"req-2","status":201,"durationMs":3.4,"bytes":500}
        """;

    private static List<JsonObject> Export()
    {
        var elements = Records.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(line => JsonDocument.Parse(line).RootElement)
            .ToList();
        return [.. KubernetesAuditEventExporter.Export(elements)];
    }

    [Fact]
    public void One_event_per_request()
    {
        var events = Export();
        Assert.Equal(3, events.Count);
        Assert.All(events, e =>
        {
            Assert.Equal("Event", (string?)e["kind"]);
            Assert.Equal("audit.k8s.io/v1", (string?)e["apiVersion"]);
        });
        Assert.Equal(["req-1", "req-2", "req-3"], events.Select(e => (string?)e["auditID"]));
    }

    [Fact]
    public void Metadata_event_with_response()
    {
        var e = Export()[0];
        Assert.Equal("Metadata", (string?)e["level"]);
        Assert.Equal("ResponseComplete", (string?)e["stage"]);
        Assert.Equal("/api/v1/namespaces/default/secrets/db?x=y", (string?)e["requestURI"]);
        Assert.Equal("get", (string?)e["verb"]);
        Assert.Equal("repo:acme/api:ref:refs/heads/main", (string?)e["user"]!["username"]);
        Assert.Equal("nhiaudit:workloads", (string?)e["user"]!["groups"]![0]);
        Assert.Equal("github", (string?)e["user"]!["extra"]!["nhiaudit.io/kind"]![0]);
        Assert.Equal("acme/api", (string?)e["user"]!["extra"]!["nhiaudit.io/repository"]![0]);
        Assert.Equal("123456", (string?)e["user"]!["extra"]!["nhiaudit.io/run-id"]![0]);
        Assert.Equal("nhiaudit:acme-api", (string?)e["impersonatedUser"]!["username"]);
        Assert.Equal(2, e["impersonatedUser"]!["groups"]!.AsArray().Count);
        Assert.Equal("10.1.2.3", (string?)e["sourceIPs"]![0]);
        Assert.Equal("kubectl/v1.31.0", (string?)e["userAgent"]);
        var objectRef = e["objectRef"]!.AsObject();
        Assert.Equal("secrets", (string?)objectRef["resource"]);
        Assert.Equal("default", (string?)objectRef["namespace"]);
        Assert.Equal("db", (string?)objectRef["name"]);
        Assert.Equal("v1", (string?)objectRef["apiVersion"]);
        Assert.False(objectRef.ContainsKey("apiGroup"));
        Assert.False(objectRef.ContainsKey("subresource"));
        Assert.Equal(200, (int)e["responseStatus"]!["code"]!);
        Assert.False(e.AsObject().ContainsKey("requestObject"));
        Assert.Equal("2026-11-28T10:00:01.000000Z", (string?)e["requestReceivedTimestamp"]);
        Assert.Equal("2026-11-28T10:00:01.020000Z", (string?)e["stageTimestamp"]);
        Assert.Equal("10", (string?)e["annotations"]!["nhiaudit.io/seq"]);
        Assert.Equal("allow", (string?)e["annotations"]!["authorization.k8s.io/decision"]);
        Assert.Equal("deployers-read", (string?)e["annotations"]!["authorization.k8s.io/reason"]);
        Assert.NotNull(e["annotations"]!["nhiaudit.io/masked"]);
    }

    [Fact]
    public void Request_response_event_with_body()
    {
        var e = Export()[1];
        Assert.Equal("RequestResponse", (string?)e["level"]);
        Assert.Equal("ResponseComplete", (string?)e["stage"]);
        Assert.Equal(3, (int)e["requestObject"]!["spec"]!["replicas"]!);
        Assert.Equal("2001:db8::1", (string?)e["sourceIPs"]![0]);
        Assert.Equal("apps", (string?)e["objectRef"]!["apiGroup"]);
        Assert.Equal("scale", (string?)e["objectRef"]!["subresource"]);
        Assert.Equal(201, (int)e["responseStatus"]!["code"]!);
        Assert.Equal("/subscriptions/s/rg/x", (string?)e["user"]!["extra"]!["nhiaudit.io/mirid"]![0]);
        Assert.Equal("2026-11-28T10:00:01.600000Z", (string?)e["stageTimestamp"]);
    }

    [Fact]
    public void Request_without_response_is_request_received()
    {
        var e = Export()[2];
        Assert.Equal("RequestReceived", (string?)e["stage"]);
        Assert.Equal("deletecollection", (string?)e["verb"]);
        Assert.Equal("forbid", (string?)e["annotations"]!["authorization.k8s.io/decision"]);
        Assert.Equal("no-kube-system", (string?)e["annotations"]!["authorization.k8s.io/reason"]);
        Assert.Equal(403, (int)e["responseStatus"]!["code"]!);
        Assert.False(e.AsObject().ContainsKey("impersonatedUser"));
        Assert.False(e["user"]!.AsObject().ContainsKey("extra") && e["user"]!["extra"]!.AsObject().ContainsKey("nhiaudit.io/repository"));
        Assert.Equal("2026-11-28T10:00:02.000000Z", (string?)e["stageTimestamp"]);
    }

    [Fact]
    public void Events_serialize()
    {
        foreach (var e in Export())
        {
            using var doc = JsonDocument.Parse(e.ToJsonString());
            Assert.Equal(JsonValueKind.Object, doc.RootElement.ValueKind);
        }
    }

    [Theory]
    [InlineData("10.1.2.3:51234", "10.1.2.3")]
    [InlineData("[2001:db8::1]:443", "2001:db8::1")]
    [InlineData("2001:db8::1", "2001:db8::1")]
    [InlineData("10.1.2.3", "10.1.2.3")]
    public void Host_of(string endpoint, string host) => Assert.Equal(host, KubernetesAuditEventExporter.HostOf(endpoint));

    [Fact]
    public void Non_objects_and_other_types_are_skipped()
    {
        using var doc = JsonDocument.Parse("""[1, "x", {"type":"pg.statement"}, {"type":"k8s.response","request":5}]""");
        Assert.Empty(KubernetesAuditEventExporter.Export(doc.RootElement.EnumerateArray()));
    }
}
