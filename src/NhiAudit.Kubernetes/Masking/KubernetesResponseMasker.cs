using System.Buffers;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using NhiAudit.Kubernetes.Classification;

namespace NhiAudit.Kubernetes.Masking;

/// <summary>
/// Masks what the API server returns (and the audit copy of what a client sends): a Secret's <c>data</c> and
/// <c>stringData</c> values, including the copy in its <c>kubectl.kubernetes.io/last-applied-configuration</c> annotation;
/// the configured ConfigMap keys; and, when detectors are configured, every other JSON string value and log text.
/// </summary>
/// <remarks>
/// A Secret is an object of kind <c>Secret</c>, an item of a <c>SecretList</c>, or — when the request is on
/// <c>secrets</c> — a kind-less top-level object, list item, watch event object or Table row object. Masked <c>data</c>
/// values are <c>KioqKg==</c> (base64 of <c>****</c>) so clients that decode them still work.
/// </remarks>
internal sealed class KubernetesResponseMasker
{
    /// <summary>What a masked text value becomes.</summary>
    public const string Redacted = "****";

    /// <summary>What a masked base64 value (Secret <c>data</c>, ConfigMap <c>binaryData</c>) becomes: base64 of <c>****</c>.</summary>
    public const string RedactedBase64 = "KioqKg==";

    /// <summary>The annotation kubectl apply keeps the whole last applied object in, Secret values in clear included.</summary>
    public const string LastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration";

    private const string LastAppliedField = "last-applied-configuration";
    private const int MaxDepth = 256;
    private const int MaxLastAppliedNesting = 4;

    private static readonly JsonDocumentOptions DocumentOptions = new()
    {
        MaxDepth = MaxDepth,
        AllowDuplicateProperties = false,
        CommentHandling = JsonCommentHandling.Disallow,
        AllowTrailingCommas = false,
    };

