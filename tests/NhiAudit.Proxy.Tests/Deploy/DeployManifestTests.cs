using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using NhiAudit.Approvals.Postgres;
using NhiAudit.Audit;
using NhiAudit.Kubernetes;
using NhiAudit.Kubernetes.Gateway;
using NhiAudit.Postgres;
using NhiAudit.Postgres.Gateway;
using NhiAudit.Proxy.Admin;
using NhiAudit.Proxy.Commands;

namespace NhiAudit.Proxy.Tests.Deploy;

/// <summary>
/// The Kubernetes manifests and the Dockerfile in <c>deploy/</c>, checked the way an operator would before applying
/// them: rendered with the real <c>kubectl kustomize</c> (no cluster needed), their cross-references followed, and the
/// ConfigMap's <c>nhiaudit.json</c> run by the real gateway host with the Secret's values filled in.
/// </summary>
public sealed class DeployManifestTests
{
    private const string Base = "deploy/kubernetes";
    private const string StatefulSetVariant = "deploy/kubernetes-statefulset";
    private const string ConfigPath = "/etc/nhiaudit/nhiaudit.json";
    private const string PodName = "nhiaudit-0";

    private static readonly string RepoRoot = FindRepoRoot();

    [Fact]
    public void The_base_renders_a_service_account_config_map_deployment_service_and_disruption_budget()
    {
        var objects = Render(Base);
        Assert.Equal(
            new[] { "ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "ServiceAccount" },
            objects.Select(o => Kind(o)).Order(StringComparer.Ordinal));
        Assert.DoesNotContain(objects, o => Kind(o) == "Secret");
        Assert.All(objects, o => Assert.False(o.GetProperty("metadata").TryGetProperty("namespace", out _), $"{Kind(o)} names a namespace"));
        Assert.Equal(3, Single(objects, "Deployment").GetProperty("spec").GetProperty("replicas").GetInt32());
    }

    [Fact]
    public void The_statefulset_variant_replaces_the_deployment_and_keeps_each_replicas_log_on_its_own_claim()
    {
        var objects = Render(StatefulSetVariant);
        Assert.DoesNotContain(objects, o => Kind(o) == "Deployment");
        var statefulSet = Single(objects, "StatefulSet");
        var spec = statefulSet.GetProperty("spec");

        var governing = spec.GetProperty("serviceName").GetString();
        var headless = Assert.Single(objects, o => Kind(o) == "Service" && Name(o) == governing);
        Assert.Equal("None", headless.GetProperty("spec").GetProperty("clusterIP").GetString());

        var claim = Assert.Single(spec.GetProperty("volumeClaimTemplates").EnumerateArray());
        var claimName = Name(claim);
        var pod = PodSpec(statefulSet);
        Assert.DoesNotContain(pod.GetProperty("volumes").EnumerateArray(), v => v.GetProperty("name").GetString() == claimName);
        var auditDirectory = ReadGatewayConfig(objects)["NhiAudit:Audit:Directory"]!;
        var mount = MountHolding(Container(pod), auditDirectory);
        Assert.Equal(claimName, mount.GetProperty("name").GetString());

        // Apart from where the data volume comes from, the pod is the Deployment's (the two files must not drift).
        var deploymentPod = PodSpec(Single(Render(Base), "Deployment"));
        Assert.Equal(Container(deploymentPod).GetRawText(), Container(pod).GetRawText());
        Assert.Equal(
            deploymentPod.GetProperty("volumes").EnumerateArray().Where(v => v.GetProperty("name").GetString() != claimName).Select(v => v.GetRawText()),
            pod.GetProperty("volumes").EnumerateArray().Select(v => v.GetRawText()));
        foreach (var property in deploymentPod.EnumerateObject().Where(p => p.Name != "volumes"))
        {
            Assert.Equal(property.Value.GetRawText(), pod.GetProperty(property.Name).GetRawText());
        }
    }

    [Theory]
    [InlineData(Base)]
    [InlineData(StatefulSetVariant)]
    public void Selectors_of_the_workload_service_and_disruption_budget_match_the_pod_labels(string folder)
    {
        var objects = Render(folder);
        var workload = Workload(objects);
        var podLabels = Labels(workload.GetProperty("spec").GetProperty("template"));

        AssertSelects(workload.GetProperty("spec").GetProperty("selector").GetProperty("matchLabels"), podLabels, Kind(workload));
        foreach (var service in objects.Where(o => Kind(o) == "Service"))
        {
            AssertSelects(service.GetProperty("spec").GetProperty("selector"), podLabels, "Service " + Name(service));
        }

        var budget = Single(objects, "PodDisruptionBudget").GetProperty("spec");
        AssertSelects(budget.GetProperty("selector").GetProperty("matchLabels"), podLabels, "PodDisruptionBudget");
        var replicas = workload.GetProperty("spec").GetProperty("replicas").GetInt32();
        if (budget.TryGetProperty("maxUnavailable", out var maxUnavailable))
        {
            Assert.InRange(maxUnavailable.GetInt32(), 1, replicas - 1);
        }
        else
        {
            Assert.InRange(budget.GetProperty("minAvailable").GetInt32(), 1, replicas - 1);
        }

        foreach (var constraint in PodSpec(workload).GetProperty("topologySpreadConstraints").EnumerateArray())
        {
            AssertSelects(constraint.GetProperty("labelSelector").GetProperty("matchLabels"), podLabels, "topologySpreadConstraint " + constraint.GetProperty("topologyKey").GetString());
        }
    }

    [Theory]
    [InlineData(Base)]
    [InlineData(StatefulSetVariant)]
    public void The_pod_uses_the_workload_identity_service_account(string folder)
    {
        var objects = Render(folder);
        var workload = Workload(objects);
        Assert.Equal("true", Labels(workload.GetProperty("spec").GetProperty("template"))["azure.workload.identity/use"]);

        var account = Single(objects, "ServiceAccount");
        Assert.Equal(Name(account), PodSpec(workload).GetProperty("serviceAccountName").GetString());
        var clientId = account.GetProperty("metadata").GetProperty("annotations").GetProperty("azure.workload.identity/client-id").GetString();
        Assert.True(Guid.TryParse(clientId, out _), $"client-id '{clientId}' is not a GUID");
    }

    [Theory]
    [InlineData(Base)]
    [InlineData(StatefulSetVariant)]
    public void Service_ports_reach_container_ports_that_the_gateway_listens_on(string folder)
    {
        var objects = Render(folder);
        var container = Container(PodSpec(Workload(objects)));
        var containerPorts = container.GetProperty("ports").EnumerateArray()
            .ToDictionary(p => p.GetProperty("name").GetString()!, p => p.GetProperty("containerPort").GetInt32());
        var config = ReadGatewayConfig(objects);

        var service = Assert.Single(objects, o => Kind(o) == "Service" && Name(o) == "nhiaudit");
        var published = new Dictionary<int, int>();
        foreach (var port in service.GetProperty("spec").GetProperty("ports").EnumerateArray())
        {
            var target = port.GetProperty("targetPort");
            int containerPort;
            if (target.ValueKind == JsonValueKind.String)
            {
                Assert.True(containerPorts.TryGetValue(target.GetString()!, out containerPort), $"targetPort {target} is no container port");
            }
            else
            {
                containerPort = Assert.Single(containerPorts.Values, v => v == target.GetInt32());
            }

            published[port.GetProperty("port").GetInt32()] = containerPort;
        }

        Assert.Equal(6432, published[6432]);
        Assert.Equal(6443, published[6443]);

        // Every target the gateway listens on is a container port, and listens on all interfaces (not loopback).
        foreach (var key in new[] { "NhiAudit:Postgres:Targets:0:Listen", "NhiAudit:Kubernetes:Targets:0:Listen", "NhiAudit:Admin:Listen" })
        {
            var listen = IPEndPoint.Parse(config[key]!);
            Assert.Equal(IPAddress.Any, listen.Address);
            Assert.Contains(listen.Port, containerPorts.Values);
        }
    }

    [Theory]
    [InlineData(Base)]
    [InlineData(StatefulSetVariant)]
    public void Probes_ask_the_admin_health_endpoint(string folder)
    {
        var objects = Render(folder);
        var container = Container(PodSpec(Workload(objects)));
        var adminPort = IPEndPoint.Parse(ReadGatewayConfig(objects)["NhiAudit:Admin:Listen"]!).Port;
        var portsByName = container.GetProperty("ports").EnumerateArray()
            .ToDictionary(p => p.GetProperty("name").GetString()!, p => p.GetProperty("containerPort").GetInt32());

        // Readiness follows the audit log (503 while it cannot be written); the process is alive regardless.
        foreach (var (probe, path) in new[] { ("startupProbe", "/healthz"), ("readinessProbe", "/readyz"), ("livenessProbe", "/healthz") })
        {
            var http = container.GetProperty(probe).GetProperty("httpGet");
            Assert.Equal(path, http.GetProperty("path").GetString());
            var port = http.GetProperty("port");
            Assert.Equal(adminPort, port.ValueKind == JsonValueKind.String ? portsByName[port.GetString()!] : port.GetInt32());
        }
    }

    [Theory]
    [InlineData(Base)]
    [InlineData(StatefulSetVariant)]
    public void Every_file_and_directory_the_configuration_names_is_mounted(string folder)
    {
        var objects = Render(folder);
        var pod = PodSpec(Workload(objects));
        var container = Container(pod);
        var volumes = pod.GetProperty("volumes").EnumerateArray().ToDictionary(v => v.GetProperty("name").GetString()!);
        var claims = Workload(objects).GetProperty("spec").TryGetProperty("volumeClaimTemplates", out var templates)
            ? templates.EnumerateArray().Select(t => Name(t)).ToHashSet()
            : [];
        foreach (var mount in container.GetProperty("volumeMounts").EnumerateArray())
        {
            var name = mount.GetProperty("name").GetString()!;
            Assert.True(volumes.ContainsKey(name) || claims.Contains(name), $"volumeMount {name} has no volume");
        }

        // The file the image's ENTRYPOINT reads is the generated ConfigMap's nhiaudit.json.
        var configMount = MountHolding(container, ConfigPath);
        Assert.Equal(ConfigPath, configMount.GetProperty("mountPath").GetString());
        var configVolume = volumes[configMount.GetProperty("name").GetString()!].GetProperty("configMap");
        var configMap = Single(objects, "ConfigMap");
        Assert.Equal(Name(configMap), configVolume.GetProperty("name").GetString());
        Assert.True(configMap.GetProperty("data").TryGetProperty(configMount.GetProperty("subPath").GetString()!, out _));

        // Files the configuration names come from the Secret, and the Secret's example holds each key.
        var secretKeys = SecretExampleKeys();
        var config = ReadGatewayConfig(objects);
        var files = config.AsEnumerable().Where(p => p.Key.EndsWith("File", StringComparison.Ordinal) && p.Value is { Length: > 0 }).ToList();
        Assert.Contains(files, p => p.Key == "NhiAudit:Audit:SigningKeyFile");
        foreach (var (key, path) in files)
        {
            var mount = MountHolding(container, path!);
            var secret = volumes[mount.GetProperty("name").GetString()!].GetProperty("secret");
            Assert.Equal("nhiaudit-secrets", secret.GetProperty("secretName").GetString());
            var relative = path![(mount.GetProperty("mountPath").GetString()!.Length + 1)..];
            var item = Assert.Single(secret.GetProperty("items").EnumerateArray(), i => i.GetProperty("path").GetString() == relative);
            Assert.Contains(item.GetProperty("key").GetString()!, secretKeys);
            Assert.True(mount.GetProperty("readOnly").GetBoolean(), $"{key}: the secret mount should be read-only");
        }

        // Everything the gateway writes lands on a writable volume (the root filesystem is read-only).
        var writable = config.AsEnumerable()
            .Where(p => p.Key.EndsWith("Directory", StringComparison.Ordinal) && p.Value is { Length: > 0 })
            .ToList();
        Assert.Contains(writable, p => p.Key == "NhiAudit:Audit:Directory");
        foreach (var (key, directory) in writable)
        {
            Assert.True(directory!.StartsWith('/'), $"{key} '{directory}' is relative: it would resolve against the working directory");
            var mount = MountHolding(container, directory);
            Assert.False(mount.TryGetProperty("readOnly", out var readOnly) && readOnly.GetBoolean(), $"{key} '{directory}' is on a read-only mount");
        }

        Assert.NotNull(MountHolding(container, "/tmp/x").GetProperty("name").GetString());

        // Secret values passed as environment variables name the same Secret and keys its example holds.
        foreach (var env in container.GetProperty("env").EnumerateArray())
        {
            if (env.TryGetProperty("valueFrom", out var from) && from.TryGetProperty("secretKeyRef", out var reference))
            {
                Assert.Equal("nhiaudit-secrets", reference.GetProperty("name").GetString());
                Assert.Contains(reference.GetProperty("key").GetString()!, secretKeys);
            }
        }
    }

    [Theory]
    [InlineData(Base)]
    [InlineData(StatefulSetVariant)]
    public void The_pod_runs_as_the_images_non_root_user_with_a_read_only_root_filesystem(string folder)
    {
        var pod = PodSpec(Workload(Render(folder)));
        var podSecurity = pod.GetProperty("securityContext");
        Assert.True(podSecurity.GetProperty("runAsNonRoot").GetBoolean());
        Assert.Equal(ImageUser(), podSecurity.GetProperty("runAsUser").GetInt32());
        Assert.Equal(ImageUser(), podSecurity.GetProperty("fsGroup").GetInt32());

        var security = Container(pod).GetProperty("securityContext");
        Assert.True(security.GetProperty("readOnlyRootFilesystem").GetBoolean());
        Assert.False(security.GetProperty("allowPrivilegeEscalation").GetBoolean());
        Assert.Equal(new[] { "ALL" }, security.GetProperty("capabilities").GetProperty("drop").EnumerateArray().Select(c => c.GetString()));
        Assert.False(security.GetProperty("capabilities").TryGetProperty("add", out _));

        // The host gives itself 10 s to stop (RunCommand); the pod must wait longer than that plus its preStop pause.
        Assert.True(pod.GetProperty("terminationGracePeriodSeconds").GetInt32() >= 30);
        var resources = Container(pod).GetProperty("resources");
        Assert.True(resources.GetProperty("requests").TryGetProperty("memory", out _));
        Assert.True(resources.GetProperty("limits").TryGetProperty("memory", out _));
    }

    [Fact]
    public async Task The_gateway_starts_from_the_config_map_with_the_secret_and_pod_values_filled_in()
    {
        var objects = Render(Base);
        var json = Single(objects, "ConfigMap").GetProperty("data").GetProperty("nhiaudit.json").GetString()!;
        var container = Container(PodSpec(Single(objects, "Deployment")));

        var root = Directory.CreateTempSubdirectory("nhiaudit-deploy-");
        try
        {
            // What the pod's volumes provide, in a temporary directory: the Secret's files and a writable data volume.
            var secrets = Directory.CreateDirectory(Path.Combine(root.FullName, "secrets")).FullName;
            var data = Directory.CreateDirectory(Path.Combine(root.FullName, "data")).FullName;
            using (var signing = ECDsa.Create(ECCurve.NamedCurves.nistP256))
            {
                await File.WriteAllTextAsync(Path.Combine(secrets, "audit-signing.pem"), signing.ExportPkcs8PrivateKeyPem());
            }

            using (var tlsKey = ECDsa.Create(ECCurve.NamedCurves.nistP256))
            {
                var request = new CertificateRequest("CN=nhiaudit.nhiaudit.svc", tlsKey, HashAlgorithmName.SHA256);
                using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(2));
                await File.WriteAllTextAsync(Path.Combine(secrets, "tls.crt"), certificate.ExportCertificatePem());
                await File.WriteAllTextAsync(Path.Combine(secrets, "tls.key"), tlsKey.ExportPkcs8PrivateKeyPem());
            }

            var configFile = Path.Combine(root.FullName, "nhiaudit.json");
            await File.WriteAllTextAsync(configFile, json);
            var fromFile = GatewayConfiguration.Build(new FileInfo(configFile));

            // The Deployment's environment, as the kubelet would set it: the pod's name and the Secret's values.
            var overrides = new Dictionary<string, string?>();
            var secretValues = new Dictionary<string, string>();
            foreach (var env in container.GetProperty("env").EnumerateArray())
            {
                var key = env.GetProperty("name").GetString()!.Replace("__", ":", StringComparison.Ordinal);
                var from = env.GetProperty("valueFrom");
                if (from.TryGetProperty("fieldRef", out var field))
                {
                    Assert.Equal("metadata.name", field.GetProperty("fieldPath").GetString());
                    overrides[key] = PodName;
                }
                else
                {
                    // Connection strings point at a port where no server listens: their users retry in the background.
                    var secretKey = from.GetProperty("secretKeyRef").GetProperty("key").GetString()!;
                    secretValues[key] = overrides[key] = secretKey.EndsWith("connection-string", StringComparison.Ordinal)
                        ? $"Host=127.0.0.1;Port=1;Database=nhiaudit;Username=test;Password=test-value-of-{secretKey}"
                        : "test-value-of-" + secretKey;
                }
            }

            // The volumes' paths, moved into the temporary directory; the listeners on free loopback ports.
            foreach (var (key, value) in fromFile.AsEnumerable())
            {
                if (value is null || overrides.ContainsKey(key))
                {
                    continue;
                }

                if (value.StartsWith("/etc/nhiaudit/secrets/", StringComparison.Ordinal))
                {
                    overrides[key] = Path.Combine(secrets, value["/etc/nhiaudit/secrets/".Length..]);
                }
                else if (value.StartsWith("/var/lib/nhiaudit/", StringComparison.Ordinal))
                {
                    overrides[key] = Path.Combine(data, value["/var/lib/nhiaudit/".Length..]);
                }
                else if (key.EndsWith(":Listen", StringComparison.Ordinal))
                {
                    overrides[key] = "127.0.0.1:0";
                }
            }

            var configuration = new ConfigurationBuilder().AddConfiguration(fromFile).AddInMemoryCollection(overrides).Build();
            using var host = RunCommand.BuildHost(configuration);

            // The options the gateway validates at start, bound as the gateway binds them.
            var audit = host.Services.GetRequiredService<IOptions<AuditOptions>>().Value;
            Assert.Equal(PodName, audit.GetReplicaName());
            Assert.Equal(AuditDurability.Durable, audit.Durability);
            Assert.Equal(Path.Combine(secrets, "audit-signing.pem"), audit.SigningKeyFile);
            var postgres = host.Services.GetRequiredService<IOptions<PostgresOptions>>().Value;
            Assert.Equal("test-value-of-postgres-password", Assert.Single(postgres.Targets).Upstream.Password);
            Assert.True(postgres.Targets[0].Tls.Required);
            Assert.True(Assert.Single(host.Services.GetRequiredService<IOptions<KubernetesOptions>>().Value.Targets).Upstream.UseAzureIdentity);

            // Approvals shared by the replicas through PostgreSQL, with the Secret's connection string.
            Assert.IsType<PostgresApprovalBroker>(host.Services.GetRequiredService<IApprovalBroker>());
            Assert.Equal(secretValues["NhiAudit:Approvals:Postgres:ConnectionString"], host.Services.GetRequiredService<IOptions<PostgresApprovalOptions>>().Value.ConnectionString);

            // Sections bound by packages that may not be wired into the gateway yet (the sinks): the values reach the
            // configuration under the names the Secret's environment variables give them.
            foreach (var (key, value) in secretValues)
            {
                Assert.Equal(value, configuration[key]);
            }

            await host.StartAsync();
            try
            {
                await host.Services.GetRequiredService<PostgresGateway>().Listening.WaitAsync(TimeSpan.FromMinutes(1));
                await host.Services.GetRequiredService<KubernetesGateway>().Listening.WaitAsync(TimeSpan.FromMinutes(1));
                var admin = host.Services.GetRequiredService<AdminHostedService>().Address!;
                using var http = new HttpClient();
                Assert.Equal("ok", await http.GetStringAsync(new Uri(admin, "/healthz")));
                Assert.Equal("ok", await http.GetStringAsync(new Uri(admin, "/readyz")));
            }
            finally
            {
                // Stopped and disposed as at the end of `nhiaudit run`: the log writes its last checkpoint and closes.
                await host.StopAsync();
                await ((IAsyncDisposable)host).DisposeAsync();
            }

            // This replica's chain, named by its pod, intact after a clean stop and checkpointed with the Secret's key.
            var verified = AuditVerifier.Verify(Path.Combine(data, "audit"), new AuditVerifyOptions
            {
                PublicKeys = [AuditCheckpointVerifier.FromFile(Path.Combine(secrets, "audit-signing.pem"))],
            });
            Assert.True(verified.IsIntact, verified.ToString());
            Assert.Equal(PodName, verified.Replica);
            Assert.True(verified.SignaturesChecked);
            Assert.True(verified.CheckpointCount > 0, "no signed checkpoint");
        }
        finally
        {
            root.Delete(recursive: true);
        }
    }

