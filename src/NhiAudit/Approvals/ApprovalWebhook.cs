using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace NhiAudit.Approvals;

/// <summary>
/// Announces new held requests by a JSON <c>POST</c> to <see cref="ApprovalOptions.WebhookUrl"/>, in the background:
/// a slow or failing webhook is logged and never holds up the request. Shared by the approval brokers.
/// </summary>
public sealed class ApprovalWebhook : IDisposable
{
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(5);

    private readonly ILogger _logger;
    private readonly HttpClient? _http;
    private readonly bool _ownsHttp;
    private readonly Uri? _url;

    /// <summary>Creates the webhook; it does nothing when <see cref="ApprovalOptions.WebhookUrl"/> is not set.</summary>
    /// <param name="options">The approval settings (validated: the URL is absolute http or https).</param>
    /// <param name="logger">Where failures are logged.</param>
    /// <param name="httpClient">The client to post with; one is created (and disposed with this) when null and a URL is set.</param>
    public ApprovalWebhook(ApprovalOptions options, ILogger? logger = null, HttpClient? httpClient = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _logger = logger ?? NullLogger.Instance;
        if (!string.IsNullOrWhiteSpace(options.WebhookUrl))
        {
            _url = new Uri(options.WebhookUrl, UriKind.Absolute);
            _http = httpClient ?? new HttpClient();
            _ownsHttp = httpClient is null;
        }
    }

    /// <summary>Posts the notice for <paramref name="ticket"/> in the background; returns at once.</summary>
    /// <param name="ticket">The new pending ticket.</param>
    public void Announce(ApprovalTicket ticket)
    {
        ArgumentNullException.ThrowIfNull(ticket);
        if (_url is not null)
        {
            _ = Task.Run(() => PostAsync(ticket));
        }
    }

    /// <summary>Disposes the HTTP client when this webhook created it.</summary>
    public void Dispose()
    {
        if (_ownsHttp)
        {
            _http?.Dispose();
        }
    }

    /// <summary>The webhook's JSON notice for a new held request; it never carries a token.</summary>
    internal static byte[] Notice(ApprovalTicket ticket)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("id", ticket.Id);
            writer.WriteString("rule", ticket.Rule);
            writer.WriteString("sessionId", ticket.SessionId);
            writer.WriteString("protocol", ticket.Request.Protocol);
            writer.WriteString("target", ticket.Request.Target);
            writer.WriteString("action", ticket.Request.Action);
            writer.WriteString("text", ticket.Request.Text);
            writer.WriteStartObject("identity");
            writer.WriteString("subject", ticket.Request.Identity.Subject);
            writer.WriteString("name", ticket.Request.Identity.DisplayName);
            writer.WriteString("kind", ticket.Request.Identity.Kind.ToString());
            writer.WriteEndObject();
            writer.WriteString("requestedAt", ticket.RequestedAt);
            writer.WriteString("expiresAt", ticket.ExpiresAt);
            writer.WriteEndObject();
        }

        return buffer.ToArray();
    }

    private async Task PostAsync(ApprovalTicket ticket)
    {
        try
        {
            using var timeout = new CancellationTokenSource(RequestTimeout);
            using var content = new ByteArrayContent(Notice(ticket));
            content.Headers.ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
            using var response = await _http!.PostAsync(_url, content, timeout.Token).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                _logger.LogWarning("Approval webhook for {Ticket} answered {Status}", ticket.Id, (int)response.StatusCode);
            }
        }
        catch (Exception ex)
        {
            _logger.LogWarning(ex, "Approval webhook for {Ticket} failed: {Message}", ticket.Id, ex.Message);
        }
    }
}
