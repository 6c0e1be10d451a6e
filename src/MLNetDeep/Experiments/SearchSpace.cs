// Hyperparameter search spaces: from ML.NET's [Range] / [Choice] / [BooleanChoice] attributes on an Options class
// (Microsoft.ML.SearchSpace, shipped in Microsoft.ML.Core) or given in code. A point of the space is a vector in the
// unit cube [0, 1]^d, which the searchers move in; Decode turns it into option values (log scale where asked,
// integers rounded, choices by index).
using System.Globalization;
using System.Reflection;
using Microsoft.ML.SearchSpace;

namespace MLNetDeep;

/// <summary>One searched option: a numeric range (linear or log scale, integer or not) or a list of choices.</summary>
public sealed class SearchParameter
{
    private SearchParameter(string name, double min, double max, double? init, bool log, bool integer, object[]? choices, object? initChoice)
    {
        Name = name;
        Min = min;
        Max = max;
        LogScale = log;
        IsInteger = integer;
        Choices = choices;
        if (choices is not null)
        {
            int index = initChoice is null ? 0 : Array.FindIndex(choices, c => Equals(c, initChoice));
            if (index < 0) throw new ArgumentException($"Search parameter '{name}': the initial value {initChoice} is not among the choices.", nameof(initChoice));
            Initial = choices.Length == 1 ? 0.5 : (index + 0.5) / choices.Length;
        }
        else
        {
            if (!(min < max) || !double.IsFinite(min) || !double.IsFinite(max))
                throw new ArgumentOutOfRangeException(nameof(min), $"Search parameter '{name}': the range [{min}, {max}] is empty or not finite.");
            if (log && min <= 0) throw new ArgumentOutOfRangeException(nameof(min), $"Search parameter '{name}': a log-scale range must be positive, is [{min}, {max}].");
            double start = init ?? (log ? Math.Sqrt(min * max) : (min + max) / 2);
            if (start < min || start > max) throw new ArgumentOutOfRangeException(nameof(init), $"Search parameter '{name}': the initial value {start} is outside [{min}, {max}].");
            Initial = log ? (Math.Log(start) - Math.Log(min)) / (Math.Log(max) - Math.Log(min)) : (start - min) / (max - min);
        }
    }

    /// <summary>The option's name (a property of the Options class).</summary>
    public string Name { get; }

    /// <summary>Lower end of a numeric range.</summary>
    public double Min { get; }

    /// <summary>Upper end of a numeric range.</summary>
    public double Max { get; }

    /// <summary>Whether a numeric range is searched on a log scale.</summary>
    public bool LogScale { get; }

    /// <summary>Whether a numeric value is rounded to an integer.</summary>
    public bool IsInteger { get; }

    /// <summary>The choices, or null for a numeric range.</summary>
    public IReadOnlyList<object>? Choices { get; }

    /// <summary>The starting point in [0, 1] (the cheap, sensible default the local search starts from).</summary>
    internal double Initial { get; }

    /// <summary>A numeric range.</summary>
    public static SearchParameter Range(string name, double min, double max, double? initial = null, bool logScale = false) =>
        new(name, min, max, initial, logScale, false, null, null);

    /// <summary>An integer range.</summary>
    public static SearchParameter IntegerRange(string name, int min, int max, int? initial = null, bool logScale = false) =>
        new(name, min, max, initial, logScale, true, null, null);

    /// <summary>A list of choices (numbers, strings, enum values, booleans).</summary>
    public static SearchParameter Choice(string name, object[] choices, object? initial = null)
    {
        if (choices is null || choices.Length == 0) throw new ArgumentException($"Search parameter '{name}' needs at least one choice.", nameof(choices));
        return new(name, 0, 1, null, false, false, choices.ToArray(), initial);
    }

    /// <summary>The value at coordinate <paramref name="u"/> in [0, 1].</summary>
    public object Decode(double u)
    {
        u = Math.Clamp(u, 0, 1);
        if (Choices is { } c) return c[Math.Min(c.Count - 1, (int)(u * c.Count))];
        double v = LogScale ? Math.Exp(Math.Log(Min) + u * (Math.Log(Max) - Math.Log(Min))) : Min + u * (Max - Min);
        return IsInteger ? (object)(int)Math.Round(Math.Clamp(v, Min, Max)) : Math.Clamp(v, Min, Max);
    }

    /// <summary>A short description, e.g. <c>LearningRate [1E-05, 0.01] log</c>.</summary>
    public override string ToString() => Choices is { } c
        ? $"{Name} {{{string.Join(", ", c)}}}"
        : FormattableString.Invariant($"{Name} [{Min:G4}, {Max:G4}]{(IsInteger ? " int" : "")}{(LogScale ? " log" : "")}");
}

/// <summary>
/// The options a search varies, each a <see cref="SearchParameter"/>. Build it from the <c>[Range]</c>, <c>[Choice]</c>
/// and <c>[BooleanChoice]</c> attributes of an Options class (<see cref="FromOptions{TOptions}"/>; MLNetDeep's own
/// Options carry them) or parameter by parameter.
/// </summary>
public sealed class SearchSpace
{
    private readonly List<SearchParameter> _parameters = new();

