using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using Microsoft.ML.SearchSpace;

namespace MLNetDeep;

/// <summary>
/// Options of the Transformer trainers: the encoder's shape (layers, width, heads, feed-forward), its norm placement,
/// positions and pooling, image patches, plus the sequence options and every option of the training core. The
/// defaults train stably on a CPU: pre-norm, GELU, warm-up then cosine decay, AdamW with weight decay 0.01 and
/// β₂ = 0.98, gradient clipping at norm 1.
/// </summary>
public abstract class TransformerOptions : SequenceOptions
{
    /// <summary>Create with the defaults (see the class summary).</summary>
    protected TransformerOptions()
    {
        Schedule = LearningRateSchedule.WarmupCosine;
        WarmupFraction = 0.1;
        LearningRate = 5e-4;
        WeightDecay = 0.01;
        AdamBeta2 = 0.98;
        GradientClipNorm = 1.0;
    }

    /// <summary>Encoder layers. Default 2.</summary>
    [Range(1, 4, 2)]
    public int NumberOfLayers { get; set; } = 2;

    /// <summary>Model width (embedding and every layer's output). Must be a multiple of <see cref="NumberOfHeads"/>. Default 128.</summary>
    [Choice(new object[] { 32, 64, 128 }, 64)]
    public int ModelWidth { get; set; } = 128;

    /// <summary>Attention heads per layer. Default 4.</summary>
    public int NumberOfHeads { get; set; } = 4;

    /// <summary>Hidden width of the feed-forward blocks; 0 means 4 × <see cref="ModelWidth"/>. Default 0.</summary>
    public int FeedForwardWidth { get; set; }

    /// <summary>Feed-forward activation. Default <see cref="TransformerActivation.Gelu"/>.</summary>
    public TransformerActivation Activation { get; set; } = TransformerActivation.Gelu;

    /// <summary>Dropout on the embeddings, after attention and feed-forward blocks and before the head. Default 0.1.</summary>
    [Range(0f, 0.3f, 0.1f)]
    public float Dropout { get; set; } = 0.1f;

    /// <summary>
    /// Dropout on the attention weights. Default 0: libtorch's fast fused attention kernel on the CPU takes no dropout,
    /// so any value here makes training fall back to a slower path (see the benchmark's README).
    /// </summary>
    public float AttentionDropout { get; set; }

    /// <summary>Layer norm before each block (pre-norm, stable without careful warm-up; default) or after the residual (post-norm, the original Transformer and BERT).</summary>
    public bool PreNorm { get; set; } = true;

    /// <summary>Epsilon of the layer norms. Default 1e-5.</summary>
    public double LayerNormEpsilon { get; set; } = 1e-5;

    /// <summary>Learned or sinusoidal positions. Default <see cref="PositionEncoding.Learned"/>.</summary>
    public PositionEncoding Positions { get; set; } = PositionEncoding.Learned;

    /// <summary>How the outputs become one vector. Default <see cref="TransformerPooling.Cls"/>.</summary>
    public TransformerPooling Pooling { get; set; } = TransformerPooling.Cls;

    /// <summary>
    /// Image input: the side of the square patches a Vision Transformer cuts the image into (each patch projected to
    /// <see cref="ModelWidth"/>). The image shape comes from the pixel column's dimensions (ExtractPixels, IdxImages:
    /// C×H×W) or <see cref="ImageChannels"/>/<see cref="ImageHeight"/>/<see cref="ImageWidth"/>; height and width must be
    /// multiples of it. 0 (default) reads a numeric column as a sequence of steps (<see cref="SequenceOptions.FeaturesPerStep"/>).
    /// </summary>
    public int PatchSize { get; set; }

    /// <summary>
    /// Image input: random augmentation of the training images before they are cut into patches (never when scoring or
    /// validating), e.g. <see cref="ImageAugmentation.Standard"/>. Default null: none. Only with <see cref="PatchSize"/>.
    /// </summary>
    public ImageAugmentation? Augmentation { get; set; }

