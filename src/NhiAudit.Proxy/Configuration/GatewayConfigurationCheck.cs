using System.Data.Common;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;
using NhiAudit.Approvals.Postgres;
using NhiAudit.Audit;
using NhiAudit.Identity;
using NhiAudit.Kubernetes;
using NhiAudit.Masking;
using NhiAudit.Policy;
using NhiAudit.Postgres;
using NhiAudit.Proxy.Admin;
using NhiAudit.Proxy.Commands;
using NhiAudit.Ssh;
using NhiAudit.Ssh.HostKeys;

namespace NhiAudit.Proxy.Configuration;

/// <summary>
/// Everything that can be known about a configuration before the gateway starts: the file loads, every key is one the
/// gateway reads and every value fits it, the options validators pass (policy rules compile), the files it names are
/// readable and parse, and every listener's address parses and is free. Nothing is written and nothing listens.
/// </summary>
internal static class GatewayConfigurationCheck
{
    private static readonly HashSet<string> SecretKeys = new(StringComparer.OrdinalIgnoreCase)
    {
        "Password", "Secret", "ClientSecret", "Token", "AccessToken", "ApiKey", "AccountKey", "SharedAccessSignature", "Headers",
    };

    private static readonly HashSet<string> SecretConnectionStringKeys = new(StringComparer.OrdinalIgnoreCase)
    {
        "Password", "Pwd", "AccountKey", "SharedAccessSignature", "SharedAccessKey",
    };

