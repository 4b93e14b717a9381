using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using NhiAudit.Approvals;
using NhiAudit.Audit;
using NhiAudit.Kubernetes.Classification;
using NhiAudit.Kubernetes.Masking;
using Yarp.ReverseProxy.Forwarder;

namespace NhiAudit.Kubernetes.Gateway;

/// <summary>
/// One HTTP request through the gateway: the workload's token validated, the request classified as the API server
/// does, decided by the policy (held for an approver when it says so), recorded before it leaves, forwarded under the
/// workload's impersonated name with the gateway's own credential, and its response masked and recorded.
/// </summary>
internal sealed partial class KubernetesRequestHandler(KubernetesServices services)
{
    private static readonly string[] MutatingVerbs = ["create", "update", "patch", "delete", "deletecollection"];

    public async Task HandleAsync(HttpContext context)
    {
        var started = Stopwatch.GetTimestamp();
        var call = new KubernetesCall
        {
            RequestId = Guid.NewGuid().ToString(),
            Client = $"{context.Connection.RemoteIpAddress}:{context.Connection.RemotePort}",
            UserAgent = context.Request.Headers.UserAgent.ToString(),
            Method = context.Request.Method,
            Uri = context.Request.Path.Value + context.Request.QueryString.Value,
            Reason = context.Request.Headers["X-NhiAudit-Reason"].ToString() is { Length: > 0 } reason ? reason : null,
        };

        // 1. Who: the workload's own token, validated fully. The token never reaches the log or the API server.
        var token = BearerToken(context.Request);
        var authentication = token is null
            ? WorkloadAuthenticationResult.Fail("no bearer token: present the workload token as the bearer token")
            : await AuthenticateAsync(token, context.RequestAborted).ConfigureAwait(false);
        if (!authentication.Succeeded)
        {
            await AppendAsync("k8s.auth.failed", w =>
            {
                WriteRequest(w, call, info: null);
                w.WriteString("error", authentication.Failure);
            }, AuditAppendMode.Request).ConfigureAwait(false);
            await KubernetesStatus.WriteAsync(context, 401, "Unauthorized: workload token rejected: " + authentication.Failure).ConfigureAwait(false);
            return;
        }

        call.Identity = authentication.Identity!;

        // 2. What: the request as the API server reads it.
        var info = KubernetesRequestClassifier.Classify(context.Request.Method, context.Request.Path.Value ?? "/", context.Request.QueryString.Value, context.Request.ContentType);
        var access = DescribeRequest(context, info, call);
        call.Command = access.Text;

        // 3. May it: the policy, and an approver when the policy says so.
        var decision = services.Policy.Evaluate(access);
        string? refusal = null;
        var refusalCode = 403;
        string? approvalId = null;
        if (decision.Effect == PolicyEffect.Deny)
        {
            refusal = decision.Reason;
        }
        else if (decision.Effect == PolicyEffect.RequireApproval)
        {
            (approvalId, refusal) = await HoldForApprovalAsync(context, access, decision, call).ConfigureAwait(false);
        }

        if (refusal is null && !info.IsDiscovery && context.Request.Headers.Keys.FirstOrDefault(h => h.StartsWith("Impersonate-", StringComparison.OrdinalIgnoreCase)) is { } impersonation)
        {
            // kubectl --as: a workload asking to act as someone else. The gateway names the workload itself; refuse
            // rather than silently drop the header, so the caller learns why it is not who it asked to be. (Discovery
            // is answered without the header: kubectl cannot show a refusal of its discovery requests.)
            refusal = $"the workload may not impersonate ({impersonation}); the gateway sends the workload's own identity to the API server";
        }

        if (refusal is null && IsSpdyUpgrade(context.Request))
        {
            refusal = "this gateway relays exec, attach and port-forward over WebSocket only (SPDY is not inspected): use kubectl 1.31 or newer, or a client that speaks v5.channel.k8s.io";
            refusalCode = 400;
        }

        // 4. The request record, written before anything reaches the API server.
        var body = refusal is null ? await ReadBodyForLogAsync(context, info).ConfigureAwait(false) : default;
        var requestSeq = await AppendAsync("k8s.request", w =>
        {
            WriteRequest(w, call, info);
            WriteImpersonation(w, call.Identity);
            AuditRecordWriter.WritePolicyDecision(w, decision);
            if (approvalId is not null)
            {
                w.WriteString("approval"u8, approvalId);
            }

            if (body.Json is { } json)
            {
                // Re-written rather than copied: the record must stay one line whatever whitespace the client sent.
                w.WritePropertyName("body"u8);
                using var document = JsonDocument.Parse(json);
                document.WriteTo(w);
            }
            else if (body.Bytes > 0)
            {
                w.WriteNumber("bodyBytes"u8, body.Bytes);
            }

            if (refusal is not null)
            {
                w.WriteString("refused"u8, refusal);
            }
        }, AuditAppendMode.Request).ConfigureAwait(false);

        if (refusal is not null)
        {
            var message = refusalCode == 403 ? $"forbidden by the NhiAudit gateway: {refusal}" : refusal;
            if (context.WebSockets.IsWebSocketRequest && await KubernetesStatus.TryRefuseStreamAsync(context, refusalCode, message).ConfigureAwait(false))
            {
                call.Status = refusalCode;
                await AppendResponseAsync(call, requestSeq, started).ConfigureAwait(false);
                return;
            }

            await KubernetesStatus.WriteAsync(context, refusalCode, message, Details(info)).ConfigureAwait(false);
            call.Status = refusalCode;
            await AppendResponseAsync(call, requestSeq, started).ConfigureAwait(false);
            return;
        }

        // 5. Forward, and record what came back.
        try
        {
            if (context.WebSockets.IsWebSocketRequest && KubernetesStreamRelay.Taps(context, info))
            {
                await new KubernetesStreamRelay(services, call, info).RunAsync(context).ConfigureAwait(false);
            }
            else
            {
                await ForwardAsync(context, info, call).ConfigureAwait(false);
            }
        }
        finally
        {
            await AppendResponseAsync(call, requestSeq, started).ConfigureAwait(false);
        }
    }

