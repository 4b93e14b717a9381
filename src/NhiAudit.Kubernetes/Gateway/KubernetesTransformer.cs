using System.Buffers;
using System.IO.Pipelines;
using System.Net.Http.Headers;
using System.Text;
using Microsoft.AspNetCore.Http;
using NhiAudit.Kubernetes.Classification;
using NhiAudit.Kubernetes.Masking;
using Yarp.ReverseProxy.Forwarder;

namespace NhiAudit.Kubernetes.Gateway;

/// <summary>
/// What changes between the client and the API server. Upstream: the client's credential and any Impersonate-*
/// headers it sent are removed; the gateway's credential and the workload's impersonation are added; a protobuf
/// Accept becomes JSON, so masking cannot be bypassed by asking for a format the gateway does not read. Downstream:
/// responses that may carry Secret values (or detector findings) are masked, a watch event at a time.
/// </summary>
internal sealed class KubernetesTransformer(KubernetesServices services, KubernetesCall call, KubernetesRequestInfo info) : HttpTransformer
{
    private const string Protobuf = "application/vnd.kubernetes.protobuf";

    private static readonly byte[] Newline = "\n"u8.ToArray();

    private readonly bool _masks = services.Masker.AppliesTo(info);

    public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
    {
        await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken).ConfigureAwait(false);
        var headers = proxyRequest.Headers;
        foreach (var name in headers.Select(h => h.Key).Where(IsClientAuthority).ToList())
        {
            headers.Remove(name);
        }

        headers.Authorization = await services.Upstream.BearerTokenAsync(cancellationToken).ConfigureAwait(false) is { } token
            ? new AuthenticationHeaderValue("Bearer", token)
            : null;
        foreach (var (name, value) in ImpersonationHeaders(services.Target.Impersonation, call))
        {
            headers.TryAddWithoutValidation(name, value);
        }

        if (headers.Accept.ToString() is { } accept && accept.Contains(Protobuf, StringComparison.OrdinalIgnoreCase))
        {
            // kubectl and client-go ask for protobuf first; the gateway reads JSON only, so it asks for JSON.
            headers.Accept.Clear();
            headers.TryAddWithoutValidation("Accept", accept.Replace(Protobuf, "application/json", StringComparison.OrdinalIgnoreCase));
            call.AcceptRenegotiated = true;
        }