    private static readonly JsonWriterOptions WriterOptions = new()
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        MaxDepth = MaxDepth * (MaxLastAppliedNesting + 1),
    };

    private readonly KubernetesMaskingOptions _options;
    private readonly IValueMasker _masker;
    private readonly string[][] _configMapPatterns;

    /// <summary>Creates the masker.</summary>
    /// <param name="options">What to mask.</param>
    /// <param name="masker">The value masker, for the detectors.</param>
    /// <exception cref="ArgumentException">A <see cref="KubernetesMaskingOptions.ConfigMapKeys"/> entry is not <c>namespace/name/key</c>.</exception>
    public KubernetesResponseMasker(KubernetesMaskingOptions options, IValueMasker masker)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(masker);
        _options = options;
        _masker = masker;
        _configMapPatterns = [.. options.ConfigMapKeys.Select(ParsePattern)];
    }

    private bool Detectors => _options.DetectorsInResponses && _masker.HasDetectors;

    /// <summary>
    /// True when a response to this request may carry values to mask: secrets, configmaps (when ConfigMap keys are
    /// configured), their lists, tables and watches; any resource's JSON and pod logs when detectors are on; and any
    /// unclassified request while anything is to be masked.
    /// </summary>
    /// <param name="info">The classified request.</param>
    /// <returns>Whether the response must go through <see cref="MaskJson(ReadOnlySpan{byte}, KubernetesRequestInfo?, out KubernetesMaskReport)"/> or <see cref="MaskText"/>.</returns>
    public bool AppliesTo(KubernetesRequestInfo info)
    {
        ArgumentNullException.ThrowIfNull(info);
        if (info.IsUnclassified)
        {
            // Should the policy let an unclassified request through, mask what its JSON turns out to hold.
            return _options.Secrets || _configMapPatterns.Length > 0 || Detectors;
        }

        if (!info.IsResourceRequest)
        {
            return false;
        }

        if (info.Subresource is "exec" or "attach" or "portforward" or "proxy" || info.Verb == "proxy")
        {
            return false; // streams and proxied content, not API objects
        }

        if (info.Resource == "pods" && info.Subresource == "log")
        {
            return Detectors;
        }

        return (_options.Secrets && info.Resource == "secrets")
            || (_configMapPatterns.Length > 0 && info.Resource == "configmaps")
            || Detectors;
    }

    /// <summary>True when <see cref="MaskText"/> is the masking for this request's response (pod logs).</summary>
    /// <param name="info">The classified request.</param>
    /// <returns>Whether the response is text.</returns>
    public static bool IsTextResponse(KubernetesRequestInfo info) =>
        info is not null && info.Resource == "pods" && info.Subresource == "log";

    /// <summary>Masks a whole JSON document: an object, a List, a Table, a WatchEvent, a Status.</summary>
    /// <param name="utf8Json">The document.</param>
    /// <param name="report">What was masked.</param>
    /// <returns>The masked document as UTF-8 (a copy of the input when nothing was masked).</returns>
    /// <exception cref="KubernetesMaskingException">The input is not well-formed JSON.</exception>
    public byte[] MaskJson(ReadOnlySpan<byte> utf8Json, out KubernetesMaskReport report) => MaskJson(utf8Json, null, out report);

    /// <summary>Masks a whole JSON document, using the request to recognize kind-less Secrets and ConfigMaps.</summary>
    /// <param name="utf8Json">The document.</param>
    /// <param name="info">The request the document answers; null when unknown.</param>
    /// <param name="report">What was masked.</param>
    /// <returns>The masked document as UTF-8 (a copy of the input when nothing was masked).</returns>
    /// <exception cref="KubernetesMaskingException">The input is not well-formed JSON.</exception>
    public byte[] MaskJson(ReadOnlySpan<byte> utf8Json, KubernetesRequestInfo? info, out KubernetesMaskReport report) =>
        Mask(utf8Json, info, isRequestBody: false, out report);

    /// <summary>
    /// Masks the audit-log copy of a mutation's body by the same rules, so a Secret's values never reach the log. On a
    /// request on secrets a kind-less body (a merge or strategic merge patch) is a Secret, and a JSON patch has the value of
    /// every operation outside <c>/metadata/</c> masked.
    /// </summary>
    /// <param name="json">The body as UTF-8 JSON.</param>
    /// <param name="report">What was masked.</param>
    /// <returns>The masked body.</returns>
    /// <exception cref="KubernetesMaskingException">The body is not well-formed JSON (a YAML apply patch, say).</exception>
    public byte[] MaskRequestBody(ReadOnlySpan<byte> json, out KubernetesMaskReport report) => MaskRequestBody(json, null, out report);

    /// <summary>Masks the audit-log copy of a mutation's body, using the request to recognize kind-less Secret and ConfigMap bodies.</summary>
    /// <param name="json">The body as UTF-8 JSON.</param>
    /// <param name="info">The request; null when unknown.</param>
    /// <param name="report">What was masked.</param>
    /// <returns>The masked body.</returns>
    /// <exception cref="KubernetesMaskingException">The body is not well-formed JSON.</exception>
    public byte[] MaskRequestBody(ReadOnlySpan<byte> json, KubernetesRequestInfo? info, out KubernetesMaskReport report) =>
        Mask(json, info, isRequestBody: true, out report);

    /// <summary>Masks text (pod logs): the detectors only.</summary>
    /// <param name="text">The text.</param>
    /// <param name="report">What was masked.</param>
    /// <returns>The masked text; the same instance when nothing was found.</returns>
    public string MaskText(string text, out KubernetesMaskReport report)
    {
        ArgumentNullException.ThrowIfNull(text);
        report = default;
        if (!Detectors || text.Length == 0)
        {
            return text;
        }

        var masked = _masker.MaskDetected(text, out var found);
        if (found != SensitiveValueKinds.None)
        {
            report.Detected = found;
            report.Add("text");
        }

        return masked;
    }

    private byte[] Mask(ReadOnlySpan<byte> utf8Json, KubernetesRequestInfo? info, bool isRequestBody, out KubernetesMaskReport report)
    {
        var state = new State(info, Detectors);
        try
        {
            var root = JsonNode.Parse(utf8Json, nodeOptions: null, DocumentOptions);
            if (root is not null)
            {
                root = VisitRoot(root, state, isRequestBody);
            }

            report = state.Report;
            return root is null || state.Report.MaskedValues == 0 ? utf8Json.ToArray() : Serialize(root);
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or ArgumentException or FormatException)
        {
            throw new KubernetesMaskingException("The body is not well-formed JSON: " + ex.Message, ex);
        }
    }

    private static byte[] Serialize(JsonNode root)
    {
        var buffer = new ArrayBufferWriter<byte>(4096);
        using (var writer = new Utf8JsonWriter(buffer, WriterOptions))
        {
            root.WriteTo(writer);
        }

        return buffer.WrittenSpan.ToArray();
    }

    private static string SerializeToString(JsonNode root) => System.Text.Encoding.UTF8.GetString(Serialize(root));

    private JsonNode VisitRoot(JsonNode root, State state, bool isRequestBody)
    {
        switch (root)
        {
            case JsonObject obj:
                VisitObject(obj, state.RequestHint, state, 0);
                return obj;
            case JsonArray array when isRequestBody && state.RequestHint is "Secret" or "ConfigMap":
                MaskJsonPatch(array, state);
                return array;
            case JsonArray array:
                VisitArray(array, null, state, 0);
                return array;
            case JsonValue value:
                return Detect(value, state) ?? value;
            default:
                return root;
        }
    }

    private void Visit(JsonNode node, string? hint, State state, int depth)
    {
        if (node is JsonObject obj)
        {
            VisitObject(obj, hint, state, depth + 1);
        }
        else if (node is JsonArray array)
        {
            VisitArray(array, null, state, depth + 1);
        }
    }

    private void VisitArray(JsonArray array, string? itemHint, State state, int depth)
    {
        for (var i = 0; i < array.Count; i++)
        {
            var item = array[i];
            if (item is JsonValue value)
            {
                if (Detect(value, state) is { } replacement)
                {
                    array[i] = replacement;
                }
            }
            else if (item is not null)
            {
                Visit(item, itemHint, state, depth);
            }
        }
    }

    private void VisitObject(JsonObject obj, string? hint, State state, int depth)
    {
        var kind = StringOf(obj, "kind");
        var effective = kind ?? hint;
        var isSecret = _options.Secrets && effective == "Secret";
        var isConfigMap = _configMapPatterns.Length > 0 && effective == "ConfigMap";
        string? itemHint = kind switch
        {
            null => hint,
            "List" => state.RequestHint,
            _ when kind.EndsWith("List", StringComparison.Ordinal) => kind[..^4],
            _ => null,
        };

        for (var i = 0; i < obj.Count; i++)
        {
            var (key, child) = obj.GetAt(i);
            if (child is null)
            {
                continue;
            }

            if (isSecret && key.Equals("data", StringComparison.OrdinalIgnoreCase))
            {
                SetIfNew(obj, i, child, MaskAll(child, RedactedBase64, () => OwnerOf(obj, "secrets", state) + " data", state));
                continue;
            }

            if (isSecret && key.Equals("stringData", StringComparison.OrdinalIgnoreCase))
            {
                SetIfNew(obj, i, child, MaskAll(child, Redacted, () => OwnerOf(obj, "secrets", state) + " stringData", state));
                continue;
            }

            if (isConfigMap && child is JsonObject cmData
                && (key.Equals("data", StringComparison.OrdinalIgnoreCase) || key.Equals("binaryData", StringComparison.OrdinalIgnoreCase)))
            {
                MaskConfigMapData(obj, cmData, key, state, depth);
                continue;
            }

            switch (child)
            {
                case JsonValue value:
                    if (Detect(value, state) is { } replacement)
                    {
                        obj.SetAt(i, replacement);
                    }

                    break;
                case JsonObject metadata when key == "metadata":
                    VisitMetadata(metadata, obj, effective, state, depth + 1);
                    break;
                case JsonArray items when key == "items":
                    VisitArray(items, itemHint, state, depth + 1);
                    break;
                case JsonObject inner when key == "object":
                    // A WatchEvent's or a Table row's object.
                    VisitObject(inner, state.RequestHint, state, depth + 1);
                    break;
                default:
                    Visit(child, null, state, depth);
                    break;
            }
        }
    }

    private void VisitMetadata(JsonObject metadata, JsonObject owner, string? ownerKind, State state, int depth)
    {
        for (var i = 0; i < metadata.Count; i++)
        {
            var (key, child) = metadata.GetAt(i);
            switch (child)
            {
                case null:
                    break;
                case JsonObject annotations when key == "annotations":
                    VisitAnnotations(annotations, owner, ownerKind, state, depth + 1);
                    break;
                case JsonValue value:
                    if (Detect(value, state) is { } replacement)
                    {
                        metadata.SetAt(i, replacement);
                    }

                    break;
                default:
                    Visit(child, null, state, depth);
                    break;
            }
        }
    }

    private void VisitAnnotations(JsonObject annotations, JsonObject owner, string? ownerKind, State state, int depth)
    {
        for (var i = 0; i < annotations.Count; i++)
        {
            var (key, child) = annotations.GetAt(i);
            if (child is null)
            {
                continue;
            }

            if (key == LastAppliedAnnotation)
            {
                if (MaskLastApplied(child, owner, ownerKind, state) is { } replacement)
                {
                    annotations.SetAt(i, replacement);
                }

                continue;
            }

            if (child is JsonValue value)
            {
                if (Detect(value, state) is { } replacement)
                {
                    annotations.SetAt(i, replacement);
                }
            }
            else
            {
                Visit(child, null, state, depth);
            }
        }
    }

    /// <summary>The masked last-applied annotation, or null to keep it.</summary>
    private JsonValue? MaskLastApplied(JsonNode annotation, JsonObject owner, string? ownerKind, State state)
    {
        var ownerResource = ownerKind == "Secret" ? "secrets" : ownerKind == "ConfigMap" ? "configmaps" : state.Info?.Resource ?? "";
        var field = OwnerOf(owner, ownerResource, state) + " " + LastAppliedField;
        if (annotation is not JsonValue value || value.GetValueKind() != JsonValueKind.String || state.LastAppliedNesting >= MaxLastAppliedNesting)
        {
            state.Report.Add(field);
            return JsonValue.Create(Redacted);
        }

        var text = value.GetValue<string>();
        JsonNode? inner;
        try
        {
            inner = JsonNode.Parse(text, nodeOptions: null, DocumentOptions);
        }
        catch (JsonException)
        {
            state.Report.Add(field);
            return JsonValue.Create(Redacted);
        }

        if (inner is null)
        {
            return null;
        }

        var nested = new State(state.Info, state.Detectors) { LastAppliedNesting = state.LastAppliedNesting + 1 };
        var innerHint = ownerKind is "Secret" or "ConfigMap" ? ownerKind : state.RequestHint;
        if (inner is JsonObject innerObject)
        {
            VisitObject(innerObject, innerHint, nested, 0);
        }
        else
        {
            inner = VisitRoot(inner, nested, isRequestBody: false);
        }

        if (nested.Report.MaskedValues == 0)
        {
            return null;
        }

        state.Report.Detected |= nested.Report.Detected;
        state.Report.Add(field);
        return JsonValue.Create(SerializeToString(inner));
    }

    private void MaskConfigMapData(JsonObject configMap, JsonObject data, string key, State state, int depth)
    {
        var metadata = configMap["metadata"] as JsonObject;
        var ns = StringOf(metadata, "namespace") ?? state.Info?.Namespace ?? "";
        var name = StringOf(metadata, "name") ?? state.Info?.Name ?? "";
        var binary = key.Equals("binaryData", StringComparison.OrdinalIgnoreCase);
        for (var i = 0; i < data.Count; i++)
        {
            var (dataKey, child) = data.GetAt(i);
            if (child is null)
            {
                continue;
            }

            if (MatchesConfigMapKey(ns, name, dataKey))
            {
                SetIfNew(data, i, child, MaskAll(child, binary ? RedactedBase64 : Redacted, () => ns + "/configmaps/" + name + " " + key + "." + dataKey, state));
            }
            else if (child is JsonValue value)
            {
                if (Detect(value, state) is { } replacement)
                {
                    data.SetAt(i, replacement);
                }
            }
            else
            {
                Visit(child, null, state, depth);
            }
        }
    }

    /// <summary>A JSON patch on a Secret or ConfigMap (audit copy): the value of every operation outside <c>/metadata/</c> is masked.</summary>
    private void MaskJsonPatch(JsonArray operations, State state)
    {
        var isSecret = state.RequestHint == "Secret";
        if (isSecret && !_options.Secrets)
        {
            VisitArray(operations, null, state, 0);
            return;
        }

        var owner = (state.Info?.Namespace ?? "") + "/" + (state.Info?.Resource ?? "") + "/" + (state.Info?.Name ?? "");
        foreach (var operation in operations)
        {
            if (operation is not JsonObject op)
            {
                if (operation is not null)
                {
                    Visit(operation, null, state, 0);
                }

                continue;
            }

            var path = StringOf(op, "path") ?? "";
            for (var i = 0; i < op.Count; i++)
            {
                var (key, child) = op.GetAt(i);
                if (child is null)
                {
                    continue;
                }

                if (key == "value" && MustMaskPatchValue(path, isSecret, state))
                {
                    var binary = path.StartsWith("/data", StringComparison.Ordinal) ? isSecret : path.StartsWith("/binaryData", StringComparison.Ordinal);
                    SetIfNew(op, i, child, MaskAll(child, binary ? RedactedBase64 : Redacted, () => owner + " " + path, state));
                }
                else if (child is JsonValue value)
                {
                    if (Detect(value, state) is { } replacement)
                    {
                        op.SetAt(i, replacement);
                    }
                }
                else
                {
                    Visit(child, null, state, 0);
                }
            }
        }
    }

    private bool MustMaskPatchValue(string path, bool isSecret, State state)
    {
        if (path == "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration")
        {
            return true;
        }

        if (path.StartsWith("/metadata/", StringComparison.Ordinal))
        {
            return path == "/metadata/annotations"; // the whole annotations map may carry last-applied
        }

        if (isSecret)
        {
            return true;
        }

        // ConfigMap: values of matching keys, or anything at or above /data and /binaryData.
        var segments = path.Split('/');
        if (segments.Length >= 3 && segments[1] is "data" or "binaryData")
        {
            var key = segments[2].Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal);
            return MatchesConfigMapKey(state.Info?.Namespace ?? "", state.Info?.Name ?? "", key);
        }

        return segments.Length <= 2;
    }

    /// <summary>Replaces a value wholesale: a string by <paramref name="mask"/>, an object's or array's every non-null member likewise.</summary>
    private static JsonNode MaskAll(JsonNode node, string mask, Func<string> field, State state)
    {
        switch (node)
        {
            case JsonObject obj:
                for (var i = 0; i < obj.Count; i++)
                {
                    var (key, child) = obj.GetAt(i);
                    if (child is not null)
                    {
                        var parent = field;
                        SetIfNew(obj, i, child, MaskAll(child, mask, () => parent() + "." + key, state));
                    }
                }

                return obj;
            case JsonArray array:
                for (var i = 0; i < array.Count; i++)
                {
                    if (array[i] is { } child)
                    {
                        var parent = field;
                        var index = i;
                        var replacement = MaskAll(child, mask, () => parent() + "[" + index.ToString(System.Globalization.CultureInfo.InvariantCulture) + "]", state);
                        if (!ReferenceEquals(replacement, child))
                        {
                            array[i] = replacement;
                        }
                    }
                }

                return array;
            default:
                state.Report.Add(field());
                return JsonValue.Create(mask);
        }
    }

    private static void SetIfNew(JsonObject obj, int index, JsonNode old, JsonNode replacement)
    {
        if (!ReferenceEquals(old, replacement))
        {
            obj.SetAt(index, replacement);
        }
    }

    private JsonValue? Detect(JsonValue value, State state)
    {
        if (!state.Detectors || value.GetValueKind() != JsonValueKind.String)
        {
            return null;
        }

        var text = value.GetValue<string>();
        var masked = _masker.MaskDetected(text, out var found);
        if (found == SensitiveValueKinds.None || ReferenceEquals(masked, text) || masked == text)
        {
            return null;
        }

        state.Report.Detected |= found;
        state.Report.Add(value.GetPath());
        return JsonValue.Create(masked);
    }

    private static string OwnerOf(JsonObject obj, string resource, State state)
    {
        var metadata = obj["metadata"] as JsonObject;
        var ns = StringOf(metadata, "namespace") ?? state.Info?.Namespace ?? "";
        var name = StringOf(metadata, "name") ?? state.Info?.Name ?? "";
        return ns + "/" + resource + "/" + name;
    }

    private static string? StringOf(JsonObject? obj, string property) =>
        obj is not null && obj.TryGetPropertyValue(property, out var node) && node is JsonValue value
            && value.GetValueKind() == JsonValueKind.String
            ? value.GetValue<string>()
            : null;

    private static string[] ParsePattern(string pattern)
    {
        var parts = pattern?.Split('/') ?? [];
        if (parts.Length != 3 || parts.Any(p => p.Length == 0))
        {
            throw new ArgumentException($"The ConfigMap key pattern '{pattern}' is not namespace/name/key ('*' matches any run of characters in a part).", nameof(pattern));
        }

        return parts;
    }

    private bool MatchesConfigMapKey(string ns, string name, string key)
    {
        foreach (var pattern in _configMapPatterns)
        {
            if (Glob(pattern[0], ns) && Glob(pattern[1], name) && Glob(pattern[2], key))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Matches <paramref name="text"/> against a pattern where <c>*</c> is any run of characters (ordinal, linear-ish backtracking).</summary>
    internal static bool Glob(string pattern, string text)
    {
        int p = 0, t = 0, star = -1, mark = 0;
        while (t < text.Length)
        {
            if (p < pattern.Length && pattern[p] != '*' && pattern[p] == text[t])
            {
                p++;
                t++;
            }
            else if (p < pattern.Length && pattern[p] == '*')
            {
                star = p++;
                mark = t;
            }
            else if (star >= 0)
            {
                p = star + 1;
                t = ++mark;
            }
            else
            {
                return false;
            }
        }

        while (p < pattern.Length && pattern[p] == '*')
        {
            p++;
        }

        return p == pattern.Length;
    }

    private sealed class State(KubernetesRequestInfo? info, bool detectors)
    {
        public KubernetesMaskReport Report;

        public KubernetesRequestInfo? Info { get; } = info;

        public bool Detectors { get; } = detectors;

        public int LastAppliedNesting { get; init; }

        /// <summary>The kind a kind-less object answering this request is.</summary>
        public string? RequestHint { get; } = info?.Resource switch
        {
            "secrets" when info.ApiGroup.Length == 0 => "Secret",
            "configmaps" when info.ApiGroup.Length == 0 => "ConfigMap",
            _ => null,
        };
    }
}
