using NhiAudit.Ssh.Commands;

namespace NhiAudit.Ssh.Tests.Commands;

/// <summary>Every spelling of a command reads as the same command; what cannot be read statically is unclassified.</summary>
public sealed class ShellCommandParserTests
{
    private static ShellCommand Single(ShellParseResult result, string name) => Assert.Single(result.Commands, c => c.Name == name);

    /// <summary>The same recursive delete, spelled as a workload might to get past a rule that reads text.</summary>
    public static TheoryData<string, string> RecursiveDeletes => new()
    {
        { "rm -rf x", "command line" },
        { "rm -fr x", "command line" },
        { "/bin/rm -r -f x", "command line" },
        { "rm --recursive --force x", "command line" },
        { "rm --recursive=always x", "command line" },
        { "\\rm -R x", "command line" },
        { "sudo rm -rf x", "sudo" },
        { "sudo -u root -- rm -rf x", "sudo" },
        { "sh -c 'cd / && rm -rf x'", "sh -c" },
        { "bash -c \"rm -rf x\"", "bash -c" },
        { "bash -lc 'rm -rf x'", "bash -c" },
        { "dash -c 'rm -rf x'", "dash -c" },
        { "zsh -c 'rm -rf x'", "zsh -c" },
        { "busybox sh -c 'rm -rf x'", "busybox / sh -c" },
        { "find / -exec rm -rf {} +", "find -exec" },
        { "find . -name x -execdir rm -r {} \\;", "find -execdir" },
        { "xargs rm -rf", "xargs" },
        { "busybox rm -rf x", "busybox" },
        { "env rm -rf x", "env" },
        { "env -i PATH=/bin A=1 rm -rf x", "env" },
        { "nice -n 5 rm -rf x", "nice" },
        { "timeout 5 rm -rf x", "timeout" },
        { "timeout -s KILL 5s rm -rf x", "timeout" },
        { "nohup rm -rf x", "nohup" },
        { "stdbuf -oL rm -rf x", "stdbuf" },
        { "ionice -c3 rm -rf x", "ionice" },
        { "command rm -rf x", "command" },
        { "exec rm -rf x", "exec" },
        { "time rm -rf x", "time" },
        { "A=1 rm -rf x", "command line" },
        { "A=1 B='x y' rm -rf x", "command line" },
        { "(rm -rf x)", "command line" },
        { "{ rm -rf x; }", "command line" },
        { "true; rm -rf x", "command line" },
        { "true && rm -rf x", "command line" },
        { "false || rm -rf x", "command line" },
        { "true\nrm -rf x", "command line" },
        { "sleep 1 & rm -rf x", "command line" },
        { "echo x | xargs rm -rf", "pipeline / xargs" },
        { "r''m -rf x", "command line" },
        { "\"rm\" -rf x", "command line" },
        { "r\"m\" -r\"f\" x", "command line" },
        { "$'\\x72m' -rf x", "command line" },
        { "rm -r -- x", "command line" },
        { "rm x -r", "command line" },
        { "rm -r x 2>/dev/null >&2", "command line" },
        { "if true; then rm -rf x; fi", "command line" },
        { "for d in a b; do rm -rf \"$d\"; done", "command line" },
        { "case x in x) rm -rf x;; esac", "command line" },
        { "f() { rm -rf x; }; f", "command line" },
        { "echo $(rm -rf x)", "$(…)" },
        { "echo `rm -rf x`", "`…`" },
        { "cat <(rm -rf x)", "<(…)" },
        { "cat <<EOF\n$(rm -rf x)\nEOF", "here-document / $(…)" },
        { "trap 'rm -rf x' EXIT", "trap" },
        { "env -S 'rm -rf x'", "env -S" },
        { "watch -n 5 'rm -rf x'", "watch" },
        { "su -c 'rm -rf x' root", "su -c" },
        { "flock /tmp/l -c 'rm -rf x'", "flock -c" },
        { "sudo nice -n 5 timeout 5 env A=1 sh -c \"bash -c 'rm -rf x'\"", "sudo / nice / timeout / env / sh -c / bash -c" },
        { "rm -r\\\n -f x", "command line" },
        { "((rm -rf x))", "command line" },
        { "[[ -d x || rm -rf x ]]", "command line" },
        { "find / -name '*.tmp' -delete", "find -delete" },
    };