    private async Task ForwardAsync(HttpContext context, KubernetesRequestInfo info, KubernetesCall call)
    {
        var transformer = new KubernetesTransformer(services, call, info);
        var config = new ForwarderRequestConfig
        {
            // A watch, a followed log and a port-forward tunnel stay open as long as their client wants.
            ActivityTimeout = info.Verb == "watch" || context.Request.Query.ContainsKey("follow") || context.WebSockets.IsWebSocketRequest ? TimeSpan.FromHours(1) : services.Target.Upstream.Timeout,
            Version = HttpVersion.Version11,
            VersionPolicy = HttpVersionPolicy.RequestVersionOrLower,
        };
        var error = await services.Forwarder.SendAsync(context, services.Upstream.Server.GetLeftPart(UriPartial.Authority), services.Upstream.Invoker, config, transformer).ConfigureAwait(false);
        call.Status = context.Response.StatusCode;
        if (error != ForwarderError.None)
        {
            var failure = context.Features.Get<IForwarderErrorFeature>()?.Exception;
            call.Error = $"{error}: {failure?.Message}";
            if (!context.Response.HasStarted && error is not ForwarderError.RequestCanceled)
            {
                call.Status = 502;
                await KubernetesStatus.WriteAsync(context, 502, $"the NhiAudit gateway could not reach the API server: {failure?.Message ?? error.ToString()}").ConfigureAwait(false);
            }
        }
    }

