namespace NhiAudit.Ssh.Commands;

/// <summary>
/// One command a shell command line runs, as <see cref="ShellCommandParser"/> reads it statically: the program's base
/// name, its option letters and long option names, its other words, and how the command line reaches it.
/// </summary>
/// <remarks>
/// <c>/bin/rm -r -f -- x</c>, <c>\rm -fr x</c>, <c>"rm" -rf x</c> and <c>sudo rm --recursive --force x</c> all read as
/// <see cref="Name"/> <c>rm</c> with <see cref="Flags"/> holding <c>r</c> and <c>f</c> (or <c>recursive</c> and
/// <c>force</c>). Options are recognised the way GNU getopt permutes them: a word starting with <c>-</c> anywhere before
/// <c>--</c> is an option, so <c>rm x -rf</c> has the flags too.
/// </remarks>
public sealed record ShellCommand
{
    /// <summary>
    /// The program's base name after quote removal (<c>/usr/bin/rm</c>, <c>\rm</c> and <c>r''m</c> are <c>rm</c>); for
    /// <c>busybox NAME</c> the applet. Empty for a command made only of redirections (<c>&gt; /etc/motd</c>).
    /// </summary>
    public required string Name { get; init; }

    /// <summary>
    /// The words that are not options, after quote removal, in order; the value of a <c>--name=value</c> option too.
    /// A word the shell computes at run time (<c>$X</c>, <c>$(…)</c>) appears as written and sets <see cref="Dynamic"/>.
    /// </summary>
    public IReadOnlyList<string> Args { get; init; } = [];

    /// <summary>
    /// The options without their dashes, each once, in order of appearance: short options split one per letter
    /// (<c>-rf</c> gives <c>r</c>, <c>f</c>), long options by name (<c>--recursive</c>, <c>--opt=value</c> gives
    /// <c>opt</c>). <c>find</c>'s predicates are kept whole (<c>-delete</c> gives <c>delete</c>).
    /// </summary>
    public IReadOnlyList<string> Flags { get; init; } = [];

    /// <summary>
    /// How the command line reaches this command: <c>command line</c> for a plain command, otherwise the path to it
    /// joined with <c> / </c>, e.g. <c>sh -c</c>, <c>sudo</c>, <c>pipeline / xargs</c>, <c>find -exec</c>, <c>$(…)</c>.
    /// </summary>
    public required string Via { get; init; }

    /// <summary>The command's own text as written (from its first word to its last), for the log.</summary>
    public required string Text { get; init; }

    /// <summary>The targets of the command's writing redirections (<c>&gt;</c>, <c>&gt;&gt;</c>, <c>&gt;|</c>, <c>&amp;&gt;</c>, <c>&lt;&gt;</c>).</summary>
    public IReadOnlyList<string> Writes { get; init; } = [];

    /// <summary>The targets of the command's reading redirections (<c>&lt;</c>).</summary>
    public IReadOnlyList<string> Reads { get; init; } = [];

    /// <summary>
    /// True when some of the command's words are only known at run time: a variable, a command substitution, arithmetic
    /// or brace expansion in an argument, or what <c>xargs</c> and <c>find -exec</c> append. The program is known; which
    /// options it gets may not all be.
    /// </summary>
    public bool Dynamic { get; init; }
}

/// <summary>Something in a command line that cannot be read statically, and why.</summary>
/// <param name="Reason">Why, e.g. <c>the command name is computed at run time ($X)</c>, <c>eval runs a computed string</c>.</param>
/// <param name="Via">How the command line reaches it, as in <see cref="ShellCommand.Via"/>.</param>
/// <param name="Text">The text it concerns.</param>
public sealed record ShellUnclassified(string Reason, string Via, string Text);

/// <summary>What <see cref="ShellCommandParser.Parse"/> read from a command line.</summary>
/// <param name="Commands">Every command the line may run, in the order the parser meets them (the commands of a substitution in a word before the command whose word it is).</param>
/// <param name="Unclassified">What could not be read statically; empty when the whole line was read.</param>
public sealed record ShellParseResult(IReadOnlyList<ShellCommand> Commands, IReadOnlyList<ShellUnclassified> Unclassified)
{
    /// <summary>True when nothing in the line is unclassified.</summary>
    public bool IsClassified => Unclassified.Count == 0;
}