    [Theory]
    [MemberData(nameof(RecursiveDeletes))]
    public void Every_spelling_of_a_recursive_delete_reads_as_rm_with_a_recursive_flag(string commandLine, string via)
    {
        var result = ShellCommandParser.Parse(commandLine);

        Assert.True(result.IsClassified, string.Join("; ", result.Unclassified));
        var rm = Single(result, "rm");
        Assert.Contains(rm.Flags, f => f is "r" or "R" or "recursive");
        Assert.Equal(via, rm.Via);
    }

    [Theory]
    [InlineData("rm -fr x", new[] { "f", "r" }, new[] { "x" })]
    [InlineData("/bin/rm -r -f -- -x y", new[] { "r", "f" }, new[] { "-x", "y" })]
    [InlineData("rm --recursive --interactive=never x", new[] { "recursive", "interactive" }, new[] { "never", "x" })]
    [InlineData("ls -la /srv", new[] { "l", "a" }, new[] { "/srv" })]
    [InlineData("tar xzf a.tgz -C /srv", new[] { "C" }, new[] { "xzf", "a.tgz", "/srv" })]
    [InlineData("echo 'a  b' \"c $'d'\" $'e\\tf'", new string[0], new[] { "a  b", "c $'d'", "e\tf" })]
    public void Flags_are_split_and_arguments_unquoted(string commandLine, string[] flags, string[] args)
    {
        var command = Assert.Single(ShellCommandParser.Parse(commandLine).Commands);
        Assert.Equal(flags, command.Flags);
        Assert.Equal(args, command.Args);
        Assert.False(command.Dynamic);
    }

    [Fact]
    public void Wrappers_are_listed_with_their_own_options_and_the_command_they_run()
    {
        var result = ShellCommandParser.Parse("sudo -u deploy nice -n 5 rm -rf x");

        Assert.Equal(["sudo", "nice", "rm"], result.Commands.Select(c => c.Name));
        Assert.Equal(["u"], result.Commands[0].Flags);
        Assert.Equal(["deploy"], result.Commands[0].Args);
        Assert.Equal(["5"], result.Commands[1].Args);
        Assert.Equal("sudo / nice", result.Commands[2].Via);
        Assert.Equal("rm -rf x", result.Commands[2].Text);
    }

    [Fact]
    public void What_xargs_and_find_exec_append_makes_the_command_dynamic()
    {
        Assert.True(Single(ShellCommandParser.Parse("xargs rm -f"), "rm").Dynamic);
        Assert.True(Single(ShellCommandParser.Parse("find . -exec rm {} \\;"), "rm").Dynamic);
        Assert.True(Single(ShellCommandParser.Parse("rm -f $X"), "rm").Dynamic);
        Assert.True(Single(ShellCommandParser.Parse("rm -f \"$(cat list)\""), "rm").Dynamic);
        Assert.False(Single(ShellCommandParser.Parse("rm -f '$X'"), "rm").Dynamic);
        Assert.Equal("echo", Assert.Single(ShellCommandParser.Parse("xargs").Commands, c => c.Via == "xargs").Name);
    }

    [Fact]
    public void Redirections_are_recorded_and_never_taken_as_arguments()
    {
        var echo = Assert.Single(ShellCommandParser.Parse("echo root::0:0::/:/bin/sh > /etc/passwd 2>&1").Commands);
        Assert.Equal(["root::0:0::/:/bin/sh"], echo.Args);
        Assert.Equal(["/etc/passwd"], echo.Writes);

        var cat = Assert.Single(ShellCommandParser.Parse("cat < in >> out 2> err <<< word").Commands);
        Assert.Empty(cat.Args);
        Assert.Equal(["in"], cat.Reads);
        Assert.Equal(["out", "err"], cat.Writes);

        var truncate = Assert.Single(ShellCommandParser.Parse("> /etc/motd").Commands);
        Assert.Equal("", truncate.Name);
        Assert.Equal(["/etc/motd"], truncate.Writes);

        var heredoc = ShellCommandParser.Parse("cat > /tmp/x <<'EOF'\n$(rm -rf /)\nEOF\necho done");
        Assert.Equal(["cat", "echo"], heredoc.Commands.Select(c => c.Name));
        Assert.True(heredoc.IsClassified);
    }

