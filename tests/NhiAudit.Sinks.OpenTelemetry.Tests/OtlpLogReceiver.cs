using System.Net;
using Google.Protobuf;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace NhiAudit.Sinks.OpenTelemetry.Tests;

/// <summary>One log record as a collector received it.</summary>
internal sealed record ReceivedLog(
    string Scope,
    ulong TimeUnixNano,
    string? Body,
    string? EventName,
    int SeverityNumber,
    IReadOnlyDictionary<string, object> Attributes,
    IReadOnlyDictionary<string, object> Resource)
{
    public long Sequence => (long)Attributes["nhiaudit.seq"];

    public string Text(string key) => (string)Attributes[key];
}

/// <summary>
/// A minimal OTLP/HTTP logs receiver on 127.0.0.1: Kestrel accepts <c>POST /v1/logs</c> with
/// <c>application/x-protobuf</c> and decodes <c>ExportLogsServiceRequest</c> by hand, just the fields the sink
/// sends. It stands in for a collector (none can be installed here), so the SDK's real exporter is the client under
/// test. <see cref="Failing"/> makes it answer 503 to simulate an outage.
/// </summary>
internal sealed class OtlpLogReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly Lock _lock = new();
    private readonly List<ReceivedLog> _logs = [];
    private readonly List<(int Count, TaskCompletionSource Done)> _rejectionWaiters = [];
    private readonly List<(Func<IReadOnlyList<ReceivedLog>, bool> Condition, TaskCompletionSource Done)> _logWaiters = [];
    private readonly List<string> _contentTypes = [];
    private readonly List<string?> _apiKeys = [];
    private int _rejected;
    private volatile bool _failing;

    private OtlpLogReceiver(WebApplication app) => _app = app;

    /// <summary>The logs URL, e.g. http://127.0.0.1:PORT/v1/logs.</summary>
    public Uri Endpoint { get; private set; } = null!;

    /// <summary>The base URL without a path.</summary>
    public Uri BaseAddress { get; private set; } = null!;

    /// <summary>While true every export is answered with 503 and nothing is kept.</summary>
    public bool Failing
    {
        get => _failing;
        set => _failing = value;
    }

    public IReadOnlyList<ReceivedLog> Logs
    {
        get
        {
            lock (_lock)
            {
                return [.. _logs];
            }
        }
    }

    public IReadOnlyList<string> ContentTypes
    {
        get
        {
            lock (_lock)
            {
                return [.. _contentTypes];
            }
        }
    }

    public IReadOnlyList<string?> ApiKeys
    {
        get
        {
            lock (_lock)
            {
                return [.. _apiKeys];
            }
        }
    }

    public static async Task<OtlpLogReceiver> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        var receiver = new OtlpLogReceiver(app);
        app.MapPost("/v1/logs", receiver.HandleAsync);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        receiver.BaseAddress = new Uri(address);
        receiver.Endpoint = new Uri(receiver.BaseAddress, "v1/logs");
        return receiver;
    }

    /// <summary>Completes once at least <paramref name="count"/> exports have been answered with 503.</summary>
    public Task WaitForRejectionsAsync(int count)
    {
        lock (_lock)
        {
            if (_rejected >= count)
            {
                return Task.CompletedTask;
            }

            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _rejectionWaiters.Add((count, done));
            return done.Task;
        }
    }

    /// <summary>Completes once the received logs satisfy <paramref name="condition"/> (checked after every accepted export).</summary>
    public Task WaitForLogsAsync(Func<IReadOnlyList<ReceivedLog>, bool> condition)
    {
        lock (_lock)
        {
            if (condition(_logs))
            {
                return Task.CompletedTask;
            }

            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _logWaiters.Add((condition, done));
            return done.Task;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private async Task HandleAsync(HttpContext context)
    {
        using var body = new MemoryStream();
        await context.Request.Body.CopyToAsync(body);
        lock (_lock)
        {
            if (_failing)
            {
                _rejected++;
                for (var i = _rejectionWaiters.Count - 1; i >= 0; i--)
                {
                    if (_rejectionWaiters[i].Count <= _rejected)
                    {
                        _rejectionWaiters[i].Done.TrySetResult();
                        _rejectionWaiters.RemoveAt(i);
                    }
                }

                context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
                return;
            }

            _contentTypes.Add(context.Request.ContentType ?? "");
            _apiKeys.Add(context.Request.Headers["x-api-key"].FirstOrDefault());
            _logs.AddRange(Decode(body.ToArray()));
            for (var i = _logWaiters.Count - 1; i >= 0; i--)
            {
                if (_logWaiters[i].Condition(_logs))
                {
                    _logWaiters[i].Done.TrySetResult();
                    _logWaiters.RemoveAt(i);
                }
            }
        }

        // An empty ExportLogsServiceResponse: full success.
        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentType = "application/x-protobuf";
        context.Response.ContentLength = 0;
    }

    /// <summary>ExportLogsServiceRequest { repeated ResourceLogs resource_logs = 1; }.</summary>
    internal static List<ReceivedLog> Decode(byte[] request)
    {
        var logs = new List<ReceivedLog>();
        ForEachField(request, (field, input) =>
        {
            if (field == 1)
            {
                DecodeResourceLogs(input.ReadBytes().ToByteArray(), logs);
                return true;
            }

            return false;
        });
        return logs;
    }

    /// <summary>ResourceLogs { Resource resource = 1; repeated ScopeLogs scope_logs = 2; }.</summary>
    private static void DecodeResourceLogs(byte[] message, List<ReceivedLog> logs)
    {
        var resource = new Dictionary<string, object>(StringComparer.Ordinal);
        var scopeLogs = new List<byte[]>();
        ForEachField(message, (field, input) =>
        {
            switch (field)
            {
                case 1:
                    // Resource { repeated KeyValue attributes = 1; }
                    ForEachField(input.ReadBytes().ToByteArray(), (f, i) =>
                    {
                        if (f == 1)
                        {
                            AddKeyValue(i.ReadBytes().ToByteArray(), resource);
                            return true;
                        }

                        return false;
                    });
                    return true;
                case 2:
                    scopeLogs.Add(input.ReadBytes().ToByteArray());
                    return true;
                default:
                    return false;
            }
        });

        foreach (var scope in scopeLogs)
        {
            DecodeScopeLogs(scope, resource, logs);
        }
    }

    /// <summary>ScopeLogs { InstrumentationScope scope = 1; repeated LogRecord log_records = 2; }.</summary>
    private static void DecodeScopeLogs(byte[] message, IReadOnlyDictionary<string, object> resource, List<ReceivedLog> logs)
    {
        var scopeName = "";
        ForEachField(message, (field, input) =>
        {
            switch (field)
            {
                case 1:
                    // InstrumentationScope { string name = 1; }
                    ForEachField(input.ReadBytes().ToByteArray(), (f, i) =>
                    {
                        if (f == 1)
                        {
                            scopeName = i.ReadString();
                            return true;
                        }

                        return false;
                    });
                    return true;
                case 2:
                    logs.Add(DecodeLogRecord(input.ReadBytes().ToByteArray(), scopeName, resource));
                    return true;
                default:
                    return false;
            }
        });
    }

    /// <summary>
    /// LogRecord { fixed64 time_unix_nano = 1; SeverityNumber severity_number = 2; AnyValue body = 5;
    /// repeated KeyValue attributes = 6; string event_name = 12; }.
    /// </summary>
    private static ReceivedLog DecodeLogRecord(byte[] message, string scope, IReadOnlyDictionary<string, object> resource)
    {
        ulong time = 0;
        string? body = null;
        string? eventName = null;
        var severity = 0;
        var attributes = new Dictionary<string, object>(StringComparer.Ordinal);
        ForEachField(message, (field, input) =>
        {
            switch (field)
            {
                case 1:
                    time = input.ReadFixed64();
                    return true;
                case 2:
                    severity = input.ReadEnum();
                    return true;
                case 5:
                    body = DecodeAnyValue(input.ReadBytes().ToByteArray()) as string;
                    return true;
                case 6:
                    AddKeyValue(input.ReadBytes().ToByteArray(), attributes);
                    return true;
                case 12:
                    eventName = input.ReadString();
                    return true;
                default:
                    return false;
            }
        });
        return new ReceivedLog(scope, time, body, eventName, severity, attributes, resource);
    }

    /// <summary>KeyValue { string key = 1; AnyValue value = 2; }.</summary>
    private static void AddKeyValue(byte[] message, Dictionary<string, object> into)
    {
        string? key = null;
        object? value = null;
        ForEachField(message, (field, input) =>
        {
            switch (field)
            {
                case 1:
                    key = input.ReadString();
                    return true;
                case 2:
                    value = DecodeAnyValue(input.ReadBytes().ToByteArray());
                    return true;
                default:
                    return false;
            }
        });
        Assert.NotNull(key);
        Assert.False(into.ContainsKey(key), $"attribute {key} sent twice");
        into[key] = value!;
    }

    /// <summary>AnyValue { string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4; }.</summary>
    private static object? DecodeAnyValue(byte[] message)
    {
        object? value = null;
        ForEachField(message, (field, input) =>
        {
            switch (field)
            {
                case 1:
                    value = input.ReadString();
                    return true;
                case 2:
                    value = input.ReadBool();
                    return true;
                case 3:
                    value = input.ReadInt64();
                    return true;
                case 4:
                    value = input.ReadDouble();
                    return true;
                default:
                    return false;
            }
        });
        return value;
    }

    /// <summary>Calls <paramref name="read"/> for each field; when it returns false the field is skipped.</summary>
    private static void ForEachField(byte[] message, Func<int, CodedInputStream, bool> read)
    {
        var input = new CodedInputStream(message);
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            if (!read(WireFormat.GetTagFieldNumber(tag), input))
            {
                input.SkipLastField();
            }
        }
    }
}
