using System.Text;

namespace NhiAudit.Postgres.Protocol;

/// <summary>
/// Reads the startup packet's <c>options</c> parameter the way the server does (<c>pg_split_opts</c>: words split on
/// whitespace, a backslash takes the next character literally), keeping only the switches that set a run-time
/// parameter: <c>-c name=value</c>, <c>-cname=value</c> and <c>--name=value</c> (a dash in the name is an underscore,
/// as the server reads it). The gateway sends the settings upstream as ordinary startup parameters, where it can check
/// and record each one; any other switch (server debugging options, <c>-o</c>, …) is refused by name.
/// </summary>
internal static class PgStartupOptions
{
    /// <summary>Parses <paramref name="options"/>; returns false with the reason when a switch is not a setting or cannot be read.</summary>
    /// <param name="options">The value of the startup <c>options</c> parameter.</param>
    /// <param name="settings">The settings in the order given (a later one of the same name wins, as on the server).</param>
    /// <param name="error">Why the options were refused, in the server's terms.</param>
    public static bool TryParse(string options, out List<KeyValuePair<string, string>> settings, out string? error)
    {
        ArgumentNullException.ThrowIfNull(options);
        settings = [];
        error = null;
        var words = Split(options);
        for (var i = 0; i < words.Count; i++)
        {
            var word = words[i];
            string assignment;
            if (word == "-c")
            {
                if (i + 1 >= words.Count)
                {
                    error = "invalid startup option: -c requires a name=value argument";
                    return false;
                }

                assignment = words[++i];
            }
            else if (word.StartsWith("-c", StringComparison.Ordinal))
            {
                assignment = word[2..];
            }
            else if (word.StartsWith("--", StringComparison.Ordinal) && word.Length > 2)
            {
                assignment = word[2..];
            }
            else
            {
                error = $"the startup option '{word}' is not passed through the gateway: only run-time settings (-c name=value, --name=value) are";
                return false;
            }

            var equals = assignment.IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0)
            {
                error = $"invalid startup option '{word}': a setting needs name=value";
                return false;
            }

            var name = assignment[..equals].Replace('-', '_').ToLowerInvariant();
            settings.Add(new KeyValuePair<string, string>(name, assignment[(equals + 1)..]));
        }

        return true;
    }

    /// <summary>Splits as the server's <c>pg_split_opts</c>: on whitespace, with a backslash escaping the next character.</summary>
    private static List<string> Split(string options)
    {
        var words = new List<string>();
        var word = new StringBuilder();
        var inWord = false;
        for (var i = 0; i < options.Length; i++)
        {
            var c = options[i];
            if (char.IsWhiteSpace(c))
            {
                if (inWord)
                {
                    words.Add(word.ToString());
                    word.Clear();
                    inWord = false;
                }

                continue;
            }

            inWord = true;
            if (c == '\\' && i + 1 < options.Length)
            {
                c = options[++i];
            }

            word.Append(c);
        }

        if (inWord)
        {
            words.Add(word.ToString());
        }

        return words;
    }
}
