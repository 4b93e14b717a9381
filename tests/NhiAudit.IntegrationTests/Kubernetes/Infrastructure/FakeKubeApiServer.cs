using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace NhiAudit.IntegrationTests.Kubernetes.Infrastructure;

/// <summary>
/// An in-process Kubernetes API server good enough for the real kubectl (1.32) and KubernetesClient: https with a test
/// CA, bearer-token authentication, core/v1 discovery, in-memory pods/secrets/configmaps/services/events/namespaces with
/// get/list/watch/create/update/patch/delete/deletecollection, server-side Tables, pod logs, and pods/exec over the
/// channel.k8s.io WebSocket protocols (v4, v5) running real local processes, pods/portforward over WebSocket (SPDY/3.1
/// tunnelled as kubectl ≥ 1.31 sends it, and the v4 channel protocol of KubernetesClient). See Infrastructure/README.md.
/// </summary>
public sealed class FakeKubeApiServer : IAsyncDisposable
{
    private static readonly JsonSerializerOptions Compact = new() { WriteIndented = false };

    private readonly WebApplication app;
    private readonly KubeStore store = new();
    private readonly ConcurrentDictionary<(string Namespace, string Name), string> podLogs = new();
    private readonly CancellationTokenSource stopping = new();

    private FakeKubeApiServer(WebApplication app, string directory, string token, string caFile)
    {
        this.app = app;
        Directory = directory;
        Token = token;
        CaFile = caFile;
        store.PodCreated = (ns, name) => System.IO.Directory.CreateDirectory(PodDirectory(ns, name));
    }

    /// <summary>The https base address, e.g. <c>https://127.0.0.1:41234/</c>.</summary>
    public Uri Url { get; private set; } = null!;

    /// <summary>PEM file of the CA that issued the server certificate (for kubeconfig certificate-authority).</summary>
    public string CaFile { get; }

    /// <summary>The bearer token the server accepts.</summary>
    public string Token { get; }

    /// <summary>The server's working directory (certificates, pod directories).</summary>
    public string Directory { get; }

    /// <summary>Every request received, in order (also unauthenticated ones).</summary>
    public ConcurrentQueue<SeenRequest> Requests { get; } = new();

    /// <summary>Unexpected exceptions thrown while handling requests (a test can assert this stays empty).</summary>
    public ConcurrentQueue<Exception> Errors { get; } = new();

    /// <summary>
    /// Where pods/portforward (channel protocol v4, as KubernetesClient speaks it) connects: 127.0.0.1 and this port, or
    /// the requested pod port when null.
    /// </summary>
    public int? PortForwardTarget { get; set; }

