using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using Microsoft.ML.SearchSpace;

namespace MLNetDeep;

/// <summary>
/// Options of the recurrent-network trainers: the cell, its size and depth, the token embedding, the pooling, plus
/// the sequence options and every option of the training core. Gradient clipping is on by default (norm 1), as
/// recurrent nets are prone to exploding gradients.
/// </summary>
public abstract class RnnOptions : SequenceOptions
{
    /// <summary>Create with the defaults: LSTM, 1 layer of 128, last-step pooling, dropout 0.2, gradient clipping at norm 1.</summary>
    protected RnnOptions() => GradientClipNorm = 1.0;

    /// <summary>Recurrent cell. Default <see cref="RecurrentCell.Lstm"/>.</summary>
    public RecurrentCell Cell { get; set; } = RecurrentCell.Lstm;

    /// <summary>Hidden units per direction and layer. Default 128.</summary>
    [Range(16, 256, 64, true)]
    public int HiddenSize { get; set; } = 128;

    /// <summary>Stacked recurrent layers. Default 1.</summary>
    [Range(1, 3, 1)]
    public int NumberOfLayers { get; set; } = 1;

    /// <summary>Read the sequence in both directions (outputs concatenated). Default false.</summary>
    public bool Bidirectional { get; set; }

    /// <summary>Dropout between recurrent layers and before the head; 0 disables. Default 0.2.</summary>
    [Range(0f, 0.5f, 0.2f)]
    public float Dropout { get; set; } = 0.2f;

    /// <summary>How the outputs of all steps become one vector. Default <see cref="SequencePooling.Last"/>.</summary>
    public SequencePooling Pooling { get; set; } = SequencePooling.Last;

    /// <summary>Token input: width of the (trainable) token embedding. Default 100.</summary>
    [Range(16, 256, 64, true)]
    public int EmbeddingSize { get; set; } = 100;

    /// <summary>
    /// Token input: a word-vector file in the GloVe / fastText text format (<c>word v1 v2 ...</c> per line; a fastText
    /// header line <c>count dimension</c> is skipped) to initialise the embedding rows of the words it contains, looked up
    /// by the key values of the token column (as MapValueToKey records them). Its dimension must equal
    /// <see cref="EmbeddingSize"/>. Nothing is downloaded. Default none.
    /// </summary>
    public string? WordVectorsPath { get; set; }

    /// <summary>Token input: keep the embedding as initialised (e.g. from <see cref="WordVectorsPath"/>). Default false.</summary>
    public bool FreezeEmbeddings { get; set; }

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        Positive(HiddenSize, nameof(HiddenSize));
        Positive(NumberOfLayers, nameof(NumberOfLayers));
        Positive(EmbeddingSize, nameof(EmbeddingSize));
        Require(Dropout >= 0 && Dropout < 1, nameof(Dropout), "must be in [0, 1)");
        Require(Enum.IsDefined(Cell), nameof(Cell), "must be Lstm, Gru or Rnn");
        Require(Enum.IsDefined(Pooling), nameof(Pooling), "must be Last, Mean, Max or Attention");
        if (WordVectorsPath is not null && !File.Exists(WordVectorsPath))
            throw new FileNotFoundException($"WordVectorsPath '{WordVectorsPath}' does not exist.", WordVectorsPath);
    }
}

/// <summary>What the recurrent trainers of every task share: the input encoder, the spec and the word vectors.</summary>
internal sealed class RnnFamily
{
    private readonly RnnOptions _o;
    private DataViewSchema? _schema;

    public RnnFamily(RnnOptions options) => _o = options;

    public void CheckFeatureShape(SchemaShape.Column feature)
    {
        bool tokens = feature.Kind != SchemaShape.Column.VectorKind.Scalar && feature.IsKey;
        bool numbers = feature.Kind == SchemaShape.Column.VectorKind.Vector && feature.ItemType == NumberDataViewType.Single;
        if (!tokens && !numbers)
            throw new ArgumentOutOfRangeException(nameof(DeepTrainerOptions.FeatureColumnName),
                $"Feature column '{_o.FeatureColumnName}' must be a vector of keys (token ids) or a known-size vector of Single (time steps), but is {feature.GetTypeString()}.");
    }

