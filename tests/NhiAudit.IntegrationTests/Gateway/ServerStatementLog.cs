using System.Text.RegularExpressions;

namespace NhiAudit.IntegrationTests.Gateway;

/// <summary>
/// What the server says it executed (log_statement = all), per gateway session: the gateway's application_name
/// (<c>nhi:SESSION:workload</c>) is in every line through <c>%a</c> of the test server's log_line_prefix.
/// </summary>
public static partial class ServerStatementLog
{
    public static Dictionary<string, int> ExecutedBySession(string serverLog, IReadOnlySet<string> sessions) =>
        StatementLine().Matches(serverLog)
            .Select(m => m.Groups["session"].Value)
            .Where(sessions.Contains)
            .GroupBy(s => s)
            .ToDictionary(g => g.Key, g => g.Count());

    [GeneratedRegex(@"app=nhi:(?<session>[a-z0-9]{12}):\S* user=\S+ db=\S+ LOG:  (statement|execute [^:]*):", RegexOptions.CultureInvariant)]
    private static partial Regex StatementLine();
}
