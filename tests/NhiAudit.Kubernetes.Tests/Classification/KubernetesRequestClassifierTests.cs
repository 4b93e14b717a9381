using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using NhiAudit.Kubernetes.Classification;

namespace NhiAudit.Kubernetes.Tests.Classification;

public sealed class KubernetesRequestClassifierTests
{
    // method, url, verb, prefix, group, version, namespace, resource, subresource, name — upstream requestinfo_test.go
    // TestGetAPIRequestInfo success cases first, then ours.
    public static TheoryData<string, string, string, string, string, string, string, string, string, string> ResourceCases => new()
    {
        { "GET", "/api/v1/namespaces", "list", "api", "", "v1", "", "namespaces", "", "" },
        { "GET", "/api/v1/namespaces/other", "get", "api", "", "v1", "other", "namespaces", "", "other" },
        { "GET", "/api/v1/namespaces/other/pods", "list", "api", "", "v1", "other", "pods", "", "" },
        { "GET", "/api/v1/namespaces/other/pods/foo", "get", "api", "", "v1", "other", "pods", "", "foo" },
        { "HEAD", "/api/v1/namespaces/other/pods/foo", "get", "api", "", "v1", "other", "pods", "", "foo" },
        { "GET", "/api/v1/pods", "list", "api", "", "v1", "", "pods", "", "" },
        { "HEAD", "/api/v1/pods", "list", "api", "", "v1", "", "pods", "", "" },
        { "PATCH", "/api/v1/namespaces/new-namespace", "patch", "api", "", "v1", "new-namespace", "namespaces", "", "new-namespace" },
        { "GET", "/api/v1/proxy/namespaces/other/pods/foo", "proxy", "api", "", "v1", "other", "pods", "", "foo" },
        { "GET", "/api/v1/proxy/namespaces/other/pods/foo/subpath/not/a/subresource", "proxy", "api", "", "v1", "other", "pods", "", "foo" },
        { "GET", "/api/v1/watch/pods", "watch", "api", "", "v1", "", "pods", "", "" },
        { "GET", "/api/v1/pods?watch=true", "watch", "api", "", "v1", "", "pods", "", "" },
        { "GET", "/api/v1/pods?watch=false", "list", "api", "", "v1", "", "pods", "", "" },
        { "GET", "/api/v1/watch/namespaces/other/pods", "watch", "api", "", "v1", "other", "pods", "", "" },
        { "GET", "/api/v1/namespaces/other/pods?watch=1", "watch", "api", "", "v1", "other", "pods", "", "" },
        { "GET", "/api/v1/namespaces/other/pods?watch=0", "list", "api", "", "v1", "other", "pods", "", "" },
        { "GET", "/api/v1/namespaces/other/pods/foo/status", "get", "api", "", "v1", "other", "pods", "status", "foo" },
        { "GET", "/api/v1/namespaces/other/pods/foo/proxy/subpath", "get", "api", "", "v1", "other", "pods", "proxy", "foo" },
        { "PUT", "/api/v1/namespaces/other/finalize", "update", "api", "", "v1", "other", "namespaces", "finalize", "other" },
        { "PUT", "/api/v1/namespaces/other/status", "update", "api", "", "v1", "other", "namespaces", "status", "other" },
        { "PATCH", "/api/v1/namespaces/other/pods/foo", "patch", "api", "", "v1", "other", "pods", "", "foo" },
        { "DELETE", "/api/v1/namespaces/other/pods/foo", "delete", "api", "", "v1", "other", "pods", "", "foo" },
        { "POST", "/api/v1/namespaces/other/pods", "create", "api", "", "v1", "other", "pods", "", "" },
        { "DELETE", "/api/v1/nodes", "deletecollection", "api", "", "v1", "", "nodes", "", "" },
        { "DELETE", "/api/v1/namespaces", "deletecollection", "api", "", "v1", "", "namespaces", "", "" },
        { "DELETE", "/api/v1/namespaces/other/pods", "deletecollection", "api", "", "v1", "other", "pods", "", "" },
        { "DELETE", "/apis/extensions/v1/namespaces/other/pods", "deletecollection", "apis", "extensions", "v1", "other", "pods", "", "" },
        { "POST", "/apis/extensions/v1/namespaces/other/pods", "create", "apis", "extensions", "v1", "other", "pods", "", "" },
        { "POST", "/apis/extensions/v1beta3/namespaces/other/pods", "create", "apis", "extensions", "v1beta3", "other", "pods", "", "" },

        // TestFieldSelectorParsing
        { "GET", "/apis/group/version/resource", "list", "apis", "group", "version", "", "resource", "", "" },
        { "GET", "/apis/group/version/resource?fieldSelector=metadata.name=name1", "list", "apis", "group", "version", "", "resource", "", "name1" },
        { "GET", "/apis/group/version/resource?watch=true&fieldSelector=metadata.name=name1", "watch", "apis", "group", "version", "", "resource", "", "name1" },
        { "GET", "/apis/group/version/resource?fieldSelector=foo=bar", "list", "apis", "group", "version", "", "resource", "", "" },
        { "GET", "/apis/group/version/resource?fieldSelector=metadata.name=name1,foo", "list", "apis", "group", "version", "", "resource", "", "" },
        { "GET", "/apis/group/version/resource?fieldSelector=metadata.name=name1,foo&watch=true", "watch", "apis", "group", "version", "", "resource", "", "" },
        { "GET", "/apis/group/version/resource?fieldSelector=metadata.name=name1,foo&watch=false", "list", "apis", "group", "version", "", "resource", "", "" },

        // Ours.
        { "GET", "/api/v1/namespaces/default/secrets/db", "get", "api", "", "v1", "default", "secrets", "", "db" },
        { "GET", "/api/v1/namespaces/default/secrets/db/", "get", "api", "", "v1", "default", "secrets", "", "db" },
        { "GET", "/api/v1/nodes/n1", "get", "api", "", "v1", "", "nodes", "", "n1" },
        { "PUT", "/api/v1/nodes/n1/status", "update", "api", "", "v1", "", "nodes", "status", "n1" },
        { "GET", "/api/v1/namespaces/default/pods/web/log", "get", "api", "", "v1", "default", "pods", "log", "web" },
        { "POST", "/api/v1/namespaces/default/pods/web/exec", "create", "api", "", "v1", "default", "pods", "exec", "web" },
        { "GET", "/api/v1/namespaces/default/pods/web/exec?command=sh&stdin=true", "get", "api", "", "v1", "default", "pods", "exec", "web" },
        { "POST", "/api/v1/namespaces/default/pods/web/attach", "create", "api", "", "v1", "default", "pods", "attach", "web" },
        { "POST", "/api/v1/namespaces/default/pods/web/portforward", "create", "api", "", "v1", "default", "pods", "portforward", "web" },
        { "POST", "/api/v1/namespaces/default/pods/web/eviction", "create", "api", "", "v1", "default", "pods", "eviction", "web" },
        { "POST", "/api/v1/namespaces/default/pods/web/binding", "create", "api", "", "v1", "default", "pods", "binding", "web" },
        { "POST", "/api/v1/namespaces/default/serviceaccounts/builder/token", "create", "api", "", "v1", "default", "serviceaccounts", "token", "builder" },
        { "PATCH", "/apis/apps/v1/namespaces/default/deployments/web/scale", "patch", "apis", "apps", "v1", "default", "deployments", "scale", "web" },
        { "GET", "/api/v1/namespaces/default/services/web:80/proxy/metrics", "get", "api", "", "v1", "default", "services", "proxy", "web:80" },
        { "GET", "/api/v1/watch/namespaces/default/secrets/db", "watch", "api", "", "v1", "default", "secrets", "", "db" },
        { "GET", "/api/v1/namespaces/default/secrets?watch=true&fieldSelector=metadata.name%3Ddb", "watch", "api", "", "v1", "default", "secrets", "", "db" },
        { "GET", "/api/v1/namespaces/default/secrets?watch=", "watch", "api", "", "v1", "default", "secrets", "", "" },
        { "GET", "/api/v1/namespaces/default/secrets?watch=FALSE", "list", "api", "", "v1", "default", "secrets", "", "" },
        { "GET", "/api/v1/namespaces/default/secrets?fieldSelector=metadata.name!=db", "list", "api", "", "v1", "default", "secrets", "", "" },
        { "GET", "/api/v1/namespaces/default/secrets?fieldSelector=metadata.name==db", "list", "api", "", "v1", "default", "secrets", "", "db" },
        { "GET", "/api/v1/namespaces/default/secrets?fieldSelector=metadata.name=a/b", "list", "api", "", "v1", "default", "secrets", "", "" },
        { "GET", "/api/v1/namespaces/default/secrets?fieldSelector=metadata.name=..", "list", "api", "", "v1", "default", "secrets", "", "" },
        { "GET", "/api/v1/namespaces/default/secrets?limit=abc&fieldSelector=metadata.name=db", "list", "api", "", "v1", "default", "secrets", "", "" },
        { "DELETE", "/api/v1/namespaces/default/secrets?fieldSelector=metadata.name=db", "deletecollection", "api", "", "v1", "default", "secrets", "", "" },
        { "GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles/admin", "get", "apis", "rbac.authorization.k8s.io", "v1", "", "clusterroles", "", "admin" },
        { "GET", "/apis/apps/v1/deployments", "list", "apis", "apps", "v1", "", "deployments", "", "" },
    };