        if (_masks)
        {
            // A compressed body could not be masked.
            headers.AcceptEncoding.Clear();
        }
    }

    /// <summary>The headers that name who is asking: only the gateway sets them upstream.</summary>
    internal static bool IsClientAuthority(string name) =>
        name.Equals("Authorization", StringComparison.OrdinalIgnoreCase)
        || name.StartsWith("Impersonate-", StringComparison.OrdinalIgnoreCase)
        || name.StartsWith("X-Remote-", StringComparison.OrdinalIgnoreCase)
        || name.Equals("X-NhiAudit-Reason", StringComparison.OrdinalIgnoreCase);

    internal static IEnumerable<(string Name, string Value)> ImpersonationHeaders(KubernetesImpersonationOptions options, KubernetesCall call)
    {
        var identity = call.Identity!;
        yield return ("Impersonate-User", KubernetesImpersonation.User(options, identity));
        foreach (var group in KubernetesImpersonation.Groups(options, identity))
        {
            yield return ("Impersonate-Group", group);
        }

        foreach (var (key, value) in KubernetesImpersonation.Extra(options, identity, call.RequestId, call.Reason))
        {
            yield return ("Impersonate-Extra-" + key, value);
        }
    }

    public override async ValueTask<bool> TransformResponseAsync(HttpContext httpContext, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken)
    {
        var copyBody = await base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken).ConfigureAwait(false);
        if (proxyResponse is null)
        {
            return copyBody;
        }

        call.Status = (int)proxyResponse.StatusCode;
        call.Bytes = proxyResponse.Content.Headers.ContentLength ?? 0;
        var mediaType = proxyResponse.Content.Headers.ContentType?.MediaType ?? "";
        var json = mediaType.Contains("json", StringComparison.OrdinalIgnoreCase);
        var text = mediaType.StartsWith("text/plain", StringComparison.OrdinalIgnoreCase);
        if (!_masks || !copyBody)
        {
            return copyBody;
        }

        var response = httpContext.Response;
        if (!json && !(text && info.Subresource == "log"))
        {
            if (proxyResponse.Content.Headers.ContentLength is 0 || (int)proxyResponse.StatusCode is 204 or 304)
            {
                return copyBody;
            }

            // A body the gateway cannot read (protobuf despite the renegotiation, say) is not passed on: fail closed.
            await FailClosedAsync(response, $"the API server answered in {mediaType}, which the gateway cannot mask").ConfigureAwait(false);
            return false;
        }

        response.Headers.ContentLength = null;
        try
        {
            var upstream = await proxyResponse.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            if (json && (info.Verb == "watch" || httpContext.Request.Query["watch"] is ["true" or "1"]))
            {
                await MaskWatchAsync(upstream, response, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                await MaskWholeAsync(upstream, response, json, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (KubernetesMaskingException ex)
        {
            if (!response.HasStarted)
            {
                await FailClosedAsync(response, "the gateway could not mask the response: " + ex.Message).ConfigureAwait(false);
            }
            else
            {
                // Mid-stream (a watch): the only safe answer is to end it.
                call.Error = "masking failed mid-stream: " + ex.Message;
                httpContext.Abort();
            }
        }

        return false;
    }

    private async Task FailClosedAsync(HttpResponse response, string message)
    {
        var body = KubernetesStatus.Body(502, message);
        response.StatusCode = 502;
        response.Headers.Clear();
        response.ContentType = "application/json";
        response.ContentLength = body.Length;
        await response.Body.WriteAsync(body).ConfigureAwait(false);
        call.Status = 502;
        call.Error = message;
    }

    private async Task MaskWholeAsync(Stream upstream, HttpResponse response, bool json, CancellationToken ct)
    {
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int read;
        while ((read = await upstream.ReadAsync(chunk, ct).ConfigureAwait(false)) > 0)
        {
            buffer.Write(chunk, 0, read);
            if (buffer.Length > services.Target.MaxMaskedResponseBytes)
            {
                throw new KubernetesMaskingException($"the response exceeds the {services.Target.MaxMaskedResponseBytes} bytes the gateway masks");
            }
        }

        var report = default(KubernetesMaskReport);
        byte[] masked;
        if (json)
        {
            masked = buffer.Length == 0 ? [] : services.Masker.MaskJson(buffer.GetBuffer().AsSpan(0, (int)buffer.Length), info, out report);
        }
        else
        {
            masked = Encoding.UTF8.GetBytes(services.Masker.MaskText(Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length), out report));
        }

        Merge(report);
        call.Bytes = masked.Length;
        response.ContentLength = masked.Length;
        await response.Body.WriteAsync(masked, ct).ConfigureAwait(false);
    }

    /// <summary>A watch is newline-delimited JSON events: each is masked and flushed as it arrives.</summary>
    private async Task MaskWatchAsync(Stream upstream, HttpResponse response, CancellationToken ct)
    {
        var reader = PipeReader.Create(upstream, new StreamPipeReaderOptions(bufferSize: 65536));
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync(ct).ConfigureAwait(false);
                var buffer = result.Buffer;
                while (TryReadLine(ref buffer, out var line))
                {
                    await WriteEventAsync(line, response, ct).ConfigureAwait(false);
                }

                if (buffer.Length > services.Target.MaxMaskedResponseBytes)
                {
                    throw new KubernetesMaskingException("a watch event exceeds the size the gateway masks");
                }

                if (result.IsCompleted)
                {
                    if (!buffer.IsEmpty)
                    {
                        await WriteEventAsync(buffer, response, ct).ConfigureAwait(false);
                        buffer = buffer.Slice(buffer.End);
                    }

                    reader.AdvanceTo(buffer.End);
                    break;
                }

                reader.AdvanceTo(buffer.Start, buffer.End);
                await response.Body.FlushAsync(ct).ConfigureAwait(false);
            }
        }
        finally
        {
            await reader.CompleteAsync().ConfigureAwait(false);
        }
    }

    private async ValueTask WriteEventAsync(ReadOnlySequence<byte> line, HttpResponse response, CancellationToken ct)
    {
        if (line.IsEmpty || (line.Length == 1 && line.FirstSpan[0] == (byte)'\r'))
        {
            return;
        }

        var masked = services.Masker.MaskJson(line.IsSingleSegment ? line.FirstSpan : line.ToArray(), info, out var report);
        Merge(report);
        call.Bytes += masked.Length + 1;
        await response.Body.WriteAsync(masked, ct).ConfigureAwait(false);
        await response.Body.WriteAsync(Newline, ct).ConfigureAwait(false);
        await response.Body.FlushAsync(ct).ConfigureAwait(false);
    }

    private static bool TryReadLine(ref ReadOnlySequence<byte> buffer, out ReadOnlySequence<byte> line)
    {
        var position = buffer.PositionOf((byte)'\n');
        if (position is null)
        {
            line = default;
            return false;
        }

        line = buffer.Slice(0, position.Value);
        buffer = buffer.Slice(buffer.GetPosition(1, position.Value));
        return true;
    }

    private void Merge(KubernetesMaskReport report)
    {
        var current = call.Masked ?? default;
        current.MaskedValues += report.MaskedValues;
        current.Detected |= report.Detected;
        if (report.Fields is { Count: > 0 } fields)
        {
            current.Fields ??= [];
            foreach (var field in fields)
            {
                if (current.Fields.Count < 100 && !current.Fields.Contains(field))
                {
                    current.Fields.Add(field);
                }
            }
        }

        call.Masked = current;
    }
}
