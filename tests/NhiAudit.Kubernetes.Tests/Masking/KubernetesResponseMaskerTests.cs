using System.Text;
using System.Text.Json.Nodes;
using NhiAudit.Kubernetes.Classification;
using NhiAudit.Kubernetes.Masking;
using NhiAudit.Masking;

namespace NhiAudit.Kubernetes.Tests.Masking;

public sealed class KubernetesResponseMaskerTests
{
    internal static readonly byte[] Key = [.. Enumerable.Range(1, 32).Select(i => (byte)i)];

    internal static readonly MaskingPolicy WithDetectors =
        MaskingPolicy.Create([new MaskingRuleOptions { Name = "test", Detectors = ["all"], Strategy = MaskingStrategy.Redact }], Key);

    internal static readonly MaskingPolicy NoDetectors = MaskingPolicy.Create([], Key);

    internal const string Jwt = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDpidWlsZGVyIn0.c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJl";

    // "s3cr3t-p@ss" and "admin" in base64.
    private const string PasswordB64 = "czNjcjN0LXBAc3M=";
    private const string UserB64 = "YWRtaW4=";

    private static readonly string LastApplied =
        "{\"apiVersion\":\"v1\",\"data\":{\"password\":\"" + PasswordB64 + "\"},\"kind\":\"Secret\",\"metadata\":{\"annotations\":{},\"name\":\"db\",\"namespace\":\"default\"},\"stringData\":{\"token\":\"plain-token-123\"},\"type\":\"Opaque\"}\n";

    private static readonly string Secret = """
        {
            "apiVersion": "v1",
            "data": {
                "password": "czNjcjN0LXBAc3M=",
                "username": "YWRtaW4="
            },
            "kind": "Secret",
            "metadata": {
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": LAST
                },
                "creationTimestamp": "2026-11-28T10:00:00Z",
                "name": "db",
                "namespace": "default",
                "resourceVersion": "1234",
                "uid": "8d0f1c9e-0000-4000-8000-000000000001"
            },
            "type": "Opaque"
        }
        """.Replace("LAST", JsonValue.Create(LastApplied)!.ToJsonString(), StringComparison.Ordinal);

    private static KubernetesResponseMasker Masker(IValueMasker? masker = null, KubernetesMaskingOptions? options = null) =>
        new(options ?? new KubernetesMaskingOptions(), masker ?? NoDetectors);

    private static JsonNode Mask(string json, out KubernetesMaskReport report, KubernetesResponseMasker? masker = null, KubernetesRequestInfo? info = null) =>
        JsonNode.Parse((masker ?? Masker()).MaskJson(Encoding.UTF8.GetBytes(json), info, out report))!;

    private static KubernetesRequestInfo Info(string method, string path, string? query = null) =>
        KubernetesRequestClassifier.Classify(method, path, query, null);

