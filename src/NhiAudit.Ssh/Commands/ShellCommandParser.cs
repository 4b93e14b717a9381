using System.Text;

namespace NhiAudit.Ssh.Commands;

/// <summary>
/// Reads an SSH exec command line the way a POSIX shell (sh, dash, bash) would, and lists every command it may run:
/// <c>rm -fr x</c>, <c>/bin/rm -r -f x</c>, <c>sh -c 'cd / &amp;&amp; rm -rf x'</c> and <c>find / -exec rm -rf {} +</c>
/// are all <c>rm</c> with flags <c>r</c> and <c>f</c>. What the shell computes at run time cannot be read here and is
/// reported as unclassified instead.
/// </summary>
/// <remarks>
/// <para>Grammar: words with single quotes, double quotes (with their backslash escapes), <c>$'…'</c> and backslash
/// escapes; <c>;</c> <c>&amp;</c> <c>&amp;&amp;</c> <c>||</c> <c>|</c> <c>|&amp;</c> and newlines between commands; comments;
/// subshells <c>( … )</c>, groups <c>{ …; }</c>, <c>if</c>/<c>while</c>/<c>until</c>/<c>for</c>/<c>case</c> and function
/// definitions (their commands are listed as if they ran); leading variable
/// assignments; redirections (<c>&gt;</c> <c>&gt;&gt;</c> <c>&lt;</c> <c>2&gt;&amp;1</c> <c>&amp;&gt;</c> here-documents and
/// here-strings), whose targets are recorded and never taken as arguments; command substitutions <c>$(…)</c> and
/// backquotes and process substitutions <c>&lt;(…)</c>, whose commands are listed too. Where bash and dash differ, the
/// line is read the way that runs more: <c>[[ … ]]</c> and <c>(( … ))</c> as dash reads them (a command named <c>[[</c>;
/// two subshells), brace expansion as bash does it.</para>
/// <para>Commands that run other commands are looked through: <c>sh</c>/<c>bash</c>/<c>dash</c>/<c>zsh</c>/<c>ksh</c>
/// <c>-c</c> (the string is parsed again, to <see cref="MaxDepth"/> levels), <c>env</c> (and <c>env -S</c>),
/// <c>sudo</c>, <c>doas</c>, <c>su -c</c>, <c>runuser</c>, <c>nice</c>, <c>ionice</c>, <c>timeout</c>, <c>nohup</c>,
/// <c>stdbuf</c>, <c>setsid</c>, <c>chroot</c>, <c>taskset</c>, <c>flock</c>, <c>watch</c>, <c>command</c>,
/// <c>builtin</c>, <c>exec</c>, <c>time</c>, <c>busybox NAME</c>, <c>xargs</c> (what it appends is unknown: the command
/// is <see cref="ShellCommand.Dynamic"/>), <c>find -exec/-execdir/-ok/-okdir</c>, and <c>trap</c>'s action. The
/// wrapper is listed as well as the command it runs. <c>find … -delete</c> is listed as <c>rm</c> with flags <c>r</c>
/// and <c>f</c> too (via <c>find -delete</c>), since that is what it does.</para>
/// <para>Unclassified: a command name computed at run time (<c>$X</c>, <c>${X}</c>, <c>$(…)</c>, backquotes, a glob,
/// brace or arithmetic expansion); <c>eval</c>; <c>source</c> and <c>.</c>; <c>alias</c> definitions; a shell given a
/// computed string, a script file or its standard input (so <c>curl … | sh</c>, <c>sh &lt; script</c> and <c>exec bash</c>);
/// an interpreter given code (<c>python -c</c>, <c>perl -e</c>, <c>ruby -e</c>, <c>node -e</c>, <c>php -r</c>,
/// <c>lua -e</c>, or reading code from standard input); an awk program that calls <c>system()</c> or pipes; a
/// non-POSIX shell (<c>fish</c>, <c>csh</c>); unterminated quotes or substitutions, syntax errors, nesting deeper than
/// <see cref="MaxDepth"/>, more than <see cref="MaxCommands"/> commands, and a line longer than <see cref="MaxLength"/>.</para>
/// <para>Never throws, whatever the input: every path through the parser consumes input or stops, and recursion is
/// bounded by <see cref="MaxDepth"/>.</para>
/// <para>Best effort by nature: a shell on the host can always compute a command (a variable set by an earlier
/// command, a script already on the host, a program that runs what its input says). A deny-list over the result
/// catches the spellings of a command, not every way to run it; an allow-list is the honest control.</para>
/// </remarks>
public static partial class ShellCommandParser
{
    /// <summary>The longest command line read (in UTF-16 code units); a longer one is unclassified as a whole.</summary>
    public const int MaxLength = 64 * 1024;

    /// <summary>
    /// How deep nesting goes before the rest is unclassified: each <c>sh -c</c> string, substitution, here-document and
    /// wrapper (<c>sudo</c>, <c>env</c>, <c>find -exec</c>…) inside another is one level.
    /// </summary>
    public const int MaxDepth = 16;

    /// <summary>How many commands are listed; beyond that the line is unclassified.</summary>
    public const int MaxCommands = 256;

    private const int MaxUnclassified = 32;
    private const string TopLevelVia = "command line";

    private static readonly ShellParseResult Empty = new([], []);

