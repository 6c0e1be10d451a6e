using MLNetDeep.Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetDeep;

/// <summary>
/// The layer stack of a convolutional network: a preset (<see cref="LeNet5"/>, <see cref="Vgg"/>,
/// <see cref="SmallCnn"/>, <see cref="ResNet"/>) or your own (<see cref="Custom(CnnLayer[])"/>). The classification head (a dense
/// layer with one output per class) is added by the trainer.
/// </summary>
public sealed class CnnArchitecture
{
    internal IReadOnlyList<CnnLayer> Layers { get; }

    /// <summary>The preset's or stack's name, e.g. <c>ResNet-18 (width 64)</c>.</summary>
    public string Name { get; }

    internal CnnArchitecture(string name, IEnumerable<CnnLayer> layers)
    {
        Name = name;
        Layers = layers.ToArray();
        if (Layers.Count == 0) throw new ArgumentException("A CNN architecture needs at least one layer.", nameof(layers));
    }

    /// <summary>Your own stack of layers, first to last (the head is added after the last).</summary>
    public static CnnArchitecture Custom(params CnnLayer[] layers) => Custom("custom", layers);

    /// <summary>Your own named stack of layers.</summary>
    public static CnnArchitecture Custom(string name, IEnumerable<CnnLayer> layers)
    {
        ArgumentNullException.ThrowIfNull(layers);
        var list = layers.ToList();
        if (list.Any(l => l is null)) throw new ArgumentException("The layer list contains null.", nameof(layers));
        return new CnnArchitecture(name, list);
    }

    /// <summary>
    /// LeNet-5 (LeCun et al., 1998) with ReLU and max pooling: conv 6@5×5 (same) → pool → conv 16@5×5 → pool →
    /// dense 120 → dense 84.
    /// </summary>
    public static CnnArchitecture LeNet5() => new("LeNet-5", new[]
    {
        CnnLayer.Conv(6, 5), CnnLayer.Relu(), CnnLayer.MaxPool(2),
        CnnLayer.Conv(16, 5, padding: ConvPadding.Valid), CnnLayer.Relu(), CnnLayer.MaxPool(2),
        CnnLayer.Flatten(), CnnLayer.Dense(120), CnnLayer.Relu(), CnnLayer.Dense(84), CnnLayer.Relu(),
    });

    /// <summary>
    /// VGG-style: blocks of <c>convolutions</c> 3×3 conv–(batch norm)–ReLU layers of <c>filters</c> channels, each
    /// block ending in 2×2 max pooling and dropout, then a dense layer.
    /// </summary>
    /// <param name="blocks">Per block: number of convolutions and their filters, e.g. <c>(2, 32), (2, 64)</c>.</param>
    /// <param name="denseUnits">Width of the dense layer before the head; 0 for global average pooling instead.</param>
    /// <param name="batchNorm">Batch normalization after each convolution.</param>
    /// <param name="dropout">Dropout after each block; the dense layer uses twice this (at most 0.5).</param>
    public static CnnArchitecture Vgg(IEnumerable<(int Convolutions, int Filters)> blocks, int denseUnits = 256, bool batchNorm = true, float dropout = 0.25f)
    {
        ArgumentNullException.ThrowIfNull(blocks);
        var b = blocks.ToList();
        if (b.Count == 0 || b.Any(x => x.Convolutions <= 0 || x.Filters <= 0))
            throw new ArgumentOutOfRangeException(nameof(blocks), "Each VGG block needs a positive number of convolutions and filters.");
        if (denseUnits < 0) throw new ArgumentOutOfRangeException(nameof(denseUnits), denseUnits, "denseUnits must be zero or positive.");
        var layers = new List<CnnLayer>();
        foreach (var (convs, filters) in b)
        {
            for (int i = 0; i < convs; i++)
            {
                layers.Add(CnnLayer.Conv(filters, 3));
                if (batchNorm) layers.Add(CnnLayer.BatchNorm());
                layers.Add(CnnLayer.Relu());
            }
            layers.Add(CnnLayer.MaxPool(2));
            if (dropout > 0) layers.Add(CnnLayer.Dropout(dropout));
        }
        if (denseUnits > 0)
        {
            layers.Add(CnnLayer.Flatten());
            layers.Add(CnnLayer.Dense(denseUnits));
            if (batchNorm) layers.Add(CnnLayer.BatchNorm());
            layers.Add(CnnLayer.Relu());
            if (dropout > 0) layers.Add(CnnLayer.Dropout(Math.Min(0.5f, 2 * dropout)));
        }
        else layers.Add(CnnLayer.GlobalAveragePool());
        return new($"VGG [{string.Join(", ", b.Select(x => $"{x.Convolutions}x{x.Filters}"))}]" + (denseUnits > 0 ? $" + dense {denseUnits}" : ""), layers);
    }

