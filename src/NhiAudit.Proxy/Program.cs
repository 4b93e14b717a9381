using System.CommandLine;
using NhiAudit.Proxy.Commands;

var root = new RootCommand("nhiaudit: the NhiAudit reference gateway. Proves what non-human identities did.")
{
    RunCommand.Create(),
    VerifyCommand.Create(),
    TokenCommand.Create(),
    ShowCommand.Create(),
    SearchCommand.Create(),
    ApprovalsCommand.Create(),
};

var parse = root.Parse(args);
if (parse.Errors.Count > 0 && ApprovalsCommand.IsUnder(parse.CommandResult))
{
    // approvals promises 2 for a usage error (1 means the gateway refused).
    foreach (var error in parse.Errors)
    {
        Console.Error.WriteLine($"nhiaudit approvals: {error.Message}");
    }

    return 2;
}

return await parse.InvokeAsync().ConfigureAwait(false);
