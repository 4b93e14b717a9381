namespace NhiAudit.Kubernetes.Classification;

/// <summary>
/// Reads a Kubernetes API request the way the API server does: a port of <c>RequestInfoFactory.NewRequestInfo</c>
/// (<c>k8s.io/apiserver/pkg/endpoints/request/requestinfo.go</c>) with the prefixes <c>api</c> (groupless) and <c>apis</c>.
/// </summary>
/// <remarks>
/// A path the classifier cannot read the way the API server would (a <c>.</c> or <c>..</c> segment, an empty segment from a
/// doubled slash, a percent escape, a backslash, a control or non-ASCII character) and a resource request the API server
/// would refuse to classify (a method it maps to no verb, <c>/api/v1/watch</c> with nothing after it) get the action
/// <see cref="AccessRequest.UnclassifiedAction"/>, so the policy's default for unclassified requests applies.
/// </remarks>
public static class KubernetesRequestClassifier
{
    private static readonly string[] EmptyParts = [];

    /// <summary>Classifies one request.</summary>
    /// <param name="method">The HTTP method as sent (the API server compares it case-sensitively).</param>
    /// <param name="path">The URL path, percent-decoded as ASP.NET Core's <c>Request.Path</c> gives it.</param>
    /// <param name="queryString">The query string, with or without its leading <c>?</c>; null or empty for none.</param>
    /// <param name="contentType">The request's Content-Type, for the patch type; null for none.</param>
    /// <returns>What the request asks for.</returns>
    public static KubernetesRequestInfo Classify(string method, string path, string? queryString, string? contentType)
    {
        method ??= "";
        path ??= "";
        var lowerMethod = method.ToLowerInvariant();

        if (!IsFaithfulPath(path))
        {
            return new KubernetesRequestInfo
            {
                IsResourceRequest = false,
                Path = path,
                Verb = lowerMethod,
                Action = AccessRequest.UnclassifiedAction,
                Resources = [path],
            };
        }

        var parts = SplitPath(path);
        var nonResource = new KubernetesRequestInfo
        {
            IsResourceRequest = false,
            Path = path,
            Verb = lowerMethod,
            Action = lowerMethod.Length == 0 ? AccessRequest.UnclassifiedAction : lowerMethod,
            Resources = [path],
            IsDiscovery = IsDiscoveryPath(parts),
        };

        if (parts.Length < 3 || (parts[0] != "api" && parts[0] != "apis"))
        {
            return nonResource;
        }

        var apiPrefix = parts[0];
        var current = parts.AsSpan(1);
        var apiGroup = "";
        if (apiPrefix == "apis")
        {
            // One part (the prefix) is consumed already: "do we have four parts?"
            if (current.Length < 3)
            {
                return nonResource;
            }

            apiGroup = current[0];
            current = current[1..];
        }

        var apiVersion = current[0];
        current = current[1..];

        string verb;
        var failed = false;
        if (current[0] is "proxy" or "watch")
        {
            if (current.Length < 2)
            {
                // The API server fails here: "unable to determine kind and namespace from url".
                failed = true;
                verb = current[0];
            }
            else
            {
                verb = current[0];
                current = current[1..];
            }
        }
        else
        {
            verb = method switch
            {
                "POST" => "create",
                "GET" or "HEAD" => "get",
                "PUT" => "update",
                "PATCH" => "patch",
                "DELETE" => "delete",
                _ => "",
            };
        }

        var ns = "";
        if (!failed && current[0] == "namespaces" && current.Length > 1)
        {
            ns = current[1];

            // Another step after the namespace name that is not a namespace subresource is a resource in its own right.
            if (current.Length > 2 && current[2] is not ("status" or "finalize"))
            {
                current = current[2..];
            }
        }

        var resource = "";
        var name = "";
        var subresource = "";
        if (!failed)
        {
            if (current.Length >= 3 && verb != "proxy")
            {
                subresource = current[2];
            }

            if (current.Length >= 2)
            {
                name = current[1];
            }

            if (current.Length >= 1)
            {
                resource = current[0];
            }
        }

        if (!failed && name.Length == 0 && verb == "get")
        {
            var query = ParseQuery(queryString);
            verb = IsWatch(query) ? "watch" : "list";
            if (query.Valid && FieldSelectorName(query.FieldSelector) is { } selected)
            {
                name = selected;
            }
        }

        if (!failed && name.Length == 0 && verb == "delete")
        {
            verb = "deletecollection";
        }

        var action = failed || verb.Length == 0
            ? AccessRequest.UnclassifiedAction
            : subresource is "exec" or "attach" or "portforward" && resource == "pods" ? subresource : verb;

        string? patchType = verb == "patch" ? PatchTypeOf(contentType) : null;

        var target = ns + "/" + resource;
        if (name.Length > 0)
        {
            target += "/" + name;
            if (subresource.Length > 0)
            {
                target += "/" + subresource;
            }
        }

        return new KubernetesRequestInfo
        {
            IsResourceRequest = true,
            Path = path,
            Verb = verb,
            ApiPrefix = apiPrefix,
            ApiGroup = apiGroup,
            ApiVersion = apiVersion,
            Namespace = ns,
            Resource = resource,
            Subresource = subresource,
            Name = name,
            PatchType = patchType,
            Action = action,
            Resources = [target],
        };
    }

