using System.Text.RegularExpressions;

namespace NhiAudit.Ssh.Commands;

public static partial class ShellCommandParser
{
    /// <summary>The second half of the parser: what one simple command runs, looking through the commands that run commands.</summary>
    private sealed partial class Parser
    {
        private static readonly string[] None = [];

        [GeneratedRegex(@"^(python|pypy)[0-9.]*$", RegexOptions.CultureInvariant)]
        private static partial Regex PythonName();

        [GeneratedRegex(@"^(perl|ruby|php|lua|luajit|tclsh|wish)[0-9.]*$", RegexOptions.CultureInvariant)]
        private static partial Regex VersionedInterpreterName();

        [GeneratedRegex(@"\bsystem\s*\(|(?<!\|)\|(?!\|)|\bgetline\b", RegexOptions.CultureInvariant)]
        private static partial Regex AwkRunsCommands();

        private void Analyze(SimpleCommand command)
        {
            var writes = new List<string>();
            var reads = new List<string>();
            foreach (var (kind, target) in command.Redirects)
            {
                if (kind is RedirectKind.Write or RedirectKind.ReadWrite)
                {
                    writes.Add(target.Text);
                }

                if (kind is RedirectKind.Read or RedirectKind.ReadWrite)
                {
                    reads.Add(target.Text);
                }
            }

            var first = _ctx.Commands.Count;
            if (command.Words.Count == 0)
            {
                if (writes.Count > 0)
                {
                    // "> file" alone truncates or creates the file: a command with no program.
                    var builder = _ctx.Add("", _chain, _s[command.Start..command.End]);
                    builder.Writes = writes;
                    builder.Reads = reads;
                }

                return;
            }

            AnalyzeWords(command.Words, 0, command.Words.Count, command.End, appended: false);
            if (writes.Count > 0 || reads.Count > 0)
            {
                // The redirections apply to the simple command's process, so to whatever it runs.
                for (var i = first; i < _ctx.Commands.Count; i++)
                {
                    _ctx.Commands[i].Writes.AddRange(writes);
                    _ctx.Commands[i].Reads.AddRange(reads);
                }
            }
        }

        private void AnalyzeWords(List<Word> words, int from, int to, int textEnd, bool appended)
        {
            if (from < to)
            {
                AnalyzeCommand(words, from, to, textEnd, appended);
            }
        }

        private void Unknown(string reason, string text) => _ctx.Unknown(reason, Via, text);

        private static string BaseName(string name)
        {
            var slash = name.LastIndexOf('/');
            return slash >= 0 && slash < name.Length - 1 ? name[(slash + 1)..] : name;
        }

