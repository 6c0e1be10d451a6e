using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetDeep;

/// <summary>
/// Options of the convolutional-network trainers: the architecture, the image shape of the pixel column,
/// augmentation and transfer learning, plus every option of the training core.
/// </summary>
public abstract class CnnOptions : DeepTrainerOptions
{
    /// <summary>Create with the defaults: <see cref="CnnArchitecture.SmallCnn"/>, batch 128, pixel column <c>Features</c>.</summary>
    protected CnnOptions() => BatchSize = 128;

    /// <summary>The layer stack. Default <see cref="CnnArchitecture.SmallCnn"/>.</summary>
    public CnnArchitecture Architecture { get; set; } = CnnArchitecture.SmallCnn();

    /// <summary>
    /// Channels of the images. With <see cref="ImageHeight"/> and <see cref="ImageWidth"/> null (the default), the shape is
    /// taken from the pixel column's dimensions (as ML.NET's ExtractPixels writes them); a plain vector of a square
    /// number of values is read as one grey channel.
    /// </summary>
    public int? ImageChannels { get; set; }

    /// <summary>Height of the images in pixels; see <see cref="ImageChannels"/>.</summary>
    public int? ImageHeight { get; set; }

    /// <summary>Width of the images in pixels; see <see cref="ImageChannels"/>.</summary>
    public int? ImageWidth { get; set; }

    /// <summary>Layout of the pixel vector; null (default) takes it from the column's dimensions, else planes (CHW).</summary>
    public PixelLayout? Layout { get; set; }

    /// <summary>Pixels are multiplied by this inside the network (e.g. 1/255 for ExtractPixels' 0–255 values). Default 1.</summary>
    public float InputScale { get; set; } = 1;

    /// <summary>Added to the pixels after <see cref="InputScale"/>. Default 0.</summary>
    public float InputOffset { get; set; }

    /// <summary>
    /// Training-time augmentation. Null (default) picks the preset's default: <see cref="ImageAugmentation.Standard"/>
    /// for ResNets, none otherwise. Use <see cref="ImageAugmentation.None"/> to turn it off.
    /// </summary>
    public ImageAugmentation? Augmentation { get; set; }

    /// <summary>
    /// Transfer learning: a trained MLNetDeep CNN (the transformer returned by Fit or mlContext.Model.Load, or a chain
    /// containing it) to start from. Its architecture and image shape are used; <see cref="Architecture"/> is ignored.
    /// </summary>
    public ITransformer? BaseModel { get; set; }

    /// <summary>Transfer learning: path of a saved model zip to start from (instead of <see cref="BaseModel"/>).</summary>
    public string? BaseModelPath { get; set; }

    /// <summary>Transfer learning: keep every layer but the head as trained (weights and batch-norm statistics). Default false.</summary>
    public bool FreezeFeatureLayers { get; set; }

    /// <summary>Transfer learning: start the head afresh even when the class count is unchanged. Default false (a new head only for a new class count).</summary>
    public bool ResetHead { get; set; }

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        if (Architecture is null) throw new ArgumentNullException(nameof(Architecture), "Architecture must be set (e.g. CnnArchitecture.SmallCnn()).");
        int given = new[] { ImageChannels, ImageHeight, ImageWidth }.Count(v => v is not null);
        if (given != 0 && given != 3)
            throw new ArgumentException("Give all of ImageChannels, ImageHeight and ImageWidth, or none (to read them from the pixel column).", nameof(ImageChannels));
        foreach (var (v, n) in new[] { (ImageChannels, nameof(ImageChannels)), (ImageHeight, nameof(ImageHeight)), (ImageWidth, nameof(ImageWidth)) })
            if (v is <= 0) throw new ArgumentOutOfRangeException(n, v, $"{n} must be positive.");
        Require(float.IsFinite(InputScale) && InputScale != 0, nameof(InputScale), "must be a non-zero finite number");
        Require(float.IsFinite(InputOffset), nameof(InputOffset), "must be finite");
        Augmentation?.Validate();
        if (BaseModel is not null && BaseModelPath is not null)
            throw new ArgumentException("Give BaseModel or BaseModelPath, not both.", nameof(BaseModelPath));
        if (BaseModelPath is not null && !File.Exists(BaseModelPath))
            throw new FileNotFoundException($"BaseModelPath '{BaseModelPath}' does not exist.", BaseModelPath);
        if (FreezeFeatureLayers && BaseModel is null && BaseModelPath is null)
            throw new ArgumentException("FreezeFeatureLayers needs a BaseModel or BaseModelPath to take the trained layers from.", nameof(FreezeFeatureLayers));
    }
}