    /// <summary>Image input: channels, when the column has no C×H×W dimensions. Default null.</summary>
    public int? ImageChannels { get; set; }

    /// <summary>Image input: height, when the column has no C×H×W dimensions. Default null.</summary>
    public int? ImageHeight { get; set; }

    /// <summary>Image input: width, when the column has no C×H×W dimensions. Default null.</summary>
    public int? ImageWidth { get; set; }

    /// <summary>
    /// Use libtorch's fused <c>scaled_dot_product_attention</c> (default); false computes softmax(QKᵀ/√d)·V
    /// explicitly. Both give the same result to rounding; see the benchmark's README for the speed of each.
    /// </summary>
    public bool FusedAttention { get; set; } = true;

    /// <summary>
    /// Transfer learning: a trained MLNetDeep Transformer to start from — a pretrained encoder
    /// (<c>mlContext.Transforms.Text.PretrainTransformerEncoder</c>) or any Transformer model, or a fitted pipeline ending
    /// in one. Its encoder (embedding, positions, layers) is copied and a new head is trained; its shape replaces
    /// <see cref="NumberOfLayers"/>, <see cref="ModelWidth"/>, <see cref="NumberOfHeads"/> and the other encoder options
    /// (<see cref="Pooling"/> and <see cref="Dropout"/> stay yours). The token column must come from the same fitted
    /// tokenizing transforms (the same vocabulary). Default none.
    /// </summary>
    public ITransformer? BaseModel { get; set; }

    /// <summary>Transfer learning: path of a saved model zip to start from (instead of <see cref="BaseModel"/>).</summary>
    public string? BaseModelPath { get; set; }

    /// <summary>
    /// Transfer learning: keep the embedding, positions and this many lowest encoder layers as they were trained
    /// (their weights stay bit-identical); 0 (default) fine-tunes everything.
    /// </summary>
    public int FreezeLayers { get; set; }

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        Positive(NumberOfLayers, nameof(NumberOfLayers));
        Positive(ModelWidth, nameof(ModelWidth));
        Positive(NumberOfHeads, nameof(NumberOfHeads));
        Require(ModelWidth % NumberOfHeads == 0, nameof(NumberOfHeads), $"must divide ModelWidth ({ModelWidth})");
        Require(FeedForwardWidth >= 0, nameof(FeedForwardWidth), "must be zero (4 × ModelWidth) or positive");
        Require(Dropout >= 0 && Dropout < 1, nameof(Dropout), "must be in [0, 1)");
        Require(AttentionDropout >= 0 && AttentionDropout < 1, nameof(AttentionDropout), "must be in [0, 1)");
        Require(LayerNormEpsilon > 0 && double.IsFinite(LayerNormEpsilon), nameof(LayerNormEpsilon), "must be a positive number");
        Require(Enum.IsDefined(Activation), nameof(Activation), "must be Gelu or Relu");
        Require(Enum.IsDefined(Positions), nameof(Positions), "must be Learned or Sinusoidal");
        Require(Enum.IsDefined(Pooling), nameof(Pooling), "must be Cls, Mean or Attention");
        Require(PatchSize >= 0, nameof(PatchSize), "must be zero (no patches) or positive");
        if (ImageChannels is int c) Positive(c, nameof(ImageChannels));
        if (ImageHeight is int h) Positive(h, nameof(ImageHeight));
        if (ImageWidth is int w) Positive(w, nameof(ImageWidth));
        Require(PatchSize > 0 || ImageChannels is null && ImageHeight is null && ImageWidth is null, nameof(PatchSize), "must be set when an image shape is given");
        Augmentation?.Validate();
        Require(PatchSize > 0 || Augmentation is null || Augmentation.IsNone, nameof(Augmentation), "applies to image patches only: set PatchSize");
        Require(FreezeLayers >= 0, nameof(FreezeLayers), "must be zero or positive");
        if (BaseModel is not null && BaseModelPath is not null)
            throw new ArgumentException("Give BaseModel or BaseModelPath, not both.", nameof(BaseModelPath));
        if (FreezeLayers > 0 && BaseModel is null && BaseModelPath is null)
            throw new ArgumentException("FreezeLayers needs a BaseModel or BaseModelPath to take the trained layers from.", nameof(FreezeLayers));
        if (BaseModelPath is not null && !File.Exists(BaseModelPath))
            throw new FileNotFoundException($"BaseModelPath '{BaseModelPath}' does not exist.", BaseModelPath);
    }
}