    /// <summary>Holds the request until an approver decides; returns the approval id and, when not approved, why.</summary>
    private async Task<(string? ApprovalId, string? Refusal)> HoldForApprovalAsync(HttpContext context, AccessRequest access, PolicyDecision decision, KubernetesCall call)
    {
        var ticket = services.Approvals.Submit(access, decision.Rule, call.RequestId);
        if (ticket.State == ApprovalState.Approved)
        {
            return (ticket.GrantedByTicket ?? ticket.Id, null);
        }

        await AppendAsync("k8s.approval.requested", w =>
        {
            WriteRequest(w, call, info: null);
            w.WriteString("approval"u8, ticket.Id);
            w.WriteString("rule"u8, ticket.Rule);
            w.WriteString("text"u8, access.Text);
            w.WriteString("expires"u8, ticket.ExpiresAt);
        }, AuditAppendMode.Request).ConfigureAwait(false);
        LogHeld(services.Logger, ticket.Id, access.Action, access.Text);

        // The HTTP request simply waits (kubectl waits with it); a client that gives up cancels the wait.
        var final = await services.Approvals.WaitAsync(ticket.Id, context.RequestAborted).ConfigureAwait(false);
        await AppendAsync("k8s.approval.decided", w =>
        {
            w.WriteString("requestId"u8, call.RequestId);
            w.WriteString("approval"u8, final.Id);
            w.WriteString("state"u8, final.State.ToString());
            if (final.DecidedBy is { } approver)
            {
                w.WritePropertyName("decidedBy"u8);
                w.WriteRawValue(AuditRecordWriter.EncodeIdentity(approver));
            }

            if (final.DecidedAt is { } at)
            {
                w.WriteString("decidedAt"u8, at);
            }

            if (final.DecisionReason is { } why)
            {
                w.WriteString("why"u8, why);
            }
        }, AuditAppendMode.Request).ConfigureAwait(false);

        return (final.Id, ApprovalDecisionRules.Refusal(final, "request"));
    }

    private AccessRequest DescribeRequest(HttpContext context, KubernetesRequestInfo info, KubernetesCall call)
    {
        var command = context.Request.Query["command"];
        var text = info.Subresource is "exec" && command.Count > 0
            ? string.Join(' ', command.Select(c => c ?? ""))
            : $"{context.Request.Method} {call.Uri}";
        return new AccessRequest
        {
            Protocol = "kubernetes",
            Target = services.Target.Name,
            Action = info.Action,
            Resources = info.Resources,
            Text = text,
            Attributes = new Dictionary<string, object?>
            {
                ["namespace"] = info.Namespace,
                ["resource"] = info.Resource,
                ["subresource"] = info.Subresource,
                ["name"] = info.Name,
                ["apiGroup"] = info.ApiGroup,
                ["verb"] = info.Verb,
            },
            Identity = call.Identity!,
        };
    }

    private async Task<(string? Json, long Bytes)> ReadBodyForLogAsync(HttpContext context, KubernetesRequestInfo info)
    {
        if (!MutatingVerbs.Contains(info.Verb) || context.Request.ContentLength is 0 || context.WebSockets.IsWebSocketRequest)
        {
            return (null, 0);
        }

        // Buffered so that it can be both recorded and forwarded; large bodies spill to disk, as ASP.NET Core does.
        context.Request.EnableBuffering(bufferThreshold: 64 * 1024);
        var limit = services.Target.MaxLoggedBodyBytes;
        var buffer = new byte[limit + 1];
        var read = 0;
        while (read < buffer.Length)
        {
            var n = await context.Request.Body.ReadAsync(buffer.AsMemory(read), context.RequestAborted).ConfigureAwait(false);
            if (n == 0)
            {
                break;
            }

            read += n;
        }

        long total = read;
        if (read > limit)
        {
            var drain = new byte[81920];
            int n;
            while ((n = await context.Request.Body.ReadAsync(drain, context.RequestAborted).ConfigureAwait(false)) > 0)
            {
                total += n;
            }
        }

        context.Request.Body.Position = 0;
        if (read > limit || read == 0 || context.Request.ContentType?.Contains("json", StringComparison.OrdinalIgnoreCase) != true)
        {
            return (null, total);
        }

        try
        {
            var masked = services.Masker.MaskRequestBody(buffer.AsSpan(0, read), info, out _);
            return (System.Text.Encoding.UTF8.GetString(masked), total);
        }
        catch (KubernetesMaskingException)
        {
            // Not JSON the masker can read: the log keeps only its size rather than risk a secret in clear.
            return (null, total);
        }
    }