    /// <summary>Starts the server under <paramref name="directory"/> (created if missing).</summary>
    /// <param name="directory">Working directory: ca.crt, server certificate and per-pod directories go here.</param>
    /// <param name="acceptedToken">The bearer token to require; a random one when null.</param>
    public static async Task<FakeKubeApiServer> StartAsync(string directory, string? acceptedToken = null)
    {
        System.IO.Directory.CreateDirectory(directory);
        var token = acceptedToken ?? "fake-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        var (serverCert, caPem) = CreateCertificates();
        var caFile = Path.Combine(directory, "ca.crt");
        await File.WriteAllTextAsync(caFile, caPem);

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = directory, EnvironmentName = "Production" });
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrelHttpsConfiguration();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = null;
            k.Listen(IPAddress.Loopback, 0, l => l.UseHttps(serverCert));
        });
        builder.WebHost.UseSetting(WebHostDefaults.PreferHostingUrlsKey, "false");
        builder.WebHost.UseUrls();
        var app = builder.Build();
        var server = new FakeKubeApiServer(app, directory, token, caFile);
        app.UseWebSockets(new WebSocketOptions { KeepAliveInterval = TimeSpan.FromSeconds(30) });
        app.Run(server.HandleAsync);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        var port = new Uri(address).Port;
        server.Url = new Uri($"https://127.0.0.1:{port}/");
        return server;
    }

    /// <summary>Writes a kubeconfig with one cluster/user/context ("fake") pointing at <paramref name="server"/>.</summary>
    public static void WriteKubeconfig(string path, Uri server, string token, string? caFile, string @namespace = "default")
    {
        ArgumentNullException.ThrowIfNull(server);
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null)
        {
            System.IO.Directory.CreateDirectory(dir);
        }

        var serverText = server.ToString().TrimEnd('/');
        var tls = caFile is null ? "    insecure-skip-tls-verify: true" : $"    certificate-authority: {caFile}";
        var yaml = $"""
            apiVersion: v1
            kind: Config
            clusters:
            - name: fake
              cluster:
                server: {serverText}
            {tls}
            users:
            - name: fake
              user:
                token: {token}
            contexts:
            - name: fake
              context:
                cluster: fake
                user: fake
                namespace: {@namespace}
            current-context: fake

            """;
        File.WriteAllText(path, yaml);
    }

    /// <summary>Sets the text <c>kubectl logs</c> returns for a pod.</summary>
    public void SetPodLog(string @namespace, string name, string text) => podLogs[(@namespace, name)] = text;

    /// <summary>The directory exec'd commands of a pod run in (its "filesystem root" for <c>kubectl cp</c>).</summary>
    public string PodDirectory(string @namespace, string name) => Path.Combine(Directory, "pods", @namespace, name);

    /// <summary>Creates or replaces an object directly (no request recorded); returns the stored object as JSON.</summary>
    public string Put(string resource, string? @namespace, string json)
    {
        var body = JsonNode.Parse(json) as JsonObject ?? throw new ArgumentException("not a JSON object", nameof(json));
        var name = (string?)body["metadata"]?["name"] ?? "";
        var stored = store.TryGet(resource, @namespace, name, out _)
            ? store.Update(resource, @namespace, name, body)
            : store.Create(resource, @namespace, body);
        return stored.ToJsonString();
    }

    /// <summary>The stored object as JSON, or null.</summary>
    public string? GetObject(string resource, string? @namespace, string name) =>
        store.TryGet(resource, @namespace, name, out var o) ? o!.ToJsonString() : null;

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await stopping.CancelAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            await app.StopAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
        }

        await app.DisposeAsync();
        stopping.Dispose();
    }

    private static (X509Certificate2 Server, string CaPem) CreateCertificates()
    {
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest("CN=fake-kube-ca", caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        caRequest.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(caRequest.PublicKey, false));
        var now = DateTimeOffset.UtcNow;
        using var ca = caRequest.CreateSelfSigned(now.AddDays(-1), now.AddDays(30));

        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=kube-apiserver", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        san.AddDnsName("localhost");
        san.AddDnsName("kubernetes.default.svc");
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, true, false));
        var serial = RandomNumberGenerator.GetBytes(12);
        serial[0] &= 0x7f;
        using var issued = request.Create(ca, now.AddDays(-1), now.AddDays(30), serial);
        using var withKey = issued.CopyWithPrivateKey(key);
        var server = X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), null);
        return (server, ca.ExportCertificatePem() + "\n");
    }

    private static SeenRequest Record(HttpRequest r)
    {
        var extra = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        foreach (var h in r.Headers)
        {
            if (h.Key.StartsWith("Impersonate-Extra-", StringComparison.OrdinalIgnoreCase))
            {
                extra[Uri.UnescapeDataString(h.Key["Impersonate-Extra-".Length..]).ToLowerInvariant()] = h.Value.Select(v => v ?? "").ToList();
            }
        }

        var auth = r.Headers.Authorization.ToString();
        return new SeenRequest(
            r.Method,
            r.Path.Value ?? "",
            r.QueryString.Value ?? "",
            r.Headers.Accept.Count == 0 ? null : r.Headers.Accept.ToString(),
            r.Headers.UserAgent.Count == 0 ? null : r.Headers.UserAgent.ToString(),
            r.Headers.TryGetValue("Impersonate-User", out var user) ? user.ToString() : null,
            r.Headers.TryGetValue("Impersonate-Group", out var groups) ? groups.SelectMany(g => (g ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)).ToList() : [],
            extra,
            auth.Length == 0 ? null : auth.Split(' ', 2)[0])
        {
            Upgrade = r.Headers.TryGetValue("Upgrade", out var upgrade) ? upgrade.ToString() : null,
            WebSocketProtocol = r.Headers.TryGetValue("Sec-WebSocket-Protocol", out var proto) ? proto.ToString() : null,
            ContentType = r.ContentType,
        };
    }

    private async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        Requests.Enqueue(Record(request));
        try
        {
            var auth = request.Headers.Authorization.ToString();
            if (auth != "Bearer " + Token)
            {
                await WriteStatusAsync(context, 401, "Unauthorized", "Unauthorized");
                return;
            }

            var upgrade = request.Headers.TryGetValue("Upgrade", out var u) ? u.ToString() : "";
            if (upgrade.StartsWith("SPDY", StringComparison.OrdinalIgnoreCase))
            {
                await WriteStatusAsync(context, 400, "BadRequest", "SPDY upgrades are not supported by the fake API server; use WebSockets");
                return;
            }

            await RouteAsync(context);
        }
        catch (KubeApiException e)
        {
            if (!context.Response.HasStarted)
            {
                await WriteStatusAsync(context, e.Code, e.Reason, e.Message);
            }
        }
        catch (JsonException e)
        {
            if (!context.Response.HasStarted)
            {
                await WriteStatusAsync(context, 400, "BadRequest", "invalid JSON: " + e.Message);
            }
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested || stopping.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            Errors.Enqueue(e);
            if (!context.Response.HasStarted)
            {
                await WriteStatusAsync(context, 500, "InternalError", "fake API server failure: " + e);
            }
        }
    }

    private async Task RouteAsync(HttpContext context)
    {
        var path = (context.Request.Path.Value ?? "/").TrimEnd('/');
        var segments = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        switch (path)
        {
            case "/version":
                await WriteJsonAsync(context, 200, new JsonObject
                {
                    ["major"] = "1",
                    ["minor"] = "32",
                    ["gitVersion"] = "v1.32.0-fake",
                    ["gitCommit"] = "0000000000000000000000000000000000000000",
                    ["gitTreeState"] = "clean",
                    ["buildDate"] = "2026-01-01T00:00:00Z",
                    ["goVersion"] = "go1.23.0",
                    ["compiler"] = "gc",
                    ["platform"] = "linux/amd64",
                });
                return;
            case "/api":
                await WriteJsonAsync(context, 200, new JsonObject
                {
                    ["kind"] = "APIVersions",
                    ["versions"] = new JsonArray("v1"),
                    ["serverAddressByClientCIDRs"] = new JsonArray(new JsonObject { ["clientCIDR"] = "0.0.0.0/0", ["serverAddress"] = Url.Authority }),
                });
                return;
            case "/apis":
                await WriteJsonAsync(context, 200, new JsonObject { ["kind"] = "APIGroupList", ["apiVersion"] = "v1", ["groups"] = new JsonArray() });
                return;
            case "/api/v1":
                await WriteJsonAsync(context, 200, Discovery());
                return;
            case "/healthz" or "/livez" or "/readyz":
                context.Response.ContentType = "text/plain";
                await context.Response.WriteAsync("ok");
                return;
        }

        if (segments.Length < 3 || segments[0] != "api" || segments[1] != "v1")
        {
            await WriteStatusAsync(context, 404, "NotFound", "the server could not find the requested resource");
            return;
        }

        // /api/v1/{resource}[/{name}] or /api/v1/namespaces/{ns}/{resource}[/{name}[/{sub}]]
        string? ns = null;
        string resource;
        string? name = null;
        string? sub = null;
        if (segments[2] == "namespaces" && segments.Length >= 5)
        {
            ns = segments[3];
            resource = segments[4];
            name = segments.Length > 5 ? segments[5] : null;
            sub = segments.Length > 6 ? segments[6] : null;
            if (segments.Length > 7)
            {
                throw new KubeApiException(404, "NotFound", "the server could not find the requested resource");
            }
        }
        else
        {
            resource = segments[2];
            name = segments.Length > 3 ? segments[3] : null;
            sub = segments.Length > 4 ? segments[4] : null;
            if (segments.Length > 5)
            {
                throw new KubeApiException(404, "NotFound", "the server could not find the requested resource");
            }
        }

        var type = KubeStore.Require(resource);
        if (!type.Namespaced && ns is not null)
        {
            throw new KubeApiException(404, "NotFound", "the server could not find the requested resource");
        }

        if (sub is not null)
        {
            await SubresourceAsync(context, type, ns!, name!, sub);
            return;
        }

        var method = context.Request.Method;
        if (name is null)
        {
            switch (method)
            {
                case "GET" when IsWatch(context.Request):
                    await WatchAsync(context, type, ns);
                    return;
                case "GET":
                    await ListAsync(context, type, ns);
                    return;
                case "POST":
                    var created = store.Create(type.Name, type.Namespaced ? ns ?? "default" : null, await ReadBodyAsync(context));
                    await WriteObjectAsync(context, 201, type, created);
                    return;
                case "DELETE":
                    var (items, _) = store.List(type.Name, ns, Filter(context.Request));
                    var deleted = new JsonArray();
                    foreach (var o in items)
                    {
                        try
                        {
                            deleted.Add(store.Delete(type.Name, ns, (string)o["metadata"]!["name"]!));
                        }
                        catch (KubeApiException)
                        {
                        }
                    }

                    await WriteJsonAsync(context, 200, new JsonObject
                    {
                        ["kind"] = type.Kind + "List",
                        ["apiVersion"] = "v1",
                        ["metadata"] = new JsonObject { ["resourceVersion"] = store.CurrentResourceVersion.ToString(CultureInfo.InvariantCulture) },
                        ["items"] = deleted,
                    });
                    return;
            }
        }
        else
        {
            switch (method)
            {
                case "GET":
                    await WriteObjectAsync(context, 200, type, store.Get(type.Name, ns, name));
                    return;
                case "PUT":
                    await WriteObjectAsync(context, 200, type, store.Update(type.Name, ns, name, await ReadBodyAsync(context)));
                    return;
                case "PATCH":
                    await WriteObjectAsync(context, 200, type, await PatchAsync(context, type, ns, name, statusOnly: false));
                    return;
                case "DELETE":
                    await WriteObjectAsync(context, 200, type, store.Delete(type.Name, ns, name));
                    return;
            }
        }

        await WriteStatusAsync(context, 405, "MethodNotAllowed", $"the server does not allow this method on the requested resource ({method})");
    }

    private async Task<JsonObject> PatchAsync(HttpContext context, KubeResourceType type, string? ns, string name, bool statusOnly)
    {
        var contentType = (context.Request.ContentType ?? "").Split(';')[0].Trim();
        var existing = store.Get(type.Name, ns, name);
        var body = await JsonNode.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted);
        JsonNode? patched = contentType switch
        {
            "application/json-patch+json" => KubeJson.ApplyJsonPatch(existing, body as JsonArray ?? throw new KubeApiException(400, "BadRequest", "a JSON patch must be an array")),
            "application/merge-patch+json" or "application/strategic-merge-patch+json" => KubeJson.MergePatch(existing, body),
            "application/apply-patch+yaml" => throw new KubeApiException(415, "UnsupportedMediaType", "server-side apply is not supported by the fake API server"),
            _ => throw new KubeApiException(415, "UnsupportedMediaType", $"the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {contentType})"),
        };
        if (patched is not JsonObject patchedObject)
        {
            throw new KubeApiException(422, "Invalid", "the patch does not produce an object");
        }

        // A patch is not a conditional update unless it names a resourceVersion explicitly.
        if (body is not JsonObject bodyObject || bodyObject["metadata"]?["resourceVersion"] is null)
        {
            (patchedObject["metadata"] as JsonObject)?.Remove("resourceVersion");
        }

        return store.Update(type.Name, ns, name, patchedObject, statusOnly);
    }

    private async Task SubresourceAsync(HttpContext context, KubeResourceType type, string ns, string name, string sub)
    {
        if (type.Name != "pods")
        {
            throw new KubeApiException(404, "NotFound", "the server could not find the requested resource");
        }

        var pod = store.Get("pods", ns, name);
        switch (sub)
        {
            case "status":
                switch (context.Request.Method)
                {
                    case "GET":
                        await WriteObjectAsync(context, 200, type, pod);
                        return;
                    case "PUT":
                        await WriteObjectAsync(context, 200, type, store.Update("pods", ns, name, await ReadBodyAsync(context), statusOnly: true));
                        return;
                    case "PATCH":
                        await WriteObjectAsync(context, 200, type, await PatchAsync(context, type, ns, name, statusOnly: true));
                        return;
                }

                break;
            case "log":
                context.Response.StatusCode = 200;
                context.Response.ContentType = "text/plain";
                var text = podLogs.TryGetValue((ns, name), out var log) ? log : $"fake log line 1 from {name}\nfake log line 2 from {name}\n";
                if (int.TryParse(context.Request.Query["tailLines"], NumberStyles.Integer, CultureInfo.InvariantCulture, out var tail) && tail >= 0)
                {
                    var lines = text.Split('\n');
                    var hasTrailingNewline = text.EndsWith('\n');
                    var content = hasTrailingNewline ? lines[..^1] : lines;
                    text = string.Join('\n', content.TakeLast(tail)) + (hasTrailingNewline && tail > 0 ? "\n" : "");
                }

                await context.Response.WriteAsync(text, context.RequestAborted);
                return;
            case "exec" or "attach":
                await ExecAsync(context, ns, name, sub, pod);
                return;
            case "portforward":
                await PortForwardAsync(context);
                return;
        }

        throw new KubeApiException(404, "NotFound", "the server could not find the requested resource");
    }

    private async Task ExecAsync(HttpContext context, string ns, string name, string sub, JsonObject pod)
    {
        if (!context.WebSockets.IsWebSocketRequest)
        {
            throw new KubeApiException(400, "BadRequest", "Upgrade request required");
        }

        var offered = context.WebSockets.WebSocketRequestedProtocols;
        var protocol = offered.Contains(KubeExec.V5) ? KubeExec.V5 : offered.Contains(KubeExec.V4) ? KubeExec.V4 : null;
        if (protocol is null)
        {
            throw new KubeApiException(400, "BadRequest", $"unsupported channel protocols [{string.Join(", ", offered)}]; the fake supports {KubeExec.V5}, {KubeExec.V4}");
        }

        var query = context.Request.Query;
        var command = query["command"].Select(c => c ?? "").ToList();
        if (sub == "attach")
        {
            command = ["sh"];
        }

        if (command.Count == 0)
        {
            throw new KubeApiException(400, "BadRequest", "you must specify at least 1 command");
        }

        var container = (string?)query["container"];
        var containers = (pod["spec"]?["containers"] as JsonArray)?.Select(c => (string?)c?["name"]).ToList() ?? [];
        if (!string.IsNullOrEmpty(container) && !containers.Contains(container))
        {
            throw new KubeApiException(400, "BadRequest", $"container {container} is not valid for pod {name}");
        }

        static bool Flag(IQueryCollection q, string key) => q[key].ToString() is "true" or "1";
        using var socket = await context.WebSockets.AcceptWebSocketAsync(new WebSocketAcceptContext { SubProtocol = protocol });
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, stopping.Token);
        await KubeExec.RunAsync(socket, protocol, command, Flag(query, "stdin"), Flag(query, "stdout"), Flag(query, "stderr"), Flag(query, "tty"), PodDirectory(ns, name), cts.Token);
    }

    private async Task PortForwardAsync(HttpContext context)
    {
        if (!context.WebSockets.IsWebSocketRequest)
        {
            throw new KubeApiException(400, "BadRequest", "Upgrade request required");
        }

        var offered = context.WebSockets.WebSocketRequestedProtocols;
        if (offered.Contains(KubeSpdyPortForward.Protocol))
        {
            // ASP.NET Core rejects '/' in WebSocketAcceptContext.SubProtocol (not an RFC 7230 token), so set the header directly.
            context.Response.Headers["Sec-WebSocket-Protocol"] = KubeSpdyPortForward.Protocol;
            using var tunnel = await context.WebSockets.AcceptWebSocketAsync();
            using var tunnelCts = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, stopping.Token);
            await KubeSpdyPortForward.RunAsync(tunnel, p => PortForwardTarget ?? p, tunnelCts.Token);
            return;
        }

        var protocol = offered.FirstOrDefault(p => p is "v4.channel.k8s.io" or "portforward.k8s.io");
        if (protocol is null)
        {
            throw new KubeApiException(400, "BadRequest", $"unsupported port-forward protocols [{string.Join(", ", offered)}]; the fake supports v4.channel.k8s.io");
        }

        var ports = context.Request.Query["ports"].SelectMany(p => (p ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries))
            .Select(p => int.Parse(p, CultureInfo.InvariantCulture)).ToList();
        using var socket = await context.WebSockets.AcceptWebSocketAsync(new WebSocketAcceptContext { SubProtocol = protocol });
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, stopping.Token);
        await KubePortForward.RunAsync(socket, ports, p => PortForwardTarget ?? p, cts.Token);
    }

    private static bool IsWatch(HttpRequest request) => request.Query["watch"].ToString() is "true" or "1";

    private static Func<JsonObject, bool> Filter(HttpRequest request) =>
        KubeJson.Selector(request.Query["labelSelector"], request.Query["fieldSelector"]);

    /// <summary>The Table version the Accept header asks for (v1 or v1beta1), null for plain JSON; throws 406 for protobuf only.</summary>
    private static string? Negotiate(HttpRequest request)
    {
        var accept = request.Headers.Accept.ToString();
        if (accept.Length == 0)
        {
            return null;
        }

        var json = false;
        foreach (var part in accept.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            var pieces = part.Split(';', StringSplitOptions.TrimEntries);
            var media = pieces[0];
            if (media is not ("application/json" or "*/*" or "application/*"))
            {
                continue;
            }

            var parameters = pieces.Skip(1).Select(p => p.Split('=', 2)).Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1], StringComparer.Ordinal);
            if (parameters.TryGetValue("as", out var asKind))
            {
                if (asKind == "Table" && parameters.GetValueOrDefault("g") == "meta.k8s.io" && parameters.GetValueOrDefault("v") is "v1" or "v1beta1")
                {
                    return parameters["v"];
                }

                continue;
            }

            json = true;
        }

        return json ? null : throw new KubeApiException(406, "NotAcceptable", $"only the following media types are accepted: application/json, application/json;as=Table;v=v1;g=meta.k8s.io (got {accept})");
    }

    private async Task ListAsync(HttpContext context, KubeResourceType type, string? ns)
    {
        var table = Negotiate(context.Request);
        var (items, rv) = store.List(type.Name, ns, Filter(context.Request));
        if (table is not null)
        {
            await WriteJsonAsync(context, 200, KubeJson.Table(type.Name, items, rv, context.Request.Query["includeObject"], table));
            return;
        }

        var array = new JsonArray();
        foreach (var item in items)
        {
            array.Add(item);
        }

        await WriteJsonAsync(context, 200, new JsonObject
        {
            ["kind"] = type.Kind + "List",
            ["apiVersion"] = "v1",
            ["metadata"] = new JsonObject { ["resourceVersion"] = rv.ToString(CultureInfo.InvariantCulture) },
            ["items"] = array,
        });
    }

    private async Task WatchAsync(HttpContext context, KubeResourceType type, string? ns)
    {
        var table = Negotiate(context.Request);
        var query = context.Request.Query;
        long.TryParse(query["resourceVersion"], NumberStyles.Integer, CultureInfo.InvariantCulture, out var since);
        var timeout = int.TryParse(query["timeoutSeconds"], NumberStyles.Integer, CultureInfo.InvariantCulture, out var seconds) && seconds > 0
            ? TimeSpan.FromSeconds(seconds)
            : TimeSpan.FromMinutes(30);
        using var watcher = store.Watch(type.Name, ns, Filter(context.Request), since, out var initial);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, stopping.Token);
        cts.CancelAfter(timeout);
        var response = context.Response;
        response.StatusCode = 200;
        response.ContentType = "application/json";
        response.Headers.CacheControl = "no-cache, private";
        await response.StartAsync(cts.Token);
        var includeObject = (string?)query["includeObject"];

        async Task SendAsync(string eventType, JsonObject o)
        {
            JsonNode payload = table is null
                ? o
                : KubeJson.Table(type.Name, [o], KubeStore.ResourceVersionOf(o), includeObject, table);
            var line = new JsonObject { ["type"] = eventType, ["object"] = payload.DeepClone() }.ToJsonString(Compact) + "\n";
            await response.WriteAsync(line, cts.Token);
            await response.Body.FlushAsync(cts.Token);
        }

        try
        {
            foreach (var o in initial)
            {
                await SendAsync("ADDED", o);
            }

            await foreach (var e in watcher.Events.Reader.ReadAllAsync(cts.Token))
            {
                await SendAsync(e.Type, e.Object);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException)
        {
            // Client gone, timeoutSeconds elapsed, or the server is stopping: end the chunked response.
        }
    }

    private static async Task<JsonObject> ReadBodyAsync(HttpContext context)
    {
        var contentType = context.Request.ContentType ?? "application/json";
        if (contentType.Contains("protobuf", StringComparison.OrdinalIgnoreCase))
        {
            throw new KubeApiException(415, "UnsupportedMediaType", "the fake API server only accepts JSON bodies");
        }

        return await JsonNode.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted) as JsonObject
            ?? throw new KubeApiException(400, "BadRequest", "the request body must be a JSON object");
    }

    private Task WriteObjectAsync(HttpContext context, int code, KubeResourceType type, JsonObject o)
    {
        var table = context.Request.Method == "GET" ? Negotiate(context.Request) : null;
        return table is null
            ? WriteJsonAsync(context, code, o)
            : WriteJsonAsync(context, code, KubeJson.Table(type.Name, [o], KubeStore.ResourceVersionOf(o), context.Request.Query["includeObject"], table));
    }

    private static async Task WriteJsonAsync(HttpContext context, int code, JsonNode body)
    {
        context.Response.StatusCode = code;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(body.ToJsonString(Compact), context.RequestAborted);
    }

    private static Task WriteStatusAsync(HttpContext context, int code, string reason, string message) =>
        WriteJsonAsync(context, code, KubeJson.Status(code, reason, message));

    private static JsonObject Discovery()
    {
        string[] all = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
        var resources = new JsonArray();
        foreach (var t in KubeStore.Types)
        {
            var r = new JsonObject
            {
                ["name"] = t.Name,
                ["singularName"] = t.Singular,
                ["namespaced"] = t.Namespaced,
                ["kind"] = t.Kind,
                ["verbs"] = new JsonArray(all.Where(v => !(t.Name == "namespaces" && v == "deletecollection")).Select(v => (JsonNode)v!).ToArray()),
            };
            if (t.ShortNames.Length > 0)
            {
                r["shortNames"] = new JsonArray(t.ShortNames.Select(s => (JsonNode)s!).ToArray());
            }

            if (t.Name is "pods" or "services")
            {
                r["categories"] = new JsonArray("all");
            }

            resources.Add(r);
            if (t.Name == "pods")
            {
                resources.Add(Sub("pods/attach", "PodAttachOptions", "create", "get"));
                resources.Add(Sub("pods/exec", "PodExecOptions", "create", "get"));
                resources.Add(Sub("pods/log", "Pod", "get"));
                resources.Add(Sub("pods/portforward", "PodPortForwardOptions", "create", "get"));
                resources.Add(Sub("pods/status", "Pod", "get", "patch", "update"));
            }
        }

        return new JsonObject { ["kind"] = "APIResourceList", ["groupVersion"] = "v1", ["resources"] = resources };

        static JsonObject Sub(string name, string kind, params string[] verbs) => new()
        {
            ["name"] = name,
            ["singularName"] = "",
            ["namespaced"] = true,
            ["kind"] = kind,
            ["verbs"] = new JsonArray(verbs.Select(v => (JsonNode)v!).ToArray()),
        };
    }
}