/// <summary>What the Transformer trainers of every task share: the input encoder and the spec.</summary>
internal sealed class TransformerFamily
{
    private readonly TransformerOptions _o;

    public TransformerFamily(TransformerOptions options) => _o = options;

    public void CheckFeatureShape(SchemaShape.Column feature)
    {
        bool tokens = feature.Kind != SchemaShape.Column.VectorKind.Scalar && feature.IsKey;
        bool numbers = feature.Kind == SchemaShape.Column.VectorKind.Vector && feature.ItemType == NumberDataViewType.Single;
        if (!tokens && !numbers)
            throw new ArgumentOutOfRangeException(nameof(DeepTrainerOptions.FeatureColumnName),
                $"Feature column '{_o.FeatureColumnName}' must be a vector of keys (token ids), or a known-size vector of Single (time steps or image pixels), but is {feature.GetTypeString()}.");
    }

    public InputEncoder CreateEncoder(DataViewSchema schema)
    {
        var col = schema.GetColumnOrNull(_o.FeatureColumnName);
        if (col is { } c && TokenEncoder.IsTokenColumn(c.Type))
            return TokenEncoder.FromSchema(schema, _o.FeatureColumnName, "training", _o.MaximumSequenceLength);
        return DenseEncoder.FromSchema(schema, _o.FeatureColumnName, "training");
    }

    public NetworkSpec CreateSpec(InputEncoder input)
    {
        if (LoadBase() is { } b)
        {
            var baseSpec = (TransformerNetworkSpec)b.Spec;
            if (input is not TokenEncoder t || b.Encoder is not TokenEncoder bt)
                throw new ArgumentException("Fine-tuning from a base model needs token input on both sides.", BaseOption);
            if (t.VocabularySize != bt.VocabularySize)
                throw new ArgumentException($"The base model read {bt.VocabularySize} token ids, but feature column '{_o.FeatureColumnName}' has {t.VocabularySize}: "
                    + "tokenize the pretraining text and this data with the same fitted transforms (the same vocabulary).", BaseOption);
            if (_o.FreezeLayers > baseSpec.Layers)
                throw new ArgumentOutOfRangeException(nameof(TransformerOptions.FreezeLayers), $"FreezeLayers is {_o.FreezeLayers}, but the base encoder has {baseSpec.Layers} layers.");
            var spec = baseSpec.ForTask(_o.Pooling, _o.Dropout, _o.FusedAttention);
            if (t.MaximumSequenceLength != bt.MaximumSequenceLength)
                throw new ArgumentException($"The base model's position table is for {bt.MaximumSequenceLength} tokens; set MaximumSequenceLength to {bt.MaximumSequenceLength}.", nameof(SequenceOptions.MaximumSequenceLength));
            return spec;
        }
        return CreateOwnSpec(input);
    }