    private static string? BearerToken(HttpRequest request)
    {
        var header = request.Headers.Authorization.ToString();
        return header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) && header.Length > 7 ? header[7..].Trim() : null;
    }

    private static bool IsSpdyUpgrade(HttpRequest request) =>
        request.Headers.Upgrade.ToString().Contains("SPDY", StringComparison.OrdinalIgnoreCase);

    private static KubernetesRequestDetails Details(KubernetesRequestInfo info) => new(info.Name, info.ApiGroup, info.Resource);

    private void WriteImpersonation(Utf8JsonWriter w, WorkloadIdentity identity)
    {
        w.WriteStartObject("impersonated"u8);
        w.WriteString("user"u8, KubernetesImpersonation.User(services.Target.Impersonation, identity));
        w.WriteStartArray("groups"u8);
        foreach (var group in KubernetesImpersonation.Groups(services.Target.Impersonation, identity))
        {
            w.WriteStringValue(group);
        }

        w.WriteEndArray();
        w.WriteEndObject();
    }

    private void WriteRequest(Utf8JsonWriter w, KubernetesCall call, KubernetesRequestInfo? info)
    {
        if (call.Identity is { } identity)
        {
            AuditRecordWriter.WriteIdentity(w, identity);
        }

        if (call.Reason is { } reason)
        {
            w.WriteString("reason"u8, reason);
        }

        w.WriteStartObject("request"u8);
        w.WriteString("id"u8, call.RequestId);
        w.WriteString("target"u8, services.Target.Name);
        w.WriteString("client"u8, call.Client);
        w.WriteString("userAgent"u8, call.UserAgent);
        w.WriteString("method"u8, call.Method);
        w.WriteString("uri"u8, call.Uri);
        if (info is not null)
        {
            w.WriteString("verb"u8, info.Verb);
            w.WriteString("action"u8, info.Action);
            w.WriteString("apiGroup"u8, info.ApiGroup);
            w.WriteString("apiVersion"u8, info.ApiVersion);
            w.WriteString("resource"u8, info.Resource);
            w.WriteString("subresource"u8, info.Subresource);
            w.WriteString("namespace"u8, info.Namespace);
            w.WriteString("name"u8, info.Name);
            if (call.Command is { } command && info.Subresource is "exec")
            {
                w.WriteString("command"u8, command);
            }
        }

        w.WriteEndObject();
    }

    private Task<long> AppendResponseAsync(KubernetesCall call, long requestSeq, long started) =>
        AppendAsync("k8s.response", w =>
        {
            w.WriteNumber("request"u8, requestSeq);
            w.WriteString("requestId"u8, call.RequestId);
            w.WriteNumber("status"u8, call.Status);
            w.WriteNumber("durationMs"u8, Math.Round(Stopwatch.GetElapsedTime(started).TotalMilliseconds, 3));
            if (call.Bytes > 0)
            {
                w.WriteNumber("bytes"u8, call.Bytes);
            }

            if (call.AcceptRenegotiated)
            {
                w.WriteBoolean("acceptRenegotiated"u8, true);
            }

            if (call.Masked is { MaskedValues: > 0 } or { Detected: not SensitiveValueKinds.None })
            {
                var masked = call.Masked.Value;
                w.WriteStartObject("masked"u8);
                w.WriteNumber("values"u8, masked.MaskedValues);
                if (masked.Fields is { Count: > 0 } fields)
                {
                    w.WriteStartArray("fields"u8);
                    foreach (var field in fields.Take(100))
                    {
                        w.WriteStringValue(field);
                    }

                    w.WriteEndArray();
                }

                if (masked.Detected != SensitiveValueKinds.None)
                {
                    w.WriteString("detectors"u8, masked.Detected.ToString());
                }

                w.WriteEndObject();
            }

            call.Stream?.Write(w);
            if (call.Error is { } error)
            {
                w.WriteString("error"u8, error);
            }
        }, AuditAppendMode.Deferred);

    /// <summary>Made as durable as configured before the request goes on; responses ride with the next commit.</summary>
    private Task<long> AppendAsync(string type, Action<Utf8JsonWriter> fields, AuditAppendMode mode) =>
        services.AuditLog.AppendRecordAsync(type, fields, mode);

    /// <summary>
    /// Validates the workload token, or takes a recent validation of the same token: kubectl sends the same token with
    /// every request, and checking an ES256 or RS256 signature each time would cost more than the rest of the request.
    /// A cached identity is kept at most five minutes and never past the token's expiry.
    /// </summary>
    private async ValueTask<WorkloadAuthenticationResult> AuthenticateAsync(string token, CancellationToken ct)
    {
        var now = services.Time.GetUtcNow();
        if (services.TokenCache.TryGetValue(token, out var cached) && cached.Until > now)
        {
            return WorkloadAuthenticationResult.Success(cached.Identity);
        }

        var result = await services.Authenticator.AuthenticateAsync(token, ct).ConfigureAwait(false);
        if (result.Identity is { } identity)
        {
            if (services.TokenCache.Count >= 10_000)
            {
                services.TokenCache.Clear();
            }

            var until = identity.ExpiresAt < now.AddMinutes(5) ? identity.ExpiresAt : now.AddMinutes(5);
            services.TokenCache[token] = (identity, until);
        }

        return result;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Kubernetes request held for approval {Ticket}: {Action} {Text}")]
    private static partial void LogHeld(ILogger logger, string ticket, string action, string text);
}