    public InputEncoder CreateEncoder(DataViewSchema schema)
    {
        _schema = schema;
        var col = schema.GetColumnOrNull(_o.FeatureColumnName);
        if (col is { } c && TokenEncoder.IsTokenColumn(c.Type))
            return TokenEncoder.FromSchema(schema, _o.FeatureColumnName, "training", _o.MaximumSequenceLength);
        if (_o.WordVectorsPath is not null)
            throw new ArgumentException($"WordVectorsPath needs token input, but feature column '{_o.FeatureColumnName}' holds numbers.", nameof(RnnOptions.WordVectorsPath));
        return DenseEncoder.FromSchema(schema, _o.FeatureColumnName, "training");
    }

    public NetworkSpec CreateSpec(InputEncoder input)
    {
        int featuresPerStep = 1;
        if (input is DenseEncoder d)
        {
            featuresPerStep = _o.FeaturesPerStep ?? (d.Dimensions.Length >= 2 ? d.Dimensions[^1] : 1);
            if (d.Size % featuresPerStep != 0)
                throw new ArgumentOutOfRangeException(nameof(SequenceOptions.FeaturesPerStep),
                    $"Feature column '{_o.FeatureColumnName}' has {d.Size} values, which is not a whole number of steps of {featuresPerStep} values; "
                    + "set FeaturesPerStep to the values per time step (or give the column dimensions [steps, features]).");
        }
        var decoding = _o is RnnForecaster.Options f ? f.Decoding : ForecastDecoding.Direct;
        if (decoding == ForecastDecoding.Autoregressive)
        {
            if (input is not DenseEncoder)
                throw new ArgumentOutOfRangeException(nameof(RnnForecaster.Options.Decoding),
                    $"Decoding = Autoregressive feeds each forecast back as the next step, so feature column '{_o.FeatureColumnName}' must hold numbers (one value per step), not tokens.");
            if (featuresPerStep != 1)
                throw new ArgumentOutOfRangeException(nameof(RnnForecaster.Options.Decoding),
                    $"Decoding = Autoregressive needs one value per step, but feature column '{_o.FeatureColumnName}' has {featuresPerStep} per step "
                    + "(other series or covariates have no future values to feed back); use Decoding = Direct.");
        }
        return new RnnNetworkSpec(_o.Cell, _o.HiddenSize, _o.NumberOfLayers, _o.Bidirectional, _o.Dropout, _o.Pooling, _o.EmbeddingSize, featuresPerStep, decoding);
    }

    public nn.Module<Tensor, Tensor> CreateNetwork(NetworkSpec spec, InputEncoder input, int outputSize, IChannel ch)
    {
        var net = (RnnNetwork)spec.Build(input, outputSize);
        net.TokenDropout = _o.TokenDropout;
        if (_o.TokenDropout > 0 && input is not TokenEncoder)
            throw new ArgumentException($"TokenDropout needs token input, but feature column '{_o.FeatureColumnName}' holds numbers.", nameof(SequenceOptions.TokenDropout));
        if (_o.WordVectorsPath is string path)
        {
            var keys = KeyValues(_schema!, _o.FeatureColumnName);
            var rows = WordVectors.Read(path, _o.EmbeddingSize, keys);
            net.SetEmbeddingRows(rows, _o.FreezeEmbeddings);
            ch.Info($"MLNetDeep: {rows.Count} of {keys.Count} tokens initialised from the word vectors in '{path}'.");
        }
        else if (_o.FreezeEmbeddings) net.SetEmbeddingRows(new Dictionary<int, float[]>(), freeze: true);
        return net;
    }