/// <summary>The CNN-specific work shared by the binary and multiclass CNN trainers.</summary>
internal sealed class CnnFamily
{
    private readonly CnnOptions _o;
    private (int C, int H, int W, PixelLayout Layout)? _shape;
    private DeepModelParameters? _base;

    public CnnFamily(CnnOptions options) => _o = options;

    /// <summary>Reads the image shape from the options or the pixel column's dimensions.</summary>
    public void InspectSchema(DataViewSchema schema)
    {
        _base = LoadBase();
        var type = (VectorDataViewType)schema[_o.FeatureColumnName].Type;
        int size = type.Size;
        if (_base?.Spec is CnnNetworkSpec b)
        {
            if ((long)b.Channels * b.Height * b.Width != size)
                throw new ArgumentOutOfRangeException(nameof(CnnOptions.FeatureColumnName),
                    $"The base model reads {b.Channels}×{b.Height}×{b.Width} images, but column '{_o.FeatureColumnName}' has {size} values.");
            _shape = (b.Channels, b.Height, b.Width, b.Layout);
            return;
        }
        if (_o.ImageChannels is int c && _o.ImageHeight is int h && _o.ImageWidth is int w)
        {
            if ((long)c * h * w != size)
                throw new ArgumentOutOfRangeException(nameof(CnnOptions.ImageChannels),
                    $"Column '{_o.FeatureColumnName}' has {size} values, which is not ImageChannels × ImageHeight × ImageWidth = {c}×{h}×{w} = {(long)c * h * w}.");
            _shape = (c, h, w, _o.Layout ?? PixelLayout.ChannelsHeightWidth);
            return;
        }
        var dims = type.Dimensions;
        if (dims.Length == 3)
        {
            bool channelsLast = _o.Layout == PixelLayout.HeightWidthChannels || _o.Layout is null && dims[2] <= 4 && dims[0] > 4;
            _shape = channelsLast ? (dims[2], dims[0], dims[1], PixelLayout.HeightWidthChannels) : (dims[0], dims[1], dims[2], PixelLayout.ChannelsHeightWidth);
            return;
        }
        int side = (int)Math.Round(Math.Sqrt(size));
        if (dims.Length == 1 && side * side == size)
        {
            _shape = (1, side, side, PixelLayout.ChannelsHeightWidth);
            return;
        }
        throw new ArgumentOutOfRangeException(nameof(CnnOptions.ImageChannels),
            $"Cannot tell the image shape of column '{_o.FeatureColumnName}' ({type}): set ImageChannels, ImageHeight and ImageWidth, "
            + "or produce the column with ML.NET's ExtractPixels, which records the dimensions.");
    }

    private float? _pixelScale;

    /// <summary>
    /// Pixels in 0–255 (ExtractPixels' default) while the CNN expects about 0–1: with InputScale and InputOffset left at
    /// their defaults, the network scales by 1/255 itself (saved with the model, so scoring reads the same 0–255 column)
    /// and says so; larger values are only warned about.
    /// </summary>
    public void InspectPixels(TrainingData train, IChannel ch)
    {
        _pixelScale = null;
        if (_base is not null || train.FeatureMaximum is not float max || _o.InputScale != 1 || _o.InputOffset != 0) return;
        if (max > 1.5f && max <= 255f)
        {
            _pixelScale = 1f / 255;
            ch.Info($"MLNetDeep: the pixels of column '{_o.FeatureColumnName}' go up to {max:G4}, as ExtractPixels gives them by default (0–255); the CNN "
                + "scales them by 1/255 (InputScale), saved with the model. Set InputScale (or ExtractPixels' scaleImage: 1 / 255f) to choose yourself.");
        }
        else if (max > 255f)
            ch.Warning($"MLNetDeep: the pixels of column '{_o.FeatureColumnName}' go up to {max:G4}; the CNN trains best on values of about 0–1. "
                + "Normalize the column or set InputScale.");
    }