    [Theory]
    [InlineData("echo hello from $(id -un); echo \"identity=$NHIAUDIT_IDENTITY\"; exit 3")]
    [InlineData("echo \"on $(hostname) as $(id -un), the gateway says I am $NHIAUDIT_IDENTITY\"; mkdir -p /tmp/nhiaudit-demo-app")]
    [InlineData("cat f | grep x")]
    [InlineData("cat; echo done >&2")]
    [InlineData("uname -a")]
    [InlineData("systemctl restart app.service")]
    [InlineData("mkdir -p /srv/app && tar xzf /tmp/r.tgz -C /srv/app")]
    [InlineData("ls -la /srv | sort | head -n 5")]
    [InlineData("[ -f x ] && echo yes || echo no")]
    [InlineData("[[ -d /srv ]] && echo root")]
    [InlineData("(( 1 + 2 > 2 )) && echo big")]
    [InlineData("echo $((6*7)) ${HOME:-/root} $? $1")]
    [InlineData("sleep 0.5; echo channel-1")]
    [InlineData("awk '{print $1}' /etc/hosts")]
    [InlineData("python3 manage.py migrate")]
    [InlineData("python3 -m http.server 8000")]
    [InlineData("bash --version")]
    [InlineData("# only a comment")]
    [InlineData("arr=(a b c); echo ${arr[1]}")]
    [InlineData("scp -t /tmp/x")]
    public void Ordinary_commands_are_read_whole(string commandLine)
    {
        var result = ShellCommandParser.Parse(commandLine);
        Assert.True(result.IsClassified, string.Join("; ", result.Unclassified));
        Assert.DoesNotContain(result.Commands, c => c.Name == "rm");
    }

    /// <summary>What cannot be read statically, and the reason the log gives for it.</summary>
    public static TheoryData<string, string> Unresolvable => new()
    {
        { "$(echo rm) -rf x", "the command name is computed at run time ($(echo rm))" },
        { "`echo rm` -rf x", "the command name is computed at run time (`echo rm`)" },
        { "eval \"rm -rf x\"", "eval runs a string the shell builds at run time" },
        { "X=rm; $X -rf x", "the command name is computed at run time ($X)" },
        { "${X} -rf x", "the command name is computed at run time (${X})" },
        { "\"$X\" -rf x", "the command name is computed at run time (\"$X\")" },
        { "r? -rf x", "the command name is a pattern the shell expands (r?)" },
        { "/bin/r* -rf x", "the command name is a pattern the shell expands (/bin/r*)" },
        { "{rm,-rf,x}", "the command name is a brace expansion ({rm,-rf,x})" },
        { "$((1)) x", "the command name is computed at run time ($((1)))" },
        { "python3 -c 'import shutil; shutil.rmtree(\"x\")'", "python3 -c runs code given on its command line, which is not read" },
        { "python -Ic 'print(1)'", "python -c runs code given on its command line, which is not read" },
        { "perl -e 'system(\"rm -rf x\")'", "perl -e runs code given on its command line, which is not read" },
        { "perl -pi -e 's/a/b/' f", "perl -e runs code given on its command line, which is not read" },
        { "ruby -e 'FileUtils.rm_rf(\"x\")'", "ruby -e runs code given on its command line, which is not read" },
        { "node -e 'require(\"fs\").rmSync(\"x\",{recursive:true})'", "node -e runs code given on its command line, which is not read" },
        { "php -r 'system(\"rm -rf x\");'", "php -r runs code given on its command line, which is not read" },
        { "awk 'BEGIN { system(\"rm -rf x\") }'", "the awk program runs commands (system(), a pipe or getline), which are not read" },
        { "awk '{ print | \"sh\" }' f", "the awk program runs commands (system(), a pipe or getline), which are not read" },
        { "curl -s https://example.com/install | sh", "sh reads commands from its standard input" },
        { "echo 'rm -rf x' | sh", "sh reads commands from its standard input" },
        { "echo 'import os' | python3", "python3 reads code from its standard input" },
        { "sh < script", "sh reads commands from its standard input" },
        { "bash deploy.sh", "bash runs the script deploy.sh, which is not read" },
        { "exec bash", "bash reads commands from its standard input (via exec)" },
        { "sudo -s", "sudo -s/-i starts a shell that reads its standard input" },
        { "su - root", "su without -c starts a shell that reads its standard input" },
        { "bash -c \"$CMD\"", "bash gets options or code computed at run time (\"$CMD\")" },
        { "sh -c \"$(curl -s https://example.com/x)\"", "sh gets options or code computed at run time (\"$(curl -s https://example.com/x)\")" },
        { "source ./env.sh", "source runs the commands of a file, which are not read" },
        { ". ./env.sh", ". runs the commands of a file, which are not read" },
        { "alias ls='rm -rf'", "alias defines a command" },
        { "fish -c 'rm -rf x'", "fish is not a POSIX shell: what it runs is not read" },
        { "sudo $CMD", "sudo gets a word computed at run time where its options or command are expected" },
        { "echo 'unterminated", "unterminated single quote" },
        { "echo \"unterminated", "unterminated double quote" },
        { "echo $(unterminated", "unterminated $( or <(" },
        { "echo `unterminated", "unterminated backquote" },
        { "rm -rf x )", "syntax error near unexpected ')'" },
        { "( rm -rf x", "unclosed (" },
        { "| rm -rf x", "syntax error near '|'" },
        { "rm -rf x &&", "syntax error: the command line ends after an operator" },
        { "find / -exec rm -rf {}", "find -exec without ; or +" },
        { "[[ -d /srv && $(id -u) -eq 0 ]]", "the command name is computed at run time ($(id -u))" },
    };