    /// <summary>The parameters, in order.</summary>
    public IReadOnlyList<SearchParameter> Parameters => _parameters;

    /// <summary>Number of parameters (the dimension of the search).</summary>
    public int Count => _parameters.Count;

    /// <summary>Adds a parameter; a name may appear once.</summary>
    public SearchSpace Add(SearchParameter parameter)
    {
        if (_parameters.Any(p => p.Name == parameter.Name)) throw new ArgumentException($"The search space already has a parameter '{parameter.Name}'.", nameof(parameter));
        _parameters.Add(parameter);
        return this;
    }

    /// <summary>Removes a parameter (to keep an option fixed); returns this.</summary>
    public SearchSpace Remove(string name)
    {
        _parameters.RemoveAll(p => p.Name == name);
        return this;
    }

    /// <summary>
    /// The space of the public settable properties and fields of <typeparamref name="TOptions"/> (and its base classes;
    /// ML.NET's own Options classes use fields) that carry <see cref="RangeAttribute"/>, <see cref="ChoiceAttribute"/>
    /// or <see cref="BooleanChoiceAttribute"/>.
    /// </summary>
    public static SearchSpace FromOptions<TOptions>() => FromOptions(typeof(TOptions));

    /// <inheritdoc cref="FromOptions{TOptions}"/>
    public static SearchSpace FromOptions(Type optionsType)
    {
        var space = new SearchSpace();
        var members = optionsType.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite).Select(p => (Member: (MemberInfo)p, Type: p.PropertyType))
            .Concat(optionsType.GetFields(BindingFlags.Public | BindingFlags.Instance).Where(f => !f.IsInitOnly).Select(f => (Member: (MemberInfo)f, Type: f.FieldType)))
            .OrderBy(m => m.Member.MetadataToken).ThenBy(m => m.Member.Name, StringComparer.Ordinal);
        foreach (var (p, type) in members)
        {
            if (p.GetCustomAttribute<RangeAttribute>() is { } r)
            {
                bool integer = IsInteger(type);
                double min = Convert.ToDouble(r.Min, CultureInfo.InvariantCulture), max = Convert.ToDouble(r.Max, CultureInfo.InvariantCulture);
                double? init = r.Init is null ? null : Convert.ToDouble(r.Init, CultureInfo.InvariantCulture);
                space.Add(integer
                    ? SearchParameter.IntegerRange(p.Name, (int)min, (int)max, init is double i ? (int)i : null, r.LogBase)
                    : SearchParameter.Range(p.Name, min, max, init, r.LogBase));
            }
            else if (p.GetCustomAttribute<ChoiceAttribute>() is { } c)
                space.Add(SearchParameter.Choice(p.Name, c.Candidates, c.DefaultValue));
            else if (p.GetCustomAttribute<BooleanChoiceAttribute>() is { } b)
                space.Add(SearchParameter.Choice(p.Name, new object[] { false, true }, b.DefaultValue));
        }
        return space;
    }

    private static bool IsInteger(Type t)
    {
        t = Nullable.GetUnderlyingType(t) ?? t;
        return t == typeof(int) || t == typeof(long) || t == typeof(short);
    }

    /// <summary>The starting point (every parameter at its initial value) in the unit cube.</summary>
    internal double[] Initial() => _parameters.Select(p => p.Initial).ToArray();

    /// <summary>Option values of a point of the unit cube, by name.</summary>
    public IReadOnlyDictionary<string, object> Decode(IReadOnlyList<double> point)
    {
        if (point.Count != _parameters.Count) throw new ArgumentException($"The point has {point.Count} coordinates; the space has {_parameters.Count} parameters.", nameof(point));
        var values = new Dictionary<string, object>(StringComparer.Ordinal);
        for (int i = 0; i < point.Count; i++) values[_parameters[i].Name] = _parameters[i].Decode(point[i]);
        return values;
    }

    /// <summary>Sets the decoded values on an options object's properties or fields (converting to each one's type); unknown names throw naming them.</summary>
    public static void Apply(object options, IReadOnlyDictionary<string, object> values)
    {
        var type = options.GetType();
        foreach (var (name, value) in values)
        {
            var property = type.GetProperty(name, BindingFlags.Public | BindingFlags.Instance);
            var field = property is null ? type.GetField(name, BindingFlags.Public | BindingFlags.Instance) : null;
            var memberType = property?.PropertyType ?? field?.FieldType
                ?? throw new ArgumentException($"{type.Name} has no public property or field '{name}' to set from the search space.", nameof(values));
            var target = Nullable.GetUnderlyingType(memberType) ?? memberType;
            object converted = target.IsEnum ? (value is string s ? Enum.Parse(target, s) : Enum.ToObject(target, value))
                : target.IsInstanceOfType(value) ? value
                : Convert.ChangeType(value, target, CultureInfo.InvariantCulture);
            if (property is not null) property.SetValue(options, converted);
            else field!.SetValue(options, converted);
        }
    }

    /// <summary>The parameters, one per line.</summary>
    public override string ToString() => string.Join(Environment.NewLine, _parameters);
}