    public NetworkSpec CreateSpec()
    {
        if (_base?.Spec is CnnNetworkSpec b) return b;
        var (c, h, w, layout) = _shape ?? throw new InvalidOperationException("InspectSchema was not called.");
        return new CnnNetworkSpec(_o.Architecture, c, h, w, layout, _pixelScale ?? _o.InputScale, _o.InputOffset);
    }

    public nn.Module<Tensor, Tensor> CreateNetwork(NetworkSpec spec, InputEncoder input, int outputSize, IChannel ch)
    {
        var cnnSpec = (CnnNetworkSpec)spec;
        CnnNetwork net;
        if (_base is not null)
        {
            net = (CnnNetwork)cnnSpec.Build(input, _base.OutputSize);
            using (var ms = new MemoryStream(DeepModelParameters.SerializeWeights(_base.Network))) net.load(ms);
            if (_base.OutputSize != outputSize || _o.ResetHead)
            {
                net.ReplaceHead(outputSize);
                ch.Info($"MLNetDeep: transfer learning from {_base.Architecture}: new head with {outputSize} outputs (was {_base.OutputSize}).");
            }
            else ch.Info($"MLNetDeep: transfer learning from {_base.Architecture}: keeping its head.");
            if (_o.FreezeFeatureLayers)
            {
                net.FreezeBody();
                ch.Info("MLNetDeep: feature layers frozen; only the head is trained.");
            }
        }
        else net = (CnnNetwork)cnnSpec.Build(input, outputSize);
        var augmentation = _o.Augmentation ?? (cnnSpec.Architecture.Name.StartsWith("ResNet", StringComparison.Ordinal) ? ImageAugmentation.Standard : ImageAugmentation.None);
        net.Augmentation = augmentation.IsNone ? null : augmentation;
        return net;
    }

    private DeepModelParameters? LoadBase()
    {
        ITransformer? source = _o.BaseModel;
        if (_o.BaseModelPath is string path)
        {
            if (!File.Exists(path)) throw new FileNotFoundException($"BaseModelPath '{path}' does not exist.", path);
            source = new MLContext().Model.LoadChecked(path, out _);
        }
        if (source is null) return null;
        var model = DeepModelParameters.Find(source)
            ?? throw new ArgumentException("The base model contains no MLNetDeep network.", _o.BaseModelPath is null ? nameof(CnnOptions.BaseModel) : nameof(CnnOptions.BaseModelPath));
        if (model.Spec is not CnnNetworkSpec)
            throw new ArgumentException($"The base model is {model.Architecture}, not a CNN.", _o.BaseModelPath is null ? nameof(CnnOptions.BaseModel) : nameof(CnnOptions.BaseModelPath));
        return model;
    }

}

/// <summary>Trains a convolutional network for multiclass image classification (key-typed label, pixel vector features).</summary>
public sealed class CnnMulticlassTrainer : DeepMulticlassTrainerBase
{
    /// <summary>Options of <see cref="CnnMulticlassTrainer"/>.</summary>
    public sealed class Options : CnnOptions { }

    private readonly CnnFamily _family;

    internal CnnMulticlassTrainer(IHostEnvironment env, Options options) : base(env, nameof(CnnMulticlassTrainer), options)
        => _family = new CnnFamily(options);

    private protected override void InspectSchema(DataViewSchema schema) => _family.InspectSchema(schema);
    private protected override void InspectTrainingData(TrainingData train, IChannel ch) => _family.InspectPixels(train, ch);
    private protected override NetworkSpec CreateNetworkSpec(InputEncoder input, int outputSize) => _family.CreateSpec();
    private protected override nn.Module<Tensor, Tensor> CreateNetwork(NetworkSpec spec, InputEncoder input, int outputSize, IChannel ch) => _family.CreateNetwork(spec, input, outputSize, ch);
}

/// <summary>Trains a convolutional network for binary image classification (<c>bool</c> label, pixel vector features).</summary>
public sealed class CnnBinaryTrainer : DeepBinaryTrainerBase
{
    /// <summary>Options of <see cref="CnnBinaryTrainer"/>.</summary>
    public sealed class Options : CnnOptions { }