    private NetworkSpec CreateOwnSpec(InputEncoder input)
    {
        int featuresPerStep = 1, channels = 0, height = 0, width = 0;
        if (input is DenseEncoder d)
        {
            if (_o.PatchSize > 0)
            {
                var dims = d.Dimensions;
                (channels, height, width) = _o.ImageHeight is int h && _o.ImageWidth is int w
                    ? (_o.ImageChannels ?? 1, h, w)
                    : dims.Length == 3 ? (dims[0], dims[1], dims[2])
                    : dims.Length == 2 ? (1, dims[0], dims[1])
                    : throw new ArgumentOutOfRangeException(nameof(TransformerOptions.PatchSize),
                        $"Feature column '{_o.FeatureColumnName}' has no image dimensions (C×H×W); set ImageChannels, ImageHeight and ImageWidth.");
                if ((long)channels * height * width != d.Size)
                    throw new ArgumentOutOfRangeException(nameof(TransformerOptions.ImageHeight),
                        $"Feature column '{_o.FeatureColumnName}' has {d.Size} values, not {channels}x{height}x{width}.");
                if (height % _o.PatchSize != 0 || width % _o.PatchSize != 0)
                    throw new ArgumentOutOfRangeException(nameof(TransformerOptions.PatchSize),
                        $"PatchSize {_o.PatchSize} must divide the image's height and width ({height}x{width}).");
            }
            else
            {
                featuresPerStep = _o.FeaturesPerStep ?? (d.Dimensions.Length >= 2 ? d.Dimensions[^1] : 1);
                if (d.Size % featuresPerStep != 0)
                    throw new ArgumentOutOfRangeException(nameof(SequenceOptions.FeaturesPerStep),
                        $"Feature column '{_o.FeatureColumnName}' has {d.Size} values, which is not a whole number of steps of {featuresPerStep} values; "
                        + "set FeaturesPerStep to the values per time step (or give the column dimensions [steps, features]).");
            }
        }
        else if (_o.PatchSize > 0)
            throw new ArgumentOutOfRangeException(nameof(TransformerOptions.PatchSize), $"PatchSize needs image pixels, but feature column '{_o.FeatureColumnName}' holds token ids.");
        return new TransformerNetworkSpec
        {
            Layers = _o.NumberOfLayers, Width = _o.ModelWidth, Heads = _o.NumberOfHeads,
            FeedForward = _o.FeedForwardWidth > 0 ? _o.FeedForwardWidth : 4 * _o.ModelWidth,
            Activation = _o.Activation, Dropout = _o.Dropout, AttentionDropout = _o.AttentionDropout, PreNorm = _o.PreNorm, Epsilon = _o.LayerNormEpsilon,
            Positions = _o.Positions, Pooling = _o.Pooling, FeaturesPerStep = featuresPerStep, PatchSize = _o.PatchSize,
            Channels = channels, Height = height, Width2D = width, FusedAttention = _o.FusedAttention,
        };
    }

    public nn.Module<Tensor, Tensor> CreateNetwork(NetworkSpec spec, InputEncoder input, int outputSize, IChannel ch)
    {
        if (_o.TokenDropout > 0 && input is not TokenEncoder)
            throw new ArgumentException($"TokenDropout needs token input, but feature column '{_o.FeatureColumnName}' holds numbers.", nameof(SequenceOptions.TokenDropout));
        var net = (TransformerNetwork)spec.Build(input, outputSize);
        net.TokenDropout = _o.TokenDropout;
        net.FusedAttention = _o.FusedAttention;
        if (_o.Augmentation is { IsNone: false } augmentation) net.Augmentation = augmentation;
        if (LoadBase() is { } b)
        {
            int copied = net.CopyEncoderFrom((TransformerNetwork)b.Network);
            if (_o.FreezeLayers > 0) net.FreezeEncoder(_o.FreezeLayers);
            ch.Info($"MLNetDeep: {copied} encoder tensors copied from the base model ({b.Architecture})"
                + (_o.FreezeLayers > 0 ? $"; the embedding, positions and the lowest {_o.FreezeLayers} layer(s) are frozen." : "."));
        }
        return net;
    }

    private string BaseOption => _o.BaseModelPath is null ? nameof(TransformerOptions.BaseModel) : nameof(TransformerOptions.BaseModelPath);

    private DeepModelParameters? _base;

    private DeepModelParameters? LoadBase()
    {
        if (_base is not null) return _base;
        ITransformer? source = _o.BaseModel;
        if (_o.BaseModelPath is string path) source = new MLContext().Model.LoadChecked(path, out _);
        if (source is null) return null;
        var model = DeepModelParameters.Find(source) ?? throw new ArgumentException("The base model contains no MLNetDeep network.", BaseOption);
        if (model.Spec is not TransformerNetworkSpec || model.Network is not TransformerNetwork)
            throw new ArgumentException($"The base model is {model.Architecture}, not a Transformer.", BaseOption);
        return _base = model;
    }

}