    /// <summary>
    /// A small, fast VGG-style network for 28×28 to 32×32 images: two blocks of two 3×3 convolutions (32 and 64
    /// filters) with batch norm, max pooling and dropout, then a dense layer of 128.
    /// </summary>
    public static CnnArchitecture SmallCnn() => Vgg(new[] { (2, 32), (2, 64) }, denseUnits: 128);

    /// <summary>
    /// ResNet with basic residual blocks and batch norm, adapted to small images: a 3×3 stem convolution (no max
    /// pooling), then stages of residual blocks whose width doubles (and resolution halves) at each stage, global
    /// average pooling and the head. <c>ResNet(new[] { 2, 2, 2, 2 }, 64)</c> is ResNet-18.
    /// </summary>
    /// <param name="blocksPerStage">Residual blocks in each stage; default { 2, 2, 2, 2 } (ResNet-18).</param>
    /// <param name="width">Channels of the stem and the first stage; default 64.</param>
    public static CnnArchitecture ResNet(int[]? blocksPerStage = null, int width = 64)
    {
        blocksPerStage ??= new[] { 2, 2, 2, 2 };
        if (blocksPerStage.Length == 0 || blocksPerStage.Any(n => n <= 0))
            throw new ArgumentOutOfRangeException(nameof(blocksPerStage), "Each ResNet stage needs at least one block.");
        if (width <= 0) throw new ArgumentOutOfRangeException(nameof(width), width, "width must be positive.");
        var layers = new List<CnnLayer> { CnnLayer.Conv(width, 3), CnnLayer.BatchNorm(), CnnLayer.Relu() };
        for (int s = 0; s < blocksPerStage.Length; s++)
            for (int i = 0; i < blocksPerStage[s]; i++)
                layers.Add(CnnLayer.Residual(width << s, stride: s > 0 && i == 0 ? 2 : 1));
        layers.Add(CnnLayer.GlobalAveragePool());
        int depth = 2 + 2 * blocksPerStage.Sum();
        return new($"ResNet-{depth} (width {width})", layers);
    }

    /// <summary>The name and the layers, e.g. for logs.</summary>
    public override string ToString() => $"{Name}: {string.Join(" → ", Layers)}";
}

/// <summary>How the pixel vector is laid out.</summary>
public enum PixelLayout
{
    /// <summary>Channel planes one after another (ML.NET ExtractPixels' default, interleave = false).</summary>
    ChannelsHeightWidth,
    /// <summary>Channels interleaved per pixel (ExtractPixels with interleave = true).</summary>
    HeightWidthChannels,
}

/// <summary>A CNN: input reshaping and scaling, the layer stack, the head. Persisted as its description plus weights.</summary>
[NetworkFamily(KindName)]
internal sealed class CnnNetworkSpec : NetworkSpec
{
    public const string KindName = "cnn";

    public CnnArchitecture Architecture { get; }
    public int Channels { get; }
    public int Height { get; }
    public int Width { get; }
    public PixelLayout Layout { get; }
    public float InputScale { get; }
    public float InputOffset { get; }

    public CnnNetworkSpec(CnnArchitecture architecture, int channels, int height, int width, PixelLayout layout, float inputScale, float inputOffset)
    {
        Architecture = architecture;
        Channels = channels;
        Height = height;
        Width = width;
        Layout = layout;
        InputScale = inputScale;
        InputOffset = inputOffset;
    }

