using System.Net;
using System.Net.Http.Headers;
using System.Text;
using k8s;
using NhiAudit.IntegrationTests.Gateway;
using NhiAudit.IntegrationTests.Infrastructure;

namespace NhiAudit.IntegrationTests.Kubernetes.Gateway;

/// <summary>
/// The real kubectl through the Kubernetes gateway to the in-test API server: every request tied to the workload,
/// recorded, Secret values masked, policy applied, bad tokens refused.
/// </summary>
public sealed class KubernetesGatewayTests : IAsyncLifetime
{
    private const string SecretValue = "s3cr3t-Passw0rd!";
    private KubernetesGatewayHost _gateway = null!;
    private string _kubeconfig = "";
    private string _manifests = "";

    public async Task InitializeAsync()
    {
        _gateway = await KubernetesGatewayHost.StartAsync(settings =>
        {
            settings["NhiAudit:Policy:Rules:0:Name"] = "protect-kube-system";
            settings["NhiAudit:Policy:Rules:0:Protocols:0"] = "kubernetes";
            settings["NhiAudit:Policy:Rules:0:Actions:0"] = "delete";
            settings["NhiAudit:Policy:Rules:0:Actions:1"] = "deletecollection";
            settings["NhiAudit:Policy:Rules:0:When"] = "request.namespace == 'kube-system'";
            settings["NhiAudit:Policy:Rules:0:Effect"] = "Deny";
            settings["NhiAudit:Policy:Rules:0:Reason"] = "nothing is deleted in kube-system through the gateway";
        });
        _kubeconfig = _gateway.WriteKubeconfig(_gateway.MintToken());
        _manifests = Path.Combine(_gateway.Directory, "app.yaml");
        await File.WriteAllTextAsync(_manifests, $"""
            apiVersion: v1
            kind: Secret
            metadata:
              name: db
            type: Opaque
            stringData:
              password: {SecretValue}
            ---
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: settings
            data:
              mode: blue
            ---
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              containers:
              - name: web
                image: nginx
            """);
    }

    public async Task DisposeAsync() => await _gateway.DisposeAsync();

    private Task<ProcessResult> Kubectl(params string[] args) => _gateway.KubectlAsync(_kubeconfig, args);

    private async Task ApplyAsync()
    {
        var apply = await Kubectl("apply", "--validate=false", "-f", _manifests);
        Assert.True(apply.Succeeded, apply.Describe("kubectl apply"));
    }