    private static void AssertNoSecret(JsonNode node)
    {
        var text = node.ToJsonString();
        Assert.DoesNotContain(PasswordB64, text, StringComparison.Ordinal);
        Assert.DoesNotContain(UserB64, text, StringComparison.Ordinal);
        Assert.DoesNotContain("plain-token-123", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Secret_data_values_become_base64_of_stars_and_last_applied_is_masked_inside()
    {
        var masked = Mask(Secret, out var report);

        Assert.Equal("KioqKg==", (string?)masked["data"]!["password"]);
        Assert.Equal("KioqKg==", (string?)masked["data"]!["username"]);
        Assert.Equal("****", Encoding.UTF8.GetString(Convert.FromBase64String((string)masked["data"]!["password"]!)));
        Assert.Equal("db", (string?)masked["metadata"]!["name"]);
        Assert.Equal("1234", (string?)masked["metadata"]!["resourceVersion"]);

        var inner = JsonNode.Parse((string)masked["metadata"]!["annotations"]!["kubectl.kubernetes.io/last-applied-configuration"]!)!;
        Assert.Equal("KioqKg==", (string?)inner["data"]!["password"]);
        Assert.Equal("****", (string?)inner["stringData"]!["token"]);
        Assert.Equal("db", (string?)inner["metadata"]!["name"]);

        AssertNoSecret(masked);
        Assert.Equal(3, report.MaskedValues);
        Assert.Contains("default/secrets/db data.password", report.Fields!);
        Assert.Contains("default/secrets/db data.username", report.Fields!);
        Assert.Contains("default/secrets/db last-applied-configuration", report.Fields!);
    }

    [Fact]
    public void Unparseable_last_applied_is_replaced()
    {
        var json = """{"kind":"Secret","metadata":{"name":"x","annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"data\":{\"password\":\"czNjcjN0LXBAc3M=\""}}}""";
        var masked = Mask(json, out var report);
        Assert.Equal("****", (string?)masked["metadata"]!["annotations"]!["kubectl.kubernetes.io/last-applied-configuration"]);
        Assert.Equal(1, report.MaskedValues);
        AssertNoSecret(masked);
    }

    [Fact]
    public void Secret_list_items_without_kind_are_masked()
    {
        var json = """
            {"kind":"SecretList","apiVersion":"v1","metadata":{"resourceVersion":"99"},"items":[
              {"metadata":{"name":"db","namespace":"default"},"data":{"password":"czNjcjN0LXBAc3M="},"type":"Opaque"},
              {"metadata":{"name":"tls","namespace":"default"},"data":{"tls.crt":"YWRtaW4=","tls.key":"YWRtaW4="},"type":"kubernetes.io/tls"}]}
            """;
        var masked = Mask(json, out var report);
        AssertNoSecret(masked);
        Assert.Equal(3, report.MaskedValues);
        Assert.Contains("default/secrets/tls data.tls.key", report.Fields!);
        Assert.Equal("kubernetes.io/tls", (string?)masked["items"]![1]!["type"]);
    }

    [Fact]
    public void Mixed_list_masks_only_the_secrets()
    {
        var json = """
            {"kind":"List","apiVersion":"v1","items":[
              {"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"cfg","namespace":"default"},"data":{"password":"YWRtaW4="}},
              {"kind":"Secret","apiVersion":"v1","metadata":{"name":"db","namespace":"default"},"data":{"password":"czNjcjN0LXBAc3M="}}]}
            """;
        var masked = Mask(json, out var report);
        Assert.Equal("YWRtaW4=", (string?)masked["items"]![0]!["data"]!["password"]);
        Assert.Equal("KioqKg==", (string?)masked["items"]![1]!["data"]!["password"]);
        Assert.Equal(1, report.MaskedValues);
    }

    [Fact]
    public void Table_rows_with_objects_are_masked()
    {
        var json = """
            {"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":{"resourceVersion":"5"},
             "columnDefinitions":[{"name":"Name","type":"string","format":"name","description":"Name","priority":0},{"name":"Type","type":"string","format":"","description":"","priority":0}],
             "rows":[{"cells":["db","Opaque",2,"5m"],"object":{"kind":"Secret","apiVersion":"v1","metadata":{"name":"db","namespace":"default"},"data":{"password":"czNjcjN0LXBAc3M=","username":"YWRtaW4="},"type":"Opaque"}},
                     {"cells":["tok","Opaque",1,"5m"],"object":{"metadata":{"name":"tok","namespace":"default"},"stringData":{"t":"plain-token-123"}}}]}
            """;
        var masked = Mask(json, out var report, info: Info("GET", "/api/v1/namespaces/default/secrets"));
        AssertNoSecret(masked);
        Assert.Equal(3, report.MaskedValues);
        Assert.Equal("db", (string?)masked["rows"]![0]!["cells"]![0]);
    }

    [Fact]
    public void Table_rows_with_partial_metadata_have_last_applied_masked()
    {
        var row = new JsonObject
        {
            ["kind"] = "PartialObjectMetadata",
            ["apiVersion"] = "meta.k8s.io/v1",
            ["metadata"] = new JsonObject
            {
                ["name"] = "db",
                ["namespace"] = "default",
                ["annotations"] = new JsonObject { ["kubectl.kubernetes.io/last-applied-configuration"] = LastApplied },
            },
        };
        var table = new JsonObject { ["kind"] = "Table", ["apiVersion"] = "meta.k8s.io/v1", ["rows"] = new JsonArray(new JsonObject { ["cells"] = new JsonArray("db"), ["object"] = row }) };
        var masked = Mask(table.ToJsonString(), out var report, info: Info("GET", "/api/v1/namespaces/default/secrets"));
        AssertNoSecret(masked);
        Assert.Equal(1, report.MaskedValues);
    }

    [Fact]
    public void Watch_events_are_masked()
    {
        var json = """{"type":"MODIFIED","object":{"kind":"Secret","apiVersion":"v1","metadata":{"name":"db","namespace":"default","resourceVersion":"7"},"data":{"password":"czNjcjN0LXBAc3M="}}}""";
        var masked = Mask(json, out var report);
        AssertNoSecret(masked);
        Assert.Equal("MODIFIED", (string?)masked["type"]);
        Assert.Equal(1, report.MaskedValues);

        // Kind-less object in a watch on secrets.
        var kindless = """{"type":"ADDED","object":{"metadata":{"name":"db"},"data":{"password":"czNjcjN0LXBAc3M="}}}""";
        AssertNoSecret(Mask(kindless, out _, info: Info("GET", "/api/v1/namespaces/default/secrets", "watch=1")));
    }

    [Fact]
    public void Kindless_top_level_secret_is_masked_when_the_request_is_on_secrets()
    {
        var json = """{"metadata":{"name":"db"},"data":{"password":"czNjcjN0LXBAc3M="}}""";
        Assert.Contains(PasswordB64, Mask(json, out _).ToJsonString(), StringComparison.Ordinal);
        var masked = Mask(json, out var report, info: Info("GET", "/api/v1/namespaces/default/secrets/db"));
        AssertNoSecret(masked);
        Assert.Equal(["default/secrets/db data.password"], report.Fields!);
    }

    [Fact]
    public void Status_is_left_alone()
    {
        var json = """{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"secrets \"db\" is forbidden","reason":"Forbidden","details":{"name":"db","kind":"secrets"},"code":403}""";
        var bytes = Encoding.UTF8.GetBytes(json);
        Assert.Equal(bytes, Masker(WithDetectors).MaskJson(bytes, out var report));
        Assert.Equal(0, report.MaskedValues);
    }

    [Fact]
    public void Secrets_option_off_leaves_secrets()
    {
        var masked = Mask(Secret, out var report, Masker(options: new KubernetesMaskingOptions { Secrets = false }));
        Assert.Equal(PasswordB64, (string?)masked["data"]!["password"]);
        Assert.Equal(0, report.MaskedValues);
    }

    [Fact]
    public void ConfigMap_keys_matching_a_pattern_are_masked()
    {
        var options = new KubernetesMaskingOptions { ConfigMapKeys = ["prod/app-*/db.*", "*/*/api-key"] };
        var json = """
            {"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"app-web","namespace":"prod"},
             "data":{"db.password":"hunter2","db.host":"pg","api-key":"k-123","color":"blue"},"binaryData":{"db.cert":"YWRtaW4="}}
            """;
        var masked = Mask(json, out var report, Masker(options: options));
        Assert.Equal("****", (string?)masked["data"]!["db.password"]);
        Assert.Equal("****", (string?)masked["data"]!["db.host"]);
        Assert.Equal("****", (string?)masked["data"]!["api-key"]);
        Assert.Equal("blue", (string?)masked["data"]!["color"]);
        Assert.Equal("KioqKg==", (string?)masked["binaryData"]!["db.cert"]);
        Assert.Equal(4, report.MaskedValues);
        Assert.Contains("prod/configmaps/app-web data.db.password", report.Fields!);

        var other = json.Replace("\"prod\"", "\"dev\"", StringComparison.Ordinal);
        var maskedOther = Mask(other, out _, Masker(options: options));
        Assert.Equal("hunter2", (string?)maskedOther["data"]!["db.password"]);
        Assert.Equal("****", (string?)maskedOther["data"]!["api-key"]);
    }

    [Fact]
    public void Invalid_configmap_pattern_is_refused() =>
        Assert.Throws<ArgumentException>(() => Masker(options: new KubernetesMaskingOptions { ConfigMapKeys = ["just-a-key"] }));

    [Fact]
    public void Detectors_mask_a_jwt_in_a_pod_env_value()
    {
        var json = """
            {"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"default"},
             "spec":{"containers":[{"name":"web","image":"nginx:1.27","env":[{"name":"TOKEN","value":"JWT"},{"name":"MODE","value":"prod"}]}]},
             "status":{"phase":"Running"}}
            """.Replace("JWT", Jwt, StringComparison.Ordinal);
        var masked = Mask(json, out var report, Masker(WithDetectors));
        Assert.DoesNotContain(Jwt, masked.ToJsonString(), StringComparison.Ordinal);
        Assert.Equal("prod", (string?)masked["spec"]!["containers"]![0]!["env"]![1]!["value"]);
        Assert.Equal("nginx:1.27", (string?)masked["spec"]!["containers"]![0]!["image"]);
        Assert.True(report.Detected.HasFlag(SensitiveValueKinds.Jwt));
        Assert.Equal(["$.spec.containers[0].env[0].value"], report.Fields!);

        // Off: untouched.
        Mask(json, out var off, Masker(WithDetectors, new KubernetesMaskingOptions { DetectorsInResponses = false }));
        Assert.Equal(0, off.MaskedValues);
    }

    [Fact]
    public void Detectors_mask_table_cells()
    {
        var json = """{"kind":"Table","apiVersion":"meta.k8s.io/v1","rows":[{"cells":["web","JWT",3]}]}""".Replace("JWT", Jwt, StringComparison.Ordinal);
        var masked = Mask(json, out var report, Masker(WithDetectors));
        Assert.DoesNotContain(Jwt, masked.ToJsonString(), StringComparison.Ordinal);
        Assert.Equal(3, (int)masked["rows"]![0]!["cells"]![2]!);
        Assert.Equal(1, report.MaskedValues);
    }

    [Fact]
    public void Unchanged_documents_are_returned_byte_for_byte()
    {
        var json = "{ \"kind\" : \"Pod\", \"n\": 1.50e3, \"big\": 123456789012345678901234567890 }";
        var bytes = Encoding.UTF8.GetBytes(json);
        Assert.Equal(bytes, Masker(WithDetectors).MaskJson(bytes, out _));
    }

    [Fact]
    public void Numbers_survive_reserialization()
    {
        var json = """{"kind":"Secret","data":{"a":"YWRtaW4="},"n":123456789012345678901234567890,"f":1.5e300,"u":"é😀<>&"}""";
        var masked = Masker().MaskJson(Encoding.UTF8.GetBytes(json), out _);
        var text = Encoding.UTF8.GetString(masked);
        Assert.Contains("123456789012345678901234567890", text, StringComparison.Ordinal);
        Assert.Contains("1.5e300", text, StringComparison.Ordinal);
        Assert.Equal("é😀<>&", (string?)JsonNode.Parse(text)!["u"]);
    }

    [Theory]
    [InlineData("")]
    [InlineData("not json")]
    [InlineData("{\"kind\":\"Secret\",")]
    [InlineData("{\"kind\":\"Secret\",\"data\":{\"a\":\"x\"},\"data\":{\"a\":\"y\"}}")]
    [InlineData("{\"a\":1} {\"b\":2}")]
    [InlineData("{/*c*/\"a\":1}")]
    [InlineData("kind: Secret\ndata:\n  a: x\n")]
    public void Malformed_input_throws_the_masking_exception(string input) =>
        Assert.Throws<KubernetesMaskingException>(() => Masker().MaskJson(Encoding.UTF8.GetBytes(input), out _));

    [Fact]
    public void Invalid_utf8_throws_the_masking_exception() =>
        Assert.Throws<KubernetesMaskingException>(() => Masker(WithDetectors).MaskJson([(byte)'"', 0xC3, 0x28, (byte)'"'], out _));

    [Fact]
    public void Too_deep_throws_the_masking_exception()
    {
        var deep = new string('[', 1000) + new string(']', 1000);
        Assert.Throws<KubernetesMaskingException>(() => Masker().MaskJson(Encoding.UTF8.GetBytes(deep), out _));
    }

    [Fact]
    public void Case_variants_of_data_are_masked_too()
    {
        var masked = Mask("""{"kind":"Secret","Data":{"a":"czNjcjN0LXBAc3M="},"STRINGDATA":{"b":"plain-token-123"}}""", out var report);
        AssertNoSecret(masked);
        Assert.Equal(2, report.MaskedValues);
    }

    [Fact]
    public void Odd_secret_shapes_are_masked_wholesale()
    {
        var masked = Mask("""{"kind":"Secret","data":["czNjcjN0LXBAc3M=",{"x":"YWRtaW4="}],"stringData":"plain-token-123"}""", out var report);
        AssertNoSecret(masked);
        Assert.Equal(3, report.MaskedValues);
    }

    [Fact]
    public void Request_body_create_secret_is_masked()
    {
        var body = """{"apiVersion":"v1","kind":"Secret","metadata":{"name":"db","namespace":"default"},"stringData":{"token":"plain-token-123"},"data":{"password":"czNjcjN0LXBAc3M="}}""";
        var masked = JsonNode.Parse(Masker().MaskRequestBody(Encoding.UTF8.GetBytes(body), out var report))!;
        AssertNoSecret(masked);
        Assert.Equal(2, report.MaskedValues);
    }

    [Fact]
    public void Request_body_merge_patch_on_a_secret_is_masked()
    {
        var info = KubernetesRequestClassifier.Classify("PATCH", "/api/v1/namespaces/default/secrets/db", null, "application/merge-patch+json");
        var body = """{"data":{"password":"czNjcjN0LXBAc3M="},"metadata":{"labels":{"a":"b"}}}""";
        var masked = JsonNode.Parse(Masker().MaskRequestBody(Encoding.UTF8.GetBytes(body), info, out var report))!;
        AssertNoSecret(masked);
        Assert.Equal("b", (string?)masked["metadata"]!["labels"]!["a"]);
        Assert.Equal(["default/secrets/db data.password"], report.Fields!);
    }

    [Fact]
    public void Request_body_json_patch_on_a_secret_is_masked()
    {
        var info = KubernetesRequestClassifier.Classify("PATCH", "/api/v1/namespaces/default/secrets/db", null, "application/json-patch+json");
        var body = """
            [{"op":"replace","path":"/data/password","value":"czNjcjN0LXBAc3M="},
             {"op":"add","path":"/stringData","value":{"token":"plain-token-123"}},
             {"op":"add","path":"/metadata/labels/team","value":"payments"},
             {"op":"add","path":"/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration","value":"{\"data\":{\"u\":\"YWRtaW4=\"}}"},
             {"op":"remove","path":"/data/old"}]
            """;
        var masked = JsonNode.Parse(Masker().MaskRequestBody(Encoding.UTF8.GetBytes(body), info, out var report))!;
        AssertNoSecret(masked);
        Assert.Equal("KioqKg==", (string?)masked[0]!["value"]);
        Assert.Equal("****", (string?)masked[1]!["value"]!["token"]);
        Assert.Equal("payments", (string?)masked[2]!["value"]);
        Assert.Equal(3, report.MaskedValues);
    }

    [Fact]
    public void Request_body_json_patch_on_a_configmap_masks_matching_keys()
    {
        var masker = Masker(options: new KubernetesMaskingOptions { ConfigMapKeys = ["default/app/password"] });
        var info = KubernetesRequestClassifier.Classify("PATCH", "/api/v1/namespaces/default/configmaps/app", null, "application/json-patch+json");
        var body = """[{"op":"replace","path":"/data/password","value":"hunter2"},{"op":"replace","path":"/data/color","value":"blue"}]""";
        var masked = JsonNode.Parse(masker.MaskRequestBody(Encoding.UTF8.GetBytes(body), info, out var report))!;
        Assert.Equal("****", (string?)masked[0]!["value"]);
        Assert.Equal("blue", (string?)masked[1]!["value"]);
        Assert.Equal(1, report.MaskedValues);
    }

    [Fact]
    public void Request_body_configmap_uses_the_request_namespace_when_the_body_has_none()
    {
        var masker = Masker(options: new KubernetesMaskingOptions { ConfigMapKeys = ["default/app/password"] });
        var info = Info("POST", "/api/v1/namespaces/default/configmaps");
        var body = """{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"app"},"data":{"password":"hunter2"}}""";
        var masked = JsonNode.Parse(masker.MaskRequestBody(Encoding.UTF8.GetBytes(body), info, out _))!;
        Assert.Equal("****", (string?)masked["data"]!["password"]);
    }

    [Fact]
    public void Text_is_masked_by_detectors_only()
    {
        var log = "2026-11-28T10:00:00Z starting\nAuthorization: Bearer " + Jwt + "\nuser=a@example.com\n";
        var masked = Masker(WithDetectors).MaskText(log, out var report);
        Assert.DoesNotContain(Jwt, masked, StringComparison.Ordinal);
        Assert.DoesNotContain("a@example.com", masked, StringComparison.Ordinal);
        Assert.Contains("starting", masked, StringComparison.Ordinal);
        Assert.NotEqual(SensitiveValueKinds.None, report.Detected);
        Assert.Same(log, Masker().MaskText(log, out var none));
        Assert.Equal(0, none.MaskedValues);
    }

    [Theory]
    [InlineData("GET", "/api/v1/namespaces/default/secrets/db", true, false, true)]
    [InlineData("GET", "/api/v1/namespaces/default/secrets", true, false, true)]
    [InlineData("DELETE", "/api/v1/namespaces/default/secrets/db", true, false, true)]
    [InlineData("GET", "/api/v1/namespaces/default/pods", false, false, true)]
    [InlineData("GET", "/api/v1/namespaces/default/configmaps/app", false, true, true)]
    [InlineData("GET", "/api/v1/namespaces/default/pods/web/log", false, false, true)]
    [InlineData("POST", "/api/v1/namespaces/default/pods/web/exec", false, false, false)]
    [InlineData("GET", "/api/v1/namespaces/default/pods/web/proxy/x", false, false, false)]
    [InlineData("GET", "/version", false, false, false)]
    public void Applies_to(string method, string path, bool plain, bool withConfigMapKeys, bool withDetectors)
    {
        var info = Info(method, path);
        Assert.Equal(plain, Masker().AppliesTo(info));
        Assert.Equal(withConfigMapKeys || plain, Masker(options: new KubernetesMaskingOptions { ConfigMapKeys = ["*/*/x"] }).AppliesTo(info));
        Assert.Equal(withDetectors, Masker(WithDetectors).AppliesTo(info));
        Assert.False(Masker(options: new KubernetesMaskingOptions { Secrets = false }).AppliesTo(info) && info.Resource == "secrets");
    }

    [Fact]
    public void Applies_to_unclassified_requests_while_anything_is_masked()
    {
        var info = Info("GET", "/api/v1/namespaces/default//secrets/db");
        Assert.True(info.IsUnclassified);
        Assert.True(Masker().AppliesTo(info));
        Assert.False(Masker(options: new KubernetesMaskingOptions { Secrets = false }).AppliesTo(info));
    }

    [Theory]
    [InlineData("*", "", true)]
    [InlineData("*", "abc", true)]
    [InlineData("a*c", "abc", true)]
    [InlineData("a*c", "abd", false)]
    [InlineData("*b*", "abc", true)]
    [InlineData("app-*", "app-", true)]
    [InlineData("app-*", "ap", false)]
    [InlineData("abc", "ABC", false)]
    public void Glob(string pattern, string text, bool expected) => Assert.Equal(expected, KubernetesResponseMasker.Glob(pattern, text));
}
