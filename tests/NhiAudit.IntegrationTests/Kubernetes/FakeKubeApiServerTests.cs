using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using k8s;
using k8s.Models;
using NhiAudit.IntegrationTests.Infrastructure;
using NhiAudit.IntegrationTests.Kubernetes.Infrastructure;

namespace NhiAudit.IntegrationTests.Kubernetes;

/// <summary>The real kubectl and KubernetesClient directly against <see cref="FakeKubeApiServer"/> (no gateway).</summary>
public sealed class FakeKubeApiServerTests : IAsyncLifetime
{
    private const string Kubectl = "/usr/bin/kubectl";

    private const string Manifest = """
        apiVersion: v1
        kind: Secret
        metadata:
          name: s
          labels:
            app: demo
        type: Opaque
        stringData:
          password: hunter2
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: cfg
        data:
          key: value
        ---
        apiVersion: v1
        kind: Pod
        metadata:
          name: web
          labels:
            app: demo
        spec:
          containers:
          - name: app
            image: nginx
        """;

    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    private readonly string root = Path.Combine(Path.GetTempPath(), "fake-kube-" + Guid.NewGuid().ToString("N")[..8]);
    private FakeKubeApiServer server = null!;
    private string kubeconfig = null!;

    public async Task InitializeAsync()
    {
        server = await FakeKubeApiServer.StartAsync(Path.Combine(root, "server"));
        kubeconfig = Path.Combine(root, "kubeconfig");
        FakeKubeApiServer.WriteKubeconfig(kubeconfig, server.Url, server.Token, server.CaFile);
    }