    /// <summary>Token id (key + 1) of each key value of the token column.</summary>
    private static Dictionary<string, int> KeyValues(DataViewSchema schema, string column)
    {
        var col = schema[column];
        var result = new Dictionary<string, int>(StringComparer.Ordinal);
        if (col.Annotations.Schema.GetColumnOrNull(AnnotationUtils.Kinds.KeyValues) is not { Type: VectorDataViewType { ItemType: TextDataViewType } } kv)
            throw new ArgumentException($"WordVectorsPath needs the token column '{column}' to carry its key values (the words), as MapValueToKey records them.", nameof(RnnOptions.WordVectorsPath));
        VBuffer<ReadOnlyMemory<char>> values = default;
        col.Annotations.GetValue(kv.Name, ref values);
        int id = TokenEncoder.UnknownId + 1;
        foreach (var v in values.DenseValues()) result.TryAdd(v.ToString(), id++);
        return result;
    }
}

/// <summary>Reads GloVe / fastText text word vectors for the words of a vocabulary.</summary>
internal static class WordVectors
{
    public static Dictionary<int, float[]> Read(string path, int dimension, IReadOnlyDictionary<string, int> vocabulary)
    {
        var rows = new Dictionary<int, float[]>();
        int lineNumber = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNumber++;
            var parts = line.TrimEnd().Split(' ');
            if (lineNumber == 1 && parts.Length == 2 && int.TryParse(parts[0], out _) && int.TryParse(parts[1], out _)) continue; // fastText header
            if (parts.Length < 2) continue;
            if (parts.Length - 1 != dimension)
                throw new InvalidDataException($"Word vectors '{path}' line {lineNumber} has {parts.Length - 1} values, but EmbeddingSize is {dimension}.");
            if (!vocabulary.TryGetValue(parts[0], out int id) || rows.ContainsKey(id)) continue;
            var v = new float[dimension];
            for (int i = 0; i < dimension; i++)
                if (!float.TryParse(parts[i + 1], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out v[i]) || !float.IsFinite(v[i]))
                    throw new InvalidDataException($"Word vectors '{path}' line {lineNumber} has an invalid number '{parts[i + 1]}'.");
            rows[id] = v;
        }
        return rows;
    }
}

/// <summary>Trains a recurrent network (LSTM, GRU or RNN) for binary classification of token or numeric sequences.</summary>
public sealed class RnnBinaryTrainer : DeepBinaryTrainerBase
{
    /// <summary>Options of <see cref="RnnBinaryTrainer"/>.</summary>
    public sealed class Options : RnnOptions { }

    private readonly RnnFamily _family;

    internal RnnBinaryTrainer(IHostEnvironment env, Options options) : base(env, nameof(RnnBinaryTrainer), options) => _family = new RnnFamily((RnnOptions)TrainerOptions);

    private protected override void CheckFeatureShape(SchemaShape.Column feature) => _family.CheckFeatureShape(feature);
    private protected override InputEncoder CreateEncoder(DataViewSchema schema) => _family.CreateEncoder(schema);
    private protected override NetworkSpec CreateNetworkSpec(InputEncoder input, int outputSize) => _family.CreateSpec(input);
    private protected override nn.Module<Tensor, Tensor> CreateNetwork(NetworkSpec spec, InputEncoder input, int outputSize, IChannel ch) => _family.CreateNetwork(spec, input, outputSize, ch);
}

/// <summary>Trains a recurrent network (LSTM, GRU or RNN) for multiclass classification of token or numeric sequences.</summary>
public sealed class RnnMulticlassTrainer : DeepMulticlassTrainerBase
{
    /// <summary>Options of <see cref="RnnMulticlassTrainer"/>.</summary>
    public sealed class Options : RnnOptions { }

    private readonly RnnFamily _family;

    internal RnnMulticlassTrainer(IHostEnvironment env, Options options) : base(env, nameof(RnnMulticlassTrainer), options) => _family = new RnnFamily((RnnOptions)TrainerOptions);