    [Theory]
    [MemberData(nameof(ResourceCases))]
    public void Resource_requests_are_read_like_the_api_server(string method, string url, string verb, string prefix, string group, string version, string ns, string resource, string subresource, string name)
    {
        var info = Classify(method, url);
        Assert.True(info.IsResourceRequest, url);
        Assert.Equal(verb, info.Verb);
        Assert.Equal(prefix, info.ApiPrefix);
        Assert.Equal(group, info.ApiGroup);
        Assert.Equal(version, info.ApiVersion);
        Assert.Equal(ns, info.Namespace);
        Assert.Equal(resource, info.Resource);
        Assert.Equal(subresource, info.Subresource);
        Assert.Equal(name, info.Name);
        Assert.False(info.IsDiscovery);
        Assert.NotEqual(AccessRequest.UnclassifiedAction, info.Action);
        Assert.Equal(url.Split('?')[0], info.Path);
    }

    // Upstream TestGetNonAPIRequestInfo and the error cases of TestGetAPIRequestInfo.
    [Theory]
    [InlineData("/api/version/resource", true)]
    [InlineData("/apis/group/version/resource/name/subresource", true)]
    [InlineData("/api/version/resource/name/subresource", true)]
    [InlineData("/apis/batch/v1/job", true)]
    [InlineData("/apis/batch/v1/job/foo", true)]
    [InlineData("/apis/batch/v1/job/foo/scale", true)]
    [InlineData("/not-api/version/resource", false)]
    [InlineData("/apis/extensions/v1beta1", false)]
    [InlineData("/apis/extensions/v1beta1/", false)]
    [InlineData("/api/version", false)]
    [InlineData("/api", false)]
    [InlineData("/", false)]
    [InlineData("/api/version/", false)]
    [InlineData("/apis/group/version/", false)]
    [InlineData("/badprefix/version/resource", false)]
    [InlineData("/apis/version/resource", false)]
    public void Resource_or_not(string url, bool expected)
    {
        var info = Classify("GET", url);
        Assert.Equal(expected, info.IsResourceRequest);
        Assert.Equal("get", info.Action is "list" ? "get" : info.Action);
    }