    /// <summary>Reads <paramref name="commandLine"/>; never throws.</summary>
    /// <param name="commandLine">The exec request's command line, as the host's login shell will get it with <c>-c</c>.</param>
    /// <returns>The commands it may run and what could not be read.</returns>
    public static ShellParseResult Parse(string? commandLine)
    {
        if (string.IsNullOrEmpty(commandLine))
        {
            return Empty;
        }

        var context = new Context();
        if (commandLine.Length > MaxLength)
        {
            context.Unknown($"the command line is longer than {MaxLength} characters", TopLevelVia, commandLine);
            return context.Result();
        }

        try
        {
            new Parser(commandLine, context, []).ParseTop();
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // A bug here must not let a command through unread: whatever was not read is unclassified.
            context.Unknown("the command line could not be read (" + ex.GetType().Name + ")", TopLevelVia, commandLine);
        }

        return context.Result();
    }

    /// <summary>A reason to stop reading (a syntax error, too deep, too many): recorded as unclassified by the nearest parse.</summary>
    private sealed class StopReading(string reason) : Exception(reason);

    private sealed class CommandBuilder(string name, List<string> chain, string text)
    {
        public string Name { get; } = name;

        public List<string> Chain { get; } = chain;

        public string Text { get; } = text;

        public List<string> Flags { get; } = [];

        public List<string> Args { get; } = [];

        public List<string> Writes { get; set; } = [];

        public List<string> Reads { get; set; } = [];

        public bool Dynamic { get; set; }

        public void AddFlag(string flag)
        {
            if (flag.Length > 0 && !Flags.Contains(flag))
            {
                Flags.Add(flag);
            }
        }

        public ShellCommand Build() => new()
        {
            Name = Name,
            Args = [.. Args],
            Flags = [.. Flags],
            Via = Chain.Count == 0 ? TopLevelVia : string.Join(" / ", Chain),
            Text = Text,
            Writes = [.. Writes],
            Reads = [.. Reads],
            Dynamic = Dynamic,
        };
    }

    private sealed class Context
    {
        private readonly List<ShellUnclassified> _unclassified = [];
        private bool _tooMany;

        public List<CommandBuilder> Commands { get; } = [];

        public int Depth { get; set; }

        public int UnclassifiedCount => _unclassified.Count;

        public CommandBuilder Add(string name, IReadOnlyList<string> chain, string text)
        {
            var builder = new CommandBuilder(name, [.. chain], Shorten(text));
            if (Commands.Count >= MaxCommands)
            {
                if (!_tooMany)
                {
                    _tooMany = true;
                    Unknown($"the command line runs more than {MaxCommands} commands", ViaOf(chain), text);
                }

                return builder;
            }

            Commands.Add(builder);
            return builder;
        }

        public void Unknown(string reason, string via, string text)
        {
            if (_unclassified.Count < MaxUnclassified)
            {
                _unclassified.Add(new ShellUnclassified(reason, via, Shorten(text)));
            }
        }

        public void Truncate(int commands, int unclassified)
        {
            Commands.RemoveRange(commands, Commands.Count - commands);
            _unclassified.RemoveRange(unclassified, _unclassified.Count - unclassified);
        }

        public ShellParseResult Result() => new([.. Commands.Select(c => c.Build())], [.. _unclassified]);

        private static string Shorten(string text) => text.Length <= 1024 ? text : text[..1024] + "…";
    }

    private static string ViaOf(IReadOnlyList<string> chain) => chain.Count == 0 ? TopLevelVia : string.Join(" / ", chain);

    /// <summary>One word as the shell reads it: its value after quote removal and what makes it not static.</summary>
    private sealed class Word
    {
        public int Start { get; init; }

        public int End { get; set; }

        public string Value { get; set; } = "";

        public string Source { get; set; } = "";

        /// <summary>Some part was quoted or escaped (so it is never a reserved word).</summary>
        public bool Quoted { get; set; }

        /// <summary>Some part is expanded at run time: a parameter, a command or process substitution, arithmetic.</summary>
        public bool Dynamic { get; set; }

        /// <summary>An unquoted <c>*</c>, <c>?</c> or <c>[…]</c>: a pattern the shell may expand into file names.</summary>
        public bool Glob { get; set; }

        /// <summary>An unquoted <c>{a,b}</c> or <c>{1..3}</c>: bash and zsh expand it into several words.</summary>
        public bool Brace { get; set; }

        /// <summary>What a rule sees: the value, or as written when it is computed at run time.</summary>
        public string Text => Dynamic || Brace ? Source : Value;

        public bool IsStatic => !Dynamic && !Brace;
    }

    private enum RedirectKind
    {
        Read,
        Write,
        ReadWrite,
        Duplicate,
        HereDocument,
        HereString,
    }

    /// <summary>The words, assignments and redirections of one simple command while it is read.</summary>
    private sealed class SimpleCommand
    {
        public List<Word> Words { get; } = [];

        public List<Word> Assignments { get; } = [];

        public List<(RedirectKind Kind, Word Target)> Redirects { get; } = [];

        public int Start { get; private set; } = -1;

        public int End { get; private set; }

        public bool IsEmpty => Start < 0;

        public void Extend(int start, int end)
        {
            if (Start < 0)
            {
                Start = start;
            }

            End = end;
        }

