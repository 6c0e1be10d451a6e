using System.Globalization;

namespace MLNetDeep.Cli;

/// <summary>A command-line mistake: printed with the usage, exit code 2.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>
/// <c>mlnetdeep &lt;command&gt; --option value ... --flag</c>: the command, then options (each at most once). Every
/// option is looked up by the command that runs; one nobody asked for is an error naming it.
/// </summary>
public sealed class Arguments
{
    /// <summary>Options that take no value.</summary>
    public static readonly HashSet<string> Flags = new(StringComparer.Ordinal) { "overwrite", "no-pruning", "no-refit", "help", "verbose" };

    private readonly Dictionary<string, string?> _values = new(StringComparer.Ordinal);
    private readonly HashSet<string> _read = new(StringComparer.Ordinal);

    private Arguments(string command) => Command = command;

    /// <summary>The command (first argument).</summary>
    public string Command { get; }

    /// <summary>Parses <paramref name="args"/>.</summary>
    public static Arguments Parse(IReadOnlyList<string> args)
    {
        if (args.Count == 0 || args[0].StartsWith('-')) return new Arguments(args.Count > 0 && args[0] is "--help" or "-h" ? "help" : "");
        var parsed = new Arguments(args[0]);
        for (int i = 1; i < args.Count; i++)
        {
            string a = args[i];
            if (!a.StartsWith("--", StringComparison.Ordinal) || a.Length == 2)
                throw new UsageException($"Unexpected argument '{a}': options start with -- (e.g. --dataset data.csv).");
            string name = a[2..];
            string? value = null;
            int eq = name.IndexOf('=');
            if (eq > 0)
            {
                value = name[(eq + 1)..];
                name = name[..eq];
            }
            else if (!Flags.Contains(name))
            {
                if (i + 1 >= args.Count) throw new UsageException($"Option --{name} needs a value.");
                value = args[++i];
            }
            if (parsed._values.ContainsKey(name)) throw new UsageException($"Option --{name} is given twice.");
            parsed._values[name] = value;
        }
        return parsed;
    }

    /// <summary>The value of --<paramref name="name"/>, or null.</summary>
    public string? Get(string name)
    {
        _read.Add(name);
        return _values.TryGetValue(name, out var v) ? v : null;
    }

    /// <summary>The value of --<paramref name="name"/>; a usage error naming it when missing.</summary>
    public string Require(string name, string what) =>
        Get(name) ?? throw new UsageException($"Option --{name} is required: {what}.");

    /// <summary>Whether the flag --<paramref name="name"/> was given.</summary>
    public bool Flag(string name)
    {
        _read.Add(name);
        return _values.ContainsKey(name);
    }

    /// <summary>An integer option within [min, max].</summary>
    public int Int(string name, int fallback, int min = int.MinValue, int max = int.MaxValue)
    {
        string? s = Get(name);
        if (s is null) return fallback;
        if (!int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) || v < min || v > max)
            throw new UsageException($"Option --{name} must be an integer from {min} to {max}, not '{s}'.");
        return v;
    }

    /// <summary>A number option within (or at) the bounds.</summary>
    public double Double(string name, double fallback, double min, double max)
    {
        string? s = Get(name);
        if (s is null) return fallback;
        if (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) || !(v >= min && v <= max))
            throw new UsageException($"Option --{name} must be a number from {min.ToString(CultureInfo.InvariantCulture)} to {max.ToString(CultureInfo.InvariantCulture)}, not '{s}'.");
        return v;
    }

    /// <summary>A true/false option.</summary>
    public bool Bool(string name, bool fallback)
    {
        string? s = Get(name);
        if (s is null) return fallback;
        return s.ToLowerInvariant() switch
        {
            "true" or "yes" or "1" => true,
            "false" or "no" or "0" => false,
            _ => throw new UsageException($"Option --{name} must be true or false, not '{s}'."),
        };
    }

    /// <summary>A comma-separated list option.</summary>
    public string[] List(string name) =>
        Get(name)?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) ?? Array.Empty<string>();

    /// <summary>Throws naming an option that the command did not read (a typo, or an option of another command).</summary>
    public void RejectUnread()
    {
        var unread = _values.Keys.Where(k => !_read.Contains(k)).ToList();
        if (unread.Count > 0)
            throw new UsageException($"The {Command} command has no option {string.Join(", ", unread.Select(u => "--" + u))}.");
    }
}