    /// <summary>The patch type a Content-Type names: <c>json</c>, <c>merge</c>, <c>strategic</c>, <c>apply</c>, or null.</summary>
    /// <param name="contentType">The Content-Type, parameters allowed.</param>
    /// <returns>The patch type, or null for another or no Content-Type.</returns>
    public static string? PatchTypeOf(string? contentType)
    {
        if (string.IsNullOrEmpty(contentType))
        {
            return null;
        }

        var semicolon = contentType.IndexOf(';', StringComparison.Ordinal);
        var mediaType = (semicolon >= 0 ? contentType[..semicolon] : contentType).Trim();
        return mediaType.ToLowerInvariant() switch
        {
            "application/json-patch+json" => "json",
            "application/merge-patch+json" => "merge",
            "application/strategic-merge-patch+json" => "strategic",
            "application/apply-patch+yaml" or "application/apply-patch+cbor" => "apply",
            _ => null,
        };
    }

    /// <summary>
    /// True when <paramref name="path"/> splits into segments the API server reads the same way: it starts with <c>/</c>,
    /// has no empty segment between slashes (a trailing slash is allowed, the API server trims it), no <c>.</c> or
    /// <c>..</c> segment, and only printable ASCII other than <c>%</c> and <c>\</c>.
    /// </summary>
    private static bool IsFaithfulPath(string path)
    {
        if (path.Length == 0 || path[0] != '/')
        {
            return false;
        }

        foreach (var c in path)
        {
            if (c is < '!' or > '~' or '%' or '\\')
            {
                return false;
            }
        }

        if (path.Length == 1)
        {
            return true;
        }

        var body = path.EndsWith('/') ? path[1..^1] : path[1..];
        foreach (var segment in body.Split('/'))
        {
            if (segment is "" or "." or "..")
            {
                return false;
            }
        }

        return true;
    }

    private static string[] SplitPath(string path)
    {
        var trimmed = path.Trim('/');
        return trimmed.Length == 0 ? EmptyParts : trimmed.Split('/');
    }

    private static bool IsDiscoveryPath(string[] parts) => parts switch
    {
        ["api"] or ["apis"] or ["version"] => true,
        ["api", _] => true,
        ["apis", _] or ["apis", _, _] => true,
        ["openapi", ..] => true,
        _ => false,
    };

    private static bool IsWatch(ListQuery query)
    {
        // Any value other than "false" or "0" is true (Convert_Slice_string_To_bool); the first value counts.
        if (query.Watch is null)
        {
            return false;
        }

        return !string.Equals(query.Watch, "false", StringComparison.OrdinalIgnoreCase) && query.Watch != "0";
    }