    private static readonly JsonSerializerOptions EffectiveJson = new()
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        Converters = { new JsonStringEnumConverter() },
    };

    /// <summary>Loads and checks a configuration; <paramref name="online"/> also reaches each issuer's OIDC discovery document or JWKS URL.</summary>
    /// <param name="configFile">The file, or null for the embedded default.</param>
    /// <param name="online">Whether to reach the network.</param>
    /// <param name="cancellationToken">Stops the online checks.</param>
    public static async Task<ConfigurationCheckResult> RunAsync(FileInfo? configFile, bool online, CancellationToken cancellationToken)
    {
        IConfigurationRoot configuration;
        try
        {
            configuration = GatewayConfiguration.Build(configFile);
        }
        catch (FileNotFoundException)
        {
            return new ConfigurationCheckResult(null, [new ConfigurationProblem(configFile!.FullName, "no such file")]);
        }
        catch (Exception ex) when (ex is InvalidDataException or FormatException or IOException or UnauthorizedAccessException or JsonException)
        {
            // The JSON parser's own message names the line and position.
            var detail = ex.InnerException?.Message ?? ex.Message;
            return new ConfigurationCheckResult(null, [new ConfigurationProblem(configFile?.FullName ?? "", $"cannot be read: {detail}")]);
        }

        var section = configuration.GetSection(GatewayConfiguration.Section);
        var problems = new List<ConfigurationProblem>();
        if (!section.GetChildren().Any())
        {
            problems.Add(new ConfigurationProblem(GatewayConfiguration.Section, "missing: the file has no NhiAudit section"));
            return new ConfigurationCheckResult(configuration, problems);
        }

        problems.AddRange(ConfigurationSchema.Check(section));

        // The other checks bind the options, which a value that does not fit would stop (and report again, less
        // clearly): they run on the configuration without the keys already reported, so every problem is found in one go.
        var checkable = problems.Count == 0 ? configuration : Without(configuration, problems.Select(p => p.Path).ToList());
        var checkableSection = checkable.GetSection(GatewayConfiguration.Section);
        CheckOptions(checkable, problems);
        CheckFiles(checkableSection, problems);
        CheckListeners(checkableSection, problems);
        if (online)
        {
            await CheckOnlineAsync(checkableSection, problems, cancellationToken).ConfigureAwait(false);
        }

        return new ConfigurationCheckResult(configuration, problems);
    }

    private static IConfigurationRoot Without(IConfigurationRoot configuration, List<string> paths) =>
        new ConfigurationBuilder().AddInMemoryCollection(configuration.AsEnumerable()
            .Where(pair => !paths.Any(path => pair.Key.Equals(path, StringComparison.OrdinalIgnoreCase) || pair.Key.StartsWith(path + ":", StringComparison.OrdinalIgnoreCase))))
            .Build();

    /// <summary>Runs the validators the host runs at start (identity, policy, approvals, sinks) without starting anything.</summary>
    private static void CheckOptions(IConfigurationRoot configuration, List<ConfigurationProblem> problems)
    {
        try
        {
            using var host = RunCommand.BuildHost(configuration);
            host.Services.GetService<IStartupValidator>()?.Validate();
        }
        catch (Exception ex) when (ex is OptionsValidationException or AggregateException or InvalidOperationException or ArgumentException or FormatException)
        {
            foreach (var failure in Failures(ex))
            {
                problems.Add(new ConfigurationProblem("", failure));
            }
        }
    }

    private static IEnumerable<string> Failures(Exception ex) => ex switch
    {
        OptionsValidationException options => options.Failures.Select(f => f.TrimEnd('.')),
        AggregateException aggregate => aggregate.InnerExceptions.SelectMany(Failures),
        _ => [ex.Message.TrimEnd('.')],
    };

    private static void CheckFiles(IConfigurationSection section, List<ConfigurationProblem> problems)
    {
        var identity = section.GetSection("Identity").Get<IdentityOptions>() ?? new();
        var developmentDirectory = section["DevelopmentIssuer:Directory"];
        for (var i = 0; i < identity.Issuers.Count; i++)
        {
            var file = identity.Issuers[i].JwksFile;
            if (string.IsNullOrWhiteSpace(file))
            {
                continue;
            }

            // The development issuer's key set is created on first run.
            if (!File.Exists(file) && !string.IsNullOrEmpty(developmentDirectory) && IsUnder(file, developmentDirectory))
            {
                continue;
            }

            CheckFile($"NhiAudit:Identity:Issuers:{i}:JwksFile", file, problems, path =>
            {
                var keys = new JsonWebKeySet(File.ReadAllText(path)).GetSigningKeys();
                if (keys.Count == 0)
                {
                    throw new FormatException("the key set has no signing keys");
                }
            });
        }

        var audit = section.GetSection("Audit").Get<AuditOptions>() ?? new();
        CheckFile("NhiAudit:Audit:SigningKeyFile", audit.SigningKeyFile, problems, path => AuditCheckpointSigner.FromFile(path));
        var policy = section.GetSection("Policy").Get<PolicyOptions>() ?? new();
        CheckFile("NhiAudit:Policy:MaskingKeyFile", policy.MaskingKeyFile, problems, path => MaskingKeys.Load(path));

        var postgres = section.GetSection("Postgres").Get<PostgresOptions>() ?? new();
        for (var i = 0; i < postgres.Targets.Count; i++)
        {
            var target = postgres.Targets[i];
            var at = $"NhiAudit:Postgres:Targets:{i}";
            CheckCertificate($"{at}:Tls", target.Tls.CertificateFile, target.Tls.KeyFile, problems);
            CheckFile($"{at}:Upstream:CaFile", target.Upstream.CaFile, problems);
        }

        var kubernetes = section.GetSection("Kubernetes").Get<KubernetesOptions>() ?? new();
        for (var i = 0; i < kubernetes.Targets.Count; i++)
        {
            var target = kubernetes.Targets[i];
            var at = $"NhiAudit:Kubernetes:Targets:{i}";
            CheckCertificate(at, target.CertificateFile, target.KeyFile, problems);
            CheckFile($"{at}:Upstream:CaFile", target.Upstream.CaFile, problems);
            CheckFile($"{at}:Upstream:TokenFile", target.Upstream.TokenFile, problems);
            CheckFile($"{at}:Upstream:Kubeconfig", target.Upstream.Kubeconfig, problems);
            CheckFile($"{at}:Upstream:ClientCertificateFile", target.Upstream.ClientCertificateFile, problems);
            CheckFile($"{at}:Upstream:ClientKeyFile", target.Upstream.ClientKeyFile, problems);
        }

        var ssh = section.GetSection("Ssh").Get<SshOptions>() ?? new();
        for (var i = 0; i < ssh.Targets.Count; i++)
        {
            var target = ssh.Targets[i];
            var at = $"NhiAudit:Ssh:Targets:{i}";
            CheckFile($"{at}:HostKeyFile", target.HostKeyFile, problems, path => SshHostKey.Load(path).Dispose());
            CheckFile($"{at}:Upstream:PrivateKeyFile", target.Upstream.PrivateKeyFile, problems);
        }

        var admin = section.GetSection("Admin").Get<AdminOptions>();
        if (!string.IsNullOrWhiteSpace(admin?.Listen))
        {
            CheckCertificate("NhiAudit:Admin", admin.CertificateFile, admin.KeyFile, problems);
        }
    }

    private static bool IsUnder(string file, string directory)
    {
        var root = Path.GetFullPath(directory).TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar;
        return Path.GetFullPath(file).StartsWith(root, StringComparison.Ordinal);
    }

    private static void CheckCertificate(string at, string? certificateFile, string? keyFile, List<ConfigurationProblem> problems)
    {
        if (string.IsNullOrWhiteSpace(certificateFile) && string.IsNullOrWhiteSpace(keyFile))
        {
            return;
        }

        if (string.IsNullOrWhiteSpace(certificateFile) || string.IsNullOrWhiteSpace(keyFile))
        {
            problems.Add(new ConfigurationProblem($"{at}:{(string.IsNullOrWhiteSpace(certificateFile) ? "CertificateFile" : "KeyFile")}", "missing: CertificateFile and KeyFile go together"));
            return;
        }

        var before = problems.Count;
        CheckFile($"{at}:CertificateFile", certificateFile, problems);
        CheckFile($"{at}:KeyFile", keyFile, problems);
        if (problems.Count == before)
        {
            CheckFile($"{at}:CertificateFile", certificateFile, problems, path => X509Certificate2.CreateFromPemFile(path, keyFile).Dispose());
        }
    }

    private static void CheckFile(string at, string? file, List<ConfigurationProblem> problems, Action<string>? parse = null)
    {
        if (string.IsNullOrWhiteSpace(file))
        {
            return;
        }

        if (!File.Exists(file))
        {
            problems.Add(new ConfigurationProblem(at, Directory.Exists(file) ? $"'{file}' is a directory, not a file" : $"file '{file}' does not exist"));
            return;
        }

        try
        {
            using (File.OpenRead(file))
            {
            }

            parse?.Invoke(file);
        }
        catch (UnauthorizedAccessException)
        {
            problems.Add(new ConfigurationProblem(at, $"file '{file}' cannot be read (permission denied)"));
        }
        catch (Exception ex) when (ex is IOException or FormatException or ArgumentException or InvalidOperationException or JsonException or System.Security.Cryptography.CryptographicException or NotSupportedException)
        {
            problems.Add(new ConfigurationProblem(at, $"file '{file}' is not usable: {ex.Message.TrimEnd('.')}"));
        }
    }

    private static void CheckListeners(IConfigurationSection section, List<ConfigurationProblem> problems)
    {
        var seen = new Dictionary<IPEndPoint, string>();
        var postgres = section.GetSection("Postgres").Get<PostgresOptions>() ?? new();
        for (var i = 0; i < postgres.Targets.Count; i++)
        {
            CheckListen($"NhiAudit:Postgres:Targets:{i}:Listen", postgres.Targets[i].Listen, seen, problems);
        }

        var kubernetes = section.GetSection("Kubernetes").Get<KubernetesOptions>() ?? new();
        for (var i = 0; i < kubernetes.Targets.Count; i++)
        {
            CheckListen($"NhiAudit:Kubernetes:Targets:{i}:Listen", kubernetes.Targets[i].Listen, seen, problems);
        }

        var ssh = section.GetSection("Ssh").Get<SshOptions>() ?? new();
        for (var i = 0; i < ssh.Targets.Count; i++)
        {
            CheckListen($"NhiAudit:Ssh:Targets:{i}:Listen", ssh.Targets[i].Listen, seen, problems);
        }

        var admin = section.GetSection("Admin").Get<AdminOptions>();
        if (!string.IsNullOrWhiteSpace(admin?.Listen))
        {
            CheckListen("NhiAudit:Admin:Listen", admin.Listen, seen, problems);
        }
    }

    private static void CheckListen(string at, string? listen, Dictionary<IPEndPoint, string> seen, List<ConfigurationProblem> problems)
    {
        var text = listen ?? "";
        if (!IPEndPoint.TryParse(text, out var endpoint) || text.LastIndexOf(':') <= text.LastIndexOf(']'))
        {
            problems.Add(new ConfigurationProblem(at, $"'{text}' is not an address to listen on (an IP address and a port, e.g. 127.0.0.1:6432)"));
            return;
        }

        if (endpoint.Port != 0 && !seen.TryAdd(endpoint, at))
        {
            problems.Add(new ConfigurationProblem(at, $"{endpoint} is also {seen[endpoint]}"));
            return;
        }

        try
        {
            // As the gateway binds it (address reuse on, so a port in TIME_WAIT is free), then let go at once.
            using var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            socket.Bind(endpoint);
        }
        catch (SocketException ex)
        {
            problems.Add(new ConfigurationProblem(at, ex.SocketErrorCode switch
            {
                SocketError.AddressAlreadyInUse => $"{endpoint} is already in use",
                SocketError.AddressNotAvailable => $"{endpoint.Address} is not an address of this machine",
                SocketError.AccessDenied => $"not allowed to listen on {endpoint} (ports below 1024 need privileges)",
                _ => $"cannot listen on {endpoint}: {ex.Message}",
            }));
        }
    }

    private static async Task CheckOnlineAsync(IConfigurationSection section, List<ConfigurationProblem> problems, CancellationToken cancellationToken)
    {
        var identity = section.GetSection("Identity").Get<IdentityOptions>() ?? new();
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        for (var i = 0; i < identity.Issuers.Count; i++)
        {
            var issuer = identity.Issuers[i];
            var at = $"NhiAudit:Identity:Issuers:{i}";
            try
            {
                if (!string.IsNullOrWhiteSpace(issuer.Authority))
                {
                    at += ":Authority";
                    var discovery = issuer.Authority.TrimEnd('/') + "/.well-known/openid-configuration";
                    using var document = JsonDocument.Parse(await http.GetStringAsync(new Uri(discovery), cancellationToken).ConfigureAwait(false));
                    var jwksUri = document.RootElement.TryGetProperty("jwks_uri", out var property) ? property.GetString() : null;
                    if (string.IsNullOrEmpty(jwksUri))
                    {
                        throw new FormatException($"{discovery} names no jwks_uri");
                    }

                    _ = new JsonWebKeySet(await http.GetStringAsync(new Uri(jwksUri), cancellationToken).ConfigureAwait(false));
                }
                else if (!string.IsNullOrWhiteSpace(issuer.JwksUri))
                {
                    at += ":JwksUri";
                    _ = new JsonWebKeySet(await http.GetStringAsync(new Uri(issuer.JwksUri), cancellationToken).ConfigureAwait(false));
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or JsonException or FormatException or ArgumentException or UriFormatException)
            {
                problems.Add(new ConfigurationProblem(at, $"not reachable: {ex.Message.TrimEnd('.')}"));
            }
        }
    }

    /// <summary>
    /// The configuration the gateway would run with: every section it reads, bound to its options with their defaults
    /// filled in, secrets (passwords, keys, tokens, connection-string passwords, webhook paths) replaced by <c>***</c>.
    /// </summary>
    public static string Effective(IConfigurationRoot configuration)
    {
        var section = configuration.GetSection(GatewayConfiguration.Section);
        var root = new JsonObject();
        foreach (var (name, type) in ConfigurationSchema.Members(typeof(GatewaySettings)))
        {
            var child = section.GetSection(name);
            var core = name is "Identity" or "Audit" or "Policy" or "Approvals";
            if (!child.Exists() && !core)
            {
                continue;
            }

            var value = child.Get(type) ?? Activator.CreateInstance(type)!;
            var node = JsonSerializer.SerializeToNode(value, type, EffectiveJson)!;
            if (name == "Approvals" && child.GetSection("Postgres").Exists())
            {
                node["Postgres"] = JsonSerializer.SerializeToNode(child.GetSection("Postgres").Get<PostgresApprovalOptions>() ?? new(), EffectiveJson);
            }

            root[name] = node;
        }

        Elide(root);
        return new JsonObject { [GatewayConfiguration.Section] = root }.ToJsonString(EffectiveJson);
    }

    private static void Elide(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject obj:
                foreach (var (key, value) in obj.ToList())
                {
                    if (value is JsonValue leaf && leaf.TryGetValue<string>(out var text) && !string.IsNullOrEmpty(text))
                    {
                        obj[key] = ElideValue(key, text);
                    }
                    else
                    {
                        Elide(value);
                    }
                }

                break;
            case JsonArray array:
                for (var i = 0; i < array.Count; i++)
                {
                    if (array[i] is JsonValue leaf && leaf.TryGetValue<string>(out var text) && text.Contains("PRIVATE KEY", StringComparison.Ordinal))
                    {
                        array[i] = "***";
                    }
                    else
                    {
                        Elide(array[i]);
                    }
                }

                break;
        }
    }

    /// <summary>A value as it may be printed: <c>***</c> for a secret, a connection string without its password, a URL without its path.</summary>
    public static string ElideValue(string key, string value)
    {
        if (SecretKeys.Contains(key) || value.Contains("PRIVATE KEY", StringComparison.Ordinal))
        {
            return "***";
        }

        if (key.EndsWith("ConnectionString", StringComparison.OrdinalIgnoreCase))
        {
            try
            {
                var builder = new DbConnectionStringBuilder { ConnectionString = value };
                foreach (var name in builder.Keys.Cast<string>().Where(SecretConnectionStringKeys.Contains).ToList())
                {
                    builder[name] = "***";
                }

                return builder.ConnectionString;
            }
            catch (ArgumentException)
            {
                return "***";
            }
        }

        if (key.Equals("WebhookUrl", StringComparison.OrdinalIgnoreCase) && Uri.TryCreate(value, UriKind.Absolute, out var webhook))
        {
            // Webhook URLs often carry their secret in the path or query (Slack, Teams).
            return $"{webhook.Scheme}://{webhook.Authority}/***";
        }

        return value;
    }
}

/// <summary>What a check found: the configuration (null when it could not be loaded) and its problems, none when it is good.</summary>
/// <param name="Configuration">The loaded configuration.</param>
/// <param name="Problems">One entry per problem.</param>
internal sealed record ConfigurationCheckResult(IConfigurationRoot? Configuration, IReadOnlyList<ConfigurationProblem> Problems);
