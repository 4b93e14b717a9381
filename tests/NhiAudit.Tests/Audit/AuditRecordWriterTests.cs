using System.Text;
using System.Text.Json;
using NhiAudit.Audit;

namespace NhiAudit.Tests.Audit;

public sealed class AuditRecordWriterTests
{
    private static readonly WorkloadIdentity GitHubJob = new()
    {
        Kind = WorkloadKind.FederatedWorkload,
        Subject = "repo:contoso/orders:ref:refs/heads/main",
        Issuer = "https://token.actions.githubusercontent.com",
        DisplayName = "contoso/orders deploy",
        Repository = "contoso/orders",
        Workflow = "deploy",
        RunId = "42",
        Sha = "abc123",
    };

    [Fact]
    public void A_record_starts_with_its_type_and_holds_what_the_caller_wrote()
    {
        using var records = new AuditRecordWriter();
        var w = records.Begin("pg.request");
        w.WriteString("sql", "SELECT 1");
        w.WriteNumber("session", 7);

        Assert.Equal("""{"type":"pg.request","sql":"SELECT 1","session":7}""", Encoding.UTF8.GetString(records.End().Span));
    }

    [Fact]
    public void The_writer_is_reused_record_after_record()
    {
        using var records = new AuditRecordWriter(initialCapacity: 16);
        records.Begin("first").WriteString("text", new string('x', 100));
        records.End();

        records.Begin(JsonEncodedText.Encode("second"));
        Assert.Equal("""{"type":"second"}""", Encoding.UTF8.GetString(records.End().Span));
    }

    [Fact]
    public void A_record_with_an_unclosed_object_is_refused()
    {
        using var records = new AuditRecordWriter();
        records.Begin("x").WriteStartObject("open");

        Assert.Throws<InvalidOperationException>(() => records.End());
    }

    [Fact]
    public void Identity_holds_who_acted_and_leaves_out_what_the_token_did_not_carry()
    {
        using var records = new AuditRecordWriter();
        var w = records.Begin("session.start");
        AuditRecordWriter.WriteIdentity(w, GitHubJob);

        Assert.Equal(
            """{"type":"session.start","identity":{"kind":"FederatedWorkload","subject":"repo:contoso/orders:ref:refs/heads/main","issuer":"https://token.actions.githubusercontent.com","name":"contoso/orders deploy","repository":"contoso/orders","workflow":"deploy","runId":"42","sha":"abc123"}}""",
            Encoding.UTF8.GetString(records.End().Span));
    }

    [Fact]
    public void A_pre_encoded_identity_writes_the_same_bytes()
    {
        var managed = new WorkloadIdentity
        {
            Kind = WorkloadKind.ManagedIdentity,
            Subject = "0000-oid",
            Issuer = "https://login.microsoftonline.com/t/v2.0",
            TenantId = "t",
            ApplicationId = "app",
            ManagedIdentityResourceId = "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/orders",
        };
        using var records = new AuditRecordWriter();
        AuditRecordWriter.WriteIdentity(records.Begin("r"), managed);
        var direct = records.End().ToArray();

        var encoded = AuditRecordWriter.EncodeIdentity(managed);
        AuditRecordWriter.WriteRawIdentity(records.Begin("r"), encoded);

        Assert.Equal(direct, records.End().ToArray());
        Assert.Equal("/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/orders",
            JsonDocument.Parse(direct).RootElement.GetProperty("identity").GetProperty("mirid").GetString());
    }

    [Fact]
    public async Task Text_with_quotes_and_newlines_stays_one_line_and_reads_back_unchanged()
    {
        using var dir = new AuditTestDirectory();
        const string sql = "SELECT '<a>' & \"x\"\nFROM t -- ü";
        await using (var log = await FileAuditLog.OpenAsync(new AuditOptions { Directory = dir.Path }))
        {
            using var records = new AuditRecordWriter();
            records.Begin("pg.request").WriteString("sql", sql);
            await log.AppendAsync(records.End());
        }

        var lines = AuditLogFiles.AllLines(dir.Path);
        Assert.Equal(sql, AuditLogFiles.Parse(lines[1]).GetProperty("sql").GetString());
        Assert.True(AuditVerifier.Verify(dir.Path).IsIntact);
    }
}
