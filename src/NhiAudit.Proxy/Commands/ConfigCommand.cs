using System.CommandLine;
using NhiAudit.Proxy.Configuration;

namespace NhiAudit.Proxy.Commands;

/// <summary><c>nhiaudit config check [--config FILE] [--online]</c>: every check <c>run</c> makes before it starts, without starting anything.</summary>
internal static class ConfigCommand
{
    public static Command Create()
    {
        var config = new Option<FileInfo?>("--config", "-c") { Description = "Configuration file to check. Without it the embedded default is checked." };
        var online = new Option<bool>("--online") { Description = "Also reach each issuer's OIDC discovery document (Authority) or JWKS URL." };
        var check = new Command(
            "check",
            "Check a configuration as `run` would (keys, values, policy rules, files, listen addresses) without starting listeners or writing the audit log; "
            + "print the effective configuration with secrets elided. Exit code 0: usable; 2: not (one line per problem on stderr).")
        {
            config,
            online,
        };
        check.SetAction((parse, ct) => CheckAsync(parse.GetValue(config), parse.GetValue(online), parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, ct));
        return new Command("config", "Work with the gateway's configuration.") { check };
    }

    /// <summary>Checks the configuration; prints the effective configuration to <paramref name="output"/>, or the problems to <paramref name="error"/>.</summary>
    public static async Task<int> CheckAsync(FileInfo? configFile, bool online, TextWriter output, TextWriter error, CancellationToken ct)
    {
        var result = await GatewayConfigurationCheck.RunAsync(configFile, online, ct).ConfigureAwait(false);
        if (result.Problems.Count > 0 || result.Configuration is null)
        {
            foreach (var problem in result.Problems)
            {
                await error.WriteLineAsync(problem.ToString()).ConfigureAwait(false);
            }

            return RunCommand.ConfigurationError;
        }

        await output.WriteLineAsync(GatewayConfigurationCheck.Effective(result.Configuration)).ConfigureAwait(false);
        await error.WriteLineAsync($"config: {(configFile?.FullName ?? "the embedded default")}: OK{(online ? " (online checks included)" : "")}").ConfigureAwait(false);
        return 0;
    }
}