/// <summary>Trains a Transformer encoder for binary classification of token sequences, numeric sequences or images.</summary>
public sealed class TransformerBinaryTrainer : DeepBinaryTrainerBase
{
    /// <summary>Options of <see cref="TransformerBinaryTrainer"/>.</summary>
    public sealed class Options : TransformerOptions { }

    private readonly TransformerFamily _family;

    internal TransformerBinaryTrainer(IHostEnvironment env, Options options) : base(env, nameof(TransformerBinaryTrainer), options) => _family = new TransformerFamily((TransformerOptions)TrainerOptions);

    private protected override void CheckFeatureShape(SchemaShape.Column feature) => _family.CheckFeatureShape(feature);
    private protected override InputEncoder CreateEncoder(DataViewSchema schema) => _family.CreateEncoder(schema);
    private protected override NetworkSpec CreateNetworkSpec(InputEncoder input, int outputSize) => _family.CreateSpec(input);
    private protected override nn.Module<Tensor, Tensor> CreateNetwork(NetworkSpec spec, InputEncoder input, int outputSize, IChannel ch) => _family.CreateNetwork(spec, input, outputSize, ch);
}

/// <summary>Trains a Transformer encoder for multiclass classification of token sequences, numeric sequences or images.</summary>
public sealed class TransformerMulticlassTrainer : DeepMulticlassTrainerBase
{
    /// <summary>Options of <see cref="TransformerMulticlassTrainer"/>.</summary>
    public sealed class Options : TransformerOptions { }

    private readonly TransformerFamily _family;

    internal TransformerMulticlassTrainer(IHostEnvironment env, Options options) : base(env, nameof(TransformerMulticlassTrainer), options) => _family = new TransformerFamily((TransformerOptions)TrainerOptions);

    private protected override void CheckFeatureShape(SchemaShape.Column feature) => _family.CheckFeatureShape(feature);
    private protected override InputEncoder CreateEncoder(DataViewSchema schema) => _family.CreateEncoder(schema);
    private protected override NetworkSpec CreateNetworkSpec(InputEncoder input, int outputSize) => _family.CreateSpec(input);
    private protected override nn.Module<Tensor, Tensor> CreateNetwork(NetworkSpec spec, InputEncoder input, int outputSize, IChannel ch) => _family.CreateNetwork(spec, input, outputSize, ch);
}

/// <summary>Trains a Transformer encoder for regression on token sequences, numeric sequences or images.</summary>
public sealed class TransformerRegressionTrainer : DeepRegressionTrainerBase
{
    /// <summary>Options of <see cref="TransformerRegressionTrainer"/>.</summary>
    public sealed class Options : TransformerOptions { }

    private readonly TransformerFamily _family;

    internal TransformerRegressionTrainer(IHostEnvironment env, Options options) : base(env, nameof(TransformerRegressionTrainer), options) => _family = new TransformerFamily((TransformerOptions)TrainerOptions);

    private protected override void CheckFeatureShape(SchemaShape.Column feature) => _family.CheckFeatureShape(feature);
    private protected override InputEncoder CreateEncoder(DataViewSchema schema) => _family.CreateEncoder(schema);
    private protected override NetworkSpec CreateNetworkSpec(InputEncoder input, int outputSize) => _family.CreateSpec(input);
    private protected override nn.Module<Tensor, Tensor> CreateNetwork(NetworkSpec spec, InputEncoder input, int outputSize, IChannel ch) => _family.CreateNetwork(spec, input, outputSize, ch);
}

/// <summary>Trains a Transformer encoder that forecasts H future values (a <c>vector&lt;float&gt;</c> label) from a window of the past.</summary>
public sealed class TransformerForecaster : DeepForecastTrainerBase
{
    /// <summary>Options of <see cref="TransformerForecaster"/>.</summary>
    public sealed class Options : TransformerOptions { }