    public async Task DisposeAsync()
    {
        await server.DisposeAsync();
        try
        {
            Directory.Delete(root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private Dictionary<string, string> Env() => new()
    {
        ["KUBECONFIG"] = kubeconfig,
        ["HOME"] = root,
        ["KUBECACHEDIR"] = Path.Combine(root, "cache"),
    };

    private Task<ProcessResult> KubectlAsync(params string[] args) => ProcessRunner.RunAsync(Kubectl, args, timeout: Timeout, env: Env());

    private Task<ProcessResult> KubectlStdinAsync(string stdin, params string[] args) => ProcessRunner.RunAsync(Kubectl, args, stdin: stdin, timeout: Timeout, env: Env());

    private async Task ApplyManifestAsync()
    {
        var file = Path.Combine(root, "manifest.yaml");
        await File.WriteAllTextAsync(file, Manifest);
        var r = await KubectlAsync("apply", "--validate=false", "-f", file);
        Assert.True(r.Succeeded, r.Describe("kubectl apply"));
        Assert.Contains("secret/s created", r.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("configmap/cfg created", r.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("pod/web created", r.StandardOutput, StringComparison.Ordinal);
    }

    private k8s.Kubernetes Client() =>
        new(KubernetesClientConfiguration.BuildConfigFromConfigFile(kubeconfig));

    [Fact]
    public async Task Kubectl_get_namespaces_sends_the_bearer_token()
    {
        var r = await KubectlAsync("get", "ns");
        Assert.True(r.Succeeded, r.Describe("kubectl get ns"));
        Assert.Contains("default", r.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("kube-system", r.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("Active", r.StandardOutput, StringComparison.Ordinal);
        var list = server.Requests.Last(q => q.Path == "/api/v1/namespaces");
        Assert.Equal("Bearer", list.AuthorizationScheme);
        Assert.Contains("as=Table", list.Accept, StringComparison.Ordinal);
        Assert.StartsWith("kubectl", list.UserAgent, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_wrong_token_gets_401()
    {
        var bad = Path.Combine(root, "bad-kubeconfig");
        FakeKubeApiServer.WriteKubeconfig(bad, server.Url, "wrong", server.CaFile);
        var env = Env();
        env["KUBECONFIG"] = bad;
        var r = await ProcessRunner.RunAsync(Kubectl, ["get", "pods"], timeout: Timeout, env: env);
        Assert.False(r.Succeeded);
        Assert.Contains("provide credentials", r.StandardError, StringComparison.OrdinalIgnoreCase);
        Assert.Contains(server.Requests, q => q.Path == "/api/v1/namespaces/default/pods" || q.Path == "/api");
    }

    [Fact]
    public async Task Kubectl_apply_get_and_delete()
    {
        await ApplyManifestAsync();

        var yaml = await KubectlAsync("get", "secret", "s", "-o", "yaml");
        Assert.True(yaml.Succeeded, yaml.Describe("get -o yaml"));
        Assert.Contains("password: " + Convert.ToBase64String("hunter2"u8.ToArray()), yaml.StandardOutput, StringComparison.Ordinal);

        var json = await KubectlAsync("get", "secret", "s", "-o", "json");
        Assert.True(json.Succeeded, json.Describe("get -o json"));
        using (var doc = JsonDocument.Parse(json.StandardOutput))
        {
            Assert.Equal("Secret", doc.RootElement.GetProperty("kind").GetString());
            Assert.Equal("default", doc.RootElement.GetProperty("metadata").GetProperty("namespace").GetString());
            Assert.False(doc.RootElement.TryGetProperty("stringData", out _));
        }

        var jsonpath = await KubectlAsync("get", "secret", "s", "-o", "jsonpath={.data.password}");
        Assert.True(jsonpath.Succeeded, jsonpath.Describe("jsonpath"));
        Assert.Equal("hunter2", Encoding.UTF8.GetString(Convert.FromBase64String(jsonpath.StandardOutput.Trim())));

        var pods = await KubectlAsync("get", "pods");
        Assert.True(pods.Succeeded, pods.Describe("get pods"));
        Assert.Matches(@"NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE", pods.StandardOutput);
        Assert.Matches(@"web\s+1/1\s+Running\s+0\s+\d+s", pods.StandardOutput);

        var secrets = await KubectlAsync("get", "secrets", "-l", "app=demo");
        Assert.True(secrets.Succeeded, secrets.Describe("get secrets"));
        Assert.Matches(@"s\s+Opaque\s+1\s+\d+s", secrets.StandardOutput);

        var cms = await KubectlAsync("get", "cm");
        Assert.Matches(@"cfg\s+1\s+\d+s", cms.StandardOutput);

        // A second apply patches (strategic merge) instead of creating.
        var file = Path.Combine(root, "cm2.yaml");
        await File.WriteAllTextAsync(file, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  key: changed\n  other: x\n");
        var reapply = await KubectlAsync("apply", "--validate=false", "-f", file);
        Assert.True(reapply.Succeeded, reapply.Describe("re-apply"));
        Assert.Contains("configmap/cfg configured", reapply.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("\"changed\"", server.GetObject("configmaps", "default", "cfg"), StringComparison.Ordinal);
        Assert.Contains(server.Requests, q => q.Method == "PATCH" && q.Path == "/api/v1/namespaces/default/configmaps/cfg");

        var del = await KubectlAsync("delete", "secret", "s");
        Assert.True(del.Succeeded, del.Describe("delete"));
        Assert.Contains("secret \"s\" deleted", del.StandardOutput, StringComparison.Ordinal);
        Assert.Null(server.GetObject("secrets", "default", "s"));
        var gone = await KubectlAsync("get", "secret", "s");
        Assert.False(gone.Succeeded);
        Assert.Contains("NotFound", gone.StandardError, StringComparison.Ordinal);

        var delPod = await KubectlAsync("delete", "-f", Path.Combine(root, "manifest.yaml"), "--ignore-not-found");
        Assert.True(delPod.Succeeded, delPod.Describe("delete -f"));
        Assert.Contains("pod \"web\" deleted", delPod.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Kubectl_get_watch_streams_table_rows()
    {
        server.Put("configmaps", "default", """{"metadata":{"name":"first"},"data":{"a":"1"}}""");
        var psi = new ProcessStartInfo(Kubectl)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { "get", "cm", "--watch" })
        {
            psi.ArgumentList.Add(a);
        }

        foreach (var (k, v) in Env())
        {
            psi.Environment[k] = v;
        }

        using var process = Process.Start(psi)!;
        var lines = new System.Collections.Concurrent.BlockingCollection<string>();
        var stderr = new StringBuilder();
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lines.Add(e.Data);
            }
        };
        process.ErrorDataReceived += (_, e) => stderr.AppendLine(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            string Next()
            {
                Assert.True(lines.TryTake(out var line, Timeout), "no line from kubectl get --watch; stderr: " + stderr);
                return line!;
            }

            Assert.Matches(@"NAME\s+DATA\s+AGE", Next());
            Assert.Matches(@"first\s+1\s+", Next());
            await Task.Delay(300);
            server.Put("configmaps", "default", """{"metadata":{"name":"second"},"data":{"a":"1","b":"2"}}""");
            Assert.Matches(@"second\s+2\s+", Next());
            server.Put("configmaps", "default", """{"metadata":{"name":"first"},"data":{"a":"1","b":"2","c":"3"}}""");
            Assert.Matches(@"first\s+3\s+", Next());
            var watch = server.Requests.Last(q => q.Path == "/api/v1/namespaces/default/configmaps" && q.Query.Contains("watch=", StringComparison.Ordinal));
            Assert.Contains("as=Table", watch.Accept, StringComparison.Ordinal);
        }
        finally
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
    }

    [Fact]
    public async Task Kubectl_logs()
    {
        await ApplyManifestAsync();
        server.SetPodLog("default", "web", "line one\nline two\nline three\n");
        var r = await KubectlAsync("logs", "web");
        Assert.True(r.Succeeded, r.Describe("logs"));
        Assert.Equal("line one\nline two\nline three\n", r.StandardOutput);
        var tail = await KubectlAsync("logs", "web", "--tail=1");
        Assert.Equal("line three\n", tail.StandardOutput);
        var follow = await KubectlAsync("logs", "-f", "pod/web");
        Assert.True(follow.Succeeded, follow.Describe("logs -f"));
        Assert.Contains("line two", follow.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Kubectl_exec_separates_stdout_stderr_and_propagates_the_exit_code()
    {
        await ApplyManifestAsync();
        var r = await KubectlAsync("exec", "web", "--", "sh", "-c", "echo out; echo err >&2; exit 3");
        Assert.Equal(3, r.ExitCode);
        Assert.Equal("out\n", r.StandardOutput);
        Assert.Contains("err\n", r.StandardError, StringComparison.Ordinal);
        Assert.Contains("command terminated with exit code 3", r.StandardError, StringComparison.Ordinal);
        var exec = server.Requests.Last(q => q.Path.EndsWith("/exec", StringComparison.Ordinal));
        Assert.Equal("websocket", exec.Upgrade);
        Assert.Contains("v5.channel.k8s.io", exec.WebSocketProtocol, StringComparison.Ordinal);

        var ok = await KubectlAsync("exec", "web", "-c", "app", "--", "pwd");
        Assert.True(ok.Succeeded, ok.Describe("exec pwd"));
        Assert.Equal(server.PodDirectory("default", "web"), ok.StandardOutput.Trim());
    }

    [Fact]
    public async Task Kubectl_exec_forwards_stdin_and_closes_it()
    {
        await ApplyManifestAsync();
        var r = await KubectlStdinAsync("data\nmore\n", "exec", "-i", "web", "--", "cat");
        Assert.True(r.Succeeded, r.Describe("exec -i cat"));
        Assert.Equal("data\nmore\n", r.StandardOutput);
    }

    [Fact]
    public async Task Kubectl_exec_with_a_tty()
    {
        await ApplyManifestAsync();
        var env = Env();
        var command = $"{Kubectl} exec -it web -- sh -c 'echo hi-from-tty'";
        var r = await ProcessRunner.RunAsync("script", ["-qec", command, "/dev/null"], timeout: Timeout, env: env);
        Assert.True(r.Succeeded, r.Describe("exec -it"));
        Assert.Contains("hi-from-tty", r.StandardOutput, StringComparison.Ordinal);
        Assert.Contains(server.Requests, q => q.Path.EndsWith("/exec", StringComparison.Ordinal) && q.Query.Contains("tty=true", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Kubectl_cp_both_ways()
    {
        await ApplyManifestAsync();
        var local = Path.Combine(root, "local.txt");
        await File.WriteAllTextAsync(local, "copied content\n");
        var up = await KubectlAsync("cp", local, "web:/f");
        Assert.True(up.Succeeded, up.Describe("cp up"));
        Assert.Equal("copied content\n", await File.ReadAllTextAsync(Path.Combine(server.PodDirectory("default", "web"), "f")));

        var back = Path.Combine(root, "back.txt");
        var down = await KubectlAsync("cp", "web:/f", back);
        Assert.True(down.Succeeded, down.Describe("cp down"));
        Assert.Equal("copied content\n", await File.ReadAllTextAsync(back));
    }

    [Fact]
    public async Task Spdy_upgrades_are_refused_with_a_status()
    {
        await ApplyManifestAsync();
        using var handler = new HttpClientHandler { ServerCertificateCustomValidationCallback = HttpClientHandler.DangerousAcceptAnyServerCertificateValidator };
        using var http = new HttpClient(handler);
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(server.Url, "api/v1/namespaces/default/pods/web/exec?command=true&stdout=true"));
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", server.Token);
        request.Headers.Connection.Add("Upgrade");
        request.Headers.Upgrade.Add(new System.Net.Http.Headers.ProductHeaderValue("SPDY", "3.1"));
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("\"kind\":\"Status\"", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Protobuf_only_accept_gets_406()
    {
        using var handler = new HttpClientHandler { ServerCertificateCustomValidationCallback = HttpClientHandler.DangerousAcceptAnyServerCertificateValidator };
        using var http = new HttpClient(handler);
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(server.Url, "api/v1/namespaces/default/pods"));
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", server.Token);
        request.Headers.Accept.ParseAdd("application/vnd.kubernetes.protobuf");
        request.Headers.Add("Impersonate-User", "alice");
        request.Headers.Add("Impersonate-Group", ["devs", "ops"]);
        request.Headers.Add("Impersonate-Extra-Scopes", "read");
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.NotAcceptable, response.StatusCode);
        var seen = server.Requests.Last();
        Assert.Equal("application/vnd.kubernetes.protobuf", seen.Accept);
        Assert.Equal("alice", seen.ImpersonateUser);
        Assert.Equal(["devs", "ops"], seen.ImpersonateGroups);
        Assert.Equal(["read"], seen.ImpersonateExtra["scopes"]);
    }

    [Fact]
    public async Task KubernetesClient_lists_reads_patches_and_deletes()
    {
        await ApplyManifestAsync();
        using var client = Client();
        var pods = await client.CoreV1.ListNamespacedPodAsync("default");
        var pod = Assert.Single(pods.Items);
        Assert.Equal("web", pod.Metadata.Name);
        Assert.Equal("Running", pod.Status.Phase);

        var secret = await client.CoreV1.ReadNamespacedSecretAsync("s", "default");
        Assert.Equal("hunter2", Encoding.UTF8.GetString(secret.Data["password"]));

        var created = await client.CoreV1.CreateNamespacedSecretAsync(
            new V1Secret { Metadata = new V1ObjectMeta { Name = "s2" }, StringData = new Dictionary<string, string> { ["k"] = "v" } },
            "default");
        Assert.Equal("v", Encoding.UTF8.GetString(created.Data["k"]));

        var patched = await client.CoreV1.PatchNamespacedConfigMapAsync(
            new V1Patch("""[{"op":"add","path":"/data/extra","value":"y"}]""", V1Patch.PatchType.JsonPatch),
            "cfg",
            "default");
        Assert.Equal("y", patched.Data["extra"]);
        var merged = await client.CoreV1.PatchNamespacedConfigMapAsync(
            new V1Patch("""{"data":{"key":null}}""", V1Patch.PatchType.MergePatch),
            "cfg",
            "default");
        Assert.False(merged.Data.ContainsKey("key"));

        await client.CoreV1.DeleteNamespacedSecretAsync("s2", "default");
        var ex = await Assert.ThrowsAsync<k8s.Autorest.HttpOperationException>(() => client.CoreV1.ReadNamespacedSecretAsync("s2", "default"));
        Assert.Equal(HttpStatusCode.NotFound, ex.Response.StatusCode);
    }

    [Fact]
    public async Task KubernetesClient_watches_configmaps()
    {
        using var client = Client();
        server.Put("configmaps", "default", """{"metadata":{"name":"before"},"data":{}}""");
        using var cts = new CancellationTokenSource(Timeout);
        var seen = new List<(WatchEventType, string)>();
        var enumerator = client.CoreV1.WatchListNamespacedConfigMapAsync("default", cancellationToken: cts.Token).GetAsyncEnumerator(cts.Token);
        try
        {
            Assert.True(await enumerator.MoveNextAsync());
            seen.Add((enumerator.Current.Item1, enumerator.Current.Item2.Metadata.Name));
            server.Put("configmaps", "default", """{"metadata":{"name":"after"},"data":{}}""");
            Assert.True(await enumerator.MoveNextAsync());
            seen.Add((enumerator.Current.Item1, enumerator.Current.Item2.Metadata.Name));
            await client.CoreV1.DeleteNamespacedConfigMapAsync("before", "default", cancellationToken: cts.Token);
            Assert.True(await enumerator.MoveNextAsync());
            seen.Add((enumerator.Current.Item1, enumerator.Current.Item2.Metadata.Name));
        }
        finally
        {
            await cts.CancelAsync();
            try
            {
                await enumerator.DisposeAsync();
            }
            catch (OperationCanceledException)
            {
            }
        }

        Assert.Equal([(WatchEventType.Added, "before"), (WatchEventType.Added, "after"), (WatchEventType.Deleted, "before")], seen);
    }

    [Fact]
    public async Task KubernetesClient_exec_over_websocket()
    {
        await ApplyManifestAsync();
        using var client = Client();
        string? stdout = null;
        string? stderr = null;
        var exit = await client.NamespacedPodExecAsync("web", "default", "app", ["sh", "-c", "echo hello; echo oops >&2; exit 4"], false, async (stdin, output, error) =>
        {
            stdin.Close();
            using var o = new StreamReader(output);
            using var e = new StreamReader(error);
            var outTask = o.ReadToEndAsync();
            var errTask = e.ReadToEndAsync();
            stdout = await outTask;
            stderr = await errTask;
        }, CancellationToken.None).WaitAsync(Timeout);
        Assert.Equal(4, exit);
        Assert.Equal("hello\n", stdout);
        Assert.Equal("oops\n", stderr);
        var exec = server.Requests.Last(q => q.Path.EndsWith("/exec", StringComparison.Ordinal));
        Assert.Contains("channel.k8s.io", exec.WebSocketProtocol, StringComparison.Ordinal);
    }

    [Fact]
    public async Task KubernetesClient_port_forward_over_websocket()
    {
        await ApplyManifestAsync();
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        server.PortForwardTarget = ((IPEndPoint)listener.LocalEndpoint).Port;
        var release = new TaskCompletionSource();
        var echo = Task.Run(async () =>
        {
            using var c = await listener.AcceptTcpClientAsync();
            var s = c.GetStream();
            var buffer = new byte[1024];
            var n = await s.ReadAsync(buffer);
            await s.WriteAsync(Encoding.ASCII.GetBytes("echo:" + Encoding.ASCII.GetString(buffer, 0, n)));
            await release.Task;
        });
        using var client = Client();
        using var socket = await client.WebSocketNamespacedPodPortForwardAsync("web", "default", [8080], "v4.channel.k8s.io");
        using var demux = new StreamDemuxer(socket, StreamType.PortForward);
        demux.Start();
        using var stream = demux.GetStream((byte?)0, (byte?)0);
        await stream.WriteAsync("ping"u8.ToArray());
        var received = new byte[64];
        var got = 0;
        using var cts = new CancellationTokenSource(Timeout);
        while (got < "echo:ping".Length)
        {
            var n = await stream.ReadAsync(received.AsMemory(got), cts.Token);
            Assert.True(n > 0, $"stream ended after {got} bytes: {Encoding.ASCII.GetString(received, 0, got)}");
            got += n;
        }

        Assert.Equal("echo:ping", Encoding.ASCII.GetString(received, 0, got));
        release.SetResult();
        await echo.WaitAsync(Timeout);
    }

    [Fact]
    public async Task Kubectl_port_forward_tunnels_spdy_over_websocket()
    {
        await ApplyManifestAsync();
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        server.PortForwardTarget = ((IPEndPoint)listener.LocalEndpoint).Port;
        var echo = Task.Run(async () =>
        {
            while (true)
            {
                var c = await listener.AcceptTcpClientAsync();
                _ = Task.Run(async () =>
                {
                    using (c)
                    {
                        var s = c.GetStream();
                        var buffer = new byte[1024];
                        int n;
                        while ((n = await s.ReadAsync(buffer)) > 0)
                        {
                            await s.WriteAsync(Encoding.ASCII.GetBytes("echo:" + Encoding.ASCII.GetString(buffer, 0, n)));
                        }
                    }
                });
            }
        });

        var psi = new ProcessStartInfo(Kubectl) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "port-forward", "pod/web", "0:8080" })
        {
            psi.ArgumentList.Add(a);
        }

        foreach (var (k, v) in Env())
        {
            psi.Environment[k] = v;
        }

        using var process = Process.Start(psi)!;
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            var line = await process.StandardOutput.ReadLineAsync().WaitAsync(Timeout);
            var match = System.Text.RegularExpressions.Regex.Match(line ?? "", @"Forwarding from 127\.0\.0\.1:(\d+) -> 8080");
            Assert.True(match.Success, $"unexpected kubectl output: {line}; errors: {string.Join("\n", server.Errors)}");
            var localPort = int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);

            // Two connections in turn: each is a new error/data stream pair (requestid 0, then 1) on the same SPDY session.
            foreach (var word in new[] { "ping", "pong" })
            {
                using var client = new TcpClient();
                await client.ConnectAsync(IPAddress.Loopback, localPort);
                var stream = client.GetStream();
                await stream.WriteAsync(Encoding.ASCII.GetBytes(word));
                var received = new byte[64];
                var got = 0;
                using var cts = new CancellationTokenSource(Timeout);
                while (got < "echo:".Length + word.Length)
                {
                    var n = await stream.ReadAsync(received.AsMemory(got), cts.Token);
                    Assert.True(n > 0, $"connection ended after {got} bytes");
                    got += n;
                }

                Assert.Equal("echo:" + word, Encoding.ASCII.GetString(received, 0, got));
            }

            var pf = server.Requests.Last(q => q.Path.EndsWith("/portforward", StringComparison.Ordinal));
            Assert.Equal("SPDY/3.1+portforward.k8s.io", pf.WebSocketProtocol);
            Assert.Empty(server.Errors);
        }
        catch (Exception e) when (e is not Xunit.Sdk.XunitException)
        {
            process.Kill(entireProcessTree: true);
            throw new InvalidOperationException("kubectl port-forward stderr: " + await stderr + "\nserver errors: " + string.Join("\n", server.Errors), e);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }

            await process.WaitForExitAsync();
        }

        _ = echo;
    }
}
