using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NhiAudit.Identity;
using NhiAudit.IntegrationTests.Kubernetes.Infrastructure;
using NhiAudit.Kubernetes.Gateway;
using Yarp.ReverseProxy.Forwarder;

namespace NhiAudit.KubernetesLoad;

/// <summary>
/// <c>get pod</c> requests per second, in one process and one run: straight to the fake Kubernetes API server of the
/// integration tests ("direct"), through a plain YARP forwarder that only swaps the bearer token ("yarp"), and through
/// the NhiAudit Kubernetes gateway auditing every request, WriteAhead by default ("gateway"). Interleaved rounds, rotating order.
/// </summary>
internal static class Program
{
    private const string PodPath = "/api/v1/namespaces/default/pods/web";

    private static async Task<int> Main(string[] args)
    {
        Options options;
        try
        {
            options = Options.Parse(args);
        }
        catch (ArgumentException e)
        {
            await Console.Error.WriteLineAsync("k8s-rps: " + e.Message);
            await Console.Error.WriteLineAsync(Options.Usage);
            return 2;
        }

        if (options.Help)
        {
            Console.WriteLine(Options.Usage);
            return 0;
        }

        using var output = new Output(options.Out);
        return await RunAsync(options, output);
    }

    private static async Task<int> RunAsync(Options options, Output o)
    {
        var directory = Path.Combine(Path.GetTempPath(), "nhiaudit-k8s-rps-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(directory);
        o.Line(I($"k8s-rps: concurrency {options.Concurrency}, {options.Seconds} s per run, {options.Rounds} rounds, warm-up {options.Warmup} s per target"));
        o.Line(I($"  {Environment.ProcessorCount} cores, .NET {Environment.Version}, GC {(System.Runtime.GCSettings.IsServerGC ? "server" : "workstation")}, work directory {directory}"));

        var upstream = await FakeKubeApiServer.StartAsync(Path.Combine(directory, "upstream"));
        IHost? gatewayHost = null;
        WebApplication? yarp = null;
        var exit = 0;
        try
        {
            await CreatePodAsync(upstream);

            // The gateway, configured as tests/NhiAudit.IntegrationTests/Kubernetes/Gateway/KubernetesGatewayHost.cs.
            var issuer = DevelopmentIssuer.LoadOrCreate(Path.Combine(directory, "issuer"), "https://issuer.test");
            var tokenFile = Path.Combine(directory, "upstream-token");
            await File.WriteAllTextAsync(tokenFile, upstream.Token);
            var auditDirectory = Path.Combine(directory, "audit");
            var settings = new Dictionary<string, string?>
            {
                ["NhiAudit:Identity:Issuers:0:Name"] = "test",
                ["NhiAudit:Identity:Issuers:0:Issuer"] = "https://issuer.test",
                ["NhiAudit:Identity:Issuers:0:JwksFile"] = issuer.JwksPath,
                ["NhiAudit:Identity:Issuers:0:Audiences:0"] = "nhiaudit",
                ["NhiAudit:Identity:ApproverRole"] = "NhiAudit.Approver",
                ["NhiAudit:Audit:Directory"] = auditDirectory,
                ["NhiAudit:Audit:Durability"] = options.Durability,
                ["NhiAudit:Kubernetes:Targets:0:Name"] = "cluster",
                ["NhiAudit:Kubernetes:Targets:0:Listen"] = "127.0.0.1:0",
                ["NhiAudit:Kubernetes:Targets:0:StateDirectory"] = Path.Combine(directory, "state"),
                ["NhiAudit:Kubernetes:Targets:0:RecordingsDirectory"] = Path.Combine(directory, "recordings"),
                ["NhiAudit:Kubernetes:Targets:0:Upstream:Server"] = upstream.Url.ToString(),
                ["NhiAudit:Kubernetes:Targets:0:Upstream:CaFile"] = upstream.CaFile,
                ["NhiAudit:Kubernetes:Targets:0:Upstream:TokenFile"] = tokenFile,
            };
            var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
            var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
            builder.Logging.AddSimpleConsole().SetMinimumLevel(LogLevel.Warning);
            builder.Services
                .AddNhiAuditing(configuration.GetSection("NhiAudit"))
                .AddKubernetes(configuration.GetSection("NhiAudit:Kubernetes"));
            gatewayHost = builder.Build();
            await gatewayHost.StartAsync();
            var gateway = gatewayHost.Services.GetRequiredService<KubernetesGateway>();
            await gateway.Listening.WaitAsync(TimeSpan.FromSeconds(30));
            var gatewayUrl = new Uri(I($"https://127.0.0.1:{gateway.Endpoints["cluster"].Port}/"));
            var auditLog = gatewayHost.Services.GetRequiredService<IAuditLog>();
            var workloadToken = issuer.MintToken(new TokenRequest
            {
                Subject = "k8s-rps",
                Audience = "nhiaudit",
                Lifetime = TimeSpan.FromHours(2),
                Kind = WorkloadKind.FederatedWorkload,
                Repository = "contoso/platform",
                Workflow = "bench.yml",
                RunId = "1",
                Sha = "cafe1234",
                Roles = [],
            });

            // Plain YARP: same listener setup, same upstream client settings as the gateway, the token swapped, nothing else.
            (yarp, var yarpUrl) = await StartPlainYarpAsync(upstream);

            var targets = new[]
            {
                new Target("direct", upstream.Url, "Bearer " + upstream.Token, options.Concurrency),
                new Target("yarp", yarpUrl, "Bearer " + workloadToken, options.Concurrency),
                new Target("gateway", gatewayUrl, "Bearer " + workloadToken, options.Concurrency),
            };
            o.Line(I($"  direct  {upstream.Url}  (fake API server, its own bearer token)"));
            o.Line(I($"  yarp    {yarpUrl}  (IHttpForwarder.SendAsync, Authorization replaced by the upstream token, HTTP/1.1 upstream)"));
            o.Line(I($"  gateway {gatewayUrl}  (AddNhiAuditing().AddKubernetes(), workload JWT, audit {options.Durability})"));
            o.Line(I($"  request GET {PodPath}, Accept: application/json; client HTTP/1.1, MaxConnectionsPerServer {options.Concurrency}"));

            // One request per target: it must answer 200 before anything is measured.
            foreach (var t in targets)
            {
                var (status, body) = await t.GetOnceAsync();
                if (status != HttpStatusCode.OK)
                {
                    o.Line(I($"ERROR: {t.Name} answered {(int)status}: {Truncate(body, 400)}"));
                    return 2;
                }
            }

            var gatewaySent = 1L;
            if (options.Warmup > 0)
            {
                o.Line(I($"\n== warm-up: {options.Warmup} s per target (not recorded)"));
                foreach (var t in targets)
                {
                    var r = await MeasureAsync(t, options.Concurrency, TimeSpan.FromSeconds(options.Warmup), t.Name == "gateway" ? auditLog : null, upstream);
                    o.Line(I($"  {t.Name,-8} {r.Rps,9:F0} req/s  ok {r.Ok}  failed {r.Failed}{(r.FirstError is null ? "" : "  first error: " + r.FirstError)}"));
                    if (t.Name == "gateway")
                    {
                        gatewaySent += r.Ok + r.Failed;
                    }

                    if (r.Failed > 0)
                    {
                        exit = 1;
                    }
                }
            }

            var results = targets.ToDictionary(t => t.Name, _ => new List<RunResult>());
            var roundRatios = new List<(double GwDirect, double GwYarp, double YarpDirect)>();
            for (var round = 0; round < options.Rounds; round++)
            {
                var order = Enumerable.Range(0, targets.Length).Select(i => targets[(i + round) % targets.Length]).ToArray();
                o.Line(I($"\n== round {round + 1}/{options.Rounds}: {string.Join(", ", order.Select(t => t.Name))}"));
                o.Line(I($"  {"target",-8} {"req/s",9} {"p50 ms",8} {"p99 ms",8} {"ok",9} {"failed",7} {"CPU µs/req",11}"));
                var thisRound = new Dictionary<string, RunResult>();
                foreach (var t in order)
                {
                    var r = await MeasureAsync(t, options.Concurrency, TimeSpan.FromSeconds(options.Seconds), t.Name == "gateway" ? auditLog : null, upstream);
                    thisRound[t.Name] = r;
                    results[t.Name].Add(r);
                    if (t.Name == "gateway")
                    {
                        gatewaySent += r.Ok + r.Failed;
                    }

                    if (r.Failed > 0)
                    {
                        exit = 1;
                    }

                    o.Line(I($"  {t.Name,-8} {r.Rps,9:F0} {r.P50Ms,8:F3} {r.P99Ms,8:F3} {r.Ok,9} {r.Failed,7} {r.CpuMicrosPerRequest,11:F1}{(r.FirstError is null ? "" : "  first error: " + r.FirstError)}"));
                }

                var ratios = (thisRound["gateway"].Rps / thisRound["direct"].Rps, thisRound["gateway"].Rps / thisRound["yarp"].Rps, thisRound["yarp"].Rps / thisRound["direct"].Rps);
                roundRatios.Add(ratios);
                o.Line(I($"  gateway/direct {ratios.Item1:F3}  gateway/yarp {ratios.Item2:F3}  yarp/direct {ratios.Item3:F3}"));
            }

            o.Line(I($"\n== summary ({options.Rounds} rounds x {options.Seconds} s, concurrency {options.Concurrency})"));
            o.Line(I($"  {"target",-8} {"median req/s",13} {"min",8} {"max",8} {"p50 ms",8} {"p99 ms",8} {"CPU µs/req",11} {"failed",7}"));
            foreach (var t in targets)
            {
                var rs = results[t.Name];
                o.Line(I($"  {t.Name,-8} {Median(rs.Select(r => r.Rps)),13:F0} {rs.Min(r => r.Rps),8:F0} {rs.Max(r => r.Rps),8:F0} {Median(rs.Select(r => r.P50Ms)),8:F3} {Median(rs.Select(r => r.P99Ms)),8:F3} {Median(rs.Select(r => r.CpuMicrosPerRequest)),11:F1} {rs.Sum(r => r.Failed),7}"));
            }

            o.Line("  (p50/p99 and CPU: median over the rounds. CPU is the whole process — load client, fake API server and the");
            o.Line("   middleman — per request while that target ran, so gateway minus direct is roughly the gateway's own cost.)");
            o.Line("  ratios, median of the per-round ratios (each round's value):");
            o.Line(I($"    gateway/direct {Median(roundRatios.Select(r => r.GwDirect)):F3}  ({string.Join(", ", roundRatios.Select(r => r.GwDirect.ToString("F3", CultureInfo.InvariantCulture)))})"));
            o.Line(I($"    gateway/yarp   {Median(roundRatios.Select(r => r.GwYarp)):F3}  ({string.Join(", ", roundRatios.Select(r => r.GwYarp.ToString("F3", CultureInfo.InvariantCulture)))})"));
            o.Line(I($"    yarp/direct    {Median(roundRatios.Select(r => r.YarpDirect)):F3}  ({string.Join(", ", roundRatios.Select(r => r.YarpDirect.ToString("F3", CultureInfo.InvariantCulture)))})"));

            foreach (var t in targets)
            {
                t.Dispose();
            }

            // The audit check: one k8s.request record per request sent to the gateway (the first check request, warm-up, rounds).
            await auditLog.FlushAsync();
            await gatewayHost.StopAsync(TimeSpan.FromSeconds(15));
            gatewayHost.Dispose();
            gatewayHost = null;
            var (lines, requests, responses) = CountAudit(auditDirectory);
            o.Line("\n== audit");
            o.Line(I($"  audit-*.jsonl lines containing \"k8s.request\": {lines}"));
            o.Line(I($"  records of type k8s.request: {requests}, k8s.response: {responses}"));
            o.Line(I($"  gateway requests sent (check + warm-up + rounds): {gatewaySent}"));
            if (lines == gatewaySent && requests == gatewaySent)
            {
                o.Line("  OK: one k8s.request record per gateway request");
            }
            else
            {
                o.Line(I($"  MISMATCH: difference {requests - gatewaySent}"));
                exit = 1;
            }

            if (!upstream.Errors.IsEmpty)
            {
                o.Line(I($"  fake API server errors: {upstream.Errors.Count}; first: {upstream.Errors.First().Message}"));
                exit = 1;
            }
        }
        finally
        {
            if (gatewayHost is not null)
            {
                await gatewayHost.StopAsync(TimeSpan.FromSeconds(15));
                gatewayHost.Dispose();
            }

            if (yarp is not null)
            {
                await yarp.StopAsync();
                await yarp.DisposeAsync();
            }

            await upstream.DisposeAsync();
            if (options.Keep)
            {
                o.Line(I($"\nwork directory kept: {directory} (rm -rf it when done)"));
            }
            else
            {
                try
                {
                    Directory.Delete(directory, recursive: true);
                }
                catch (IOException)
                {
                }
            }
        }

        o.Line(exit == 0 ? "\nk8s-rps: OK" : I($"\nk8s-rps: FAILED (exit {exit})"));
        return exit;
    }

    private static async Task CreatePodAsync(FakeKubeApiServer upstream)
    {
        using var client = new HttpClient(Target.Handler(1)) { BaseAddress = upstream.Url };
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/v1/namespaces/default/pods");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", upstream.Token);
        const string pod = """
            {"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"default","labels":{"app":"web","tier":"frontend"}},
             "spec":{"containers":[{"name":"web","image":"nginx:1.27","ports":[{"containerPort":80}]}]}}
            """;
        request.Content = new StringContent(pod, Encoding.UTF8, "application/json");
        using var response = await client.SendAsync(request);
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException(I($"creating pod web: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}"));
        }
    }

    private static async Task<(WebApplication App, Uri Url)> StartPlainYarpAsync(FakeKubeApiServer upstream)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { EnvironmentName = "Production" });
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole().SetMinimumLevel(LogLevel.Warning);
        builder.WebHost.UseKestrelHttpsConfiguration();
        var certificate = SelfSignedCertificate();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, l =>
        {
            l.Protocols = HttpProtocols.Http1AndHttp2;
            l.UseHttps(certificate);
        }));
        builder.WebHost.UseSetting(WebHostDefaults.PreferHostingUrlsKey, "false");
        builder.WebHost.UseUrls();
        builder.Services.AddHttpForwarder();
        var app = builder.Build();

        var trust = new X509Certificate2Collection();
        trust.ImportFromPemFile(upstream.CaFile);
        var invoker = new HttpMessageInvoker(new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            EnableMultipleHttp2Connections = true,
            ConnectTimeout = TimeSpan.FromSeconds(15),
            ActivityHeadersPropagator = null,
            SslOptions = new SslClientAuthenticationOptions
            {
                TargetHost = upstream.Url.IdnHost,
                RemoteCertificateValidationCallback = (_, certificate, _, errors) => ValidateWithCa(certificate, errors, trust),
            },
        });
        var config = new ForwarderRequestConfig
        {
            ActivityTimeout = TimeSpan.FromSeconds(100),
            Version = HttpVersion.Version11,
            VersionPolicy = HttpVersionPolicy.RequestVersionOrLower,
        };
        var transformer = new BearerTransformer("Bearer " + upstream.Token);
        var destination = upstream.Url.GetLeftPart(UriPartial.Authority);
        var forwarder = app.Services.GetRequiredService<IHttpForwarder>();
        app.Run(async context =>
        {
            var error = await forwarder.SendAsync(context, destination, invoker, config, transformer);
            if (error != ForwarderError.None && !context.Response.HasStarted)
            {
                context.Response.StatusCode = 502;
            }
        });
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return (app, new Uri(I($"https://127.0.0.1:{new Uri(address).Port}/")));
    }

    private static bool ValidateWithCa(X509Certificate? certificate, SslPolicyErrors errors, X509Certificate2Collection trust)
    {
        if (errors == SslPolicyErrors.None)
        {
            return true;
        }

        if (certificate is null || (errors & SslPolicyErrors.RemoteCertificateNotAvailable) != 0)
        {
            return false;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(trust);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        using var leaf = new X509Certificate2(certificate);
        return chain.Build(leaf) && (errors & SslPolicyErrors.RemoteCertificateNameMismatch) == 0;
    }

    private static X509Certificate2 SelfSignedCertificate()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=plain-yarp", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        san.AddDnsName("localhost");
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        var now = DateTimeOffset.UtcNow;
        using var certificate = request.CreateSelfSigned(now.AddDays(-1), now.AddDays(7));
        return X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null);
    }

    private static async Task<RunResult> MeasureAsync(Target target, int concurrency, TimeSpan duration, IAuditLog? auditLog, FakeKubeApiServer upstream)
    {
        upstream.Requests.Clear(); // the fake records every request; keep its memory flat between runs
        GC.Collect();
        GC.WaitForPendingFinalizers();
        var cpuBefore = ProcessCpuTicks();
        var start = Stopwatch.GetTimestamp();
        var end = start + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        var loops = new Task<LoopResult>[concurrency];
        for (var i = 0; i < concurrency; i++)
        {
            loops[i] = Task.Run(() => target.LoopAsync(end));
        }

        var done = await Task.WhenAll(loops);
        var elapsed = Stopwatch.GetElapsedTime(start);
        if (auditLog is not null)
        {
            await auditLog.FlushAsync(); // whatever the gateway still owes the audit log is charged to its run
        }

        var cpuTicks = ProcessCpuTicks() - cpuBefore;
        var latencies = done.SelectMany(l => l.Latencies).ToArray();
        Array.Sort(latencies);
        var ok = done.Sum(l => (long)l.Ok);
        var failed = done.Sum(l => (long)l.Failed);
        var cpuMicros = cpuTicks * (1_000_000.0 / ClockTicksPerSecond);
        return new RunResult(
            ok / elapsed.TotalSeconds,
            Percentile(latencies, 0.50),
            Percentile(latencies, 0.99),
            ok,
            failed,
            ok > 0 ? cpuMicros / ok : double.NaN,
            done.Select(l => l.FirstError).FirstOrDefault(e => e is not null));
    }

    private static double Percentile(long[] sorted, double q)
    {
        if (sorted.Length == 0)
        {
            return double.NaN;
        }

        var index = Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1);
        return sorted[index] * 1000.0 / Stopwatch.Frequency;
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0)
        {
            return double.NaN;
        }

        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private const double ClockTicksPerSecond = 100; // USER_HZ on Linux

    /// <summary>utime + stime of this process from /proc/self/stat (clock ticks); 0 where there is no procfs.</summary>
    private static long ProcessCpuTicks()
    {
        try
        {
            var stat = File.ReadAllText("/proc/self/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            // After "pid (comm) ": fields[0] is state (field 3); utime is field 14, stime field 15.
            return long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        }
        catch (IOException)
        {
            return 0;
        }
        catch (UnauthorizedAccessException)
        {
            return 0;
        }
    }

    private static (long Lines, long Requests, long Responses) CountAudit(string auditDirectory)
    {
        long lines = 0, requests = 0, responses = 0;
        foreach (var file in Directory.GetFiles(auditDirectory, "audit-*.jsonl").Order(StringComparer.Ordinal))
        {
            foreach (var line in File.ReadLines(file))
            {
                if (line.Length == 0)
                {
                    continue;
                }

                if (line.Contains("k8s.request", StringComparison.Ordinal))
                {
                    lines++;
                }

                using var document = JsonDocument.Parse(line);
                if (document.RootElement.TryGetProperty("type", out var type))
                {
                    switch (type.GetString())
                    {
                        case "k8s.request":
                            requests++;
                            break;
                        case "k8s.response":
                            responses++;
                            break;
                    }
                }
            }
        }

        return (lines, requests, responses);
    }

    private static string Truncate(string s, int max) => s.Length <= max ? s : s[..max] + "...";

    internal static string I(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

    private sealed record RunResult(double Rps, double P50Ms, double P99Ms, long Ok, long Failed, double CpuMicrosPerRequest, string? FirstError);

    private sealed record LoopResult(List<long> Latencies, int Ok, int Failed, string? FirstError);

    /// <summary>One thing to load: its own connection pool, base address and Authorization header.</summary>
    private sealed class Target(string name, Uri baseUrl, string authorization, int concurrency) : IDisposable
    {
        private readonly HttpClient _client = new(Handler(concurrency))
        {
            BaseAddress = baseUrl,
            DefaultRequestVersion = HttpVersion.Version11,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Timeout = TimeSpan.FromSeconds(30),
        };

        private readonly Uri _pod = new(baseUrl, PodPath);

        public string Name { get; } = name;

        public static SocketsHttpHandler Handler(int connections) => new()
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            UseCookies = false,
            AutomaticDecompression = DecompressionMethods.None,
            MaxConnectionsPerServer = connections,
            PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
            SslOptions = new SslClientAuthenticationOptions
            {
                // The fake's test CA, the gateway's and plain YARP's self-signed certificates: accept them all.
#pragma warning disable CA5359
                RemoteCertificateValidationCallback = (_, _, _, _) => true,
#pragma warning restore CA5359
            },
        };

        public async Task<(HttpStatusCode Status, string Body)> GetOnceAsync()
        {
            using var request = Request();
            using var response = await _client.SendAsync(request);
            return (response.StatusCode, await response.Content.ReadAsStringAsync());
        }

        public async Task<LoopResult> LoopAsync(long end)
        {
            var latencies = new List<long>(1 << 16);
            int ok = 0, failed = 0;
            string? firstError = null;
            while (Stopwatch.GetTimestamp() < end)
            {
                var started = Stopwatch.GetTimestamp();
                try
                {
                    using var request = Request();
                    using var response = await _client.SendAsync(request, HttpCompletionOption.ResponseContentRead);
                    if (response.StatusCode == HttpStatusCode.OK)
                    {
                        ok++;
                        latencies.Add(Stopwatch.GetTimestamp() - started);
                    }
                    else
                    {
                        failed++;
                        firstError ??= I($"{(int)response.StatusCode} {Truncate(await response.Content.ReadAsStringAsync(), 300)}");
                    }
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException)
                {
                    failed++;
                    firstError ??= e.GetType().Name + ": " + e.Message;
                }
            }

            return new LoopResult(latencies, ok, failed, firstError);
        }

        public void Dispose() => _client.Dispose();

        private HttpRequestMessage Request()
        {
            var request = new HttpRequestMessage(HttpMethod.Get, _pod);
            request.Headers.TryAddWithoutValidation("Authorization", authorization);
            request.Headers.TryAddWithoutValidation("Accept", "application/json");
            request.Headers.TryAddWithoutValidation("User-Agent", "k8s-rps/1.0");
            return request;
        }
    }

    /// <summary>YARP's default request transform, then the client's Authorization replaced by the upstream's token.</summary>
    private sealed class BearerTransformer(string authorization) : HttpTransformer
    {
        public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
        {
            await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken);
            proxyRequest.Headers.Remove("Authorization");
            proxyRequest.Headers.TryAddWithoutValidation("Authorization", authorization);
        }
    }

    /// <summary>Console, and the --out file when given.</summary>
    private sealed class Output(string? path) : IDisposable
    {
        private readonly StreamWriter? _file = path is null ? null : CreateFile(path);

        public void Line(string text)
        {
            Console.WriteLine(text);
            _file?.WriteLine(text);
        }

        public void Dispose() => _file?.Dispose();

        private static StreamWriter CreateFile(string path)
        {
            var directory = Path.GetDirectoryName(Path.GetFullPath(path));
            if (directory is not null)
            {
                Directory.CreateDirectory(directory);
            }

            return new StreamWriter(path, append: false) { AutoFlush = true };
        }
    }

    private sealed record Options(int Concurrency, int Seconds, int Rounds, int Warmup, string Durability, string? Out, bool Keep, bool Help)
    {
        public const string Usage = """
            usage: NhiAudit.KubernetesLoad [--concurrency C] [--seconds T] [--rounds R] [--warmup S] [--durability D] [--out FILE] [--keep]
              --concurrency C  concurrent request loops (and connections) per target (default 16)
              --seconds T      measured seconds per target per round (default 10)
              --rounds R       interleaved rounds, order rotating: direct, yarp, gateway (default 3)
              --warmup S       unrecorded seconds per target before round 1; 0 = none (default 2)
              --durability D   the gateway's NhiAudit:Audit:Durability: Buffered, WriteAhead or Durable (default WriteAhead)
              --out FILE       also write the report to FILE
              --keep           keep the work directory (fake API server, gateway state, audit log)
            """;

        public static Options Parse(string[] args)
        {
            int concurrency = 16, seconds = 10, rounds = 3, warmup = 2;
            string? output = null;
            var durability = "WriteAhead";
            bool keep = false, help = false;
            for (var i = 0; i < args.Length; i++)
            {
                switch (args[i])
                {
                    case "--concurrency": concurrency = Int(args, ref i, 1); break;
                    case "--seconds": seconds = Int(args, ref i, 1); break;
                    case "--rounds": rounds = Int(args, ref i, 1); break;
                    case "--warmup": warmup = Int(args, ref i, 0); break;
                    case "--out": output = Value(args, ref i); break;
                    case "--durability":
                        durability = Value(args, ref i);
                        if (durability is not ("Buffered" or "WriteAhead" or "Durable"))
                        {
                            throw new ArgumentException("--durability must be Buffered, WriteAhead or Durable");
                        }

                        break;
                    case "--keep": keep = true; break;
                    case "-h" or "--help": help = true; break;
                    default: throw new ArgumentException(I($"unknown argument '{args[i]}'"));
                }
            }

            return new Options(concurrency, seconds, rounds, warmup, durability, output, keep, help);
        }

        private static string Value(string[] args, ref int i)
        {
            if (i + 1 >= args.Length)
            {
                throw new ArgumentException(args[i] + " needs a value");
            }

            return args[++i];
        }

        private static int Int(string[] args, ref int i, int min)
        {
            var name = args[i];
            var text = Value(args, ref i);
            if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) || value < min)
            {
                throw new ArgumentException(I($"{name} needs a whole number >= {min}, got '{text}'"));
            }

            return value;
        }
    }
}