    [Theory]
    [InlineData("GET", "/api", true, "get")]
    [InlineData("GET", "/apis", true, "get")]
    [InlineData("GET", "/api/v1", true, "get")]
    [InlineData("GET", "/apis/apps", true, "get")]
    [InlineData("GET", "/apis/apps/v1", true, "get")]
    [InlineData("GET", "/apis/apps/v1/", true, "get")]
    [InlineData("GET", "/version", true, "get")]
    [InlineData("GET", "/openapi/v2", true, "get")]
    [InlineData("GET", "/openapi/v3/apis/apps/v1", true, "get")]
    [InlineData("GET", "/healthz", false, "get")]
    [InlineData("POST", "/logs", false, "post")]
    [InlineData("GET", "/", false, "get")]
    public void Non_resource_requests(string method, string path, bool discovery, string action)
    {
        var info = Classify(method, path);
        Assert.False(info.IsResourceRequest);
        Assert.Equal(discovery, info.IsDiscovery);
        Assert.Equal(action, info.Action);
        Assert.Equal(action, info.Verb);
        Assert.Equal([path], info.Resources);
    }

    [Theory]
    [InlineData("GET", "/api/v1/namespaces/default/../kube-system/secrets")]
    [InlineData("GET", "/api/v1/namespaces/default/./secrets")]
    [InlineData("GET", "/api/v1//namespaces/default/secrets")]
    [InlineData("GET", "//api/v1/secrets")]
    [InlineData("GET", "/api/v1/namespaces/default/secrets//")]
    [InlineData("GET", "/api/v1/namespaces/default/secrets%2Fdb")]
    [InlineData("GET", "/api/v1/namespaces/default/secrets\\db")]
    [InlineData("GET", "/api/v1/namespaces/default/secrets/d b")]
    [InlineData("GET", "/api/v1/namespaces/default/secrets/dé")]
    [InlineData("GET", "api/v1/secrets")]
    [InlineData("GET", "")]
    [InlineData("GET", "/api/v1/watch")]
    [InlineData("GET", "/api/v1/proxy")]
    [InlineData("OPTIONS", "/api/v1/namespaces/default/secrets/db")]
    [InlineData("get", "/api/v1/namespaces/default/secrets/db")]
    [InlineData("", "/api/v1/secrets")]
    [InlineData("", "/healthz")]
    public void Unreadable_requests_are_unclassified(string method, string path)
    {
        var info = Classify(method, path);
        Assert.Equal(AccessRequest.UnclassifiedAction, info.Action);
        Assert.True(info.IsUnclassified);
    }

