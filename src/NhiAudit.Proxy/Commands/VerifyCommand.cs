using System.CommandLine;
using NhiAudit.Audit;

namespace NhiAudit.Proxy.Commands;

/// <summary><c>nhiaudit verify DIR</c>: exit 0 on an intact log, 1 naming the first record that was tampered with.</summary>
internal static class VerifyCommand
{
    public static Command Create()
    {
        var directory = new Argument<DirectoryInfo>("directory") { Description = "The audit directory (Audit:Directory)." };
        var command = new Command("verify", "Verify the hash chain of an audit log.") { directory };
        command.SetAction(parse =>
        {
            var dir = parse.GetValue(directory)!;
            if (!dir.Exists)
            {
                Console.Error.WriteLine($"nhiaudit verify: {dir.FullName} does not exist");
                return 2;
            }

            var result = AuditVerifier.Verify(dir.FullName);
            if (result.IsIntact)
            {
                Console.WriteLine($"OK: {result.RecordCount} records, chain intact, last seq={result.LastSequence} hash={result.LastHash}");
                return 0;
            }

            var problem = result.Problem!;
            Console.Error.WriteLine($"TAMPERED: {problem.Message}");
            Console.Error.WriteLine($"  kind={problem.Kind} file={problem.File} line={problem.Line} seq={problem.Sequence?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "?"}");
            return 1;
        });
        return command;
    }
}
