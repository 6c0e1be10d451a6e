// TokenizeIntoSubwords: fits a compact vocabulary of a sub-word tokenizer's ids on a text column.
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;

namespace MLNetDeep;

/// <summary>
/// Estimator of <see cref="SubwordTokenizingTransformer"/>. <see cref="Fit"/> tokenizes every row of the text column,
/// counts the tokenizer ids and keeps those seen at least <see cref="Options.MinimumCount"/> times (the
/// <see cref="Options.MaximumVocabularySize"/> most frequent when that is set), ordered by frequency, then by tokenizer id:
/// the i-th becomes key i. Made by <c>mlContext.Transforms.Text.TokenizeIntoSubwords</c>.
/// </summary>
public sealed class SubwordTokenizingEstimator : IEstimator<SubwordTokenizingTransformer>
{
    /// <summary>Options of <c>TokenizeIntoSubwords</c>.</summary>
    public sealed class Options
    {
        /// <summary>The output column: a variable-length vector of keys. Required.</summary>
        public string OutputColumnName { get; set; } = "";

        /// <summary>The text column to tokenize; null means <see cref="OutputColumnName"/> (the text column is then replaced).</summary>
        public string? InputColumnName { get; set; }

        /// <summary>The sub-word tokenizer; null means <see cref="SubwordTokenizer.Cl100kBase"/>.</summary>
        public SubwordTokenizer? Tokenizer { get; set; }

        /// <summary>Keep at most this many tokenizer ids, the most frequent (ties: the smaller tokenizer id). 0 (default) keeps every id seen.</summary>
        public int MaximumVocabularySize { get; set; }

        /// <summary>Keep only tokenizer ids seen at least this many times in the training data. Default 1.</summary>
        public int MinimumCount { get; set; } = 1;
    }

    private readonly IHost _host;
    private readonly string _output, _input;
    private readonly SubwordTokenizer _tokenizer;
    private readonly int _maximumVocabularySize, _minimumCount;

    internal SubwordTokenizingEstimator(IHostEnvironment env, Options options)
    {
        ArgumentNullException.ThrowIfNull(env);
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrWhiteSpace(options.OutputColumnName))
            throw new ArgumentException("TokenizeIntoSubwords needs an output column name.", nameof(Options.OutputColumnName));
        if (options.InputColumnName is { } inputName && string.IsNullOrWhiteSpace(inputName))
            throw new ArgumentException("TokenizeIntoSubwords: the input column name is empty; pass null to use the output column's name.", nameof(Options.InputColumnName));
        if (options.MaximumVocabularySize < 0)
            throw new ArgumentOutOfRangeException(nameof(Options.MaximumVocabularySize), options.MaximumVocabularySize, "MaximumVocabularySize must be 0 (keep every token seen) or positive.");
        if (options.MaximumVocabularySize > int.MaxValue - 2)
            throw new ArgumentOutOfRangeException(nameof(Options.MaximumVocabularySize), options.MaximumVocabularySize, $"MaximumVocabularySize must be at most {int.MaxValue - 2}.");
        if (options.MinimumCount < 1)
            throw new ArgumentOutOfRangeException(nameof(Options.MinimumCount), options.MinimumCount, "MinimumCount must be at least 1.");
        _host = env.Register(nameof(SubwordTokenizingEstimator));
        _output = options.OutputColumnName;
        _input = options.InputColumnName ?? options.OutputColumnName;
        _tokenizer = options.Tokenizer ?? SubwordTokenizer.Cl100kBase();
        _maximumVocabularySize = options.MaximumVocabularySize;
        _minimumCount = options.MinimumCount;
    }

    /// <summary>Tokenizes the input column of <paramref name="input"/> and builds the compact vocabulary.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The input column is missing or is not text (the message names it and its type).</exception>
    /// <exception cref="InvalidOperationException">No token is kept (empty data, or every token below <see cref="Options.MinimumCount"/>).</exception>
    public SubwordTokenizingTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        SubwordTokenizingTransformer.CheckInputColumn(input.Schema, _input);
        var tokenizer = _tokenizer.GetTokenizer();
        var counts = new Dictionary<int, long>();
        long rows = 0, tokens = 0;
        var column = input.Schema[_input];
        using (var cursor = input.GetRowCursor(new[] { column }))
        {
            var getter = cursor.GetGetter<ReadOnlyMemory<char>>(column);
            ReadOnlyMemory<char> text = default;
            while (cursor.MoveNext())
            {
                rows++;
                getter(ref text);
                if (text.IsEmpty) continue;
                var ids = tokenizer.EncodeToIds(text.Span, considerPreTokenization: true, considerNormalization: true);
                tokens += ids.Count;
                foreach (int id in ids) counts[id] = counts.GetValueOrDefault(id) + 1;
            }
        }

        var kept = counts.Where(p => p.Value >= _minimumCount)
            .OrderByDescending(p => p.Value).ThenBy(p => p.Key)
            .Take(_maximumVocabularySize > 0 ? _maximumVocabularySize : int.MaxValue)
            .ToArray();
        if (kept.Length == 0)
            throw new InvalidOperationException(counts.Count == 0
                ? $"TokenizeIntoSubwords found no tokens in column '{_input}' of the training data ({rows} rows): every text is empty."
                : $"TokenizeIntoSubwords kept no tokens of column '{_input}': none of its {counts.Count} distinct tokens occurs MinimumCount = {_minimumCount} times.");
        if (kept.Length > int.MaxValue - 2)
            throw new InvalidOperationException($"TokenizeIntoSubwords: column '{_input}' has {kept.Length} distinct tokens; set MaximumVocabularySize.");

        var keptIds = kept.Select(p => p.Key).ToArray();
        var texts = keptIds.Select(id => tokenizer.Decode(new[] { id }) ?? "").ToArray();
        var keptCounts = kept.Select(p => p.Value).ToArray();
        using (var ch = _host.Start(nameof(Fit)))
            ch.Info($"TokenizeIntoSubwords '{_input}' → '{_output}' ({_tokenizer}): {rows} rows, {tokens} tokens, {counts.Count} distinct tokenizer ids, {kept.Length} kept as keys.");
        return new SubwordTokenizingTransformer(_host, _output, _input, _tokenizer, _maximumVocabularySize, _minimumCount, keptIds, texts, keptCounts);
    }

    /// <summary>The input columns plus the output column: a variable-length vector of <c>uint</c> keys with text KeyValues.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The input column is missing or is not text.</exception>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        if (!inputSchema.TryFindColumn(_input, out var col))
            throw new ArgumentOutOfRangeException(nameof(Options.InputColumnName),
                $"Input column '{_input}' of TokenizeIntoSubwords is not in the data (columns: {string.Join(", ", inputSchema.Select(c => c.Name))}).");
        if (col.Kind != SchemaShape.Column.VectorKind.Scalar || col.ItemType is not TextDataViewType)
            throw new ArgumentOutOfRangeException(nameof(Options.InputColumnName),
                $"Input column '{_input}' of TokenizeIntoSubwords must be text (a string scalar), but is {(col.Kind == SchemaShape.Column.VectorKind.Scalar ? "" : col.Kind + " of ")}{col.ItemType}.");
        var columns = inputSchema.ToDictionary(c => c.Name);
        var keyValues = new SchemaShape(new[] { new SchemaShape.Column(AnnotationUtils.Kinds.KeyValues, SchemaShape.Column.VectorKind.Vector, TextDataViewType.Instance, false) });
        columns[_output] = new SchemaShape.Column(_output, SchemaShape.Column.VectorKind.VariableVector, NumberDataViewType.UInt32, true, keyValues);
        return new SchemaShape(columns.Values);
    }
}

