using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using NhiAudit.Approvals;
using NhiAudit.Identity;
using NhiAudit.Proxy.Admin;
using NhiAudit.Proxy.Commands;

namespace NhiAudit.Proxy.Tests.Admin;

public sealed class AdminApiTests : IAsyncLifetime
{
    private const string IssuerUrl = "https://issuer.local";
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "nhiaudit-admin-" + Guid.NewGuid().ToString("N"));
    private DevelopmentIssuer _issuer = null!;
    private InMemoryApprovalBroker _broker = null!;
    private AdminHost _host = null!;
    private HttpClient _http = null!;
    private string _approverToken = null!;
    private string _plainToken = null!;

    private static readonly WorkloadIdentity Job = new() { Kind = WorkloadKind.FederatedWorkload, Subject = "ci-job", Issuer = IssuerUrl, DisplayName = "contoso/orders/deploy.yml#1" };

    public async Task InitializeAsync()
    {
        _issuer = DevelopmentIssuer.LoadOrCreate(_directory, IssuerUrl);
        var identity = new IdentityOptions
        {
            Issuers = [new IssuerOptions { Name = "local", Issuer = IssuerUrl, JwksFile = _issuer.JwksPath, Audiences = ["nhiaudit"] }],
        };
        _broker = new InMemoryApprovalBroker(Options.Create(new ApprovalOptions()));
        _host = await AdminHost.StartAsync(new AdminOptions { Listen = "127.0.0.1:0" }, _broker, new WorkloadTokenValidator(identity), identity.ApproverRole);
        _http = new HttpClient { BaseAddress = _host.Address };
        _approverToken = _issuer.MintToken(new TokenRequest { Subject = "alice", Kind = WorkloadKind.User, Roles = ["NhiAudit.Approver"] });
        _plainToken = _issuer.MintToken(new TokenRequest { Subject = "bob", Kind = WorkloadKind.User });
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _host.DisposeAsync();
        _broker.Dispose();
        _issuer.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    private ApprovalTicket Hold(WorkloadIdentity? identity = null) => _broker.Submit(
        new AccessRequest { Protocol = "postgres", Target = "orders", Action = "DELETE", Text = "DELETE FROM orders", Resources = ["public.orders"], Identity = identity ?? Job },
        "bulk-delete",
        "session-1");

    private HttpRequestMessage Request(HttpMethod method, string path, string? token, object? body = null)
    {
        var request = new HttpRequestMessage(method, path);
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        if (body is not null)
        {
            request.Content = JsonContent.Create(body);
        }

        return request;
    }

    private static async Task<string> ErrorOf(HttpResponseMessage response)
    {
        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return document.RootElement.GetProperty("error").GetString()!;
    }

    [Fact]
    public async Task Healthz_needs_no_token()
    {
        using var response = await _http.GetAsync(new Uri("healthz", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("ok", await response.Content.ReadAsStringAsync());
        Assert.Equal("127.0.0.1", _host.Address.Host);
        Assert.NotEqual(0, _host.Address.Port);
    }

    [Fact]
    public async Task Without_a_valid_token_it_is_401()
    {
        var ticket = Hold();
        using var none = await _http.SendAsync(Request(HttpMethod.Get, "approvals", null));
        Assert.Equal(HttpStatusCode.Unauthorized, none.StatusCode);
        Assert.Equal("Bearer", none.Headers.WwwAuthenticate.Single().Scheme);
        Assert.Contains("bearer token is required", await ErrorOf(none), StringComparison.Ordinal);

        using var garbage = await _http.SendAsync(Request(HttpMethod.Post, $"approvals/{ticket.Id}/approve", "not-a-jwt"));
        Assert.Equal(HttpStatusCode.Unauthorized, garbage.StatusCode);
        Assert.Contains("the token was refused", await ErrorOf(garbage), StringComparison.Ordinal);
        Assert.Single(_broker.Pending);
    }

    [Fact]
    public async Task Without_the_approver_role_it_is_403()
    {
        var ticket = Hold();
        using var list = await _http.SendAsync(Request(HttpMethod.Get, "approvals", _plainToken));
        Assert.Equal(HttpStatusCode.Forbidden, list.StatusCode);
        Assert.Contains("does not hold the approver role 'NhiAudit.Approver'", await ErrorOf(list), StringComparison.Ordinal);

        using var approve = await _http.SendAsync(Request(HttpMethod.Post, $"approvals/{ticket.Id}/approve", _plainToken));
        Assert.Equal(HttpStatusCode.Forbidden, approve.StatusCode);
        Assert.Single(_broker.Pending);
    }

    [Fact]
    public async Task Approving_releases_the_waiter_and_answers_the_ticket()
    {
        var ticket = Hold();
        var wait = _broker.WaitAsync(ticket.Id);

        using var list = await _http.SendAsync(Request(HttpMethod.Get, "approvals", _approverToken));
        Assert.Equal(HttpStatusCode.OK, list.StatusCode);
        using (var listed = JsonDocument.Parse(await list.Content.ReadAsStringAsync()))
        {
            var item = Assert.Single(listed.RootElement.EnumerateArray());
            Assert.Equal(ticket.Id, item.GetProperty("id").GetString());
            Assert.Equal("pending", item.GetProperty("state").GetString());
            Assert.Equal("DELETE FROM orders", item.GetProperty("request").GetProperty("text").GetString());
            Assert.Equal("public.orders", item.GetProperty("request").GetProperty("resources")[0].GetString());
            Assert.Equal("ci-job", item.GetProperty("identity").GetProperty("subject").GetString());
            Assert.Equal("contoso/orders/deploy.yml#1", item.GetProperty("identity").GetProperty("name").GetString());
        }

        using var approve = await _http.SendAsync(Request(HttpMethod.Post, $"approvals/{ticket.Id}/approve", _approverToken, new { reason = "deploy window", grantForMinutes = 15 }));
        Assert.Equal(HttpStatusCode.OK, approve.StatusCode);
        using var answer = JsonDocument.Parse(await approve.Content.ReadAsStringAsync());
        Assert.Equal("approved", answer.RootElement.GetProperty("state").GetString());
        Assert.Equal("alice", answer.RootElement.GetProperty("decidedBy").GetProperty("subject").GetString());
        Assert.Equal("deploy window", answer.RootElement.GetProperty("reason").GetString());
        Assert.True(answer.RootElement.TryGetProperty("grantUntil", out _));

        var final = await wait.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(ApprovalState.Approved, final.State);
        Assert.Equal("alice", final.DecidedBy!.Subject);
        Assert.Equal(final.DecidedAt + TimeSpan.FromMinutes(15), final.GrantUntil);
    }

    [Fact]
    public async Task Deny_without_a_body_and_errors_map_to_404_403_400()
    {
        var ticket = Hold();
        using var deny = await _http.SendAsync(Request(HttpMethod.Post, $"approvals/{ticket.Id}/deny", _approverToken));
        Assert.Equal(HttpStatusCode.OK, deny.StatusCode);
        Assert.Equal(ApprovalState.Denied, (await _broker.WaitAsync(ticket.Id)).State);

        using var again = await _http.SendAsync(Request(HttpMethod.Post, $"approvals/{ticket.Id}/approve", _approverToken));
        Assert.Equal(HttpStatusCode.NotFound, again.StatusCode);
        using var unknown = await _http.SendAsync(Request(HttpMethod.Post, "approvals/nosuchticket/approve", _approverToken));
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Contains("no pending approval 'nosuchticket'", await ErrorOf(unknown), StringComparison.Ordinal);

        var own = Hold(Job with { Subject = "alice", Kind = WorkloadKind.User });
        using var self = await _http.SendAsync(Request(HttpMethod.Post, $"approvals/{own.Id}/approve", _approverToken));
        Assert.Equal(HttpStatusCode.Forbidden, self.StatusCode);
        Assert.Equal("a workload never approves its own request", await ErrorOf(self));

        var other = Hold();
        using var badJson = Request(HttpMethod.Post, $"approvals/{other.Id}/approve", _approverToken);
        badJson.Content = new StringContent("{not json", System.Text.Encoding.UTF8, "application/json");
        using var bad = await _http.SendAsync(badJson);
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        using var negative = await _http.SendAsync(Request(HttpMethod.Post, $"approvals/{other.Id}/approve", _approverToken, new { grantForMinutes = -5 }));
        Assert.Equal(HttpStatusCode.BadRequest, negative.StatusCode);
        Assert.Equal(2, _broker.Pending.Count);
    }

    [Fact]
    public async Task The_cli_lists_approves_and_reports_errors()
    {
        var ticket = Hold();
        var wait = _broker.WaitAsync(ticket.Id);
        var admin = _host.Address.ToString();

        var output = new StringWriter();
        var error = new StringWriter();
        Assert.Equal(0, await ApprovalsCommand.RunAsync(_http, admin, _approverToken, "list", null, null, null, output, error));
        Assert.Contains(ticket.Id, output.ToString(), StringComparison.Ordinal);
        Assert.Contains("pending rule=bulk-delete contoso/orders/deploy.yml#1", output.ToString(), StringComparison.Ordinal);

        output = new StringWriter();
        Assert.Equal(1, await ApprovalsCommand.RunAsync(_http, admin, _plainToken, "approve", ticket.Id, null, null, output, error));
        Assert.Contains("403 'bob' does not hold the approver role", error.ToString(), StringComparison.Ordinal);

        error = new StringWriter();
        Assert.Equal(1, await ApprovalsCommand.RunAsync(_http, admin, _approverToken, "approve", "nosuchticket", null, null, output, error));
        Assert.Contains("404 no pending approval", error.ToString(), StringComparison.Ordinal);

        Assert.Equal(2, await ApprovalsCommand.RunAsync(_http, admin, null, "list", null, null, null, output, error));
        Assert.Equal(2, await ApprovalsCommand.RunAsync(_http, "not a url", _approverToken, "list", null, null, null, output, error));
        Assert.Equal(2, await ApprovalsCommand.RunAsync(_http, admin, _approverToken, "approve", ticket.Id, null, -1, output, error));

        output = new StringWriter();
        Assert.Equal(0, await ApprovalsCommand.RunAsync(_http, admin, _approverToken, "approve", ticket.Id, "ok by me", 10, output, error));
        Assert.Contains($"{ticket.Id} approved", output.ToString(), StringComparison.Ordinal);
        Assert.Contains("by alice: ok by me; granted until", output.ToString(), StringComparison.Ordinal);
        Assert.Equal(ApprovalState.Approved, (await wait.WaitAsync(TimeSpan.FromSeconds(5))).State);
    }

    [Fact]
    public async Task The_gateway_host_starts_the_admin_api_when_Listen_is_set()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["NhiAudit:Identity:Issuers:0:Name"] = "local",
            ["NhiAudit:Identity:Issuers:0:Issuer"] = IssuerUrl,
            ["NhiAudit:Identity:Issuers:0:JwksFile"] = _issuer.JwksPath,
            ["NhiAudit:Identity:Issuers:0:Audiences:0"] = "nhiaudit",
            ["NhiAudit:Audit:Directory"] = Path.Combine(_directory, "audit"),
            ["NhiAudit:Approvals:Timeout"] = "00:01:00",
            ["NhiAudit:Admin:Listen"] = "127.0.0.1:0",
        }).Build();
        using var host = RunCommand.BuildHost(configuration);
        await host.StartAsync();
        try
        {
            var address = host.Services.GetRequiredService<AdminHostedService>().Address!;
            var broker = host.Services.GetRequiredService<IApprovalBroker>();
            var ticket = broker.Submit(new AccessRequest { Protocol = "postgres", Target = "t", Action = "DROP", Identity = Job }, "hold", "s");
            Assert.Equal(ticket.RequestedAt + TimeSpan.FromMinutes(1), ticket.ExpiresAt);

            using var http = new HttpClient();
            Assert.Equal(0, await ApprovalsCommand.RunAsync(http, address.ToString(), _approverToken, "deny", ticket.Id, "no", null, TextWriter.Null, TextWriter.Null));
            Assert.Equal(ApprovalState.Denied, (await broker.WaitAsync(ticket.Id)).State);
        }
        finally
        {
            await host.StopAsync();
        }
    }
}