    public override nn.Module<Tensor, Tensor> Build(InputEncoder input, int outputSize)
    {
        int inputSize = DenseSize(input, "Convolutional");
        if ((long)Channels * Height * Width != inputSize)
            throw new ArgumentOutOfRangeException(nameof(inputSize), $"The image shape {Channels}×{Height}×{Width} = {(long)Channels * Height * Width} does not match the {inputSize} values of the pixel vector.");
        return new CnnNetwork(this, outputSize);
    }

    /// <summary>
    /// Walks the layer stack as the network stacks it, calling <paramref name="visit"/> with each layer's index and
    /// input shape; a null layer is a flatten, inserted before a dense layer that follows feature maps (its index) and
    /// after the last layer if that leaves feature maps (index -1). Returns the size of the flat features for the head.
    /// </summary>
    internal long Walk(Action<int, CnnLayer?, long[]> visit)
    {
        long[] shape = { Channels, Height, Width };
        var layers = Architecture.Layers;
        for (int i = 0; i < layers.Count; i++)
        {
            if (layers[i] is CnnLayer.DenseLayer && shape.Length == 3)
            {
                visit(i, null, shape);
                shape = new[] { checked(shape[0] * shape[1] * shape[2]) };
            }
            visit(i, layers[i], shape);
            shape = layers[i].OutputShape(shape);
        }
        if (shape.Length == 3)
        {
            visit(-1, null, shape);
            shape = new[] { checked(shape[0] * shape[1] * shape[2]) };
        }
        return shape[0];
    }

    public override long StateElements(InputEncoder input, int outputSize)
    {
        if ((long)Channels * Height * Width != DenseSize(input, "Convolutional"))
            throw new ArgumentOutOfRangeException(nameof(input), $"The image shape {Channels}×{Height}×{Width} does not match {input.Describe()}.");
        long n = 0;
        long features = Walk((_, layer, shape) => n = checked(n + (layer?.StateElements(shape) ?? 0)));
        return checked(n + LinearElements(features, outputSize));
    }

    public override string Describe(InputEncoder input, int outputSize) =>
        $"CNN {Architecture.Name} on {Channels}x{Height}x{Width} -> {outputSize}";

    protected override void WriteBody(BinaryWriter w)
    {
        w.Write(1);
        w.Write(Architecture.Name);
        w.Write(Architecture.Layers.Count);
        foreach (var l in Architecture.Layers) l.Write(w);
        w.Write(Channels); w.Write(Height); w.Write(Width); w.Write((int)Layout);
        w.Write(InputScale); w.Write(InputOffset);
    }

    public static CnnNetworkSpec ReadBody(BinaryReader r)
    {
        int version = r.ReadInt32();
        if (version != 1) throw new InvalidDataException($"Unknown CNN network format version {version}.");
        string name = r.ReadString();
        int n = ModelFileChecks.ReadCount(r, "CNN layers", 10_000, 1, min: 1);
        var layers = new CnnLayer[n];
        for (int i = 0; i < n; i++) layers[i] = CnnLayer.Read(r);
        int channels = ModelFileChecks.ReadPositive(r, "The CNN's channel count"), height = ModelFileChecks.ReadPositive(r, "The CNN's image height");
        int width = ModelFileChecks.ReadPositive(r, "The CNN's image width");
        var layout = ModelFileChecks.ReadEnum<PixelLayout>(r, "CNN pixel layout");
        float scale = r.ReadSingle(), offset = r.ReadSingle();
        if (!float.IsFinite(scale) || !float.IsFinite(offset)) throw new InvalidDataException($"The CNN's input scaling {scale} / {offset} is not finite.");
        return new CnnNetworkSpec(new CnnArchitecture(name, layers), channels, height, width, layout, scale, offset);
    }
}