    private protected override void CheckFeatureShape(SchemaShape.Column feature) => _family.CheckFeatureShape(feature);
    private protected override InputEncoder CreateEncoder(DataViewSchema schema) => _family.CreateEncoder(schema);
    private protected override NetworkSpec CreateNetworkSpec(InputEncoder input, int outputSize) => _family.CreateSpec(input);
    private protected override nn.Module<Tensor, Tensor> CreateNetwork(NetworkSpec spec, InputEncoder input, int outputSize, IChannel ch) => _family.CreateNetwork(spec, input, outputSize, ch);
}

/// <summary>Trains a recurrent network (LSTM, GRU or RNN) for regression on token or numeric sequences.</summary>
public sealed class RnnRegressionTrainer : DeepRegressionTrainerBase
{
    /// <summary>Options of <see cref="RnnRegressionTrainer"/>.</summary>
    public sealed class Options : RnnOptions { }

    private readonly RnnFamily _family;

    internal RnnRegressionTrainer(IHostEnvironment env, Options options) : base(env, nameof(RnnRegressionTrainer), options) => _family = new RnnFamily((RnnOptions)TrainerOptions);

    private protected override void CheckFeatureShape(SchemaShape.Column feature) => _family.CheckFeatureShape(feature);
    private protected override InputEncoder CreateEncoder(DataViewSchema schema) => _family.CreateEncoder(schema);
    private protected override NetworkSpec CreateNetworkSpec(InputEncoder input, int outputSize) => _family.CreateSpec(input);
    private protected override nn.Module<Tensor, Tensor> CreateNetwork(NetworkSpec spec, InputEncoder input, int outputSize, IChannel ch) => _family.CreateNetwork(spec, input, outputSize, ch);
}

/// <summary>
/// Trains a recurrent network to forecast the next H values of a series from a window of past steps: features a
/// <c>vector&lt;float&gt;</c> of L steps × F values (see <see cref="ForecastWindows"/>), label a <c>vector&lt;float&gt;</c> of H values.
/// </summary>
public sealed class RnnForecaster : DeepForecastTrainerBase
{
    /// <summary>Options of <see cref="RnnForecaster"/>.</summary>
    public sealed class Options : RnnOptions
    {
        /// <summary>
        /// How the H values are produced. <see cref="ForecastDecoding.Direct"/> (default): one dense layer emits all of
        /// them. <see cref="ForecastDecoding.Autoregressive"/>: one step at a time, each forecast fed back as the next
        /// step's input (trained through all H steps) — often better at longer horizons on short univariate series.
        /// Autoregressive needs one value per step (the series being forecast, as <see cref="ForecastWindows"/> makes
        /// it without other series or covariates), <see cref="RnnOptions.Bidirectional"/> off and
        /// <see cref="SequencePooling.Last"/>; the label must be in the input's units and is not standardized again
        /// (<see cref="DeepTrainerOptions.StandardizeLabel"/> is not used).
        /// </summary>
        public ForecastDecoding Decoding { get; set; } = ForecastDecoding.Direct;

        /// <inheritdoc/>
        public override void Validate()
        {
            base.Validate();
            Require(Enum.IsDefined(Decoding), nameof(Decoding), "must be Direct or Autoregressive");
            if (Decoding != ForecastDecoding.Autoregressive) return;
            Require(!Bidirectional, nameof(Bidirectional), "must be false with Decoding = Autoregressive (the forecast continues the forward state)");
            Require(Pooling == SequencePooling.Last, nameof(Pooling), "must be Last with Decoding = Autoregressive (each forecast comes from the latest state)");
            if (FeaturesPerStep is int f)
                Require(f == 1, nameof(FeaturesPerStep), "must be 1 with Decoding = Autoregressive (each forecast becomes the next step's only value)");
        }
    }

    private readonly RnnFamily _family;

