using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace NhiAudit.Kubernetes.Gateway;

/// <summary>Errors in the API server's own terms: a <c>meta.k8s.io/v1 Status</c> body that kubectl prints cleanly.</summary>
internal static class KubernetesStatus
{
    /// <summary>The Status reason for an HTTP code, as the API server names it.</summary>
    public static string ReasonFor(int code) => code switch
    {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        406 => "NotAcceptable",
        409 => "Conflict",
        413 => "RequestEntityTooLarge",
        429 => "TooManyRequests",
        502 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => code >= 500 ? "InternalError" : "BadRequest",
    };

    /// <summary>The Status document.</summary>
    public static byte[] Body(int code, string message, KubernetesRequestDetails? details = null)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream))
        {
            w.WriteStartObject();
            w.WriteString("kind", "Status");
            w.WriteString("apiVersion", "v1");
            w.WriteStartObject("metadata");
            w.WriteEndObject();
            w.WriteString("status", "Failure");
            w.WriteString("message", message);
            w.WriteString("reason", ReasonFor(code));
            if (details is { } d && (d.Name.Length > 0 || d.Kind.Length > 0))
            {
                w.WriteStartObject("details");
                if (d.Name.Length > 0)
                {
                    w.WriteString("name", d.Name);
                }

                if (d.Group.Length > 0)
                {
                    w.WriteString("group", d.Group);
                }

                if (d.Kind.Length > 0)
                {
                    w.WriteString("kind", d.Kind);
                }

                w.WriteEndObject();
            }

            w.WriteNumber("code", code);
            w.WriteEndObject();
        }

        return stream.ToArray();
    }

    /// <summary>
    /// Refuses an exec, attach or port-forward stream the way the API server reports a failed command: the WebSocket is
    /// accepted and a Failure Status goes on the error channel (v4/v5.channel.k8s.io). A failed upgrade instead would
    /// make kubectl fall back to SPDY and print that failure rather than the reason. False when the client offers no
    /// channel protocol with an error channel; then the caller answers with a plain Status.
    /// </summary>
    public static async Task<bool> TryRefuseStreamAsync(HttpContext context, int code, string message)
    {
        var protocol = context.WebSockets.WebSocketRequestedProtocols.FirstOrDefault(p => p is "v5.channel.k8s.io" or "v4.channel.k8s.io");
        if (protocol is null)
        {
            return false;
        }

        using var socket = await context.WebSockets.AcceptWebSocketAsync(protocol).ConfigureAwait(false);
        var status = Body(code, message);
        var frame = new byte[status.Length + 1];
        frame[0] = 3;
        status.CopyTo(frame, 1);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            await socket.SendAsync(frame, System.Net.WebSockets.WebSocketMessageType.Binary, endOfMessage: true, timeout.Token).ConfigureAwait(false);
            await socket.CloseOutputAsync(System.Net.WebSockets.WebSocketCloseStatus.NormalClosure, null, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is System.Net.WebSockets.WebSocketException or OperationCanceledException or IOException)
        {
            // The client went away first.
        }

        return true;
    }

    /// <summary>Answers the request with a Status.</summary>
    public static async Task WriteAsync(HttpContext context, int code, string message, KubernetesRequestDetails? details = null)
    {
        var body = Body(code, message, details);
        context.Response.StatusCode = code;
        context.Response.ContentType = "application/json";
        context.Response.ContentLength = body.Length;
        await context.Response.Body.WriteAsync(body, context.RequestAborted).ConfigureAwait(false);
    }
}

/// <summary>The object a Status names.</summary>
/// <param name="Name">The object's name.</param>
/// <param name="Group">Its API group.</param>
/// <param name="Kind">Its resource (plural), as the API server puts it in Status details.</param>
internal readonly record struct KubernetesRequestDetails(string Name, string Group, string Kind);