/// <summary>
/// The CNN module: [B, pixels] → [B, C, H, W] (scaled) → body → head. Its body can be frozen for fine-tuning,
/// which also keeps the body's batch-norm statistics fixed.
/// </summary>
internal sealed class CnnNetwork : nn.Module<Tensor, Tensor>, IEpochAware, IOnnxExportable
{
    /// <summary>ONNX: the pixels as an image batch, scaled, then the body and the head (augmentation is training-only).</summary>
    public string ToOnnx(OnnxGraph g, string x)
    {
        var s = _spec;
        var images = s.Layout == PixelLayout.ChannelsHeightWidth
            ? g.Reshape(x, -1, s.Channels, s.Height, s.Width)
            : g.Node("Transpose", new[] { g.Reshape(x, -1, s.Height, s.Width, s.Channels) }, null, ("perm", new long[] { 0, 3, 1, 2 }));
        if (s.InputScale != 1 || s.InputOffset != 0)
            images = g.Node("Add", new[] { g.Node("Mul", new[] { images, g.Scalar((float)s.InputScale) }), g.Scalar((float)s.InputOffset) });
        return OnnxModules.Emit(g, head, OnnxModules.Emit(g, body, images, "body"), "head");
    }

    private readonly CnnNetworkSpec _spec;
    private Generator? _augmentationRandom;

    /// <summary>Training-only augmentation (not saved with the model).</summary>
    public ImageAugmentation? Augmentation { get; set; }
    public readonly TorchSharp.Modules.Sequential body;
    public TorchSharp.Modules.Linear head;
    private bool _bodyFrozen;

    public long FeatureSize { get; }

    public CnnNetwork(CnnNetworkSpec spec, int outputSize) : base("CnnNetwork")
    {
        _spec = spec;
        var modules = new List<(string, nn.Module<Tensor, Tensor>)>();
        var layers = spec.Architecture.Layers;
        FeatureSize = spec.Walk((i, layer, shape) =>
        {
            if (layer is null)
            {
                modules.Add((i < 0 ? "flatten" : $"{i}_flatten", nn.Flatten()));
                return;
            }
            var next = layers.Skip(i + 1).TakeWhile(l => l is CnnLayer.BatchNormLayer or CnnLayer.ActivationLayer)
                .OfType<CnnLayer.ActivationLayer>().Select(a => (DeepActivation?)a.Kind).FirstOrDefault();
            modules.Add(($"{i}", layer.Build(shape, next, out _)));
        });
        body = nn.Sequential(modules);
        head = nn.Linear(FeatureSize, outputSize);
        NetworkSpec.Initialise(head.weight!, head.bias, null);
        RegisterComponents();
    }

    /// <summary>Replaces the head (new class count), freshly initialised.</summary>
    public void ReplaceHead(int outputSize)
    {
        var newHead = nn.Linear(FeatureSize, outputSize);
        NetworkSpec.Initialise(newHead.weight!, newHead.bias, null);
        register_module("head", null!); // unregisters the old head
        head.Dispose();
        head = newHead;
        register_module("head", head);
    }

    /// <summary>Stops gradients to the body and keeps its batch-norm statistics as trained.</summary>
    public void FreezeBody()
    {
        _bodyFrozen = true;
        foreach (var p in body.parameters()) p.requires_grad = false;
        body.eval();
    }

    public override void train(bool on = true)
    {
        base.train(on);
        if (_bodyFrozen) body.eval();
    }

    /// <summary>Reseeds the augmentation from the run's seed and the epoch, so resumed runs repeat it exactly.</summary>
    public void BeginEpoch(int seed, int epoch)
    {
        _augmentationRandom?.Dispose();
        _augmentationRandom = new Generator(unchecked((ulong)(uint)seed * 1_000_003UL + (ulong)epoch));
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var s = _spec;
        var images = s.Layout == PixelLayout.ChannelsHeightWidth
            ? x.view(-1, s.Channels, s.Height, s.Width)
            : x.view(-1, s.Height, s.Width, s.Channels).permute(0, 3, 1, 2).contiguous();
        if (s.InputScale != 1 || s.InputOffset != 0) images = SafeOps.Affine(images, s.InputScale, s.InputOffset);
        if (training && Augmentation is { IsNone: false } && _augmentationRandom is not null)
            images = Augmentation.Apply(images, _augmentationRandom);
        return head.forward(body.forward(images)).MoveToOuterDisposeScope();
    }
}