    internal RnnForecaster(IHostEnvironment env, Options options) : base(env, nameof(RnnForecaster), options) => _family = new RnnFamily((RnnOptions)TrainerOptions);

    private protected override void CheckFeatureShape(SchemaShape.Column feature) => _family.CheckFeatureShape(feature);
    private protected override InputEncoder CreateEncoder(DataViewSchema schema) => _family.CreateEncoder(schema);
    private protected override NetworkSpec CreateNetworkSpec(InputEncoder input, int outputSize) => _family.CreateSpec(input);
    private protected override nn.Module<Tensor, Tensor> CreateNetwork(NetworkSpec spec, InputEncoder input, int outputSize, IChannel ch) => _family.CreateNetwork(spec, input, outputSize, ch);
    private protected override bool StandardizesLabel => ((Options)TrainerOptions).Decoding == ForecastDecoding.Direct && TrainerOptions.StandardizeLabel;
}

/// <summary>
/// Catalog extensions: <c>mlContext.{BinaryClassification,MulticlassClassification,Regression}.Trainers.Rnn(...)</c> and
/// <c>mlContext.Forecasting.Trainers.Rnn(...)</c>.
/// </summary>
public static class RnnCatalog
{
    /// <summary>A recurrent binary classifier of token sequences (<c>vector&lt;key&gt;</c>) or numeric sequences.</summary>
    /// <param name="catalog">The binary classification trainer catalog.</param>
    /// <param name="labelColumnName">Label column (bool).</param>
    /// <param name="featureColumnName">Token ids (TokenizeIntoWords → MapValueToKey) or a vector of float time steps.</param>
    /// <param name="cell">LSTM, GRU or RNN.</param>
    /// <param name="hiddenSize">Hidden units.</param>
    /// <param name="numberOfEpochs">Passes over the data.</param>
    /// <param name="batchSize">Sequences per mini-batch.</param>
    /// <param name="learningRate">AdamW learning rate.</param>
    public static RnnBinaryTrainer Rnn(this BinaryClassificationCatalog.BinaryClassificationTrainers catalog,
        string labelColumnName = DefaultColumnNames.Label, string featureColumnName = DefaultColumnNames.Features,
        RecurrentCell cell = RecurrentCell.Lstm, int hiddenSize = 128, int numberOfEpochs = 10, int batchSize = 64, double learningRate = 1e-3)
        => Rnn(catalog, Fill(new RnnBinaryTrainer.Options(), labelColumnName, featureColumnName, cell, hiddenSize, numberOfEpochs, batchSize, learningRate));

    /// <summary>A recurrent binary classifier with all options.</summary>
    public static RnnBinaryTrainer Rnn(this BinaryClassificationCatalog.BinaryClassificationTrainers catalog, RnnBinaryTrainer.Options options)
        => new(CatalogUtils.GetEnvironment(catalog), options ?? throw new ArgumentNullException(nameof(options)));

    /// <summary>A recurrent multiclass classifier of token sequences (<c>vector&lt;key&gt;</c>) or numeric sequences.</summary>
    /// <param name="catalog">The multiclass classification trainer catalog.</param>
    /// <param name="labelColumnName">Label column (key type: use MapValueToKey).</param>
    /// <param name="featureColumnName">Token ids (TokenizeIntoWords → MapValueToKey) or a vector of float time steps.</param>
    /// <param name="cell">LSTM, GRU or RNN.</param>
    /// <param name="hiddenSize">Hidden units.</param>
    /// <param name="numberOfEpochs">Passes over the data.</param>
    /// <param name="batchSize">Sequences per mini-batch.</param>
    /// <param name="learningRate">AdamW learning rate.</param>
    public static RnnMulticlassTrainer Rnn(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        string labelColumnName = DefaultColumnNames.Label, string featureColumnName = DefaultColumnNames.Features,
        RecurrentCell cell = RecurrentCell.Lstm, int hiddenSize = 128, int numberOfEpochs = 10, int batchSize = 64, double learningRate = 1e-3)
        => Rnn(catalog, Fill(new RnnMulticlassTrainer.Options(), labelColumnName, featureColumnName, cell, hiddenSize, numberOfEpochs, batchSize, learningRate));