    [Fact]
    public void The_dockerfile_publishes_the_gateway_project_and_runs_what_the_pod_expects()
    {
        var dockerfile = File.ReadAllText(Path.Combine(RepoRoot, "deploy", "Dockerfile"));
        var stages = Regex.Matches(dockerfile, @"^FROM\s+(\S+)", RegexOptions.Multiline).Select(m => m.Groups[1].Value).ToList();
        Assert.Equal(new[] { "mcr.microsoft.com/dotnet/sdk:10.0", "mcr.microsoft.com/dotnet/aspnet:10.0" }, stages);
        Assert.Contains("<TargetFramework>net10.0</TargetFramework>", File.ReadAllText(Path.Combine(RepoRoot, "Directory.Build.props")), StringComparison.Ordinal);

        // What the build copies exists, and the project it publishes is the gateway.
        foreach (Match copy in Regex.Matches(dockerfile, @"^COPY\s+(?!--from)(.+)\s+\S+$", RegexOptions.Multiline))
        {
            foreach (var source in copy.Groups[1].Value.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                Assert.True(File.Exists(Path.Combine(RepoRoot, source)) || Directory.Exists(Path.Combine(RepoRoot, source)), $"COPY {source}: not in the repository");
            }
        }

        var publish = Regex.Match(dockerfile, @"dotnet publish (\S+) -c Release -o (\S+)");
        Assert.True(publish.Success, "no dotnet publish step");
        var project = Path.Combine(RepoRoot, publish.Groups[1].Value);
        Assert.True(File.Exists(project), $"{publish.Groups[1].Value} does not exist");
        var assembly = Regex.Match(File.ReadAllText(project), "<AssemblyName>(.+)</AssemblyName>").Groups[1].Value;

        var entrypoint = JsonSerializer.Deserialize<string[]>(Regex.Match(dockerfile, @"^ENTRYPOINT\s+(\[.+\])$", RegexOptions.Multiline).Groups[1].Value)!;
        Assert.Equal(new[] { "dotnet", $"{publish.Groups[2].Value}/{assembly}.dll", "run", "--config", ConfigPath }, entrypoint);
        Assert.Equal(assembly, typeof(RunCommand).Assembly.GetName().Name);

        // A numeric non-root user (so runAsNonRoot can check it), the same the pod names.
        Assert.NotEqual(0, ImageUser());
        var pod = PodSpec(Single(Render(Base), "Deployment"));
        Assert.Equal(ImageUser(), pod.GetProperty("securityContext").GetProperty("runAsUser").GetInt32());
        var exposed = Regex.Match(dockerfile, @"^EXPOSE\s+(.+)$", RegexOptions.Multiline).Groups[1].Value.Split(' ').Select(int.Parse).Order();
        Assert.Equal(Container(pod).GetProperty("ports").EnumerateArray().Select(p => p.GetProperty("containerPort").GetInt32()).Order(), exposed);

        // The build context keeps out local build output, which would carry this machine's restore state.
        var ignore = File.ReadAllLines(Path.Combine(RepoRoot, "deploy", "Dockerfile.dockerignore"));
        Assert.Contains("src/**/bin/", ignore);
        Assert.Contains("src/**/obj/", ignore);
    }