    private static void AssertNoSecret(string text)
    {
        Assert.DoesNotContain(SecretValue, text, StringComparison.Ordinal);
        Assert.DoesNotContain(Convert.ToBase64String(Encoding.UTF8.GetBytes(SecretValue)), text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Kubectl_get_apply_logs_exec_and_delete_work_and_each_request_is_recorded_with_the_workload()
    {
        var namespaces = await Kubectl("get", "ns");
        Assert.True(namespaces.Succeeded, namespaces.Describe("kubectl get ns"));
        Assert.Contains("kube-system", namespaces.StandardOutput, StringComparison.Ordinal);

        await ApplyAsync();
        var pods = await Kubectl("get", "pods");
        Assert.True(pods.Succeeded, pods.Describe("kubectl get pods"));
        Assert.Contains("web", pods.StandardOutput, StringComparison.Ordinal);

        var logs = await Kubectl("logs", "web");
        Assert.True(logs.Succeeded, logs.Describe("kubectl logs"));

        var exec = await Kubectl("exec", "web", "--", "sh", "-c", "echo out-line; echo err-line >&2; exit 3");
        Assert.Equal(3, exec.ExitCode);
        Assert.Contains("out-line", exec.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("err-line", exec.StandardError, StringComparison.Ordinal);

        var delete = await Kubectl("delete", "configmap", "settings");
        Assert.True(delete.Succeeded, delete.Describe("kubectl delete"));

        // The API server saw the workload, not the gateway.
        Assert.Contains(_gateway.Upstream.Requests, r => r.ImpersonateUser == "nhiaudit:deploy-job" && r.Path.EndsWith("/configmaps/settings", StringComparison.Ordinal) && r.Method == "DELETE");
        Assert.All(_gateway.Upstream.Requests, r => Assert.Equal("nhiaudit:deploy-job", r.ImpersonateUser));

        var records = await _gateway.WaitForRecordsAsync(all => all.Any(r => r.Str("type") == "k8s.response" && r.TryGetProperty("stream", out _)));
        var requests = records.Where(r => r.Str("type") == "k8s.request").ToList();
        Assert.All(requests, r => Assert.Equal("deploy-job", r.GetProperty("identity").GetProperty("subject").GetString()));
        Assert.Contains(requests, r => r.GetProperty("request").GetProperty("verb").GetString() == "delete" && r.GetProperty("request").GetProperty("name").GetString() == "settings");
        Assert.Contains(requests, r => r.GetProperty("request").GetProperty("subresource").GetString() == "log");
        var execRequest = requests.Single(r => r.GetProperty("request").GetProperty("subresource").GetString() == "exec");
        Assert.Equal("sh -c echo out-line; echo err-line >&2; exit 3", execRequest.GetProperty("request").GetProperty("command").GetString());
        var execResponse = records.Single(r => r.Str("type") == "k8s.response" && r.GetProperty("request").GetInt64() == execRequest.GetProperty("seq").GetInt64());
        Assert.Equal(3, execResponse.GetProperty("stream").GetProperty("exitCode").GetInt32());

        // The recording holds what the command printed.
        var recording = execResponse.GetProperty("stream").GetProperty("recording").GetString()!;
        var cast = await File.ReadAllTextAsync(recording);
        Assert.StartsWith("{\"version\":2", cast, StringComparison.Ordinal);
        Assert.Contains("out-line", cast, StringComparison.Ordinal);
        if (ProcessRunner.FindOnPath("asciinema") is { } asciinema)
        {
            // asciinema cat opens /dev/tty: run it under script(1), which gives it a terminal.
            var played = await ProcessRunner.RunAsync("script", ["-qec", $"{asciinema} cat {recording}", "/dev/null"], timeout: TimeSpan.FromSeconds(20));
            Assert.True(played.Succeeded, played.Describe("asciinema cat"));
            Assert.Contains("out-line", played.StandardOutput, StringComparison.Ordinal);
        }

        // The apply's body is in the log, its Secret value masked.
        Assert.Contains(requests, r => r.TryGetProperty("body", out _));
        AssertNoSecret(string.Join("\n", records.Select(r => r.GetRawText())));
    }

    [Theory]
    [InlineData("-o", "yaml")]
    [InlineData("-o", "json")]
    [InlineData("-o", "jsonpath={.data.password}")]
    [InlineData("-o", "go-template={{.data.password | base64decode}}")]
    public async Task Secret_values_are_masked_in_every_output_format(string flag, string format)
    {
        await ApplyAsync();
        var get = await Kubectl("get", "secret", "db", flag, format);
        Assert.True(get.Succeeded, get.Describe("kubectl get secret"));
        AssertNoSecret(get.StandardOutput);
        Assert.True(get.StandardOutput.Contains("KioqKg==", StringComparison.Ordinal) || get.StandardOutput.Contains("****", StringComparison.Ordinal), get.StandardOutput);

        // The last-applied-configuration annotation carries the manifest (and its stringData) too.
        var yaml = await Kubectl("get", "secret", "db", "-o", "yaml");
        AssertNoSecret(yaml.StandardOutput);
    }

    [Fact]
    public async Task Secret_values_are_masked_in_tables_lists_and_watches()
    {
        await ApplyAsync();
        var table = await Kubectl("get", "secrets");
        Assert.True(table.Succeeded, table.Describe("kubectl get secrets"));
        Assert.Contains("db", table.StandardOutput, StringComparison.Ordinal);

        var list = await Kubectl("get", "secrets", "-o", "json");
        AssertNoSecret(list.StandardOutput);

        // kubectl get --watch: the first event is the existing Secret; stop after a moment.
        var watch = await _gateway.KubectlAsync(_kubeconfig, ["get", "secret", "db", "--watch", "-o", "json", "--request-timeout=3s"], timeout: TimeSpan.FromSeconds(20));
        Assert.Contains("\"db\"", watch.StandardOutput, StringComparison.Ordinal);
        AssertNoSecret(watch.StandardOutput);
    }

    [Fact]
    public async Task A_protobuf_accept_is_renegotiated_to_JSON_and_masked()
    {
        await ApplyAsync();
        using var handler = new HttpClientHandler { ServerCertificateCustomValidationCallback = HttpClientHandler.DangerousAcceptAnyServerCertificateValidator };
        using var http = new HttpClient(handler) { BaseAddress = _gateway.Url };
        using var request = new HttpRequestMessage(HttpMethod.Get, "/api/v1/namespaces/default/secrets/db");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _gateway.MintToken("protobuf-client"));
        request.Headers.Accept.ParseAdd("application/vnd.kubernetes.protobuf");
        using var response = await http.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        AssertNoSecret(body);
        Assert.Contains(_gateway.Upstream.Requests, r => r.Path.EndsWith("/secrets/db", StringComparison.Ordinal) && r.Accept!.Contains("application/json", StringComparison.Ordinal) && !r.Accept.Contains("protobuf", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_denied_request_gets_a_403_Status_that_kubectl_prints_and_is_recorded()
    {
        var delete = await Kubectl("delete", "configmap", "anything", "-n", "kube-system");
        Assert.Equal(1, delete.ExitCode);
        Assert.Contains("Error from server (Forbidden)", delete.StandardError, StringComparison.Ordinal);
        Assert.Contains("nothing is deleted in kube-system through the gateway", delete.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain(_gateway.Upstream.Requests, r => r.Method == "DELETE");

        var records = await _gateway.ReadRecordsAsync();
        var refused = records.Single(r => r.Str("type") == "k8s.request" && r.TryGetProperty("refused", out _));
        Assert.Equal("protect-kube-system", refused.GetProperty("policy").GetProperty("rule").GetString());
    }

    [Fact]
    public async Task A_workload_cannot_impersonate_someone_else_through_the_gateway()
    {
        var get = await Kubectl("get", "pods", "--as=system:admin", "--as-group=system:masters");
        Assert.Equal(1, get.ExitCode);
        Assert.Contains("Error from server (Forbidden)", get.StandardError, StringComparison.Ordinal);
        Assert.True(get.StandardError.Contains("may not impersonate", StringComparison.Ordinal), get.StandardError);
        Assert.DoesNotContain(_gateway.Upstream.Requests, r => r.Path.Contains("/pods", StringComparison.Ordinal));
        Assert.DoesNotContain(_gateway.Upstream.Requests, r => r.ImpersonateUser == "system:admin");
    }

    [Theory]
    [InlineData("garbage")]
    [InlineData("expired")]
    [InlineData("wrong-audience")]
    public async Task A_bad_token_gets_401_and_an_audit_record(string kind)
    {
        var token = kind switch
        {
            "expired" => _gateway.MintToken("expired-job", lifetime: TimeSpan.FromSeconds(-120)),
            "wrong-audience" => _gateway.MintToken("elsewhere-job", audience: "someone-else"),
            _ => "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.c2lnbmF0dXJl",
        };
        var kubeconfig = _gateway.WriteKubeconfig(token);
        var get = await _gateway.KubectlAsync(kubeconfig, ["get", "pods"]);
        Assert.NotEqual(0, get.ExitCode);
        Assert.Contains("You must be logged in to the server", get.StandardError, StringComparison.Ordinal);
        Assert.Empty(_gateway.Upstream.Requests);

        var records = await _gateway.ReadRecordsAsync();
        var failed = records.Where(r => r.Str("type") == "k8s.auth.failed").ToList();
        Assert.NotEmpty(failed);
        Assert.DoesNotContain(token, string.Join("\n", records.Select(r => r.GetRawText())), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_interactive_exec_with_a_terminal_is_recorded_and_plays_back()
    {
        await ApplyAsync();

        // kubectl exec -it needs a terminal: script(1) gives it one, and feeds it the typed commands.
        var session = await ProcessRunner.RunAsync(
            "script",
            ["-qec", $"kubectl --kubeconfig {_kubeconfig} exec -it web -- sh", "/dev/null"],
            stdin: "echo typed-$((6*7))\nexit\n",
            timeout: TimeSpan.FromSeconds(30));
        Assert.True(session.Succeeded, session.Describe("kubectl exec -it"));
        Assert.Contains("typed-42", session.StandardOutput, StringComparison.Ordinal);

        var records = await _gateway.WaitForRecordsAsync(all => all.Any(r => r.Str("type") == "k8s.response" && r.TryGetProperty("stream", out var s) && s.TryGetProperty("recording", out _)));
        var response = records.Last(r => r.Str("type") == "k8s.response" && r.TryGetProperty("stream", out var s) && s.TryGetProperty("recording", out _));
        var cast = await File.ReadAllLinesAsync(response.GetProperty("stream").GetProperty("recording").GetString()!);
        Assert.Contains(cast, line => line.Contains("\"i\"", StringComparison.Ordinal) && line.Contains("echo typed", StringComparison.Ordinal));
        Assert.Contains(cast, line => line.Contains("\"o\"", StringComparison.Ordinal) && line.Contains("typed-42", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Kubectl_attach_is_relayed_recorded_and_governed_like_exec()
    {
        await ApplyAsync();
        var attach = await _gateway.KubectlAsync(_kubeconfig, ["attach", "web", "-i", "-c", "web"], stdin: "echo attached-$((40+2))\nexit\n");
        Assert.Contains("attached-42", attach.StandardOutput, StringComparison.Ordinal);

        var records = await _gateway.WaitForRecordsAsync(all => all.Any(r => r.Str("type") == "k8s.response" && r.TryGetProperty("stream", out var s) && s.GetProperty("kind").GetString() == "attach"));
        var request = records.Single(r => r.Str("type") == "k8s.request" && r.GetProperty("request").GetProperty("subresource").GetString() == "attach");
        Assert.Equal("attach", request.GetProperty("request").GetProperty("action").GetString());
        var response = records.Single(r => r.Str("type") == "k8s.response" && r.GetProperty("request").GetInt64() == request.GetProperty("seq").GetInt64());
        var cast = await File.ReadAllTextAsync(response.GetProperty("stream").GetProperty("recording").GetString()!);
        Assert.Contains("attached-42", cast, StringComparison.Ordinal);
    }

    [Fact]
    public async Task KubernetesClient_lists_reads_masked_secrets_and_execs_through_the_gateway()
    {
        await ApplyAsync();
        var config = KubernetesClientConfiguration.BuildConfigFromConfigFile(_kubeconfig);
        using var client = new k8s.Kubernetes(config);
        var pods = await client.CoreV1.ListNamespacedPodAsync("default");
        Assert.Contains(pods.Items, p => p.Metadata.Name == "web");

        var secret = await client.CoreV1.ReadNamespacedSecretAsync("db", "default");
        Assert.Equal("****", Encoding.UTF8.GetString(secret.Data["password"]));

        var output = "";
        var exit = await client.NamespacedPodExecAsync("web", "default", "web", ["sh", "-c", "echo from-client; exit 4"], false, async (_, stdout, _) =>
        {
            using var reader = new StreamReader(stdout);
            output = await reader.ReadToEndAsync();
        }, CancellationToken.None);
        Assert.Equal(4, exit);
        Assert.Contains("from-client", output, StringComparison.Ordinal);

        var records = await _gateway.WaitForRecordsAsync(all => all.Any(r => r.Str("type") == "k8s.response" && r.TryGetProperty("stream", out var st) && st.TryGetProperty("exitCode", out var code) && code.GetInt32() == 4));
        var execRequest = records.Single(r => r.Str("type") == "k8s.request" && r.GetProperty("request").TryGetProperty("command", out var c) && c.GetString() == "sh -c echo from-client; exit 4");
        System.Text.Json.JsonElement? execResponse = records.Single(r => r.Str("type") == "k8s.response" && r.GetProperty("request").GetInt64() == execRequest.GetProperty("seq").GetInt64());
        Assert.NotNull(execResponse);
        Assert.Equal(4, execResponse.Value.GetProperty("stream").GetProperty("exitCode").GetInt32());
    }

    [Fact]
    public async Task Kubectl_port_forward_works_through_the_gateway_and_is_recorded()
    {
        await ApplyAsync();
        using var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        _gateway.Upstream.PortForwardTarget = ((IPEndPoint)listener.LocalEndpoint).Port;
        _ = Task.Run(async () =>
        {
            while (true)
            {
                using var connection = await listener.AcceptTcpClientAsync();
                var stream = connection.GetStream();
                var buffer = new byte[256];
                var n = await stream.ReadAsync(buffer);
                await stream.WriteAsync(Encoding.ASCII.GetBytes("echo:" + Encoding.ASCII.GetString(buffer, 0, n)));
            }
        });

        var start = new System.Diagnostics.ProcessStartInfo("kubectl") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { "--kubeconfig", _kubeconfig, "port-forward", "pod/web", "0:8080" })
        {
            start.ArgumentList.Add(arg);
        }

        using var kubectl = System.Diagnostics.Process.Start(start)!;
        var stderr = kubectl.StandardError.ReadToEndAsync();
        try
        {
            var line = await kubectl.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(20));
            var match = System.Text.RegularExpressions.Regex.Match(line ?? "", @"Forwarding from 127\.0\.0\.1:(\d+) -> 8080");
            Assert.True(match.Success, $"kubectl port-forward printed: {line}");
            using var client = new System.Net.Sockets.TcpClient();
            await client.ConnectAsync(IPAddress.Loopback, int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
            var stream = client.GetStream();
            await stream.WriteAsync("ping"u8.ToArray());
            var received = new byte[64];
            var got = 0;
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            while (got < "echo:ping".Length)
            {
                var n = await stream.ReadAsync(received.AsMemory(got), timeout.Token);
                Assert.True(n > 0, "the forwarded connection ended early; kubectl: " + (stderr.IsCompleted ? await stderr : ""));
                got += n;
            }

            Assert.Equal("echo:ping", Encoding.ASCII.GetString(received, 0, got));
        }
        finally
        {
            kubectl.Kill(entireProcessTree: true);
            await kubectl.WaitForExitAsync();
        }

        var records = await _gateway.ReadRecordsAsync();
        var request = records.Single(r => r.Str("type") == "k8s.request" && r.GetProperty("request").GetProperty("subresource").GetString() == "portforward");
        Assert.Equal("portforward", request.GetProperty("request").GetProperty("action").GetString());
        Assert.Equal("deploy-job", request.GetProperty("identity").GetProperty("subject").GetString());
        Assert.Contains(_gateway.Upstream.Requests, r => r.Path.EndsWith("/portforward", StringComparison.Ordinal) && r.ImpersonateUser == "nhiaudit:deploy-job");
    }

    [Fact]
    public async Task The_records_export_as_Kubernetes_audit_events()
    {
        await ApplyAsync();
        var get = await Kubectl("get", "secret", "db", "-o", "json");
        Assert.True(get.Succeeded, get.Describe("kubectl get secret"));
        await _gateway.ReadRecordsAsync();

        var export = await GatewayProcess.RunCliAsync(["show", _gateway.AuditDirectory, "--format", "k8s-audit"]);
        Assert.True(export.Succeeded, export.Describe("nhiaudit show --format k8s-audit"));
        var events = export.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement).ToList();
        Assert.All(events, e =>
        {
            Assert.Equal("audit.k8s.io/v1", e.GetProperty("apiVersion").GetString());
            Assert.Equal("Event", e.GetProperty("kind").GetString());
        });
        var read = events.Last(e => e.GetProperty("verb").GetString() == "get" && e.TryGetProperty("objectRef", out var o) && o.GetProperty("resource").GetString() == "secrets");
        Assert.Equal("db", read.GetProperty("objectRef").GetProperty("name").GetString());
        Assert.Equal("default", read.GetProperty("objectRef").GetProperty("namespace").GetString());
        Assert.Equal(200, read.GetProperty("responseStatus").GetProperty("code").GetInt32());
        Assert.Equal("deploy-job", read.GetProperty("user").GetProperty("username").GetString());
        Assert.Equal("nhiaudit:deploy-job", read.GetProperty("impersonatedUser").GetProperty("username").GetString());
        Assert.Equal("ResponseComplete", read.GetProperty("stage").GetString());
        var create = events.First(e => e.GetProperty("verb").GetString() == "create" && e.GetProperty("objectRef").GetProperty("resource").GetString() == "secrets");
        Assert.Equal("RequestResponse", create.GetProperty("level").GetString());
        AssertNoSecret(export.StandardOutput);
    }

    [Fact]
    public async Task A_patch_of_a_secret_is_recorded_with_its_values_masked()
    {
        await ApplyAsync();
        var patch = await Kubectl("patch", "secret", "db", "--type=merge", "-p", "{\"stringData\":{\"password\":\"rotated-Secret-9\"}}");
        Assert.True(patch.Succeeded, patch.Describe("kubectl patch"));
        var json = await Kubectl("patch", "secret", "db", "--type=json", "-p", "[{\"op\":\"replace\",\"path\":\"/data/password\",\"value\":\"cm90YXRlZC1hZ2Fpbg==\"}]");
        Assert.True(json.Succeeded, json.Describe("kubectl patch --type=json"));

        var records = await _gateway.ReadRecordsAsync();
        var patches = records.Where(r => r.Str("type") == "k8s.request" && r.GetProperty("request").GetProperty("verb").GetString() == "patch").ToList();
        Assert.Equal(2, patches.Count);
        Assert.All(patches, r => Assert.True(r.TryGetProperty("body", out _)));
        var log = string.Join("\n", records.Select(r => r.GetRawText()));
        Assert.DoesNotContain("rotated-Secret-9", log, StringComparison.Ordinal);
        Assert.DoesNotContain("cm90YXRlZC1hZ2Fpbg==", log, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Kubectl_cp_records_the_files_copied()
    {
        await ApplyAsync();
        var local = Path.Combine(_gateway.Directory, "release-notes.txt");
        await File.WriteAllTextAsync(local, "v1.4.2\n");
        var up = await Kubectl("cp", local, "web:/release-notes.txt");
        Assert.True(up.Succeeded, up.Describe("kubectl cp to the pod"));
        var back = Path.Combine(_gateway.Directory, "back.txt");
        var down = await Kubectl("cp", "web:/release-notes.txt", back);
        Assert.True(down.Succeeded, down.Describe("kubectl cp from the pod"));
        Assert.Equal("v1.4.2\n", await File.ReadAllTextAsync(back));

        var records = await _gateway.WaitForRecordsAsync(all => all.Count(r => r.Str("type") == "k8s.response" && r.TryGetProperty("stream", out var s) && s.TryGetProperty("files", out _)) >= 2);
        var files = records.Where(r => r.Str("type") == "k8s.response" && r.TryGetProperty("stream", out var s) && s.TryGetProperty("files", out _))
            .SelectMany(r => r.GetProperty("stream").GetProperty("files").EnumerateArray().Select(f => f.GetProperty("name").GetString()))
            .ToList();
        Assert.Contains(files, f => f!.EndsWith("release-notes.txt", StringComparison.Ordinal));
    }
}
