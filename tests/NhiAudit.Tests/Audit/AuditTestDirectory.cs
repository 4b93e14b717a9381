namespace NhiAudit.Tests.Audit;

/// <summary>A fresh directory for one test's log, removed afterwards.</summary>
internal sealed class AuditTestDirectory : IDisposable
{
    public AuditTestDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "nhiaudit-audit-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