    private readonly TransformerFamily _family;

    internal TransformerForecaster(IHostEnvironment env, Options options) : base(env, nameof(TransformerForecaster), options) => _family = new TransformerFamily((TransformerOptions)TrainerOptions);

    private protected override void CheckFeatureShape(SchemaShape.Column feature) => _family.CheckFeatureShape(feature);
    private protected override InputEncoder CreateEncoder(DataViewSchema schema) => _family.CreateEncoder(schema);
    private protected override NetworkSpec CreateNetworkSpec(InputEncoder input, int outputSize) => _family.CreateSpec(input);
    private protected override nn.Module<Tensor, Tensor> CreateNetwork(NetworkSpec spec, InputEncoder input, int outputSize, IChannel ch) => _family.CreateNetwork(spec, input, outputSize, ch);
}

/// <summary>
/// Catalog extensions: <c>mlContext.{BinaryClassification,MulticlassClassification,Regression}.Trainers.Transformer(...)</c>
/// and <c>mlContext.Forecasting.Trainers.Transformer(...)</c>.
/// </summary>
public static class TransformerCatalog
{
    /// <summary>A Transformer binary classifier of token sequences (<c>vector&lt;key&gt;</c>), numeric sequences or image pixels.</summary>
    /// <param name="catalog">The binary classification trainer catalog.</param>
    /// <param name="labelColumnName">Label column (bool).</param>
    /// <param name="featureColumnName">Token ids (e.g. TokenizeIntoWords → MapValueToKey, or TokenizeIntoSubwords) or a vector of floats.</param>
    /// <param name="numberOfLayers">Encoder layers.</param>
    /// <param name="modelWidth">Model width.</param>
    /// <param name="numberOfEpochs">Passes over the data.</param>
    /// <param name="batchSize">Rows per mini-batch.</param>
    /// <param name="learningRate">Peak AdamW learning rate (warm-up, then cosine decay).</param>
    public static TransformerBinaryTrainer Transformer(this BinaryClassificationCatalog.BinaryClassificationTrainers catalog,
        string labelColumnName = DefaultColumnNames.Label, string featureColumnName = DefaultColumnNames.Features,
        int numberOfLayers = 2, int modelWidth = 128, int numberOfEpochs = 10, int batchSize = 64, double learningRate = 5e-4)
        => Transformer(catalog, Fill(new TransformerBinaryTrainer.Options(), labelColumnName, featureColumnName, numberOfLayers, modelWidth, numberOfEpochs, batchSize, learningRate));

    /// <summary>A Transformer binary classifier with all options.</summary>
    public static TransformerBinaryTrainer Transformer(this BinaryClassificationCatalog.BinaryClassificationTrainers catalog, TransformerBinaryTrainer.Options options)
        => new(CatalogUtils.GetEnvironment(catalog), options ?? throw new ArgumentNullException(nameof(options)));

    /// <summary>A Transformer multiclass classifier of token sequences, numeric sequences or image pixels (a Vision Transformer with <see cref="TransformerOptions.PatchSize"/>).</summary>
    /// <param name="catalog">The multiclass classification trainer catalog.</param>
    /// <param name="labelColumnName">Label column (key type: use MapValueToKey).</param>
    /// <param name="featureColumnName">Token ids or a vector of floats.</param>
    /// <param name="numberOfLayers">Encoder layers.</param>
    /// <param name="modelWidth">Model width.</param>
    /// <param name="numberOfEpochs">Passes over the data.</param>
    /// <param name="batchSize">Rows per mini-batch.</param>
    /// <param name="learningRate">Peak AdamW learning rate (warm-up, then cosine decay).</param>
    public static TransformerMulticlassTrainer Transformer(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        string labelColumnName = DefaultColumnNames.Label, string featureColumnName = DefaultColumnNames.Features,
        int numberOfLayers = 2, int modelWidth = 128, int numberOfEpochs = 10, int batchSize = 64, double learningRate = 5e-4)
        => Transformer(catalog, Fill(new TransformerMulticlassTrainer.Options(), labelColumnName, featureColumnName, numberOfLayers, modelWidth, numberOfEpochs, batchSize, learningRate));

