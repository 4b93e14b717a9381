using System.Diagnostics.CodeAnalysis;
using System.Text;

namespace NhiAudit.Ssh.Scp;

/// <summary>Which way a legacy scp exec command copies files.</summary>
public enum ScpDirection
{
    /// <summary><c>scp -t</c>: the remote end is the sink; the client sends files.</summary>
    Upload,

    /// <summary><c>scp -f</c>: the remote end is the source; the server sends files.</summary>
    Download,
}

/// <summary>
/// The remote half of a legacy (rcp-style) scp copy, as the client asks for it in an SSH exec request: what
/// <c>scp -O</c> of OpenSSH runs on the server, e.g. <c>scp -r -p -t -- /dir</c> or <c>scp -f 'file name'</c>.
/// </summary>
/// <param name="Direction">Whether the client sends (<c>-t</c>) or receives (<c>-f</c>) files.</param>
/// <param name="Path">The one path operand after shell unquoting: the sink's target or the source's file (possibly a glob pattern the remote shell expands).</param>
/// <param name="Recursive"><c>-r</c>: directories are copied.</param>
/// <param name="PreserveTimes"><c>-p</c>: times (and modes) are sent with each file.</param>
public sealed record ScpCommand(ScpDirection Direction, string Path, bool Recursive, bool PreserveTimes)
{
    /// <summary><c>-d</c>: the sink's target must be a directory (the client copies several files).</summary>
    public bool TargetShouldBeDirectory { get; init; }

    /// <summary>
    /// Recognises a legacy scp server command: the program <c>scp</c> (or a path ending in <c>/scp</c>), the flags
    /// <c>-t</c> or <c>-f</c> (exactly one of them) and any of <c>-d -v -r -p -q</c> (clustered or not, before or after
    /// the operand as glibc's getopt permits, up to <c>--</c>), and exactly one non-empty path. Words are split and
    /// unquoted as a POSIX shell does (single quotes, double quotes, backslashes); a command the shell would treat as
    /// more than one simple command (an unquoted newline or <c>; &amp; | &lt; &gt; ( ) $ `</c>, or a comment) is not recognised, since
    /// what it runs cannot be known from here.
    /// </summary>
    /// <param name="commandLine">The exec request's command line.</param>
    /// <param name="command">The command, when recognised.</param>
    /// <returns>True when <paramref name="commandLine"/> is a legacy scp server command.</returns>
    public static bool TryParse(string commandLine, [NotNullWhen(true)] out ScpCommand? command)
    {
        command = null;
        if (commandLine is null || !TrySplitWords(commandLine, out var words) || words.Count == 0)
        {
            return false;
        }

        var program = words[0];
        if (program != "scp" && !program.EndsWith("/scp", StringComparison.Ordinal))
        {
            return false;
        }

        bool to = false, from = false, recursive = false, preserve = false, directory = false;
        var operands = new List<string>(1);
        var optionsEnded = false;
        foreach (var word in words.Skip(1))
        {
            if (optionsEnded || word.Length < 2 || word[0] != '-')
            {
                operands.Add(word);
                continue;
            }

            if (word == "--")
            {
                optionsEnded = true;
                continue;
            }

            foreach (var flag in word.AsSpan(1))
            {
                switch (flag)
                {
                    case 't':
                        to = true;
                        break;
                    case 'f':
                        from = true;
                        break;
                    case 'r':
                        recursive = true;
                        break;
                    case 'p':
                        preserve = true;
                        break;
                    case 'd':
                        directory = true;
                        break;
                    case 'v':
                    case 'q':
                        break;
                    default:
                        return false;
                }
            }
        }

        if (to == from || operands.Count != 1 || operands[0].Length == 0)
        {
            return false;
        }

        command = new ScpCommand(to ? ScpDirection.Upload : ScpDirection.Download, operands[0], recursive, preserve)
        {
            TargetShouldBeDirectory = directory,
        };
        return true;
    }

    /// <summary>Splits a command line into words the way a POSIX shell does for a simple command without expansions.</summary>
    private static bool TrySplitWords(string line, out List<string> words)
    {
        words = [];
        var word = new StringBuilder();
        var inWord = false;
        for (var i = 0; i < line.Length; i++)
        {
            var c = line[i];
            switch (c)
            {
                case ' ' or '\t':
                    if (inWord)
                    {
                        words.Add(word.ToString());
                        word.Clear();
                        inWord = false;
                    }

                    break;
                case '\'':
                    var close = line.IndexOf('\'', i + 1);
                    if (close < 0)
                    {
                        return false;
                    }

                    word.Append(line, i + 1, close - i - 1);
                    i = close;
                    inWord = true;
                    break;
                case '"':
                    if (!TryReadDoubleQuoted(line, ref i, word))
                    {
                        return false;
                    }

                    inWord = true;
                    break;
                case '\\':
                    if (i + 1 >= line.Length)
                    {
                        return false;
                    }

                    // A backslash-newline is a line continuation: both disappear.
                    if (line[++i] != '\n')
                    {
                        word.Append(line[i]);
                        inWord = true;
                    }

                    break;
                case ';' or '&' or '|' or '<' or '>' or '(' or ')' or '$' or '`' or '\n' or '\r':
                    return false;
                case '#' when !inWord:
                    return false;
                default:
                    word.Append(c);
                    inWord = true;
                    break;
            }
        }

        if (inWord)
        {
            words.Add(word.ToString());
        }

        return true;
    }

    /// <summary>Reads a double-quoted part starting at <paramref name="i"/> (its opening quote); leaves <paramref name="i"/> on the closing quote.</summary>
    private static bool TryReadDoubleQuoted(string line, ref int i, StringBuilder word)
    {
        for (i++; i < line.Length; i++)
        {
            var c = line[i];
            switch (c)
            {
                case '"':
                    return true;
                case '$' or '`':
                    // Expansions inside double quotes: the result depends on the remote environment.
                    return false;
                case '\\' when i + 1 < line.Length && line[i + 1] is '$' or '`' or '"' or '\\' or '\n':
                    if (line[++i] != '\n')
                    {
                        word.Append(line[i]);
                    }

                    break;
                default:
                    word.Append(c);
                    break;
            }
        }

        return false;
    }
}
