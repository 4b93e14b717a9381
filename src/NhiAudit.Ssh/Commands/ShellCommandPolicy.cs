namespace NhiAudit.Ssh.Commands;

/// <summary>
/// Hands what <see cref="ShellCommandParser"/> read to the policy engine: <c>request.commands</c> for conditions over the
/// whole command line, and one <see cref="AccessEffect"/> per command (and per unclassified part), which the engine
/// decides with the same rules as the request, the strictest decision winning.
/// </summary>
/// <remarks>
/// <para>Each command is a map <c>{name, args, flags, via, text, writes, reads, dynamic}</c>, so a condition reads
/// <c>request.commands.exists(c, c.name == 'rm' &amp;&amp; ('r' in c.flags || 'R' in c.flags || 'recursive' in c.flags))</c>.
/// Decided as an effect, a command is also the request itself: <c>request.name</c>, <c>request.flags</c>,
/// <c>request.args</c>, <c>request.writes</c>, <c>request.via</c> (the request as a whole has an empty name and empty lists,
/// so such conditions never fail on it).</para>
/// <para>What could not be read becomes an effect with action <see cref="AccessRequest.UnclassifiedAction"/> whose via
/// says why: the engine denies it (<c>UnclassifiedEffect</c>) unless a rule that names <c>UNKNOWN</c> allows it.
/// <c>request.unclassified</c> lists the reasons.</para>
/// </remarks>
public static class ShellCommandPolicy
{
    /// <summary>The action of a command effect, the same as an SSH exec request's.</summary>
    public const string ExecAction = "exec";

    private static readonly object[] NoValues = [];

    /// <summary>
    /// The attributes an exec request carries: <c>commands</c> (one map per command), <c>unclassified</c> (the reasons),
    /// and empty <c>name</c>, <c>args</c>, <c>flags</c>, <c>writes</c>, <c>reads</c>, <c>dynamic</c> (which each command
    /// effect sets to its own).
    /// </summary>
    /// <param name="result">What the parser read from the command line.</param>
    /// <param name="attributes">Where to add them (the request's other attributes).</param>
    public static void AddAttributes(ShellParseResult result, IDictionary<string, object?> attributes)
    {
        ArgumentNullException.ThrowIfNull(result);
        ArgumentNullException.ThrowIfNull(attributes);
        var commands = new object[result.Commands.Count];
        for (var i = 0; i < commands.Length; i++)
        {
            commands[i] = CommandMap(result.Commands[i]);
        }

        attributes["commands"] = commands;
        attributes["unclassified"] = result.Unclassified.Select(u => (object)u.Reason).ToArray();
        attributes["name"] = "";
        attributes["args"] = NoValues;
        attributes["flags"] = NoValues;
        attributes["writes"] = NoValues;
        attributes["reads"] = NoValues;
        attributes["dynamic"] = false;
    }

    /// <summary>One effect per command (action <c>exec</c>) and one per unclassified part (action <c>UNKNOWN</c>, via the reason).</summary>
    /// <param name="result">What the parser read from the command line.</param>
    /// <returns>The effects, commands first.</returns>
    public static IReadOnlyList<AccessEffect> Effects(ShellParseResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var effects = new List<AccessEffect>(result.Commands.Count + result.Unclassified.Count);
        foreach (var command in result.Commands)
        {
            effects.Add(new AccessEffect
            {
                Action = ExecAction,
                Via = command.Via,
                Text = command.Text,
                Resources = command.Writes,
                Attributes = CommandMap(command),
            });
        }

        foreach (var unclassified in result.Unclassified)
        {
            effects.Add(new AccessEffect
            {
                Action = AccessRequest.UnclassifiedAction,
                Via = unclassified.Via == "command line" ? unclassified.Reason : $"{unclassified.Reason} (via {unclassified.Via})",
                Text = unclassified.Text,
                Attributes = new Dictionary<string, object?>(StringComparer.Ordinal)
                {
                    ["name"] = "",
                    ["args"] = NoValues,
                    ["flags"] = NoValues,
                    ["writes"] = NoValues,
                    ["reads"] = NoValues,
                    ["dynamic"] = true,
                    ["reason"] = unclassified.Reason,
                },
            });
        }

        return effects;
    }

    /// <summary>A command as a CEL map: <c>{name, args, flags, via, text, writes, reads, dynamic}</c>.</summary>
    /// <param name="command">The command.</param>
    /// <returns>The map (lists as object arrays, as CEL wants them).</returns>
    public static Dictionary<string, object?> CommandMap(ShellCommand command)
    {
        ArgumentNullException.ThrowIfNull(command);
        return new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["name"] = command.Name,
            ["args"] = ToValues(command.Args),
            ["flags"] = ToValues(command.Flags),
            ["via"] = command.Via,
            ["text"] = command.Text,
            ["writes"] = ToValues(command.Writes),
            ["reads"] = ToValues(command.Reads),
            ["dynamic"] = command.Dynamic,
        };
    }

    private static object[] ToValues(IReadOnlyList<string> values) => values.Count == 0 ? NoValues : [.. values];
}
