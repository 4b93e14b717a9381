using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Azure.Core.Pipeline;
using Azure.Storage.Blobs;
using NhiAudit.Sinks.AzureBlob;

namespace NhiAudit.Sinks.AzureBlob.Tests;

/// <summary>
/// A real Azurite blob emulator on a free loopback port with its data on disk, so a test can stop it (an outage) and
/// start it again on the same port and data. Found in the repo's <c>.tools/azurite</c> (eng/prereqs.sh installs it
/// there) or on PATH; a missing Azurite fails the test with instructions rather than skipping it.
/// </summary>
public sealed class AzuriteServer : IAsyncDisposable
{
    /// <summary>Azurite's well-known development account key (public, documented by Microsoft).</summary>
    private const string AccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    private readonly string _executable;
    private readonly string _location;
    private readonly StringBuilder _output = new();
    private Process? _process;

    private AzuriteServer(string executable, int port, string location)
    {
        _executable = executable;
        Port = port;
        _location = location;
    }

    public int Port { get; }

    public string ConnectionString =>
        $"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AccountKey};BlobEndpoint=http://127.0.0.1:{Port}/devstoreaccount1;";

    public static async Task<AzuriteServer> StartAsync()
    {
        var location = Path.Combine(Path.GetTempPath(), "nhiaudit-azurite-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(location);
        var server = new AzuriteServer(FindExecutable(), FreePort(), location);
        await server.StartProcessAsync();
        return server;
    }

    /// <summary>Kills the emulator (no graceful shutdown: an outage), keeping its data directory.</summary>
    public async Task StopAsync()
    {
        if (_process is { } process)
        {
            _process = null;
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }

            await process.WaitForExitAsync();
            process.Dispose();
        }
    }

    /// <summary>Starts the emulator again on the same port and data directory.</summary>
    public Task RestartAsync() => StartProcessAsync();

    /// <summary>A client for a container of this emulator, with the sink's client options plus an optional extra policy.</summary>
    public BlobContainerClient Container(string name, HttpPipelinePolicy? perCallPolicy = null)
    {
        var options = AzureBlobClients.CreateClientOptions();
        if (perCallPolicy is not null)
        {
            options.AddPolicy(perCallPolicy, Azure.Core.HttpPipelinePosition.PerRetry);
        }

        return new BlobServiceClient(ConnectionString, options).GetBlobContainerClient(name);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        for (var attempt = 0; attempt < 5 && Directory.Exists(_location); attempt++)
        {
            try
            {
                Directory.Delete(_location, recursive: true);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Best effort: a temp directory left behind is harmless; retry in case files are still being closed.
                await Task.Delay(200);
            }
        }
    }

    private static string FindExecutable()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            var local = Path.Combine(directory.FullName, ".tools", "azurite", "node_modules", ".bin", "azurite-blob");
            if (File.Exists(local))
            {
                return local;
            }
        }

        foreach (var folder in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(folder, "azurite-blob");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new InvalidOperationException(
            "Azurite (azurite-blob) was not found in the repo's .tools/azurite nor on PATH; these tests need the real emulator. "
            + "Run eng/prereqs.sh (it runs 'npm install --prefix .tools/azurite azurite@3.35.0').");
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private async Task StartProcessAsync()
    {
        var start = new ProcessStartInfo(_executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[]
        {
            "--blobHost", "127.0.0.1", "--blobPort", Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--location", _location, "--skipApiVersionCheck", "--loose", "--disableTelemetry",
        })
        {
            start.ArgumentList.Add(argument);
        }

        var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;

        // Answering on the port is not enough right after a restart: ask the blob service itself.
        var service = new BlobServiceClient(ConnectionString, AzureBlobClients.CreateClientOptions());
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        while (true)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"Azurite exited with code {process.ExitCode} while starting on port {Port}:\n{Output()}");
            }

            try
            {
                await service.GetPropertiesAsync(timeout.Token);
                return;
            }
            catch (Exception ex) when (ex is Azure.RequestFailedException or HttpRequestException or AggregateException && !timeout.IsCancellationRequested)
            {
                await Task.Delay(100, CancellationToken.None);
            }
            catch (OperationCanceledException)
            {
                throw new InvalidOperationException($"Azurite did not answer on port {Port} within 120 s:\n{Output()}");
            }
        }
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
        }
    }

    private string Output()
    {
        lock (_output)
        {
            return _output.ToString();
        }
    }
}

/// <summary>One Azurite shared by the tests of the "Azurite" collection; each test uses its own container.</summary>
public sealed class AzuriteFixture : IAsyncLifetime
{
    private AzuriteServer? _server;

    public AzuriteServer Server => _server ?? throw new InvalidOperationException("Azurite is not started");

    public async Task InitializeAsync() => _server = await AzuriteServer.StartAsync();

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}

[CollectionDefinition("Azurite")]
public sealed class AzuriteTestGroup : ICollectionFixture<AzuriteFixture>;