/// <summary><c>mlContext.Transforms.Text.TokenizeIntoSubwords</c>.</summary>
public static class SubwordCatalogExtensions
{
    /// <summary>
    /// Tokenizes a text column with a sub-word tokenizer (default cl100k_base, shipped in a package: nothing is downloaded)
    /// into a variable-length <c>vector&lt;key&gt;</c> column over a compact vocabulary of the tokens seen when fitting,
    /// the input MLNetDeep's sequence trainers read (the same kind of column as
    /// <c>TokenizeIntoWords → MapValueToKey</c>). A token not seen when fitting becomes key 0 (unknown).
    /// </summary>
    /// <param name="catalog">The text transforms catalog.</param>
    /// <param name="outputColumnName">The output column (vector of keys).</param>
    /// <param name="inputColumnName">The text column; null means <paramref name="outputColumnName"/>.</param>
    /// <param name="tokenizer">The sub-word tokenizer; null means <see cref="SubwordTokenizer.Cl100kBase"/>.</param>
    /// <param name="maximumVocabularySize">Keep at most this many tokens, the most frequent; 0 keeps all seen.</param>
    /// <param name="minimumCount">Keep only tokens seen at least this many times.</param>
    public static SubwordTokenizingEstimator TokenizeIntoSubwords(this TransformsCatalog.TextTransforms catalog, string outputColumnName,
        string? inputColumnName = null, SubwordTokenizer? tokenizer = null, int maximumVocabularySize = 0, int minimumCount = 1)
        => TokenizeIntoSubwords(catalog, new SubwordTokenizingEstimator.Options
        {
            OutputColumnName = outputColumnName,
            InputColumnName = inputColumnName,
            Tokenizer = tokenizer,
            MaximumVocabularySize = maximumVocabularySize,
            MinimumCount = minimumCount,
        });

    /// <summary>Tokenizes a text column with a sub-word tokenizer, with all options (see the other overload).</summary>
    /// <param name="catalog">The text transforms catalog.</param>
    /// <param name="options">The options (copied).</param>
    public static SubwordTokenizingEstimator TokenizeIntoSubwords(this TransformsCatalog.TextTransforms catalog, SubwordTokenizingEstimator.Options options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(options);
        return new SubwordTokenizingEstimator(CatalogUtils.GetEnvironment(catalog), options);
    }
}