        public void Reset()
        {
            Words.Clear();
            Assignments.Clear();
            Redirects.Clear();
            Start = -1;
            End = 0;
        }
    }

    private sealed partial class Parser(string source, Context context, List<string> chain)
    {
        private static readonly HashSet<string> TransparentKeywords = ["if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "{", "}", "coproc"];
        private static readonly HashSet<string> PosixShells = ["sh", "bash", "dash", "zsh", "ksh", "ksh93", "mksh", "pdksh", "oksh", "loksh", "lksh", "ash", "yash", "posh", "rbash"];
        private static readonly HashSet<string> OtherShells = ["csh", "tcsh", "fish", "nu", "xonsh", "elvish", "pwsh", "powershell", "rc", "es"];
        private static readonly HashSet<string> Awks = ["awk", "gawk", "mawk", "nawk", "original-awk"];

        private readonly string _s = source;
        private readonly Context _ctx = context;
        private readonly List<string> _chain = chain;
        private readonly List<(string Delimiter, bool Expand, bool StripTabs)> _hereDocuments = [];
        private int _pos;

        private string Via => ViaOf(_chain);

        /// <summary>Reads the whole source; what stops the reading is recorded as unclassified, with what was read before it kept.</summary>
        public void ParseTop()
        {
            var depth = _ctx.Depth;
            try
            {
                ParseList(untilParen: false);
            }
            catch (StopReading stop)
            {
                _ctx.Depth = depth;
                _ctx.Unknown(stop.Message, Via, _s);
            }
        }

        // ------------------------------------------------------------------ lists, pipelines, compound commands

        private void ParseList(bool untilParen)
        {
            var command = new SimpleCommand();
            var pipelineStart = _ctx.Commands.Count;
            var piped = false;
            var subshells = 0;
            var cases = 0;
            var expectPattern = false;
            var commandPosition = true;
            var pendingOperand = false;
            var any = false;

            void EndPipeline()
            {
                if (piped)
                {
                    for (var i = pipelineStart; i < _ctx.Commands.Count; i++)
                    {
                        var commandChain = _ctx.Commands[i].Chain;
                        commandChain.Insert(Math.Min(_chain.Count, commandChain.Count), "pipeline");
                    }
                }

                piped = false;
                pipelineStart = _ctx.Commands.Count;
            }

            void Finish()
            {
                if (!command.IsEmpty)
                {
                    Analyze(command);
                    command.Reset();
                }
            }

            void Separator(bool needsOperand)
            {
                if (pendingOperand || !any)
                {
                    throw new StopReading($"syntax error near '{_s[_pos]}'");
                }

                Finish();
                pendingOperand = needsOperand;
                commandPosition = true;
            }

            while (true)
            {
                var before = _pos;
                SkipBlanks();
                if (_pos >= _s.Length)
                {
                    Finish();
                    EndPipeline();
                    if (untilParen)
                    {
                        throw new StopReading("unterminated $( or <(");
                    }

                    if (subshells > 0)
                    {
                        throw new StopReading("unclosed (");
                    }

                    if (pendingOperand)
                    {
                        throw new StopReading("syntax error: the command line ends after an operator");
                    }

                    if (cases > 0)
                    {
                        throw new StopReading("syntax error: case without esac");
                    }

                    return;
                }

                var c = _s[_pos];
                if (c == '#')
                {
                    while (_pos < _s.Length && _s[_pos] != '\n')
                    {
                        _pos++;
                    }

                    continue;
                }

                if (c == '\n')
                {
                    Finish();
                    if (!pendingOperand)
                    {
                        EndPipeline();
                    }

                    _pos++;
                    ReadHereDocuments();
                    commandPosition = true;
                    continue;
                }

                if (expectPattern && command.IsEmpty)
                {
                    var keyword = PeekKeyword();
                    if (keyword == "esac")
                    {
                        _pos += 4;
                        cases--;
                        expectPattern = false;
                        commandPosition = false;
                        any = true;
                        continue;
                    }

                    ReadCasePattern();
                    expectPattern = false;
                    commandPosition = true;
                    continue;
                }

                var next = _pos + 1 < _s.Length ? _s[_pos + 1] : '\0';
                switch (c)
                {
                    case ';':
                        if (next is ';' or '&')
                        {
                            if (cases == 0)
                            {
                                throw new StopReading("syntax error near ';;'");
                            }

                            Finish();
                            EndPipeline();
                            _pos += next == ';' && _pos + 2 < _s.Length && _s[_pos + 2] == '&' ? 3 : 2;
                            expectPattern = true;
                            commandPosition = true;
                            continue;
                        }

                        Separator(needsOperand: false);
                        EndPipeline();
                        _pos++;
                        continue;
                    case '&' when next == '&':
                        Separator(needsOperand: true);
                        EndPipeline();
                        _pos += 2;
                        continue;
                    case '&' when next == '>':
                        ReadRedirect(command, _pos);
                        any = true;
                        continue;
                    case '&':
                        Separator(needsOperand: false);
                        EndPipeline();
                        _pos++;
                        continue;
                    case '|' when next == '|':
                        Separator(needsOperand: true);
                        EndPipeline();
                        _pos += 2;
                        continue;
                    case '|':
                        Separator(needsOperand: true);
                        piped = true;
                        _pos += next == '&' ? 2 : 1;
                        continue;
                    case '(':
                        if (command.Words.Count == 1 && command.Assignments.Count == 0 && command.Redirects.Count == 0 && IsEmptyParens())
                        {
                            // name () compound: a function definition; its body's commands are listed as they appear.
                            command.Reset();
                            commandPosition = true;
                            continue;
                        }

                        if (!command.IsEmpty)
                        {
                            throw new StopReading("syntax error near '('");
                        }

                        // ((…)) is read as dash reads it, two subshells (bash reads arithmetic there): the host's shell may
                        // be either, and the commands dash would run are the ones that matter.
                        any = true;
                        pendingOperand = false;
                        subshells++;
                        _pos++;
                        commandPosition = true;
                        continue;
                    case ')':
                        Finish();
                        if (pendingOperand)
                        {
                            throw new StopReading("syntax error near ')'");
                        }

                        if (subshells > 0)
                        {
                            subshells--;
                            _pos++;
                            commandPosition = false;
                            continue;
                        }

                        if (untilParen)
                        {
                            EndPipeline();
                            if (cases > 0)
                            {
                                throw new StopReading("syntax error: case without esac");
                            }

                            _pos++;
                            return;
                        }

                        throw new StopReading("syntax error near unexpected ')'");
                    case '<' or '>' when next != '(':
                        ReadRedirect(command, _pos);
                        any = true;
                        pendingOperand = false;
                        continue;
                    default:
                        break;
                }

                var word = ReadWord();
                if (_pos < _s.Length && _s[_pos] is '<' or '>' && !(_pos + 1 < _s.Length && _s[_pos + 1] == '(') && IsRedirectPrefix(word))
                {
                    ReadRedirect(command, word.Start);
                    any = true;
                    pendingOperand = false;
                    continue;
                }

                any = true;
                pendingOperand = false;
                if (commandPosition && command.IsEmpty && !word.Quoted && word.IsStatic)
                {
                    if (TransparentKeywords.Contains(word.Value) || (word.Value == "esac" && cases > 0))
                    {
                        if (word.Value == "esac")
                        {
                            cases--;
                        }

                        continue;
                    }

                    switch (word.Value)
                    {
                        case "case":
                            ReadCaseHead();
                            cases++;
                            expectPattern = true;
                            continue;
                        case "for" or "select":
                            ReadForHead();
                            continue;
                        case "function":
                            SkipBlanks();
                            ReadWord();
                            SkipBlanks();
                            IsEmptyParens();
                            continue;
                        default:
                            break;
                    }
                }

                command.Extend(word.Start, word.End);
                if (command.Words.Count == 0 && IsAssignment(word))
                {
                    command.Assignments.Add(word);
                }
                else
                {
                    command.Words.Add(word);
                }

                commandPosition = false;
                if (_pos == before)
                {
                    throw new StopReading("the parser could not advance");
                }
            }
        }

        private string? PeekKeyword()
        {
            var end = _pos;
            while (end < _s.Length && char.IsAsciiLetter(_s[end]))
            {
                end++;
            }

            var atBoundary = end >= _s.Length || IsMeta(_s[end]);
            return atBoundary && end > _pos ? _s[_pos..end] : null;
        }

        /// <summary>At <c>(</c>: consumes <c>( )</c> (blanks allowed) and returns true, or leaves the position alone.</summary>
        private bool IsEmptyParens()
        {
            if (_pos >= _s.Length || _s[_pos] != '(')
            {
                return false;
            }

            var end = _pos + 1;
            while (end < _s.Length && _s[end] is ' ' or '\t')
            {
                end++;
            }

            if (end < _s.Length && _s[end] == ')')
            {
                _pos = end + 1;
                return true;
            }

            return false;
        }

        private void ReadCaseHead()
        {
            SkipBlanks();
            ReadWord();
            SkipBlanksAndNewlines();
            if (PeekKeyword() != "in")
            {
                throw new StopReading("syntax error: case without in");
            }

            _pos += 2;
        }

        private void ReadCasePattern()
        {
            SkipBlanksAndNewlines();
            if (_pos < _s.Length && _s[_pos] == '(')
            {
                _pos++;
            }

            while (true)
            {
                SkipBlanks();
                if (_pos >= _s.Length)
                {
                    throw new StopReading("syntax error: unterminated case pattern");
                }

                switch (_s[_pos])
                {
                    case ')':
                        _pos++;
                        return;
                    case '|':
                        _pos++;
                        continue;
                    case var m when IsMeta(m):
                        throw new StopReading($"syntax error near '{m}' in a case pattern");
                    default:
                        ReadWord();
                        continue;
                }
            }
        }

        private void ReadForHead()
        {
            SkipBlanks();
            if (_pos + 1 < _s.Length && _s[_pos] == '(' && _s[_pos + 1] == '(')
            {
                _pos += 2;
                if (!ScanArithmetic())
                {
                    throw new StopReading("syntax error in for (( … ))");
                }

                return;
            }

            ReadWord();
            var afterName = _pos;
            SkipBlanksAndNewlines();
            if (PeekKeyword() != "in")
            {
                _pos = afterName;
                return;
            }

            _pos += 2;
            while (true)
            {
                SkipBlanks();
                if (_pos >= _s.Length || _s[_pos] is ';' or '\n')
                {
                    return;
                }

                if (IsMeta(_s[_pos]))
                {
                    throw new StopReading($"syntax error near '{_s[_pos]}' in a for list");
                }

                ReadWord();
            }
        }

        // ------------------------------------------------------------------ words

        private static bool IsMeta(char c) => c is ' ' or '\t' or '\n' or ';' or '&' or '|' or '(' or ')' or '<' or '>';

        private void SkipBlanks()
        {
            while (_pos < _s.Length)
            {
                var c = _s[_pos];
                if (c is ' ' or '\t')
                {
                    _pos++;
                }
                else if (c == '\\' && _pos + 1 < _s.Length && _s[_pos + 1] == '\n')
                {
                    _pos += 2;
                }
                else
                {
                    return;
                }
            }
        }

        private void SkipBlanksAndNewlines()
        {
            while (true)
            {
                SkipBlanks();
                if (_pos < _s.Length && _s[_pos] == '\n')
                {
                    _pos++;
                    ReadHereDocuments();
                    continue;
                }

                if (_pos < _s.Length && _s[_pos] == '#')
                {
                    while (_pos < _s.Length && _s[_pos] != '\n')
                    {
                        _pos++;
                    }

                    continue;
                }

                return;
            }
        }

        private Word ReadWord()
        {
            var word = new Word { Start = _pos };
            var value = new StringBuilder();
            var braceOpen = false;
            var braceSeparator = false;
            while (_pos < _s.Length)
            {
                var c = _s[_pos];
                if (c is '<' or '>' && _pos + 1 < _s.Length && _s[_pos + 1] == '(' && _pos == word.Start)
                {
                    // Process substitution <(…) / >(…): the commands inside run; the word is a path only known then.
                    _pos += 2;
                    Substitution(c == '<' ? "<(…)" : ">(…)");
                    word.Dynamic = true;
                    continue;
                }

                if (c == '(' && value.Length > 0 && !word.Quoted && value[^1] == '=' && IsAssignmentPrefix(value.ToString()))
                {
                    // name=( … ): an array assignment; its elements are words.
                    _pos++;
                    ReadArrayElements();
                    value.Append("(…)");
                    continue;
                }

                if (IsMeta(c))
                {
                    break;
                }

                switch (c)
                {
                    case '\\':
                        if (_pos + 1 >= _s.Length)
                        {
                            value.Append('\\');
                            _pos++;
                        }
                        else if (_s[_pos + 1] == '\n')
                        {
                            _pos += 2;
                        }
                        else
                        {
                            value.Append(_s[_pos + 1]);
                            word.Quoted = true;
                            _pos += 2;
                        }

                        break;
                    case '\'':
                        var end = _s.IndexOf('\'', _pos + 1);
                        if (end < 0)
                        {
                            throw new StopReading("unterminated single quote");
                        }

                        value.Append(_s, _pos + 1, end - _pos - 1);
                        word.Quoted = true;
                        _pos = end + 1;
                        break;
                    case '"':
                        word.Quoted = true;
                        _pos++;
                        ReadDoubleQuoted(word, value);
                        break;
                    case '$':
                        ReadDollar(word, value, inDoubleQuotes: false);
                        break;
                    case '`':
                        ReadBackquote(word, value, inDoubleQuotes: false);
                        break;
                    case '*' or '?':
                        word.Glob = true;
                        value.Append(c);
                        _pos++;
                        break;
                    case '[':
                        if (ClosesBracket(_pos + 1))
                        {
                            word.Glob = true;
                        }

                        value.Append(c);
                        _pos++;
                        break;
                    case '{':
                        braceOpen = true;
                        braceSeparator = false;
                        value.Append(c);
                        _pos++;
                        break;
                    case ',':
                        braceSeparator |= braceOpen;
                        value.Append(c);
                        _pos++;
                        break;
                    case '.':
                        braceSeparator |= braceOpen && _pos + 1 < _s.Length && _s[_pos + 1] == '.';
                        value.Append(c);
                        _pos++;
                        break;
                    case '}':
                        word.Brace |= braceOpen && braceSeparator;
                        braceOpen = false;
                        value.Append(c);
                        _pos++;
                        break;
                    default:
                        value.Append(c);
                        _pos++;
                        break;
                }
            }

            word.End = _pos;
            word.Value = value.ToString();
            word.Source = _s[word.Start.._pos];
            return word;
        }

        private bool ClosesBracket(int from)
        {
            for (var i = from; i < _s.Length && !IsMeta(_s[i]); i++)
            {
                if (_s[i] == ']')
                {
                    return true;
                }
            }

            return false;
        }

        private void ReadArrayElements()
        {
            Enter();
            try
            {
                ReadArrayElementsInside();
            }
            finally
            {
                Exit();
            }
        }

        private void ReadArrayElementsInside()
        {
            while (true)
            {
                SkipBlanksAndNewlines();
                if (_pos >= _s.Length)
                {
                    throw new StopReading("unterminated array assignment");
                }

                if (_s[_pos] == ')')
                {
                    _pos++;
                    return;
                }

                if (IsMeta(_s[_pos]))
                {
                    throw new StopReading($"syntax error near '{_s[_pos]}' in an array assignment");
                }

                ReadWord();
            }
        }

        private void ReadDoubleQuoted(Word word, StringBuilder value)
        {
            while (true)
            {
                if (_pos >= _s.Length)
                {
                    throw new StopReading("unterminated double quote");
                }

                var c = _s[_pos];
                switch (c)
                {
                    case '"':
                        _pos++;
                        return;
                    case '\\' when _pos + 1 < _s.Length:
                        var escaped = _s[_pos + 1];
                        if (escaped is '$' or '`' or '"' or '\\')
                        {
                            value.Append(escaped);
                        }
                        else if (escaped != '\n')
                        {
                            value.Append('\\').Append(escaped);
                        }

                        _pos += 2;
                        break;
                    case '$':
                        ReadDollar(word, value, inDoubleQuotes: true);
                        break;
                    case '`':
                        ReadBackquote(word, value, inDoubleQuotes: true);
                        break;
                    default:
                        value.Append(c);
                        _pos++;
                        break;
                }
            }
        }

        private void ReadDollar(Word word, StringBuilder value, bool inDoubleQuotes)
        {
            var start = _pos;
            var next = _pos + 1 < _s.Length ? _s[_pos + 1] : '\0';
            switch (next)
            {
                case '\'' when !inDoubleQuotes:
                    _pos += 2;
                    ReadAnsiC(value);
                    word.Quoted = true;
                    return;
                case '"' when !inDoubleQuotes:
                    _pos += 2;
                    word.Quoted = true;
                    ReadDoubleQuoted(word, value);
                    return;
                case '(':
                    if (_pos + 2 < _s.Length && _s[_pos + 2] == '(')
                    {
                        var (commands, unclassified) = (_ctx.Commands.Count, _ctx.UnclassifiedCount);
                        _pos += 3;
                        var arithmetic = false;
                        try
                        {
                            arithmetic = ScanArithmetic();
                        }
                        catch (StopReading)
                        {
                            // $( ( … ) …): a command substitution that starts with a subshell; read again below.
                        }

                        if (!arithmetic)
                        {
                            _ctx.Truncate(commands, unclassified);
                            _pos = start + 2;
                            Substitution("$(…)");
                        }
                    }
                    else
                    {
                        _pos += 2;
                        Substitution("$(…)");
                    }

                    break;
                case '{':
                    _pos += 2;
                    ScanParameter();
                    break;
                case '[':
                    _pos += 2;
                    ScanUntilBracket();
                    break;
                case var n when char.IsAsciiLetter(n) || n == '_':
                    _pos++;
                    while (_pos < _s.Length && (char.IsAsciiLetterOrDigit(_s[_pos]) || _s[_pos] == '_'))
                    {
                        _pos++;
                    }

                    break;
                case var n when char.IsAsciiDigit(n) || n is '@' or '*' or '#' or '?' or '$' or '!' or '-':
                    _pos += 2;
                    break;
                default:
                    value.Append('$');
                    _pos++;
                    return;
            }

            word.Dynamic = true;
            value.Append(_s, start, _pos - start);
        }

        private void ReadAnsiC(StringBuilder value)
        {
            while (true)
            {
                if (_pos >= _s.Length)
                {
                    throw new StopReading("unterminated $'…'");
                }

                var c = _s[_pos++];
                if (c == '\'')
                {
                    return;
                }

                if (c != '\\' || _pos >= _s.Length)
                {
                    value.Append(c);
                    continue;
                }

                var e = _s[_pos++];
                switch (e)
                {
                    case 'n': value.Append('\n'); break;
                    case 't': value.Append('\t'); break;
                    case 'r': value.Append('\r'); break;
                    case 'a': value.Append('\a'); break;
                    case 'b': value.Append('\b'); break;
                    case 'f': value.Append('\f'); break;
                    case 'v': value.Append('\v'); break;
                    case 'e' or 'E': value.Append('\u001b'); break;
                    case 'x': AppendCodePoint(value, ReadDigits(16, 2)); break;
                    case 'u': AppendCodePoint(value, ReadDigits(16, 4)); break;
                    case 'U': AppendCodePoint(value, ReadDigits(16, 8)); break;
                    case 'c' when _pos < _s.Length: value.Append((char)(_s[_pos++] & 0x1f)); break;
                    case >= '0' and <= '7':
                        _pos--;
                        AppendCodePoint(value, ReadDigits(8, 3));
                        break;
                    default:
                        if (e is not ('\\' or '\'' or '"' or '?'))
                        {
                            value.Append('\\');
                        }

                        value.Append(e);
                        break;
                }
            }
        }

        private int? ReadDigits(int radix, int max)
        {
            var result = 0;
            var count = 0;
            while (count < max && _pos < _s.Length)
            {
                var digit = _s[_pos] switch
                {
                    >= '0' and <= '9' => _s[_pos] - '0',
                    >= 'a' and <= 'f' => _s[_pos] - 'a' + 10,
                    >= 'A' and <= 'F' => _s[_pos] - 'A' + 10,
                    _ => 99,
                };
                if (digit >= radix)
                {
                    break;
                }

                result = (result * radix) + digit;
                count++;
                _pos++;
            }

            return count == 0 ? null : result;
        }

        private static void AppendCodePoint(StringBuilder value, int? codePoint)
        {
            if (codePoint is not { } cp)
            {
                return;
            }

            if (cp is >= 0 and <= 0x10FFFF and not (>= 0xD800 and <= 0xDFFF))
            {
                value.Append(char.ConvertFromUtf32(cp));
            }
            else
            {
                value.Append('\uFFFD');
            }
        }

        private void ReadBackquote(Word word, StringBuilder value, bool inDoubleQuotes)
        {
            var start = _pos;
            _pos++;
            var inner = new StringBuilder();
            while (true)
            {
                if (_pos >= _s.Length)
                {
                    throw new StopReading("unterminated backquote");
                }

                var c = _s[_pos];
                if (c == '`')
                {
                    _pos++;
                    break;
                }

                if (c == '\\' && _pos + 1 < _s.Length && (_s[_pos + 1] is '$' or '`' or '\\' || (inDoubleQuotes && _s[_pos + 1] == '"')))
                {
                    inner.Append(_s[_pos + 1]);
                    _pos += 2;
                    continue;
                }

                inner.Append(c);
                _pos++;
            }

            ParseNested(inner.ToString(), "`…`");
            word.Dynamic = true;
            value.Append(_s, start, _pos - start);
        }

        /// <summary>After <c>$(</c>, <c>&lt;(</c> or <c>&gt;(</c>: reads the commands up to the closing parenthesis.</summary>
        private void Substitution(string label)
        {
            Enter();
            _chain.Add(label);
            try
            {
                ParseList(untilParen: true);
            }
            finally
            {
                _chain.RemoveAt(_chain.Count - 1);
                Exit();
            }
        }

        /// <summary>
        /// After <c>((</c>: scans to the parentheses that close it, reading substitutions inside. True when they close
        /// with <c>))</c> (arithmetic); false when the two closing parentheses are apart (so it was <c>( ( … ) … )</c>).
        /// </summary>
        private bool ScanArithmetic()
        {
            Enter();
            try
            {
                var depth = 2;
                var firstClose = -1;
                var scratch = new Word();
                var ignored = new StringBuilder();
                while (true)
                {
                    if (_pos >= _s.Length)
                    {
                        throw new StopReading("unterminated (( … ))");
                    }

                    var c = _s[_pos];
                    switch (c)
                    {
                        case '(':
                            depth++;
                            _pos++;
                            break;
                        case ')':
                            depth--;
                            if (depth == 1)
                            {
                                firstClose = _pos;
                            }

                            _pos++;
                            if (depth == 0)
                            {
                                return firstClose == _pos - 2;
                            }

                            break;
                        case '$':
                            ReadDollar(scratch, ignored, inDoubleQuotes: true);
                            break;
                        case '`':
                            ReadBackquote(scratch, ignored, inDoubleQuotes: true);
                            break;
                        case '\\':
                            _pos += 2;
                            break;
                        default:
                            _pos++;
                            break;
                    }
                }
            }
            finally
            {
                Exit();
            }
        }

        /// <summary>After <c>${</c>: scans to the closing brace, reading quotes and substitutions inside.</summary>
        private void ScanParameter()
        {
            Enter();
            try
            {
                var depth = 1;
                var scratch = new Word();
                var ignored = new StringBuilder();
                while (true)
                {
                    if (_pos >= _s.Length)
                    {
                        throw new StopReading("unterminated ${");
                    }

                    var c = _s[_pos];
                    switch (c)
                    {
                        case '}':
                            _pos++;
                            if (--depth == 0)
                            {
                                return;
                            }

                            break;
                        case '{':
                            depth++;
                            _pos++;
                            break;
                        case '\\':
                            _pos += 2;
                            break;
                        case '\'':
                            var end = _s.IndexOf('\'', _pos + 1);
                            if (end < 0)
                            {
                                throw new StopReading("unterminated single quote");
                            }

                            _pos = end + 1;
                            break;
                        case '"':
                            _pos++;
                            ReadDoubleQuoted(scratch, ignored);
                            break;
                        case '$':
                            ReadDollar(scratch, ignored, inDoubleQuotes: false);
                            break;
                        case '`':
                            ReadBackquote(scratch, ignored, inDoubleQuotes: false);
                            break;
                        default:
                            _pos++;
                            break;
                    }
                }
            }
            finally
            {
                Exit();
            }
        }

        private void ScanUntilBracket()
        {
            var scratch = new Word();
            var ignored = new StringBuilder();
            while (true)
            {
                if (_pos >= _s.Length)
                {
                    throw new StopReading("unterminated $[");
                }

                switch (_s[_pos])
                {
                    case ']':
                        _pos++;
                        return;
                    case '$':
                        ReadDollar(scratch, ignored, inDoubleQuotes: true);
                        break;
                    case '`':
                        ReadBackquote(scratch, ignored, inDoubleQuotes: true);
                        break;
                    default:
                        _pos++;
                        break;
                }
            }
        }

        // ------------------------------------------------------------------ redirections and here-documents

        private static bool IsRedirectPrefix(Word word) =>
            !word.Quoted && word.IsStatic && word.Value.Length > 0 &&
            (word.Value.All(char.IsAsciiDigit) ||
             (word.Value.Length > 2 && word.Value[0] == '{' && word.Value[^1] == '}' && IsName(word.Value.AsSpan(1, word.Value.Length - 2))));

        private void ReadRedirect(SimpleCommand command, int start)
        {
            string op;
            if (Matches("&>>"))
            {
                op = "&>>";
            }
            else if (Matches("&>"))
            {
                op = "&>";
            }
            else if (Matches("<<<"))
            {
                op = "<<<";
            }
            else if (Matches("<<-"))
            {
                op = "<<-";
            }
            else
            {
                string[] twoChar = ["<<", "<>", "<&", ">>", ">&", ">|"];
                op = twoChar.FirstOrDefault(Matches) ?? _s[_pos].ToString();
            }

            _pos += op.Length;
            SkipBlanks();
            if (_pos >= _s.Length || IsMeta(_s[_pos]))
            {
                throw new StopReading($"syntax error: '{op}' without a target");
            }

            var target = ReadWord();
            command.Extend(start, target.End);
            var kind = op switch
            {
                "<" => RedirectKind.Read,
                "<>" => RedirectKind.ReadWrite,
                "<<" or "<<-" => RedirectKind.HereDocument,
                "<<<" => RedirectKind.HereString,
                "<&" or ">&" when target.IsStatic && (target.Value == "-" || target.Value.TrimEnd('-').All(char.IsAsciiDigit)) => RedirectKind.Duplicate,
                "<&" => RedirectKind.Read,
                _ => RedirectKind.Write,
            };
            if (kind == RedirectKind.HereDocument)
            {
                _hereDocuments.Add((target.Value, !target.Quoted, op == "<<-"));
            }

            command.Redirects.Add((kind, target));
        }

        private bool Matches(string op) => string.CompareOrdinal(_s, _pos, op, 0, op.Length) == 0;

        /// <summary>After a newline: the bodies of the here-documents opened on the line; unquoted ones are expanded, so their substitutions run.</summary>
        private void ReadHereDocuments()
        {
            if (_hereDocuments.Count == 0)
            {
                return;
            }

            var documents = _hereDocuments.ToArray();
            _hereDocuments.Clear();
            foreach (var (delimiter, expand, stripTabs) in documents)
            {
                var body = new StringBuilder();
                while (_pos < _s.Length)
                {
                    var lineEnd = _s.IndexOf('\n', _pos);
                    var line = lineEnd < 0 ? _s[_pos..] : _s[_pos..lineEnd];
                    _pos = lineEnd < 0 ? _s.Length : lineEnd + 1;
                    if (stripTabs)
                    {
                        line = line.TrimStart('\t');
                    }

                    if (line == delimiter)
                    {
                        break;
                    }

                    body.Append(line).Append('\n');
                }

                if (expand && body.Length > 0)
                {
                    Enter();
                    _chain.Add("here-document");
                    try
                    {
                        new Parser(body.ToString(), _ctx, [.. _chain]).ScanExpansions();
                    }
                    finally
                    {
                        _chain.RemoveAt(_chain.Count - 1);
                        Exit();
                    }
                }
            }
        }

        /// <summary>Reads the substitutions of text expanded like a double-quoted string (a here-document's body).</summary>
        private void ScanExpansions()
        {
            var scratch = new Word();
            var ignored = new StringBuilder();
            try
            {
                while (_pos < _s.Length)
                {
                    switch (_s[_pos])
                    {
                        case '\\':
                            _pos += 2;
                            break;
                        case '$':
                            ReadDollar(scratch, ignored, inDoubleQuotes: true);
                            break;
                        case '`':
                            ReadBackquote(scratch, ignored, inDoubleQuotes: true);
                            break;
                        default:
                            _pos++;
                            break;
                    }
                }
            }
            catch (StopReading stop)
            {
                _ctx.Unknown(stop.Message, Via, _s);
            }
        }

        // ------------------------------------------------------------------ nesting

        private void Enter()
        {
            if (++_ctx.Depth > MaxDepth)
            {
                _ctx.Depth--;
                throw new StopReading($"nested more than {MaxDepth} levels deep");
            }
        }

        private void Exit() => _ctx.Depth--;

        /// <summary>Parses <paramref name="text"/> as a command line of its own (a <c>sh -c</c> string, backquotes), reached via <paramref name="label"/>.</summary>
        private void ParseNested(string text, string label)
        {
            Enter();
            try
            {
                new Parser(text, _ctx, [.. _chain, label]).ParseTop();
            }
            finally
            {
                Exit();
            }
        }

        private static bool IsName(ReadOnlySpan<char> name)
        {
            if (name.IsEmpty || !(char.IsAsciiLetter(name[0]) || name[0] == '_'))
            {
                return false;
            }

            foreach (var c in name)
            {
                if (!(char.IsAsciiLetterOrDigit(c) || c == '_'))
                {
                    return false;
                }
            }

            return true;
        }

        /// <summary><c>NAME=</c>, <c>NAME+=</c> or <c>NAME[…]=</c> at the start of unquoted text.</summary>
        private static bool IsAssignmentPrefix(string text)
        {
            var equals = text.IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0)
            {
                return false;
            }

            var name = text.AsSpan(0, equals);
            if (name[^1] == '+')
            {
                name = name[..^1];
            }

            var bracket = name.IndexOf('[');
            if (bracket > 0 && name[^1] == ']')
            {
                name = name[..bracket];
            }

            return IsName(name);
        }

        private static bool IsAssignment(Word word)
        {
            // The name part must be unquoted: "A=1" is a command name, A="1" an assignment.
            var source = word.Source;
            var equals = source.IndexOf('=', StringComparison.Ordinal);
            return equals > 0 && IsAssignmentPrefix(source[..(equals + 1)]);
        }
    }
}