    [Theory]
    [MemberData(nameof(Unresolvable))]
    public void What_cannot_be_read_statically_is_unclassified_with_a_reason(string commandLine, string reason)
    {
        var result = ShellCommandParser.Parse(commandLine);

        Assert.False(result.IsClassified);
        Assert.Contains(result.Unclassified, u => (u.Via == "command line" ? u.Reason : $"{u.Reason} (via {u.Via})") == reason);
    }

    [Fact]
    public void Nesting_deeper_than_the_limit_is_unclassified_but_what_was_read_is_kept()
    {
        var line = "rm -rf x";
        for (var i = 0; i < ShellCommandParser.MaxDepth + 2; i++)
        {
            line = $"echo $({line})";
        }

        var result = ShellCommandParser.Parse("sh -c " + Quote(line));
        Assert.False(result.IsClassified);
        Assert.Contains(result.Unclassified, u => u.Reason.StartsWith("nested more than", StringComparison.Ordinal));
        Assert.Contains(result.Commands, c => c.Name == "sh");
        Assert.DoesNotContain(result.Commands, c => c.Name == "rm");

        var arrays = ShellCommandParser.Parse(string.Concat(Enumerable.Repeat("a=(", 10_000)));
        Assert.Contains(arrays.Unclassified, u => u.Reason.StartsWith("nested more than", StringComparison.Ordinal));
    }

    [Fact]
    public void Limits_on_length_and_count_unclassify_instead_of_reading_on()
    {
        var tooLong = ShellCommandParser.Parse(new string('a', ShellCommandParser.MaxLength + 1));
        Assert.Empty(tooLong.Commands);
        Assert.StartsWith("the command line is longer than", Assert.Single(tooLong.Unclassified).Reason, StringComparison.Ordinal);

        var many = ShellCommandParser.Parse(string.Join(';', Enumerable.Repeat("true", ShellCommandParser.MaxCommands + 10)));
        Assert.Equal(ShellCommandParser.MaxCommands, many.Commands.Count);
        Assert.StartsWith("the command line runs more than", Assert.Single(many.Unclassified).Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void An_empty_line_runs_nothing()
    {
        Assert.True(ShellCommandParser.Parse("").IsClassified);
        Assert.Empty(ShellCommandParser.Parse("   \n\t ").Commands);
        Assert.Empty(ShellCommandParser.Parse(null).Commands);
    }

    /// <summary>Single-quotes <paramref name="text"/> for a POSIX shell.</summary>
    internal static string Quote(string text) => "'" + text.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