    [Theory]
    [InlineData("GET", "/api/v1/namespaces/default/secrets/db", "get", "default/secrets/db")]
    [InlineData("GET", "/api/v1/namespaces/kube-system/pods", "list", "kube-system/pods")]
    [InlineData("GET", "/api/v1/nodes/n1", "get", "/nodes/n1")]
    [InlineData("GET", "/api/v1/nodes", "list", "/nodes")]
    [InlineData("GET", "/api/v1/pods", "list", "/pods")]
    [InlineData("POST", "/api/v1/namespaces/default/pods/web/exec", "exec", "default/pods/web/exec")]
    [InlineData("GET", "/api/v1/namespaces/default/pods/web/exec", "exec", "default/pods/web/exec")]
    [InlineData("GET", "/api/v1/namespaces/default/pods/web/attach", "attach", "default/pods/web/attach")]
    [InlineData("POST", "/api/v1/namespaces/default/pods/web/portforward", "portforward", "default/pods/web/portforward")]
    [InlineData("GET", "/api/v1/namespaces/default/pods/web/log", "get", "default/pods/web/log")]
    [InlineData("GET", "/api/v1/namespaces/default/pods/web/proxy/x", "get", "default/pods/web/proxy")]
    [InlineData("GET", "/api/v1/proxy/namespaces/default/pods/web/x/y", "proxy", "default/pods/web")]
    [InlineData("GET", "/api/v1/namespaces/other", "get", "other/namespaces/other")]
    [InlineData("DELETE", "/apis/apps/v1/namespaces/default/deployments", "deletecollection", "default/deployments")]
    [InlineData("GET", "/api/v1/namespaces/default/secrets?fieldSelector=metadata.name%3Ddb&watch=1", "watch", "default/secrets/db")]
    public void Action_and_resources(string method, string url, string action, string resource)
    {
        var info = Classify(method, url);
        Assert.Equal(action, info.Action);
        Assert.Equal([resource], info.Resources);
    }

