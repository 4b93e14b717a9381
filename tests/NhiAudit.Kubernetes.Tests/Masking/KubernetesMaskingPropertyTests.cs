using System.Text;
using System.Text.Json.Nodes;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using NhiAudit.Kubernetes.Classification;
using NhiAudit.Kubernetes.Masking;

namespace NhiAudit.Kubernetes.Tests.Masking;

/// <summary>Whatever arrives, masking throws nothing but <see cref="KubernetesMaskingException"/>, and planted Secret values never survive.</summary>
public sealed class KubernetesMaskingPropertyTests
{
    private const string LastApplied = KubernetesResponseMasker.LastAppliedAnnotation;

    private static readonly KubernetesResponseMasker[] Maskers =
    [
        new(new KubernetesMaskingOptions(), KubernetesResponseMaskerTests.NoDetectors),
        new(new KubernetesMaskingOptions { ConfigMapKeys = ["*/*/*"] }, KubernetesResponseMaskerTests.WithDetectors),
    ];

    private static readonly KubernetesRequestInfo?[] Infos =
    [
        null,
        KubernetesRequestClassifier.Classify("GET", "/api/v1/namespaces/default/secrets", null, null),
        KubernetesRequestClassifier.Classify("PATCH", "/api/v1/namespaces/default/secrets/db", null, "application/json-patch+json"),
        KubernetesRequestClassifier.Classify("GET", "/api/v1/namespaces/default/configmaps", "watch=1", null),
    ];

    private static readonly string[] Keys =
    [
        "kind", "apiVersion", "data", "stringData", "binaryData", "metadata", "annotations", "items", "object", "rows", "cells", "type",
        "name", "namespace", "value", "path", "op", LastApplied, "Data", "x", "",
    ];

    private static readonly string[] Scalars =
    [
        "\"Secret\"", "\"SecretList\"", "\"List\"", "\"Table\"", "\"ConfigMap\"", "\"WatchEvent\"", "\"PartialObjectMetadata\"", "\"/data/a\"",
        "\"" + KubernetesResponseMaskerTests.Jwt + "\"", "\"a@b.cc\"", "\"\"", "\"é😀\\u0000\\n\"", "0", "-1.5e3", "123456789012345678901234567890",
        "true", "false", "null", "\"{\\\"kind\\\":\\\"Secret\\\",\\\"data\\\":{\\\"a\\\":\\\"b\\\"}}\"", "\"{not json\"", "\"\\ud800\"",
    ];

    private static Gen<string> Scalar =>
        Gen.OneOf(Gen.Elements(Scalars), ArbMap.Default.GeneratorFor<string>().Select(s => JsonValue.Create(s ?? "")!.ToJsonString()));

    private static Gen<string> Json(int depth) =>
        depth <= 0
            ? Scalar
            : Gen.Frequency(
                (2, Scalar),
                (3, Gen.ListOf(Gen.Zip(Gen.Elements(Keys), Json(depth - 1)))
                    .Select(pairs => "{" + string.Join(',', pairs.DistinctBy(p => p.Item1).Select(p => JsonValue.Create(p.Item1)!.ToJsonString() + ":" + p.Item2)) + "}")),
                (2, Gen.ListOf(Json(depth - 1)).Select(items => "[" + string.Join(',', items) + "]")));

    private static Gen<byte[]> Mutated =>
        from json in Json(4)
        let bytes = Encoding.UTF8.GetBytes(json)
        from mode in Gen.Choose(0, 3)
        from at in Gen.Choose(0, Math.Max(0, bytes.Length - 1))
        from b in Gen.Choose(0, 255)
        select mode switch
        {
            0 => bytes,
            1 => bytes[..at],
            2 => [.. bytes[..at], (byte)b, .. bytes[at..]],
            _ => [.. bytes, (byte)b],
        };

    private static bool OnlyMaskingExceptions(byte[] input)
    {
        foreach (var masker in Maskers)
        {
            foreach (var info in Infos)
            {
                try
                {
                    var output = masker.MaskJson(input, info, out var report);
                    _ = JsonNode.Parse(output); // the output is JSON
                    masker.MaskRequestBody(input, info, out _);
                    if (report.MaskedValues < 0 || (report.Fields?.Count ?? 0) > KubernetesMaskReport.MaxFields)
                    {
                        return false;
                    }
                }
                catch (KubernetesMaskingException)
                {
                }
            }
        }

        return true;
    }

