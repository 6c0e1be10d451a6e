using System.Globalization;
using System.Text;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Text;

namespace MLNetDeep.Cli;

/// <summary>How a column of a delimited file is used.</summary>
public enum ColumnKind
{
    /// <summary>Every value is a number: one numeric feature (missing values replaced by the mean, standardized).</summary>
    Numeric,
    /// <summary>Few distinct short values: one-hot encoded.</summary>
    Categorical,
    /// <summary>Free text: n-gram features (and word keys for the sequence models).</summary>
    Text,
    /// <summary>Named by --ignore-cols, or the label.</summary>
    Ignored,
}

/// <summary>One column of a delimited file as inferred.</summary>
public sealed record ColumnInfo(string Name, int Index, ColumnKind Kind, int Distinct, double MeanWords);

/// <summary>
/// A delimited text file read the way ML.NET's CLI does: the separator, header and each column's kind inferred from the
/// file (numbers, categories, free text), the label found by name or index; loaded with a <see cref="TextLoader"/>
/// that keeps every column in file order (so the consumption code's <c>LoadColumn</c> indexes match the file).
/// </summary>
public sealed class TabularData
{
    private const int SampleRows = 5000;

    public required string Path { get; init; }
    public required char Separator { get; init; }
    public required bool HasHeader { get; init; }
    public required bool AllowQuoting { get; init; }
    public required IReadOnlyList<ColumnInfo> Columns { get; init; }
    public required ColumnInfo Label { get; init; }
    /// <summary>The label's distinct values (trimmed), ordinal order.</summary>
    public required IReadOnlyList<string> LabelValues { get; init; }