    /// <summary>
    /// The name an exactly-matching <c>metadata.name</c> term of a field selector asks for (<c>fields.ParseSelector</c>,
    /// <c>RequiresExactMatch</c>, then <c>IsValidPathSegmentName</c>); null when there is none or the selector is invalid.
    /// </summary>
    internal static string? FieldSelectorName(string? selector)
    {
        if (string.IsNullOrEmpty(selector))
        {
            return null;
        }

        var terms = SplitUnescaped(selector, ',');
        if (terms is null)
        {
            return null;
        }

        string? found = null;
        foreach (var term in terms)
        {
            if (term.Length == 0)
            {
                continue;
            }

            if (!TrySplitTerm(term, out var field, out var op, out var rawValue))
            {
                return null; // invalid selector: the API server keeps no name
            }

            var value = Unescape(rawValue);
            if (value is null)
            {
                return null;
            }

            if (found is null && op != "!=" && field == "metadata.name")
            {
                found = value;
            }
        }

        if (found is null || found is "." or ".." || found.Contains('/', StringComparison.Ordinal) || found.Contains('%', StringComparison.Ordinal))
        {
            return null;
        }

        return found.Length == 0 ? null : found;
    }

    private static List<string>? SplitUnescaped(string text, char separator)
    {
        var result = new List<string>();
        var start = 0;
        for (var i = 0; i < text.Length; i++)
        {
            if (text[i] == '\\')
            {
                i++;
                continue;
            }

            if (text[i] == separator)
            {
                result.Add(text[start..i]);
                start = i + 1;
            }
        }

        result.Add(text[start..]);
        return result;
    }

    private static bool TrySplitTerm(string term, out string field, out string op, out string value)
    {
        for (var i = 0; i < term.Length; i++)
        {
            if (term[i] == '\\')
            {
                i++;
                continue;
            }

            if (term[i] == '!' && i + 1 < term.Length && term[i + 1] == '=')
            {
                (field, op, value) = (term[..i], "!=", term[(i + 2)..]);
                return true;
            }

            if (term[i] == '=')
            {
                var isDouble = i + 1 < term.Length && term[i + 1] == '=';
                (field, op, value) = (term[..i], isDouble ? "==" : "=", term[(i + (isDouble ? 2 : 1))..]);
                return true;
            }
        }

        (field, op, value) = ("", "", "");
        return false;
    }

    private static string? Unescape(string value)
    {
        if (!value.Contains('\\', StringComparison.Ordinal))
        {
            // An unescaped operator character in a value is invalid.
            return value.Contains('=', StringComparison.Ordinal) ? null : value;
        }

        var builder = new System.Text.StringBuilder(value.Length);
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            if (c == '\\')
            {
                if (i + 1 >= value.Length || value[i + 1] is not ('\\' or ',' or '='))
                {
                    return null;
                }

                builder.Append(value[++i]);
            }
            else if (c is '=' or ',')
            {
                return null;
            }
            else
            {
                builder.Append(c);
            }
        }

        return builder.ToString();
    }

    private static ListQuery ParseQuery(string? queryString)
    {
        var result = new ListQuery { Valid = true };
        if (string.IsNullOrEmpty(queryString))
        {
            return result;
        }

        var text = queryString[0] == '?' ? queryString[1..] : queryString;
        foreach (var pair in text.Split('&'))
        {
            if (pair.Length == 0 || pair.Contains(';', StringComparison.Ordinal))
            {
                continue; // Go's url.ParseQuery skips these
            }

            var eq = pair.IndexOf('=', StringComparison.Ordinal);
            var key = Decode(eq >= 0 ? pair[..eq] : pair);
            var value = Decode(eq >= 0 ? pair[(eq + 1)..] : "");
            if (key is null || value is null)
            {
                continue;
            }

            switch (key)
            {
                case "watch":
                    result.Watch ??= value;
                    break;
                case "fieldSelector":
                    result.FieldSelector ??= value;
                    break;
                case "limit" or "timeoutSeconds" when result.Seen(key) is false:
                    if (!long.TryParse(value, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out _))
                    {
                        result.Valid = false; // DecodeParameters fails: the API server keeps no name from the field selector
                    }

                    break;
            }
        }

        return result;
    }

    private static string? Decode(string component)
    {
        try
        {
            return Uri.UnescapeDataString(component.Replace('+', ' '));
        }
        catch (UriFormatException)
        {
            return null;
        }
    }

    private sealed class ListQuery
    {
        private HashSet<string>? _seen;

        public bool Valid { get; set; }

        public string? Watch { get; set; }

        public string? FieldSelector { get; set; }

        public bool Seen(string key)
        {
            _seen ??= new HashSet<string>(StringComparer.Ordinal);
            return !_seen.Add(key);
        }
    }
}