    [Property(MaxTest = 500)]
    public Property Random_json_throws_only_the_masking_exception() => Prop.ForAll(Arb.From(Mutated), OnlyMaskingExceptions);

    private static readonly Func<string, string, string>[] Containers =
    [
        (secret, _) => secret,
        (secret, noise) => "{\"kind\":\"List\",\"apiVersion\":\"v1\",\"items\":[" + noise + "," + secret + "]}",
        (secret, noise) => "{\"kind\":\"Table\",\"apiVersion\":\"meta.k8s.io/v1\",\"rows\":[{\"cells\":[\"db\"],\"object\":" + secret + "},{\"cells\":[" + noise + "]}]}",
        (secret, _) => "{\"type\":\"ADDED\",\"object\":" + secret + "}",
        (secret, noise) => "{\"kind\":\"SecretList\",\"apiVersion\":\"v1\",\"x\":" + noise + ",\"items\":[" + WithoutKind(secret) + "]}",
        (secret, _) => "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\",\"annotations\":{" + JsonValue.Create(LastApplied)!.ToJsonString() + ":" + JsonValue.Create(secret)!.ToJsonString() + "}}}",
        (secret, noise) => "{\"kind\":\"List\",\"items\":[{\"kind\":\"List\",\"items\":[" + secret + "," + noise + "]}]}",
    ];

    private static string WithoutKind(string secret)
    {
        // Secret() starts every document with this; the inner last-applied copy keeps its kind (escaped quotes).
        const string Kind = "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",";
        Assert.StartsWith(Kind, secret, StringComparison.Ordinal);
        return "{\"apiVersion\":\"v1\"," + secret[Kind.Length..];
    }

    private static Gen<(string Document, string Marker)> Planted =>
        from seed in Gen.Choose(0, int.MaxValue)
        from noise in Json(3)
        from noise2 in Json(2)
        from container in Gen.Elements(Containers)
        from place in Gen.Choose(0, 3)
        let marker = "PLANTEDSECRET" + seed.ToString(System.Globalization.CultureInfo.InvariantCulture)
        select (container(Secret(marker, place, noise2), noise), marker);

    private static string Secret(string marker, int where, string noise)
    {
        var b64 = Convert.ToBase64String(Encoding.UTF8.GetBytes(marker));
        var inner = "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"data\":{\"k\":\"" + b64 + "\"},\"stringData\":{\"s\":\"" + marker + "\"},\"metadata\":{\"name\":\"db\"}}";
        var data = where switch
        {
            0 => "\"data\":{\"password\":\"" + b64 + "\",\"x\":" + noise + "}",
            1 => "\"stringData\":{\"token\":\"" + marker + "\"}",
            2 => "\"data\":{\"a\":\"" + b64 + "\"},\"stringData\":{\"b\":\"" + marker + "\"}",
            _ => "\"data\":{}",
        };
        return "{\"apiVersion\":\"v1\",\"kind\":\"Secret\"," + data + ",\"noise\":" + noise
            + ",\"metadata\":{\"name\":\"db\",\"namespace\":\"default\",\"annotations\":{" + JsonValue.Create(LastApplied)!.ToJsonString() + ":" + JsonValue.Create(inner)!.ToJsonString() + "}}}";
    }

    [Property(MaxTest = 500)]
    public Property Planted_secret_values_never_survive() =>
        Prop.ForAll(
            Arb.From(Planted),
            planted =>
            {
                var b64 = Convert.ToBase64String(Encoding.UTF8.GetBytes(planted.Marker));
                foreach (var masker in Maskers)
                {
                    foreach (var info in Infos)
                    {
                        string response, request;
                        KubernetesMaskReport report;
                        try
                        {
                            response = Encoding.UTF8.GetString(masker.MaskJson(Encoding.UTF8.GetBytes(planted.Document), info, out report));
                            request = Encoding.UTF8.GetString(masker.MaskRequestBody(Encoding.UTF8.GetBytes(planted.Document), info, out _));
                        }
                        catch (KubernetesMaskingException)
                        {
                            continue; // the gateway fails closed: nothing passes
                        }

                        foreach (var output in new[] { response, request })
                        {
                            if (output.Contains(planted.Marker, StringComparison.Ordinal) || output.Contains(b64, StringComparison.Ordinal)
                                || output.Contains(b64.TrimEnd('='), StringComparison.Ordinal))
                            {
                                return false;
                            }
                        }

                        if (report.MaskedValues == 0)
                        {
                            return false;
                        }
                    }
                }

                return true;
            });
}