    private readonly CnnFamily _family;

    internal CnnBinaryTrainer(IHostEnvironment env, Options options) : base(env, nameof(CnnBinaryTrainer), options)
        => _family = new CnnFamily(options);

    private protected override void InspectSchema(DataViewSchema schema) => _family.InspectSchema(schema);
    private protected override void InspectTrainingData(TrainingData train, IChannel ch) => _family.InspectPixels(train, ch);
    private protected override NetworkSpec CreateNetworkSpec(InputEncoder input, int outputSize) => _family.CreateSpec();
    private protected override nn.Module<Tensor, Tensor> CreateNetwork(NetworkSpec spec, InputEncoder input, int outputSize, IChannel ch) => _family.CreateNetwork(spec, input, outputSize, ch);
}

/// <summary>Catalog extensions: <c>mlContext.{MulticlassClassification,BinaryClassification}.Trainers.Cnn(...)</c>.</summary>
public static class CnnCatalog
{
    /// <summary>A convolutional network for multiclass image classification.</summary>
    /// <param name="catalog">The multiclass classification trainer catalog.</param>
    /// <param name="labelColumnName">Label column (key type: use MapValueToKey).</param>
    /// <param name="featureColumnName">Pixel column: a vector of float, e.g. from ExtractPixels.</param>
    /// <param name="architecture">Layer stack; default <see cref="CnnArchitecture.SmallCnn"/>.</param>
    /// <param name="numberOfEpochs">Passes over the data.</param>
    /// <param name="batchSize">Images per mini-batch.</param>
    /// <param name="learningRate">AdamW learning rate.</param>
    public static CnnMulticlassTrainer Cnn(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        string labelColumnName = DefaultColumnNames.Label, string featureColumnName = DefaultColumnNames.Features,
        CnnArchitecture? architecture = null, int numberOfEpochs = 10, int batchSize = 128, double learningRate = 1e-3)
        => Cnn(catalog, Fill(new CnnMulticlassTrainer.Options(), labelColumnName, featureColumnName, architecture, numberOfEpochs, batchSize, learningRate));

    /// <summary>A convolutional network for multiclass image classification, with all options.</summary>
    public static CnnMulticlassTrainer Cnn(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog, CnnMulticlassTrainer.Options options)
        => new(CatalogUtils.GetEnvironment(catalog), options ?? throw new ArgumentNullException(nameof(options)));

    /// <summary>A convolutional network for binary image classification.</summary>
    /// <param name="catalog">The binary classification trainer catalog.</param>
    /// <param name="labelColumnName">Label column (bool).</param>
    /// <param name="featureColumnName">Pixel column: a vector of float, e.g. from ExtractPixels.</param>
    /// <param name="architecture">Layer stack; default <see cref="CnnArchitecture.SmallCnn"/>.</param>
    /// <param name="numberOfEpochs">Passes over the data.</param>
    /// <param name="batchSize">Images per mini-batch.</param>
    /// <param name="learningRate">AdamW learning rate.</param>
    public static CnnBinaryTrainer Cnn(this BinaryClassificationCatalog.BinaryClassificationTrainers catalog,
        string labelColumnName = DefaultColumnNames.Label, string featureColumnName = DefaultColumnNames.Features,
        CnnArchitecture? architecture = null, int numberOfEpochs = 10, int batchSize = 128, double learningRate = 1e-3)
        => Cnn(catalog, Fill(new CnnBinaryTrainer.Options(), labelColumnName, featureColumnName, architecture, numberOfEpochs, batchSize, learningRate));

    /// <summary>A convolutional network for binary image classification, with all options.</summary>
    public static CnnBinaryTrainer Cnn(this BinaryClassificationCatalog.BinaryClassificationTrainers catalog, CnnBinaryTrainer.Options options)
        => new(CatalogUtils.GetEnvironment(catalog), options ?? throw new ArgumentNullException(nameof(options)));

    private static T Fill<T>(T o, string label, string features, CnnArchitecture? architecture, int epochs, int batchSize, double lr) where T : CnnOptions
    {
        if (architecture is not null) o.Architecture = architecture;
        return o.WithBasics<T>(label, features, epochs, batchSize, lr);
    }
}
