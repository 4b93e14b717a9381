using System.CommandLine;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using NhiAudit.Proxy.Admin;

namespace NhiAudit.Proxy.Commands;

/// <summary>
/// <c>nhiaudit approvals list | approve ID | deny ID</c>: drives the admin API of a running gateway. Exit 0 on success,
/// 1 when the gateway answers with an error (its message is printed), 2 on a usage error.
/// </summary>
internal static class ApprovalsCommand
{
    /// <summary>The environment variable that holds the approver's token when <c>--token</c> is not given.</summary>
    public const string TokenVariable = "NHIAUDIT_APPROVER_TOKEN";

    /// <summary>True when <paramref name="result"/> is the approvals command or one of its verbs.</summary>
    public static bool IsUnder(System.CommandLine.Parsing.CommandResult? result)
    {
        for (var current = result; current is not null; current = current.Parent as System.CommandLine.Parsing.CommandResult)
        {
            if (current.Command.Name == "approvals")
            {
                return true;
            }
        }

        return false;
    }

    public static Command Create()
    {
        var command = new Command("approvals", "List and decide requests held for a just-in-time approval (via the gateway's admin API).");
        command.Subcommands.Add(Verb("list", "List the pending approvals.", withId: false));
        command.Subcommands.Add(Verb("approve", "Approve a held request.", withId: true));
        command.Subcommands.Add(Verb("deny", "Deny a held request.", withId: true));
        return command;
    }

    private static Command Verb(string verb, string description, bool withId)
    {
        var admin = new Option<string>("--admin") { Description = "The admin API's base URL.", DefaultValueFactory = _ => "http://127.0.0.1:9090" };
        var token = new Option<string?>("--token") { Description = $"The approver's workload token (with the approver role); default: ${TokenVariable}." };
        var command = new Command(verb, description) { admin, token };
        var id = new Argument<string>("id") { Description = "The ticket id." };
        var reason = new Option<string?>("--reason") { Description = "Why, recorded with the decision." };
        var grantFor = new Option<int?>("--grant-for") { Description = "Approve: also let later requests of the same identity under the same rule through for this many minutes." };
        if (withId)
        {
            command.Arguments.Add(id);
            command.Options.Add(reason);
            if (verb == "approve")
            {
                command.Options.Add(grantFor);
            }
        }

        command.SetAction(async (parse, ct) =>
        {
            var tokenValue = parse.GetValue(token);
            if (string.IsNullOrWhiteSpace(tokenValue))
            {
                tokenValue = Environment.GetEnvironmentVariable(TokenVariable);
            }

            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
            return await RunAsync(
                http,
                parse.GetValue(admin)!,
                tokenValue,
                verb,
                withId ? parse.GetValue(id) : null,
                withId ? parse.GetValue(reason) : null,
                verb == "approve" ? parse.GetValue(grantFor) : null,
                Console.Out,
                Console.Error,
                ct).ConfigureAwait(false);
        });
        return command;
    }

    /// <summary>The command's work, separate from parsing so tests can drive it against a real admin API.</summary>
    public static async Task<int> RunAsync(HttpClient http, string admin, string? token, string verb, string? id, string? reason, int? grantForMinutes, TextWriter output, TextWriter error, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        if (!Uri.TryCreate(admin.TrimEnd('/') + "/", UriKind.Absolute, out var baseUri) || (baseUri.Scheme != Uri.UriSchemeHttp && baseUri.Scheme != Uri.UriSchemeHttps))
        {
            await error.WriteLineAsync($"nhiaudit approvals: --admin '{admin}' is not an http(s) URL").ConfigureAwait(false);
            return 2;
        }

        if (string.IsNullOrWhiteSpace(token))
        {
            await error.WriteLineAsync($"nhiaudit approvals: an approver token is required (--token or ${TokenVariable})").ConfigureAwait(false);
            return 2;
        }

        if (verb != "list" && string.IsNullOrWhiteSpace(id))
        {
            await error.WriteLineAsync($"nhiaudit approvals {verb}: the ticket id is required").ConfigureAwait(false);
            return 2;
        }

        if (grantForMinutes is < 0)
        {
            await error.WriteLineAsync("nhiaudit approvals: --grant-for must not be negative").ConfigureAwait(false);
            return 2;
        }

        using var request = verb == "list"
            ? new HttpRequestMessage(HttpMethod.Get, new Uri(baseUri, "approvals"))
            : new HttpRequestMessage(HttpMethod.Post, new Uri(baseUri, $"approvals/{Uri.EscapeDataString(id!)}/{verb}"))
            {
                Content = JsonContent.Create(new DecisionBody(reason, grantForMinutes), options: AdminJson.Options),
            };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token.Trim());

        HttpResponseMessage response;
        try
        {
            response = await http.SendAsync(request, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException ex)
        {
            await error.WriteLineAsync($"nhiaudit approvals: cannot reach {baseUri}: {ex.Message}").ConfigureAwait(false);
            return 1;
        }

        using (response)
        {
            var body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                await error.WriteLineAsync($"nhiaudit approvals: {(int)response.StatusCode} {ErrorMessage(body) ?? response.ReasonPhrase}").ConfigureAwait(false);
                return 1;
            }

            try
            {
                if (verb == "list")
                {
                    var tickets = JsonSerializer.Deserialize<List<TicketDto>>(body, AdminJson.Options) ?? [];
                    if (tickets.Count == 0)
                    {
                        await output.WriteLineAsync("no pending approvals").ConfigureAwait(false);
                    }

                    foreach (var ticket in tickets)
                    {
                        await output.WriteLineAsync(Describe(ticket)).ConfigureAwait(false);
                    }
                }
                else
                {
                    await output.WriteLineAsync(Describe(JsonSerializer.Deserialize<TicketDto>(body, AdminJson.Options)!)).ConfigureAwait(false);
                }
            }
            catch (JsonException ex)
            {
                await error.WriteLineAsync($"nhiaudit approvals: the answer is not what the admin API sends: {ex.Message}").ConfigureAwait(false);
                return 1;
            }
        }

        return 0;
    }

    /// <summary>One readable line for a ticket.</summary>
    public static string Describe(TicketDto ticket)
    {
        ArgumentNullException.ThrowIfNull(ticket);
        var text = ticket.Request.Text.ReplaceLineEndings(" ");
        if (text.Length > 120)
        {
            text = string.Concat(text.AsSpan(0, 117), "...");
        }

        var line = string.Create(
            CultureInfo.InvariantCulture,
            $"{ticket.Id} {ticket.State.ToString().ToLowerInvariant()} rule={ticket.Rule} {ticket.Identity.Name} ({ticket.Identity.Kind}) {ticket.Request.Protocol}/{ticket.Request.Target} {ticket.Request.Action}: {text}");
        return ticket.State == ApprovalState.Pending
            ? string.Create(CultureInfo.InvariantCulture, $"{line} [expires {ticket.ExpiresAt:u}]")
            : string.Create(CultureInfo.InvariantCulture, $"{line} [by {ticket.DecidedBy?.Name ?? "-"}{(ticket.Reason is null ? "" : ": " + ticket.Reason)}{(ticket.GrantUntil is { } until ? $"; granted until {until:u}" : "")}]");
    }

    private static string? ErrorMessage(string body)
    {
        try
        {
            using var document = JsonDocument.Parse(body);
            return document.RootElement.TryGetProperty("error", out var message) ? message.GetString() : null;
        }
        catch (JsonException)
        {
            return string.IsNullOrWhiteSpace(body) ? null : body.Trim();
        }
    }
}