/// <summary>What the gateway learns about one request while it passes, for its records.</summary>
internal sealed class KubernetesCall
{
    public required string RequestId { get; init; }

    public required string Client { get; init; }

    public required string UserAgent { get; init; }

    public required string Method { get; init; }

    public required string Uri { get; init; }

    public string? Reason { get; init; }

    public WorkloadIdentity? Identity { get; set; }

    public string? Command { get; set; }

    public int Status { get; set; }

    public long Bytes { get; set; }

    public bool AcceptRenegotiated { get; set; }

    public KubernetesMaskReport? Masked { get; set; }

    public string? Error { get; set; }

    /// <summary>What an exec, attach or port-forward stream carried.</summary>
    public KubernetesStreamSummary? Stream { get; set; }
}

/// <summary>The Impersonate-* values for a workload.</summary>
internal static class KubernetesImpersonation
{
    public static string User(KubernetesImpersonationOptions options, WorkloadIdentity identity) =>
        options.User
            .Replace("{subject}", identity.Subject, StringComparison.Ordinal)
            .Replace("{name}", identity.DisplayName, StringComparison.Ordinal)
            .Replace("{kind}", identity.Kind.ToString(), StringComparison.Ordinal);

    /// <summary>
    /// The groups. HttpClient folds repeated headers into one comma-separated line, which the API server would read as
    /// one group, so exactly one Impersonate-Group header is sent: the first configured group. The workload kind and
    /// job context travel as Impersonate-Extra values.
    /// </summary>
    public static IReadOnlyList<string> Groups(KubernetesImpersonationOptions options, WorkloadIdentity identity)
    {
        _ = identity;
        return options.Groups.Count > 0 ? [options.Groups[0]] : [];
    }

    /// <summary>The Impersonate-Extra values (keys without '/', values percent-encoded to stay valid header text).</summary>
    public static IEnumerable<KeyValuePair<string, string>> Extra(KubernetesImpersonationOptions options, WorkloadIdentity identity, string requestId, string? reason)
    {
        if (!options.Extra)
        {
            yield break;
        }

        yield return new("nhiaudit-kind", identity.Kind.ToString());
        yield return new("nhiaudit-request-id", requestId);
        if (identity.Repository is { } repository)
        {
            yield return new("nhiaudit-repository", Uri.EscapeDataString(repository));
        }

        if (identity.RunId is { } runId)
        {
            yield return new("nhiaudit-run-id", Uri.EscapeDataString(runId));
        }

        if (identity.Sha is { } sha)
        {
            yield return new("nhiaudit-sha", Uri.EscapeDataString(sha));
        }

        if (identity.ManagedIdentityResourceId is { } mirid)
        {
            yield return new("nhiaudit-mirid", Uri.EscapeDataString(mirid));
        }

        if (reason is not null)
        {
            yield return new("nhiaudit-reason", Uri.EscapeDataString(reason));
        }
    }
}