    [Theory]
    [InlineData("application/json-patch+json", "json")]
    [InlineData("application/merge-patch+json", "merge")]
    [InlineData("application/strategic-merge-patch+json; charset=utf-8", "strategic")]
    [InlineData("application/apply-patch+yaml", "apply")]
    [InlineData("Application/Apply-Patch+YAML", "apply")]
    [InlineData("application/json", null)]
    [InlineData(null, null)]
    public void Patch_type(string? contentType, string? expected)
    {
        Assert.Equal(expected, KubernetesRequestClassifier.Classify("PATCH", "/api/v1/namespaces/default/secrets/db", null, contentType).PatchType);
        Assert.Null(KubernetesRequestClassifier.Classify("PUT", "/api/v1/namespaces/default/secrets/db", null, contentType).PatchType);
    }

    [Fact]
    public void Query_string_may_start_with_a_question_mark()
    {
        Assert.Equal("watch", KubernetesRequestClassifier.Classify("GET", "/api/v1/pods", "?watch=true", null).Verb);
        Assert.Equal("watch", KubernetesRequestClassifier.Classify("GET", "/api/v1/pods", "watch=true", null).Verb);
        Assert.Equal("watch", KubernetesRequestClassifier.Classify("GET", "/api/v1/pods", "?watch=true&watch=false", null).Verb);
        Assert.Equal("list", KubernetesRequestClassifier.Classify("GET", "/api/v1/pods", "?watch=false&watch=true", null).Verb);
    }

    [Theory]
    [InlineData("metadata.name=a\\,b", "a,b")]
    [InlineData("metadata.name=a\\=b", "a=b")]
    [InlineData("metadata.name=a=b", null)]
    [InlineData("metadata.name=a\\x", null)]
    [InlineData("spec.nodeName=n1,metadata.name=web", "web")]
    [InlineData("metadata.name=", null)]
    [InlineData("metadata.name", null)]
    [InlineData(",metadata.name=web,", "web")]
    public void Field_selector_names(string selector, string? expected) =>
        Assert.Equal(expected, KubernetesRequestClassifier.FieldSelectorName(selector));

    private static readonly string[] Segments =
    [
        "api", "apis", "v1", "apps", "namespaces", "default", "pods", "secrets", "watch", "proxy", "status", "finalize",
        "exec", "log", "", ".", "..", "%2F", "a b", "é", "\\", "?", "#", "*", "openapi", "version",
    ];

    private static readonly string[] Methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "get", "", "CONNECT", "\u00e9"];

    private static readonly string[] Queries = ["", "?", "watch=1", "?watch=false", "fieldSelector=metadata.name%3Dx", "%zz", "a=%", "fieldSelector=metadata.name=\\", "&&", ";", "limit=x"];

    private static Gen<string> PathGen =>
        Gen.OneOf(
            Gen.ListOf(Gen.Elements(Segments)).Select(s => "/" + string.Join('/', s)),
            ArbMap.Default.GeneratorFor<string>().Select(s => s ?? ""));

    [Property(MaxTest = 2000)]
    public Property Random_requests_never_throw() =>
        Prop.ForAll(
            Arb.From(Gen.Zip(Gen.Elements(Methods), Gen.Zip(PathGen, Gen.Elements(Queries)))),
            t =>
            {
                var (method, (path, query)) = t;
                var info = KubernetesRequestClassifier.Classify(method, path, query, "application/merge-patch+json");
                return info.Action.Length > 0
                    && info.Resources.Count == 1
                    && (info.IsResourceRequest || info.Resources[0] == path)
                    && (info.Action == AccessRequest.UnclassifiedAction || !path.Contains("..", StringComparison.Ordinal));
            });

    private static KubernetesRequestInfo Classify(string method, string url)
    {
        var q = url.IndexOf('?', StringComparison.Ordinal);
        return q < 0
            ? KubernetesRequestClassifier.Classify(method, url, null, null)
            : KubernetesRequestClassifier.Classify(method, url[..q], url[q..], null);
    }
}
