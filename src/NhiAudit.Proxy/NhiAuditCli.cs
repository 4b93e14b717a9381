using System.CommandLine;
using System.CommandLine.Help;
using NhiAudit.Proxy.Commands;

namespace NhiAudit.Proxy;

/// <summary>The <c>nhiaudit</c> command line: its commands, and how a parse error or a command's result becomes the exit code.</summary>
internal static class NhiAuditCli
{
    /// <summary>The command's name, whatever the executable or assembly is called (the assembly is NhiAudit.Proxy).</summary>
    public const string Name = "nhiaudit";

    /// <summary>The command tree. Its root is named <c>nhiaudit</c> in help and usage.</summary>
    public static Command Create() => new(Name, "nhiaudit: the NhiAudit reference gateway. Proves what non-human identities did.")
    {
        new HelpOption(),
        new VersionOption(),
        RunCommand.Create(),
        ConfigCommand.Create(),
        VerifyCommand.Create(),
        TokenCommand.Create(),
        ShowCommand.Create(),
        SearchCommand.Create(),
        ApprovalsCommand.Create(),
    };

    /// <summary>Parses and runs <paramref name="args"/>; <paramref name="configuration"/> redirects output and error (tests).</summary>
    public static async Task<int> InvokeAsync(string[] args, InvocationConfiguration? configuration = null)
    {
        var parse = Create().Parse(args);
        if (parse.Errors.Count > 0 && (ApprovalsCommand.IsUnder(parse.CommandResult) || IsUnder(parse.CommandResult, "config")))
        {
            // approvals and config promise 2 for a usage error (approvals' 1 means the gateway refused).
            var error = configuration?.Error ?? Console.Error;
            foreach (var problem in parse.Errors)
            {
                await error.WriteLineAsync($"{Name} {(IsUnder(parse.CommandResult, "config") ? "config" : "approvals")}: {problem.Message}").ConfigureAwait(false);
            }

            return 2;
        }

        return await parse.InvokeAsync(configuration).ConfigureAwait(false);
    }

    private static bool IsUnder(System.CommandLine.Parsing.CommandResult? result, string name)
    {
        for (var current = result; current is not null; current = current.Parent as System.CommandLine.Parsing.CommandResult)
        {
            if (current.Command.Name == name)
            {
                return true;
            }
        }

        return false;
    }
}