    /// <summary>Reads and infers <paramref name="path"/>.</summary>
    public static TabularData Infer(string path, string? labelColumn, char? separator, bool hasHeader, bool allowQuoting, IReadOnlyCollection<string> ignore,
        bool labelIsNumeric, string? forcedTextColumn = null)
    {
        if (!File.Exists(path)) throw new UsageException($"--dataset: the file '{path}' does not exist.");
        var lines = File.ReadLines(path).Where(l => l.Trim().Length > 0).Take(SampleRows + 1).ToList();
        if (lines.Count < (hasHeader ? 2 : 1)) throw new UsageException($"--dataset: '{path}' has no data rows.");
        char sep = separator ?? InferSeparator(lines.Take(20).ToList(), allowQuoting);
        var header = Split(lines[0], sep, allowQuoting);
        int width = header.Count;
        var names = hasHeader ? header.Select((h, i) => h.Trim().Length == 0 ? $"col{i}" : h.Trim()).ToList() : Enumerable.Range(0, width).Select(i => $"col{i}").ToList();
        if (names.Distinct(StringComparer.Ordinal).Count() != names.Count)
            throw new UsageException($"--dataset: '{path}' has duplicate column names ({string.Join(", ", names.GroupBy(n => n).Where(g => g.Count() > 1).Select(g => g.Key))}).");
        var rows = lines.Skip(hasHeader ? 1 : 0).Select(l => Split(l, sep, allowQuoting)).ToList();
        var bad = rows.FindIndex(r => r.Count != width);
        if (bad >= 0)
            throw new UsageException($"--dataset: row {bad + (hasHeader ? 2 : 1)} of '{path}' has {rows[bad].Count} fields, the first line {width} (separator '{Printable(sep)}'{(allowQuoting ? ", quoted fields allowed" : "")}; set --separator or --allow-quoting).");

        int labelIndex = Resolve(labelColumn, names, "--label-col");
        foreach (var i in ignore) Resolve(i, names, "--ignore-cols");
        var ignored = new HashSet<int>(ignore.Select(i => Resolve(i, names, "--ignore-cols")));
        var columns = new List<ColumnInfo>();
        for (int c = 0; c < width; c++)
        {
            var values = rows.Select(r => r[c].Trim()).ToList();
            var present = values.Where(v => v.Length > 0).ToList();
            int distinct = present.Distinct(StringComparer.Ordinal).Count();
            double words = present.Count == 0 ? 0 : present.Average(v => v.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length);
            bool numeric = present.Count > 0 && present.All(v => float.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out _));
            ColumnKind kind = c == labelIndex || ignored.Contains(c) ? ColumnKind.Ignored
                : names[c] == forcedTextColumn ? ColumnKind.Text
                : numeric ? ColumnKind.Numeric
                : words >= 2.5 || (distinct > 100 && distinct > present.Count / 2) ? ColumnKind.Text
                : ColumnKind.Categorical;
            if (present.Count == 0 && kind != ColumnKind.Ignored) kind = ColumnKind.Ignored;
            columns.Add(new ColumnInfo(names[c], c, kind, distinct, words));
        }
        var label = columns[labelIndex];
        if (labelIsNumeric)
        {
            var notNumber = rows.Select(r => r[labelIndex].Trim()).FirstOrDefault(v => v.Length > 0 && !float.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out _));
            if (notNumber is not null) throw new UsageException($"--label-col: column '{label.Name}' holds '{notNumber}', not a number; regression needs a numeric label.");
        }
        // The label's values over the whole file (a rare class may be missing from the sample).
        var labelValues = new SortedSet<string>(StringComparer.Ordinal);
        if (!labelIsNumeric)
            foreach (var line in File.ReadLines(path).Skip(hasHeader ? 1 : 0).Where(l => l.Trim().Length > 0))
            {
                var f = Split(line, sep, allowQuoting);
                if (f.Count == width && f[labelIndex].Trim().Length > 0) labelValues.Add(f[labelIndex].Trim());
            }
        return new TabularData
        {
            Path = path, Separator = sep, HasHeader = hasHeader, AllowQuoting = allowQuoting, Columns = columns, Label = label,
            LabelValues = labelValues.ToList(),
        };
    }

    /// <summary>Loads a file with this layout (the training file or a test file with the same columns).</summary>
    public IDataView Load(MLContext ml, string path, bool labelIsNumeric)
    {
        var loaderColumns = Columns.Select(c => new TextLoader.Column(c.Name,
            c.Kind == ColumnKind.Numeric || (c.Index == Label.Index && labelIsNumeric) ? DataKind.Single : DataKind.String, c.Index)).ToArray();
        return ml.Data.CreateTextLoader(new TextLoader.Options
        {
            Columns = loaderColumns, Separators = new[] { Separator }, HasHeader = HasHeader, AllowQuoting = AllowQuoting, TrimWhitespace = true,
        }).Load(path);
    }

    /// <summary>The text column the sequence models read: the named one, or the one with the most words per row.</summary>
    public ColumnInfo? SequenceColumn => Columns.Where(c => c.Kind == ColumnKind.Text).OrderByDescending(c => c.MeanWords).FirstOrDefault();

    /// <summary>
    /// The shared featurization: numbers (missing → mean, standardized), categories one-hot, text n-grams (word 1–2,
    /// character 3, those seen in at least 3 rows, as the README's SMS pipeline), all concatenated into <c>Features</c>; with
    /// <paramref name="tokens"/>, also word keys of the longest text column in <c>Tokens</c> for the recurrent and
    /// Transformer models.
    /// </summary>
    public IEstimator<ITransformer> Featurizer(MLContext ml, IEstimator<ITransformer> label, bool tokens)
    {
        IEstimator<ITransformer> chain = label;
        var parts = new List<string>();
        var numeric = Columns.Where(c => c.Kind == ColumnKind.Numeric).Select(c => c.Name).ToArray();
        if (numeric.Length > 0)
        {
            chain = chain.Append(ml.Transforms.Concatenate("MLNetDeep.Numeric", numeric))
                .Append(ml.Transforms.ReplaceMissingValues("MLNetDeep.Numeric"))
                .Append(ml.Transforms.NormalizeMeanVariance("MLNetDeep.Numeric"));
            parts.Add("MLNetDeep.Numeric");
        }
        foreach (var c in Columns.Where(c => c.Kind == ColumnKind.Categorical))
        {
            chain = chain.Append(ml.Transforms.Categorical.OneHotEncoding("MLNetDeep.OneHot." + c.Name, c.Name));
            parts.Add("MLNetDeep.OneHot." + c.Name);
        }
        foreach (var c in Columns.Where(c => c.Kind == ColumnKind.Text))
        {
            chain = chain.Append(ml.Transforms.Text.FeaturizeText("MLNetDeep.Text." + c.Name, new TextFeaturizingEstimator.Options
            {
                WordFeatureExtractor = new WordBagEstimator.Options { NgramLength = 2 },
                CharFeatureExtractor = new WordBagEstimator.Options { NgramLength = 3, UseAllLengths = false },
            }, c.Name))
                // n-grams seen in fewer than 3 rows dropped: a third of the slots on SMS, and the network's first layer with them.
                .Append(ml.Transforms.FeatureSelection.SelectFeaturesBasedOnCount("MLNetDeep.Text." + c.Name, count: 3));
            parts.Add("MLNetDeep.Text." + c.Name);
        }
        if (parts.Count == 0) throw new UsageException("The data has no feature columns left (every column is the label or ignored).");
        chain = chain.Append(ml.Transforms.Concatenate("Features", parts.ToArray()));
        if (tokens && SequenceColumn is { } text)
            chain = chain.Append(ml.Transforms.Text.NormalizeText("MLNetDeep.Normalized", text.Name, keepPunctuations: false))
                .Append(ml.Transforms.Text.TokenizeIntoWords("Tokens", "MLNetDeep.Normalized"))
                .Append(ml.Transforms.Conversion.MapValueToKey("Tokens"));
        return chain;
    }

    /// <summary>The columns as a short table for the console.</summary>
    public string Describe()
    {
        var sb = new StringBuilder();
        sb.AppendLine(FormattableString.Invariant($"  {Path}: separator '{Printable(Separator)}', {(HasHeader ? "header" : "no header")}, {Columns.Count} columns"));
        foreach (var c in Columns)
            sb.AppendLine(FormattableString.Invariant($"    {c.Index,3} {c.Name,-24} {(c.Index == Label.Index ? "label" : c.Kind.ToString().ToLowerInvariant()),-12} {c.Distinct,6} distinct{(c.Kind == ColumnKind.Text ? $", {c.MeanWords:F1} words per row" : "")}"));
        return sb.ToString();
    }

    private static int Resolve(string? column, List<string> names, string option)
    {
        if (string.IsNullOrWhiteSpace(column)) throw new UsageException($"Option {option} is required: the column's name (or 0-based index).");
        int i = names.IndexOf(column);
        if (i >= 0) return i;
        if (int.TryParse(column, NumberStyles.Integer, CultureInfo.InvariantCulture, out int index) && index >= 0 && index < names.Count) return index;
        throw new UsageException($"{option}: there is no column '{column}'; the columns are {string.Join(", ", names)} (or 0 to {names.Count - 1}).");
    }

    private static char InferSeparator(List<string> lines, bool quoting)
    {
        foreach (char c in new[] { '\t', ',', ';', '|' })
        {
            var counts = lines.Select(l => Split(l, c, quoting).Count).Distinct().ToList();
            if (counts.Count == 1 && counts[0] > 1) return c;
        }
        throw new UsageException("--separator: could not tell the separator from the first lines (tab, comma, semicolon and | give varying field counts); give it, e.g. --separator tab.");
    }

    /// <summary>Splits a line as ML.NET's TextLoader does: quoted fields may hold the separator; "" is a quote.</summary>
    internal static List<string> Split(string line, char sep, bool quoting)
    {
        var fields = new List<string>();
        var sb = new StringBuilder();
        bool quoted = false;
        for (int i = 0; i < line.Length; i++)
        {
            char ch = line[i];
            if (quoting && ch == '"' && (quoted || sb.ToString().Trim().Length == 0))
            {
                if (quoted && i + 1 < line.Length && line[i + 1] == '"') { sb.Append('"'); i++; }
                else quoted = !quoted;
            }
            else if (ch == sep && !quoted) { fields.Add(sb.ToString()); sb.Clear(); }
            else sb.Append(ch);
        }
        fields.Add(sb.ToString());
        return fields;
    }

    internal static string Printable(char c) => c == '\t' ? "tab" : c.ToString();

    /// <summary>--separator: tab, comma, semicolon, space or one character.</summary>
    public static char? ParseSeparator(string? s) => s switch
    {
        null => null,
        "tab" or "\\t" or "\t" => '\t',
        "comma" or "," => ',',
        "semicolon" or ";" => ';',
        "space" or " " => ' ',
        _ when s.Length == 1 => s[0],
        _ => throw new UsageException($"--separator must be tab, comma, semicolon, space or one character, not '{s}'."),
    };
}