    /// <summary>A recurrent multiclass classifier with all options.</summary>
    public static RnnMulticlassTrainer Rnn(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog, RnnMulticlassTrainer.Options options)
        => new(CatalogUtils.GetEnvironment(catalog), options ?? throw new ArgumentNullException(nameof(options)));

    /// <summary>A recurrent regressor of token or numeric sequences.</summary>
    /// <param name="catalog">The regression trainer catalog.</param>
    /// <param name="labelColumnName">Label column (float).</param>
    /// <param name="featureColumnName">Token ids (TokenizeIntoWords → MapValueToKey) or a vector of float time steps.</param>
    /// <param name="cell">LSTM, GRU or RNN.</param>
    /// <param name="hiddenSize">Hidden units.</param>
    /// <param name="numberOfEpochs">Passes over the data.</param>
    /// <param name="batchSize">Sequences per mini-batch.</param>
    /// <param name="learningRate">AdamW learning rate.</param>
    public static RnnRegressionTrainer Rnn(this RegressionCatalog.RegressionTrainers catalog,
        string labelColumnName = DefaultColumnNames.Label, string featureColumnName = DefaultColumnNames.Features,
        RecurrentCell cell = RecurrentCell.Lstm, int hiddenSize = 128, int numberOfEpochs = 10, int batchSize = 64, double learningRate = 1e-3)
        => Rnn(catalog, Fill(new RnnRegressionTrainer.Options(), labelColumnName, featureColumnName, cell, hiddenSize, numberOfEpochs, batchSize, learningRate));

    /// <summary>A recurrent regressor with all options.</summary>
    public static RnnRegressionTrainer Rnn(this RegressionCatalog.RegressionTrainers catalog, RnnRegressionTrainer.Options options)
        => new(CatalogUtils.GetEnvironment(catalog), options ?? throw new ArgumentNullException(nameof(options)));

    /// <summary>A recurrent forecaster: a window of past steps → the next H values.</summary>
    /// <param name="catalog">The forecasting trainer catalog.</param>
    /// <param name="labelColumnName">Label column: a vector of the H values to forecast.</param>
    /// <param name="featureColumnName">The window: a vector of float, steps × features per step.</param>
    /// <param name="cell">LSTM, GRU or RNN.</param>
    /// <param name="hiddenSize">Hidden units.</param>
    /// <param name="numberOfEpochs">Passes over the data.</param>
    /// <param name="batchSize">Windows per mini-batch.</param>
    /// <param name="learningRate">AdamW learning rate.</param>
    public static RnnForecaster Rnn(this ForecastingCatalog.Forecasters catalog,
        string labelColumnName = DefaultColumnNames.Label, string featureColumnName = DefaultColumnNames.Features,
        RecurrentCell cell = RecurrentCell.Lstm, int hiddenSize = 64, int numberOfEpochs = 100, int batchSize = 32, double learningRate = 1e-3)
        => Rnn(catalog, Fill(new RnnForecaster.Options(), labelColumnName, featureColumnName, cell, hiddenSize, numberOfEpochs, batchSize, learningRate));

    /// <summary>A recurrent forecaster with all options.</summary>
    public static RnnForecaster Rnn(this ForecastingCatalog.Forecasters catalog, RnnForecaster.Options options)
        => new(CatalogUtils.GetEnvironment(catalog), options ?? throw new ArgumentNullException(nameof(options)));

    private static T Fill<T>(T o, string label, string features, RecurrentCell cell, int hidden, int epochs, int batchSize, double lr) where T : RnnOptions
    {
        o.Cell = cell;
        o.HiddenSize = hidden;
        return o.WithBasics<T>(label, features, epochs, batchSize, lr);
    }
}