        private void AnalyzeCommand(List<Word> words, int from, int to, int textEnd, bool appended)
        {
            var nameWord = words[from];
            var text = _s[nameWord.Start..Math.Max(nameWord.Start, Math.Min(textEnd, _s.Length))];
            if (nameWord.Dynamic)
            {
                Unknown($"the command name is computed at run time ({nameWord.Source})", text);
                return;
            }

            if (nameWord.Brace)
            {
                Unknown($"the command name is a brace expansion ({nameWord.Source})", text);
                return;
            }

            if (nameWord.Glob)
            {
                Unknown($"the command name is a pattern the shell expands ({nameWord.Source})", text);
                return;
            }

            var name = BaseName(nameWord.Value);
            var b = _ctx.Add(name, _chain, text);
            b.Dynamic = appended;
            var rest = from + 1;
            if (PosixShells.Contains(name))
            {
                Shell(b, words, rest, to);
                return;
            }

            if (OtherShells.Contains(name))
            {
                GenericOptions(b, words, rest, to);
                Unknown($"{name} is not a POSIX shell: what it runs is not read", text);
                return;
            }

            if (Awks.Contains(name))
            {
                Awk(b, words, rest, to);
                return;
            }

            if (PythonName().IsMatch(name))
            {
                Interpreter(b, words, rest, to, code: "c", codeLong: None, withArg: "WXQ", attachedOnly: "", module: "m", info: ["V", "version", "h", "help"]);
                return;
            }

            if (VersionedInterpreterName().IsMatch(name))
            {
                var family = name.TrimEnd('0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '.');
                switch (family)
                {
                    case "perl":
                        Interpreter(b, words, rest, to, code: "eE", codeLong: None, withArg: "IMm", attachedOnly: "i0lxdCDV", module: "", info: ["v", "version", "h", "help"]);
                        return;
                    case "ruby":
                        Interpreter(b, words, rest, to, code: "e", codeLong: None, withArg: "rICE", attachedOnly: "FT0xW", module: "", info: ["v", "version", "h", "help"]);
                        return;
                    case "php":
                        Interpreter(b, words, rest, to, code: "rBRE", codeLong: None, withArg: "cdz", attachedOnly: "", module: "f", info: ["v", "version", "h", "help", "i", "m"]);
                        return;
                    case "lua" or "luajit":
                        Interpreter(b, words, rest, to, code: "e", codeLong: None, withArg: "l", attachedOnly: "", module: "", info: ["v"]);
                        return;
                    default:
                        Interpreter(b, words, rest, to, code: "", codeLong: None, withArg: "", attachedOnly: "", module: "", info: ["version", "help"]);
                        return;
                }
            }

            switch (name)
            {
                case "node" or "nodejs":
                    Interpreter(b, words, rest, to, code: "ep", codeLong: ["eval", "print"], withArg: "r", attachedOnly: "", module: "", info: ["v", "version", "h", "help"]);
                    return;
                case "Rscript" or "julia":
                    Interpreter(b, words, rest, to, code: "e", codeLong: ["eval"], withArg: "", attachedOnly: "", module: "", info: ["version", "help", "h", "v"]);
                    return;
                case "expect":
                    Interpreter(b, words, rest, to, code: "c", codeLong: None, withArg: "", attachedOnly: "", module: "", info: ["v"]);
                    return;
                case "eval":
                    GenericOptions(b, words, rest, to);
                    if (rest < to)
                    {
                        Unknown("eval runs a string the shell builds at run time", text);
                    }

                    return;
                case "source" or ".":
                    GenericOptions(b, words, rest, to);
                    if (rest < to)
                    {
                        Unknown($"{name} runs the commands of a file, which are not read", text);
                    }

                    return;
                case "alias":
                    GenericOptions(b, words, rest, to);
                    if (b.Args.Exists(a => a.Contains('=', StringComparison.Ordinal)))
                    {
                        Unknown("alias defines a command", text);
                    }

                    return;
                case "trap":
                    Trap(b, words, rest, to, text);
                    return;
                case "find":
                    Find(b, words, rest, to);
                    return;
                case "xargs":
                    Xargs(b, words, rest, to, textEnd);
                    return;
                case "env":
                    Env(b, words, rest, to, textEnd, appended);
                    return;
                case "sudo":
                    Sudo(b, words, rest, to, textEnd, appended);
                    return;
                case "doas":
                    {
                        var k = ReadOptions(b, words, rest, to, withArg: "uC");
                        if (k >= to && b.Flags.Contains("s"))
                        {
                            Unknown("doas -s starts a shell that reads its standard input", text);
                            return;
                        }

                        Wrap(b, words, k, to, textEnd, "doas", appended);
                        return;
                    }

                case "su":
                    SuCommand(b, words, rest, to, text);
                    return;
                case "runuser":
                    if (HasWord(words, rest, to, "-c", "--command") || !HasWord(words, rest, to, "-u", "--user"))
                    {
                        SuCommand(b, words, rest, to, text);
                        return;
                    }

                    Wrap(b, words, ReadOptions(b, words, rest, to, withArg: "ugGw", longWithArg: ["user", "group", "supp-group", "whitelist-environment"]), to, textEnd, "runuser", appended);
                    return;
                case "nice":
                    Wrap(b, words, ReadOptions(b, words, rest, to, withArg: "n", longWithArg: ["adjustment"]), to, textEnd, "nice", appended);
                    return;
                case "ionice":
                    {
                        var k = ReadOptions(b, words, rest, to, withArg: "cnpPu", longWithArg: ["class", "classdata", "pid", "pgid", "uid"]);
                        if (!b.Flags.Exists(f => f is "p" or "P" or "u" or "pid" or "pgid" or "uid"))
                        {
                            Wrap(b, words, k, to, textEnd, "ionice", appended);
                        }

                        return;
                    }

                case "timeout":
                    Wrap(b, words, Positional(b, words, ReadOptions(b, words, rest, to, withArg: "sk", longWithArg: ["signal", "kill-after"]), to), to, textEnd, "timeout", appended);
                    return;
                case "stdbuf":
                    Wrap(b, words, ReadOptions(b, words, rest, to, withArg: "ioe", longWithArg: ["input", "output", "error"]), to, textEnd, "stdbuf", appended);
                    return;
                case "nohup" or "setsid" or "builtin" or "unbuffer" or "catchsegv":
                    Wrap(b, words, ReadOptions(b, words, rest, to), to, textEnd, name, appended);
                    return;
                case "chroot":
                    {
                        var k = Positional(b, words, ReadOptions(b, words, rest, to, longWithArg: ["userspec", "groups"]), to);
                        if (k >= 0 && k >= to)
                        {
                            Unknown("chroot without a command starts an interactive shell", text);
                            return;
                        }

                        Wrap(b, words, k, to, textEnd, "chroot", appended);
                        return;
                    }

                case "taskset":
                    {
                        var k = ReadOptions(b, words, rest, to);
                        if (!b.Flags.Exists(f => f is "p" or "pid"))
                        {
                            Wrap(b, words, Positional(b, words, k, to), to, textEnd, "taskset", appended);
                        }

                        return;
                    }

                case "flock":
                    Flock(b, words, rest, to, textEnd, text, appended);
                    return;
                case "watch":
                    Watch(b, words, rest, to, textEnd, text, appended);
                    return;
                case "command":
                    {
                        var k = ReadOptions(b, words, rest, to);
                        if (!b.Flags.Exists(f => f is "v" or "V"))
                        {
                            Wrap(b, words, k, to, textEnd, "command", appended);
                        }

                        return;
                    }

                case "exec":
                    Wrap(b, words, ReadOptions(b, words, rest, to, withArg: "a"), to, textEnd, "exec", appended);
                    return;
                case "time":
                    Wrap(b, words, ReadOptions(b, words, rest, to, withArg: "fo", longWithArg: ["format", "output"]), to, textEnd, "time", appended);
                    return;
                case "busybox":
                    if (rest < to && !(words[rest].IsStatic && words[rest].Value.StartsWith('-')))
                    {
                        Wrap(b, words, rest, to, textEnd, "busybox", appended);
                    }
                    else
                    {
                        GenericOptions(b, words, rest, to);
                    }

                    return;
                default:
                    GenericOptions(b, words, rest, to);
                    return;
            }
        }

        /// <summary>Options as GNU getopt reads them, anywhere up to <c>--</c>: letters split, long names kept, the rest arguments.</summary>
        private static void GenericOptions(CommandBuilder b, List<Word> words, int from, int to)
        {
            var optionsEnded = false;
            for (var k = from; k < to; k++)
            {
                var word = words[k];
                if (!word.IsStatic)
                {
                    b.Args.Add(word.Text);
                    b.Dynamic = true;
                    continue;
                }

                var value = word.Value;
                if (optionsEnded || value.Length < 2 || value[0] != '-')
                {
                    b.Args.Add(value);
                    continue;
                }

                if (value == "--")
                {
                    optionsEnded = true;
                    continue;
                }

                if (value[1] == '-')
                {
                    var equals = value.IndexOf('=', StringComparison.Ordinal);
                    b.AddFlag(equals < 0 ? value[2..] : value[2..equals]);
                    if (equals >= 0)
                    {
                        b.Args.Add(value[(equals + 1)..]);
                    }

                    continue;
                }

                foreach (var letter in value.AsSpan(1))
                {
                    b.AddFlag(letter.ToString());
                }
            }
        }

        /// <summary>
        /// A wrapper's own options, up to its first operand (as wrappers that use getopt with <c>+</c> read them): returns
        /// the operand's index, or -1 when a word computed at run time stands where an option or the command is expected.
        /// </summary>
        private static int ReadOptions(CommandBuilder b, List<Word> words, int from, int to, string withArg = "", string[]? longWithArg = null, string attachedOnly = "")
        {
            var k = from;
            while (k < to)
            {
                var word = words[k];
                if (!word.IsStatic)
                {
                    return -1;
                }

                var value = word.Value;
                if (value == "--")
                {
                    return k + 1;
                }

                if (value.Length < 2 || value[0] != '-')
                {
                    return k;
                }

                if (value[1] == '-')
                {
                    var equals = value.IndexOf('=', StringComparison.Ordinal);
                    var name = equals < 0 ? value[2..] : value[2..equals];
                    b.AddFlag(name);
                    if (equals >= 0)
                    {
                        b.Args.Add(value[(equals + 1)..]);
                    }
                    else if (longWithArg is not null && Array.IndexOf(longWithArg, name) >= 0 && k + 1 < to)
                    {
                        b.Args.Add(words[++k].Text);
                    }

                    k++;
                    continue;
                }

                for (var j = 1; j < value.Length; j++)
                {
                    var letter = value[j];
                    b.AddFlag(letter.ToString());
                    if (withArg.Contains(letter, StringComparison.Ordinal))
                    {
                        if (j + 1 < value.Length)
                        {
                            b.Args.Add(value[(j + 1)..]);
                        }
                        else if (k + 1 < to)
                        {
                            b.Args.Add(words[++k].Text);
                        }

                        break;
                    }

                    if (attachedOnly.Contains(letter, StringComparison.Ordinal))
                    {
                        if (j + 1 < value.Length)
                        {
                            b.Args.Add(value[(j + 1)..]);
                        }

                        break;
                    }
                }

                k++;
            }

            return k;
        }

        /// <summary>Takes one operand (timeout's duration, chroot's directory, taskset's mask) as an argument.</summary>
        private static int Positional(CommandBuilder b, List<Word> words, int k, int to)
        {
            if (k < 0 || k >= to)
            {
                return k;
            }

            b.Args.Add(words[k].Text);
            b.Dynamic |= !words[k].IsStatic;
            return k + 1;
        }

        private static bool HasWord(List<Word> words, int from, int to, params string[] values)
        {
            for (var k = from; k < to; k++)
            {
                if (words[k].IsStatic && Array.IndexOf(values, words[k].Value) >= 0)
                {
                    return true;
                }
            }

            return false;
        }

        /// <summary>The command a wrapper runs, from word <paramref name="k"/> on.</summary>
        private void Wrap(CommandBuilder b, List<Word> words, int k, int to, int textEnd, string label, bool appended)
        {
            if (k < 0)
            {
                Unknown($"{b.Name} gets a word computed at run time where its options or command are expected", b.Text);
                return;
            }

            if (k >= to)
            {
                return;
            }

            Enter();
            _chain.Add(label);
            try
            {
                AnalyzeWords(words, k, to, textEnd, appended);
            }
            finally
            {
                _chain.RemoveAt(_chain.Count - 1);
                Exit();
            }
        }

        /// <summary>sh, bash, dash, zsh, ksh: <c>-c STRING</c> is parsed again; a script file or standard input is not read.</summary>
        private void Shell(CommandBuilder b, List<Word> words, int from, int to)
        {
            bool command = false, stdin = false, info = false;
            var k = from;
            for (; k < to; k++)
            {
                var word = words[k];
                if (!word.IsStatic)
                {
                    GenericOptions(b, words, k, to);
                    Unknown($"{b.Name} gets options or code computed at run time ({word.Source})", b.Text);
                    return;
                }

                var value = word.Value;
                if (value is "--" or "-")
                {
                    k++;
                    break;
                }

                if (value.StartsWith("--", StringComparison.Ordinal))
                {
                    b.AddFlag(value[2..]);
                    info |= value is "--version" or "--help";
                    if (value is "--rcfile" or "--init-file")
                    {
                        k++;
                    }

                    continue;
                }

                if (value.Length < 2 || value[0] is not ('-' or '+'))
                {
                    break;
                }

                for (var j = 1; j < value.Length; j++)
                {
                    b.AddFlag(value[j].ToString());
                    command |= value[j] == 'c';
                    stdin |= value[j] == 's';
                    if (value[j] is 'o' or 'O')
                    {
                        k++;
                        break;
                    }
                }
            }

            for (var i = k; i < Math.Min(to, words.Count); i++)
            {
                b.Args.Add(words[i].Text);
                b.Dynamic |= !words[i].IsStatic;
            }

            if (command)
            {
                if (k >= to)
                {
                    Unknown($"{b.Name} -c without a command string", b.Text);
                }
                else if (!words[k].IsStatic)
                {
                    Unknown($"{b.Name} -c runs a string computed at run time ({words[k].Source})", b.Text);
                }
                else
                {
                    ParseNested(words[k].Value, $"{b.Name} -c");
                }

                return;
            }

            if (info)
            {
                return;
            }

            if (k < to && !stdin)
            {
                Unknown($"{b.Name} runs the script {words[k].Text}, which is not read", b.Text);
                return;
            }

            Unknown($"{b.Name} reads commands from its standard input", b.Text);
        }

        /// <summary>An interpreter: inline code (<c>-c</c>, <c>-e</c>, <c>-r</c>) and code read from standard input are not read; a script file or module is a program like any other.</summary>
        private void Interpreter(CommandBuilder b, List<Word> words, int from, int to, string code, string[] codeLong, string withArg, string attachedOnly, string module, string[] info)
        {
            string? inline = null;
            bool program = false, informational = false, fromStdin = false;
            var k = from;
            for (; k < to && inline is null && !program; k++)
            {
                var word = words[k];
                if (!word.IsStatic)
                {
                    Unknown($"{b.Name} gets options or code computed at run time ({word.Source})", b.Text);
                    GenericOptions(b, words, k, to);
                    return;
                }

                var value = word.Value;
                if (value == "--")
                {
                    program = k + 1 < to;
                    fromStdin = !program;
                    k++;
                    break;
                }

                if (value == "-")
                {
                    fromStdin = true;
                    break;
                }

                if (value.Length < 2 || value[0] != '-')
                {
                    program = true;
                    break;
                }

                if (value[1] == '-')
                {
                    var equals = value.IndexOf('=', StringComparison.Ordinal);
                    var name = equals < 0 ? value[2..] : value[2..equals];
                    b.AddFlag(name);
                    if (Array.IndexOf(codeLong, name) >= 0)
                    {
                        inline = "--" + name;
                    }

                    informational |= Array.IndexOf(info, name) >= 0;
                    continue;
                }

                for (var j = 1; j < value.Length; j++)
                {
                    var letter = value[j];
                    b.AddFlag(letter.ToString());
                    informational |= Array.IndexOf(info, letter.ToString()) >= 0;
                    if (code.Contains(letter, StringComparison.Ordinal))
                    {
                        inline = "-" + letter;
                        break;
                    }

                    if (module.Contains(letter, StringComparison.Ordinal))
                    {
                        program = true;
                        break;
                    }

                    if (withArg.Contains(letter, StringComparison.Ordinal))
                    {
                        if (j + 1 == value.Length)
                        {
                            k++;
                        }

                        break;
                    }

                    if (attachedOnly.Contains(letter, StringComparison.Ordinal))
                    {
                        break;
                    }
                }
            }

            for (var i = Math.Min(k, to); i < to; i++)
            {
                b.Args.Add(words[i].Text);
                b.Dynamic |= !words[i].IsStatic;
            }

            if (inline is not null)
            {
                Unknown($"{b.Name} {inline} runs code given on its command line, which is not read", b.Text);
            }
            else if (fromStdin || (!program && !informational))
            {
                Unknown($"{b.Name} reads code from its standard input", b.Text);
            }
        }

        /// <summary>awk: a program that runs commands (<c>system()</c>, a pipe, <c>getline</c>) or comes from a file is not read.</summary>
        private void Awk(CommandBuilder b, List<Word> words, int from, int to)
        {
            Word? program = null;
            var programFile = false;
            var k = from;
            for (; k < to; k++)
            {
                var word = words[k];
                if (!word.IsStatic)
                {
                    break;
                }

                var value = word.Value;
                if (value == "--")
                {
                    k++;
                    break;
                }

                if (value.Length < 2 || value[0] != '-')
                {
                    break;
                }

                if (value[1] == '-')
                {
                    var equals = value.IndexOf('=', StringComparison.Ordinal);
                    var name = equals < 0 ? value[2..] : value[2..equals];
                    b.AddFlag(name);
                    programFile |= name is "file" or "include" or "load";
                    if (name is "source" && k + 1 < to && equals < 0)
                    {
                        program = words[++k];
                    }
                    else if (name is "file" or "assign" or "field-separator" or "include" or "load" && equals < 0)
                    {
                        k++;
                    }

                    continue;
                }

                var letter = value[1];
                b.AddFlag(letter.ToString());
                programFile |= letter is 'f' or 'i' or 'l';
                if (letter is 'F' or 'v' or 'f' or 'e' or 'i' or 'l' && value.Length == 2 && k + 1 < to)
                {
                    k++;
                    if (letter == 'e')
                    {
                        program = words[k];
                    }
                }
            }

            if (program is null && !programFile && k < to)
            {
                program = words[k];
                k++;
            }

            if (program is not null)
            {
                b.Args.Add(program.Text);
            }

            for (var i = k; i < to; i++)
            {
                b.Args.Add(words[i].Text);
                b.Dynamic |= !words[i].IsStatic;
            }

            if (programFile)
            {
                Unknown($"{b.Name} runs a program from a file, which is not read", b.Text);
            }
            else if (program is { IsStatic: false })
            {
                Unknown($"{b.Name} runs a program computed at run time ({program.Source})", b.Text);
            }
            else if (program is not null && AwkRunsCommands().IsMatch(program.Value))
            {
                Unknown($"the {b.Name} program runs commands (system(), a pipe or getline), which are not read", b.Text);
            }
        }

        private void Trap(CommandBuilder b, List<Word> words, int from, int to, string text)
        {
            GenericOptions(b, words, from, to);
            var k = from;
            while (k < to && words[k].IsStatic && words[k].Value is "-p" or "-l" or "--" or "-P")
            {
                k++;
            }

            if (to - k < 2)
            {
                return;
            }

            var action = words[k];
            if (!action.IsStatic)
            {
                Unknown($"trap runs a string computed at run time ({action.Source})", text);
            }
            else if (action.Value is not ("" or "-"))
            {
                ParseNested(action.Value, "trap");
            }
        }

        /// <summary>find: its predicates are its flags; <c>-exec</c> and the like run a command; <c>-delete</c> deletes what it finds.</summary>
        private void Find(CommandBuilder b, List<Word> words, int from, int to)
        {
            string[] withArg =
            [
                "name", "iname", "path", "ipath", "wholename", "iwholename", "regex", "iregex", "lname", "ilname", "type", "xtype",
                "user", "group", "uid", "gid", "perm", "size", "links", "inum", "samefile", "newer", "anewer", "cnewer",
                "atime", "ctime", "mtime", "amin", "cmin", "mmin", "used", "maxdepth", "mindepth", "fstype", "context",
                "printf", "fprint", "fprint0", "fls", "regextype", "files0-from", "D", "O",
            ];
            var paths = new List<string>();
            var inExpression = false;
            var delete = false;
            var k = from;
            while (k < to)
            {
                var word = words[k];
                if (!word.IsStatic)
                {
                    b.Args.Add(word.Text);
                    b.Dynamic = true;
                    k++;
                    continue;
                }

                var value = word.Value;
                if (!inExpression && (value.Length == 0 || value[0] is not ('-' or '(' or '!' or ')' or ',')))
                {
                    paths.Add(value);
                    b.Args.Add(value);
                    k++;
                    continue;
                }

                if (!inExpression && value is "-H" or "-L" or "-P")
                {
                    b.AddFlag(value[1..]);
                    k++;
                    continue;
                }

                inExpression = true;
                if (value is "-exec" or "-execdir" or "-ok" or "-okdir")
                {
                    b.AddFlag(value[1..]);
                    var end = k + 1;
                    while (end < to && !(words[end].IsStatic && words[end].Value is ";" or "+"))
                    {
                        end++;
                    }

                    if (end >= to)
                    {
                        Unknown($"find {value} without ; or +", b.Text);
                        return;
                    }

                    Enter();
                    _chain.Add("find " + value);
                    try
                    {
                        AnalyzeWords(words, k + 1, end, words[end - 1 < k + 1 ? k : end - 1].End, appended: true);
                    }
                    finally
                    {
                        _chain.RemoveAt(_chain.Count - 1);
                        Exit();
                    }

                    k = end + 1;
                    continue;
                }

                if (value.Length > 1 && value[0] == '-')
                {
                    var predicate = value[1..];
                    b.AddFlag(predicate);
                    delete |= predicate == "delete";
                    if (predicate is "fprint" or "fprint0" or "fls" or "fprintf" && k + 1 < to)
                    {
                        b.Writes.Add(words[k + 1].Text);
                    }

                    var arguments = predicate == "fprintf" ? 2 : Array.IndexOf(withArg, predicate) >= 0 || predicate.StartsWith("newer", StringComparison.Ordinal) ? 1 : 0;
                    for (var i = 0; i < arguments && k + 1 < to; i++)
                    {
                        b.Args.Add(words[++k].Text);
                    }

                    k++;
                    continue;
                }

                b.Args.Add(value);
                k++;
            }

            if (delete)
            {
                // find -delete removes what it finds, depth first: to a rule, a recursive forced rm of its paths.
                _chain.Add("find -delete");
                try
                {
                    var rm = _ctx.Add("rm", _chain, b.Text);
                    rm.AddFlag("r");
                    rm.AddFlag("f");
                    rm.Args.AddRange(paths.Count == 0 ? ["."] : paths);
                    rm.Dynamic = true;
                }
                finally
                {
                    _chain.RemoveAt(_chain.Count - 1);
                }
            }
        }

        private void Xargs(CommandBuilder b, List<Word> words, int from, int to, int textEnd)
        {
            var k = ReadOptions(b, words, from, to, withArg: "adEILnPs", longWithArg: ["arg-file", "delimiter", "max-args", "max-procs", "max-chars", "process-slot-var"], attachedOnly: "eil");
            if (k >= 0 && k >= to)
            {
                // With no command xargs runs echo.
                _chain.Add("xargs");
                try
                {
                    _ctx.Add("echo", _chain, b.Text).Dynamic = true;
                }
                finally
                {
                    _chain.RemoveAt(_chain.Count - 1);
                }

                return;
            }

            Wrap(b, words, k, to, textEnd, "xargs", appended: true);
        }

        private void Env(CommandBuilder b, List<Word> words, int from, int to, int textEnd, bool appended)
        {
            var k = from;
            while (k < to)
            {
                var word = words[k];
                if (!word.IsStatic)
                {
                    Wrap(b, words, -1, to, textEnd, "env", appended);
                    return;
                }

                var value = word.Value;
                if (value == "--")
                {
                    k++;
                    break;
                }

                if (value == "-")
                {
                    b.AddFlag("i");
                    k++;
                    continue;
                }

                if (value.Length < 2 || value[0] != '-')
                {
                    break;
                }

                string? split = null;
                var splitFound = false;
                if (value[1] == '-')
                {
                    var equals = value.IndexOf('=', StringComparison.Ordinal);
                    var name = equals < 0 ? value[2..] : value[2..equals];
                    b.AddFlag(name);
                    if (name == "split-string")
                    {
                        splitFound = true;
                        split = equals >= 0 ? value[(equals + 1)..] : k + 1 < to ? words[++k].Text : null;
                    }
                    else if (equals >= 0)
                    {
                        b.Args.Add(value[(equals + 1)..]);
                    }
                    else if (name is "unset" or "chdir" && k + 1 < to)
                    {
                        b.Args.Add(words[++k].Text);
                    }
                }
                else
                {
                    for (var j = 1; j < value.Length; j++)
                    {
                        var letter = value[j];
                        b.AddFlag(letter.ToString());
                        if (letter is 'u' or 'C' or 'S')
                        {
                            var argument = j + 1 < value.Length ? value[(j + 1)..] : k + 1 < to ? words[++k].Text : null;
                            if (letter == 'S')
                            {
                                splitFound = true;
                                split = argument;
                            }
                            else if (argument is not null)
                            {
                                b.Args.Add(argument);
                            }

                            break;
                        }
                    }
                }

                if (splitFound)
                {
                    // env -S splits one string into the command and its arguments; the words after it are appended.
                    if (split is null || words.Skip(k).Take(to - k).Any(w => !w.IsStatic) || (k < to && !words[k].IsStatic))
                    {
                        Unknown("env -S splits a string computed at run time", b.Text);
                        return;
                    }

                    var line = string.Join(' ', [split, .. words.Skip(k + 1).Take(to - k - 1).Select(w => w.Source)]);
                    b.Args.Add(split);
                    ParseNested(line, "env -S");
                    return;
                }

                k++;
            }

            k = SkipAssignments(b, words, k, to);
            Wrap(b, words, k, to, textEnd, "env", appended);
        }

        /// <summary>NAME=VALUE words before a wrapper's command (env, sudo): settings, not the command.</summary>
        private static int SkipAssignments(CommandBuilder b, List<Word> words, int k, int to)
        {
            while (k < to && IsAssignmentPrefix(words[k].IsStatic ? words[k].Value : words[k].Source))
            {
                b.Args.Add(words[k].Text);
                b.Dynamic |= !words[k].IsStatic;
                k++;
            }

            return k;
        }

        private void Sudo(CommandBuilder b, List<Word> words, int from, int to, int textEnd, bool appended)
        {
            var k = ReadOptions(
                b, words, from, to, withArg: "ugpCDrtTUR",
                longWithArg: ["user", "group", "prompt", "close-from", "chdir", "role", "type", "command-timeout", "other-user", "host", "chroot"]);
            if (k < 0)
            {
                Wrap(b, words, k, to, textEnd, "sudo", appended);
                return;
            }

            if (b.Flags.Exists(f => f is "e" or "edit" or "l" or "list" or "v" or "validate" or "V" or "version" or "K" or "remove-timestamp" or "h" or "help"))
            {
                // sudoedit, listing, validating: no command runs.
                for (var i = k; i < to; i++)
                {
                    b.Args.Add(words[i].Text);
                }

                return;
            }

            k = SkipAssignments(b, words, k, to);
            if (k >= to && b.Flags.Exists(f => f is "s" or "i" or "shell" or "login"))
            {
                Unknown("sudo -s/-i starts a shell that reads its standard input", b.Text);
                return;
            }

            Wrap(b, words, k, to, textEnd, "sudo", appended);
        }

        /// <summary>su and runuser without -u: <c>-c STRING</c> runs the string with the user's shell; without it a shell reads standard input.</summary>
        private void SuCommand(CommandBuilder b, List<Word> words, int from, int to, string text)
        {
            Word? command = null;
            for (var k = from; k < to; k++)
            {
                var word = words[k];
                if (!word.IsStatic)
                {
                    b.Args.Add(word.Text);
                    b.Dynamic = true;
                    continue;
                }

                var value = word.Value;
                if (value.StartsWith("--command=", StringComparison.Ordinal) || value.StartsWith("--session-command=", StringComparison.Ordinal))
                {
                    b.AddFlag(value[2..value.IndexOf('=', StringComparison.Ordinal)]);
                    command = new Word { Value = value[(value.IndexOf('=', StringComparison.Ordinal) + 1)..], Source = value };
                    continue;
                }

                if (value is "--command" or "--session-command" or "-c" || (value.Length > 1 && value[0] == '-' && value[1] != '-' && value[^1] == 'c'))
                {
                    b.AddFlag(value.TrimStart('-'));
                    if (k + 1 < to)
                    {
                        command = words[++k];
                    }

                    continue;
                }

                if (value is "-s" or "--shell" or "-g" or "--group" or "-G" or "--supp-group" or "-w" or "--whitelist-environment" && k + 1 < to)
                {
                    b.AddFlag(value.TrimStart('-'));
                    b.Args.Add(words[++k].Text);
                    continue;
                }

                if (value.Length > 1 && value[0] == '-')
                {
                    b.AddFlag(value.TrimStart('-'));
                    continue;
                }

                b.Args.Add(value);
            }

            if (command is null)
            {
                Unknown($"{b.Name} without -c starts a shell that reads its standard input", text);
            }
            else if (!command.IsStatic)
            {
                Unknown($"{b.Name} -c runs a string computed at run time ({command.Source})", text);
            }
            else
            {
                ParseNested(command.Value, $"{b.Name} -c");
            }
        }

        private void Flock(CommandBuilder b, List<Word> words, int from, int to, int textEnd, string text, bool appended)
        {
            for (var k = from; k < to; k++)
            {
                if (words[k].IsStatic && words[k].Value is "-c" or "--command")
                {
                    GenericOptions(b, words, from, k);
                    b.AddFlag(words[k].Value.TrimStart('-'));
                    if (k + 1 >= to)
                    {
                        return;
                    }

                    var command = words[k + 1];
                    if (!command.IsStatic)
                    {
                        Unknown($"flock -c runs a string computed at run time ({command.Source})", text);
                        return;
                    }

                    b.Args.Add(command.Value);
                    ParseNested(command.Value, "flock -c");
                    return;
                }
            }

            var next = Positional(b, words, ReadOptions(b, words, from, to, withArg: "wE", longWithArg: ["timeout", "conflict-exit-code"]), to);
            Wrap(b, words, next, to, textEnd, "flock", appended);
        }

        /// <summary>watch joins its arguments with spaces and runs them with <c>sh -c</c>, unless given <c>-x</c>.</summary>
        private void Watch(CommandBuilder b, List<Word> words, int from, int to, int textEnd, string text, bool appended)
        {
            var k = ReadOptions(b, words, from, to, withArg: "nq", longWithArg: ["interval"]);
            if (k < 0 || k >= to)
            {
                Wrap(b, words, k, to, textEnd, "watch", appended);
                return;
            }

            if (b.Flags.Exists(f => f is "x" or "exec"))
            {
                Wrap(b, words, k, to, textEnd, "watch", appended);
                return;
            }

            if (words.Skip(k).Take(to - k).Any(w => !w.IsStatic))
            {
                Unknown("watch runs a command string computed at run time", text);
                return;
            }

            var line = string.Join(' ', words.Skip(k).Take(to - k).Select(w => w.Value));
            b.Args.Add(line);
            ParseNested(line, "watch");
        }
    }
}
