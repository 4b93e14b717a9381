using System.CommandLine;
using NhiAudit.Proxy.Commands;

var root = new RootCommand("nhiaudit: the NhiAudit reference gateway. Proves what non-human identities did.")
{
    RunCommand.Create(),
    VerifyCommand.Create(),
    TokenCommand.Create(),
    ShowCommand.Create(),
};

return await root.Parse(args).InvokeAsync().ConfigureAwait(false);