    /// <summary>A Transformer multiclass classifier with all options.</summary>
    public static TransformerMulticlassTrainer Transformer(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog, TransformerMulticlassTrainer.Options options)
        => new(CatalogUtils.GetEnvironment(catalog), options ?? throw new ArgumentNullException(nameof(options)));

    /// <summary>A Transformer regressor of token sequences, numeric sequences or image pixels.</summary>
    /// <param name="catalog">The regression trainer catalog.</param>
    /// <param name="labelColumnName">Label column (float).</param>
    /// <param name="featureColumnName">Token ids or a vector of floats.</param>
    /// <param name="numberOfLayers">Encoder layers.</param>
    /// <param name="modelWidth">Model width.</param>
    /// <param name="numberOfEpochs">Passes over the data.</param>
    /// <param name="batchSize">Rows per mini-batch.</param>
    /// <param name="learningRate">Peak AdamW learning rate (warm-up, then cosine decay).</param>
    public static TransformerRegressionTrainer Transformer(this RegressionCatalog.RegressionTrainers catalog,
        string labelColumnName = DefaultColumnNames.Label, string featureColumnName = DefaultColumnNames.Features,
        int numberOfLayers = 2, int modelWidth = 128, int numberOfEpochs = 10, int batchSize = 64, double learningRate = 5e-4)
        => Transformer(catalog, Fill(new TransformerRegressionTrainer.Options(), labelColumnName, featureColumnName, numberOfLayers, modelWidth, numberOfEpochs, batchSize, learningRate));

    /// <summary>A Transformer regressor with all options.</summary>
    public static TransformerRegressionTrainer Transformer(this RegressionCatalog.RegressionTrainers catalog, TransformerRegressionTrainer.Options options)
        => new(CatalogUtils.GetEnvironment(catalog), options ?? throw new ArgumentNullException(nameof(options)));

    /// <summary>A Transformer forecaster: a window of past steps (<c>vector&lt;float&gt;</c>, e.g. from <see cref="ForecastWindows"/>) → H future values.</summary>
    /// <param name="catalog">The forecasting trainer catalog.</param>
    /// <param name="labelColumnName">Label column: a known-size vector of the H future values.</param>
    /// <param name="featureColumnName">The window: steps × values per step.</param>
    /// <param name="numberOfLayers">Encoder layers.</param>
    /// <param name="modelWidth">Model width.</param>
    /// <param name="numberOfEpochs">Passes over the data.</param>
    /// <param name="batchSize">Windows per mini-batch.</param>
    /// <param name="learningRate">Peak AdamW learning rate (warm-up, then cosine decay).</param>
    public static TransformerForecaster Transformer(this ForecastingCatalog.Forecasters catalog,
        string labelColumnName = DefaultColumnNames.Label, string featureColumnName = DefaultColumnNames.Features,
        int numberOfLayers = 2, int modelWidth = 64, int numberOfEpochs = 30, int batchSize = 16, double learningRate = 5e-4)
        => Transformer(catalog, Fill(new TransformerForecaster.Options(), labelColumnName, featureColumnName, numberOfLayers, modelWidth, numberOfEpochs, batchSize, learningRate));

    /// <summary>A Transformer forecaster with all options.</summary>
    public static TransformerForecaster Transformer(this ForecastingCatalog.Forecasters catalog, TransformerForecaster.Options options)
        => new(CatalogUtils.GetEnvironment(catalog), options ?? throw new ArgumentNullException(nameof(options)));

    private static T Fill<T>(T o, string label, string features, int layers, int width, int epochs, int batch, double lr) where T : TransformerOptions
    {
        o.WithBasics<T>(label, features, epochs, batch, lr);
        o.NumberOfLayers = layers;
        o.ModelWidth = width;
        return o;
    }
}