    [Fact]
    public void The_signing_key_commands_in_the_readme_make_keys_the_gateway_signs_with()
    {
        var readme = File.ReadAllText(Path.Combine(RepoRoot, "deploy", "README.md"));
        var commands = Regex.Matches(readme, @"^(openssl .+ audit-signing\.pem)$", RegexOptions.Multiline).Select(m => m.Groups[1].Value).ToList();
        Assert.NotEmpty(commands);
        var directory = Directory.CreateTempSubdirectory("nhiaudit-key-");
        try
        {
            foreach (var command in commands)
            {
                File.Delete(Path.Combine(directory.FullName, "audit-signing.pem"));
                var (exit, _, error) = Run("/bin/sh", ["-c", command], null, directory.FullName);
                Assert.True(exit == 0, $"{command}: {error}");
                using var signer = AuditCheckpointSigner.FromFile(Path.Combine(directory.FullName, "audit-signing.pem"));
                Assert.NotNull(signer);
            }
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    private static List<JsonElement> Render(string folder)
    {
        var (exit, yaml, error) = Run("kubectl", ["kustomize", Path.Combine(RepoRoot, folder)], null, RepoRoot);
        Assert.True(exit == 0, $"kubectl kustomize {folder}: {error}");
        return ToJson(yaml);
    }

    private static List<JsonElement> ToJson(string yaml)
    {
        // kubectl kustomize prints YAML only; `kubectl label --local` reads it without a cluster and prints JSON (one
        // object per document). Removing a label that is not there leaves the objects as they were.
        var (exit, json, error) = Run("kubectl", ["label", "--local", "-f", "-", "nhiaudit.io/render-", "-o", "json"], yaml, RepoRoot);
        Assert.True(exit == 0, $"kubectl label --local: {error}");
        var reader = new Utf8JsonReader(Encoding.UTF8.GetBytes(json), new JsonReaderOptions { AllowMultipleValues = true });
        var objects = new List<JsonElement>();
        while (reader.Read())
        {
            using var document = JsonDocument.ParseValue(ref reader);
            objects.Add(document.RootElement.Clone());
        }

        return objects;
    }

    private static HashSet<string> SecretExampleKeys()
    {
        var secret = Assert.Single(ToJson(File.ReadAllText(Path.Combine(RepoRoot, Base, "secret.example.yaml"))));
        Assert.Equal("Secret", Kind(secret));
        Assert.Equal("nhiaudit-secrets", Name(secret));
        return secret.GetProperty("stringData").EnumerateObject().Select(p => p.Name).ToHashSet();
    }

    private static IConfigurationRoot ReadGatewayConfig(List<JsonElement> objects)
    {
        var json = Single(objects, "ConfigMap").GetProperty("data").GetProperty("nhiaudit.json").GetString()!;
        return new ConfigurationBuilder().AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes(json))).Build();
    }

