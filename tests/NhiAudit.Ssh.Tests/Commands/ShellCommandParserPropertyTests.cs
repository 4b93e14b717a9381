using System.Text;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using NhiAudit.Ssh.Commands;

namespace NhiAudit.Ssh.Tests.Commands;

/// <summary>
/// The parser reads hostile input: whatever it gets (random bytes, shell-like token soup, deep nesting, huge lines) it
/// returns within a bound and never throws; and the spellings it is built to see through are seen through in any
/// combination.
/// </summary>
public sealed class ShellCommandParserPropertyTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    private static readonly string[] Tokens =
    [
        "rm", "-rf", " ", " ", " ", "x", "/", "'", "\"", "\\", "$", "$(", "$((", "${", "}", "{", "(", ")", "))", "`", "|", "||",
        "&", "&&", ";", ";;", "\n", "#", "<", ">", ">>", "<<", "<<-", "EOF", "2>&1", "<(", ">(", "$'", "\\x72", "*", "?", "[",
        "]", "=", "A=1", "sh", "-c", "bash", "sudo", "env", "-S", "xargs", "find", "-exec", "{}", "+", "\\;", "-delete", "case",
        "in", "esac", "if", "then", "fi", "for", "do", "done", "[[", "]]", "eval", "python3", "awk", "trap", "function", "!",
        "timeout", "5", "busybox", "exec", "su", "watch", "flock", ",", "..", "~", "\t", "\\\n", "\r", "\0", "é", "😀",
    ];

    /// <summary>Parses on another thread so that a hang fails the test instead of stalling the run.</summary>
    private static ShellParseResult ParseBounded(string input)
    {
        var parse = Task.Run(() => ShellCommandParser.Parse(input));
        Assert.True(parse.Wait(Bound), $"the parser did not finish within {Bound} on input of length {input.Length}");
        return parse.Result;
    }

    private static void AssertWellFormed(ShellParseResult result)
    {
        Assert.NotNull(result.Commands);
        Assert.NotNull(result.Unclassified);
        Assert.True(result.Commands.Count <= ShellCommandParser.MaxCommands);
        Assert.All(result.Commands, c =>
        {
            Assert.NotNull(c.Name);
            Assert.NotNull(c.Via);
            Assert.NotNull(c.Text);
        });
    }

    [Property(MaxTest = 1000)]
    public void Random_strings_never_throw(string input) => AssertWellFormed(ParseBounded(input ?? ""));

    [Property(MaxTest = 500)]
    public void Random_bytes_as_text_never_throw(byte[] bytes)
    {
        bytes ??= [];
        AssertWellFormed(ParseBounded(Encoding.UTF8.GetString(bytes)));
        AssertWellFormed(ParseBounded(Encoding.Latin1.GetString(bytes)));
    }

    [Property(MaxTest = 2000)]
    public Property Shell_token_soup_never_throws() =>
        Prop.ForAll(
            Gen.ArrayOf(Gen.Elements(Tokens)).Select(parts => string.Concat(parts)).ToArbitrary(),
            input => AssertWellFormed(ParseBounded(input)));

    [Property(MaxTest = 200)]
    public Property Deep_nesting_of_every_kind_is_read_to_the_limit_and_unclassified_past_it() =>
        Prop.ForAll(
            Gen.Choose(0, 400).ToArbitrary(),
            Gen.ArrayOf(Gen.Elements(0, 1, 2, 3, 4, 5, 6)).ToArbitrary(),
            (depth, kinds) =>
            {
                var line = "rm -rf x";
                var readable = 0;
                var commands = 1;
                for (var i = 0; i < depth && line.Length <= ShellCommandParser.MaxLength; i++)
                {
                    var kind = kinds is { Length: > 0 } ? kinds[i % kinds.Length] : i % 7;
                    line = kind switch
                    {
                        0 => "sh -c " + ShellCommandParserTests.Quote(line),
                        1 => "echo $( " + line + " )",
                        2 => "(" + line + ")",
                        3 => "{ " + line + "; }",
                        4 => "env sh -c " + ShellCommandParserTests.Quote(line),
                        5 => "true && " + line,
                        _ => "bash -c \"" + line.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("$", "\\$", StringComparison.Ordinal).Replace("`", "\\`", StringComparison.Ordinal) + "\"",
                    };
                    readable += kind switch { 0 or 1 or 6 => 1, 4 => 2, _ => 0 };
                    commands += kind switch { 0 or 1 or 5 or 6 => 1, 4 => 2, _ => 0 };
                }

                if (line.Length > ShellCommandParser.MaxLength)
                {
                    return;
                }

                var result = ParseBounded(line);
                AssertWellFormed(result);
                if (readable <= ShellCommandParser.MaxDepth && commands <= ShellCommandParser.MaxCommands)
                {
                    // Shallow enough: the rm inside is found, however it is wrapped.
                    Assert.True(result.IsClassified, string.Join("; ", result.Unclassified));
                    Assert.Contains(result.Commands, c => c.Name == "rm" && c.Flags.Contains("r"));
                }
                else
                {
                    Assert.False(result.IsClassified);
                    Assert.DoesNotContain(result.Commands, c => c.Name == "rm");
                }
            });

    [Fact]
    public void Huge_and_pathological_inputs_finish()
    {
        var max = ShellCommandParser.MaxLength;
        string[] inputs =
        [
            new string('(', max),
            new string(')', max),
            string.Concat(Enumerable.Repeat("$(", max / 2)),
            string.Concat(Enumerable.Repeat("${", max / 2)),
            string.Concat(Enumerable.Repeat("$((", max / 3)),
            string.Concat(Enumerable.Repeat("`", max)),
            string.Concat(Enumerable.Repeat("\\`", max / 2)),
            new string('\'', max),
            new string('"', max),
            string.Concat(Enumerable.Repeat("a|", max / 2)),
            string.Concat(Enumerable.Repeat("<<E\n", max / 4)),
            string.Concat(Enumerable.Repeat("sh -c ", max / 6)),
            string.Concat(Enumerable.Repeat("sudo ", max / 5)) + "rm -rf x",
            string.Concat(Enumerable.Repeat("x ", max / 2)),
            string.Concat(Enumerable.Repeat("{a,", max / 3)),
            string.Concat(Enumerable.Repeat("case x in ", max / 10)),
            string.Concat(Enumerable.Repeat("[[ ", max / 3)),
            new string('x', max),
            new string('x', 4 * max),
        ];
        foreach (var input in inputs)
        {
            AssertWellFormed(ParseBounded(input));
        }
    }

    /// <summary>One way to spell rm's name, flags and the line around it, combined at random.</summary>
    private static readonly Gen<string> RecursiveDeleteSpellings =
        from name in Gen.Elements("rm", "/bin/rm", "/usr/bin/rm", "\\rm", "r''m", "\"rm\"", "'rm'", "$'\\x72m'", "./../../bin/rm", "r\\m")
        from flags in Gen.Elements("-rf", "-fr", "-r -f", "-R", "--recursive", "-r --force", "-Rf", "'-rf'", "\"-r\"", "-f -r", "-rvf", "--recursive --")
        from target in Gen.Elements("x", "/srv/app", "'a b'", "\"$HOME/x\"", "-- x")
        from assignment in Gen.Elements("", "", "A=1 ", "A='x y' B=$HOME ")
        from wrappers in Gen.ArrayOf(Gen.Elements("sudo ", "sudo -u root ", "env ", "env A=1 ", "nice -n 5 ", "timeout 5 ", "nohup ", "command ", "busybox ", "stdbuf -oL ", "ionice -c3 ", "time ", "exec "))
        from around in Gen.Elements(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
        select Around(around, assignment + string.Concat(wrappers.Take(4)) + name + " " + flags + " " + target);

    private static string Around(int kind, string command) => kind switch
    {
        0 => command,
        1 => "sh -c " + ShellCommandParserTests.Quote(command),
        2 => "(" + command + ")",
        3 => "{ " + command + "; }",
        4 => "true; " + command,
        5 => "true && " + command,
        6 => "false || " + command,
        7 => "if true; then " + command + "; fi",
        8 => "echo " + command + " | sh -c " + ShellCommandParserTests.Quote("cat; " + command),
        9 => "cd / && " + command + " 2>&1 > /dev/null",
        _ => "bash -lc " + ShellCommandParserTests.Quote("set -e\n" + command + "\n"),
    };

    [Property(MaxTest = 2000)]
    public Property Any_combination_of_spellings_reads_as_a_recursive_rm() =>
        Prop.ForAll(RecursiveDeleteSpellings.ToArbitrary(), line =>
        {
            var result = ParseBounded(line);
            Assert.True(result.IsClassified, line + ": " + string.Join("; ", result.Unclassified));
            Assert.Contains(result.Commands, c => c.Name == "rm" && c.Flags.Any(f => f is "r" or "R" or "recursive"));
        });
}