    private static int ImageUser()
    {
        var dockerfile = File.ReadAllText(Path.Combine(RepoRoot, "deploy", "Dockerfile"));
        var user = Regex.Matches(dockerfile, @"^USER\s+(\d+)(:\d+)?\s*$", RegexOptions.Multiline);
        Assert.NotEmpty(user);
        return int.Parse(user[^1].Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
    }

    private static JsonElement MountHolding(JsonElement container, string path)
    {
        var mounts = container.GetProperty("volumeMounts").EnumerateArray()
            .Where(m => path == m.GetProperty("mountPath").GetString() || path.StartsWith(m.GetProperty("mountPath").GetString()!.TrimEnd('/') + "/", StringComparison.Ordinal))
            .OrderByDescending(m => m.GetProperty("mountPath").GetString()!.Length)
            .ToList();
        Assert.True(mounts.Count > 0, $"nothing is mounted at {path}");
        return mounts[0];
    }

    private static void AssertSelects(JsonElement selector, Dictionary<string, string> podLabels, string what)
    {
        Assert.NotEmpty(selector.EnumerateObject());
        foreach (var label in selector.EnumerateObject())
        {
            Assert.True(podLabels.TryGetValue(label.Name, out var value) && value == label.Value.GetString(), $"{what} selects {label.Name}={label.Value} that the pod does not carry");
        }
    }

    private static Dictionary<string, string> Labels(JsonElement withMetadata) =>
        withMetadata.GetProperty("metadata").GetProperty("labels").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!);

    private static JsonElement Workload(List<JsonElement> objects) => Assert.Single(objects, o => Kind(o) is "Deployment" or "StatefulSet");

    private static JsonElement PodSpec(JsonElement workload) => workload.GetProperty("spec").GetProperty("template").GetProperty("spec");

    private static JsonElement Container(JsonElement podSpec) => Assert.Single(podSpec.GetProperty("containers").EnumerateArray());

    private static JsonElement Single(List<JsonElement> objects, string kind) => Assert.Single(objects, o => Kind(o) == kind);

    private static string Kind(JsonElement o) => o.GetProperty("kind").GetString()!;

    private static string Name(JsonElement o) => o.GetProperty("metadata").GetProperty("name").GetString()!;

    private static (int Exit, string Output, string Error) Run(string file, string[] arguments, string? input, string workingDirectory)
    {
        var start = new ProcessStartInfo(file)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = workingDirectory,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        // No cluster is needed or wanted: an empty kubeconfig keeps kubectl from the machine's own.
        start.Environment["KUBECONFIG"] = "/dev/null";
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        process.StandardInput.Write(input ?? "");
        process.StandardInput.Close();
        process.WaitForExit();
        return (process.ExitCode, output.Result, error.Result);
    }

    private static string FindRepoRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "NhiAudit.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException($"no NhiAudit.sln above {AppContext.BaseDirectory}");
    }
}
