// The Transformer encoder: an input adapter (token embedding, per-step projection of a numeric sequence, or image
// patches), positions (learned or sinusoidal), an optional [CLS] slot, N encoder layers of our own (pre- or post-norm,
// multi-head self-attention with a key-padding mask, feed-forward), pooling ([CLS], mean over valid positions or
// attention) and a dense head.
using MLNetDeep.Onnx;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MLNetDeep;

/// <summary>How a Transformer turns its per-position outputs into one vector for the head.</summary>
public enum TransformerPooling
{
    /// <summary>A learned [CLS] vector is put before the sequence; its output is the sequence's summary (BERT, ViT).</summary>
    Cls,
    /// <summary>The mean of the outputs over the valid (non-padding) positions.</summary>
    Mean,
    /// <summary>A learned weighted mean over the valid positions (a score per position, softmax).</summary>
    Attention,
}

/// <summary>How positions are encoded.</summary>
public enum PositionEncoding
{
    /// <summary>A trained vector per position (BERT, ViT).</summary>
    Learned,
    /// <summary>Fixed sines and cosines of different frequencies (Vaswani et al., 2017).</summary>
    Sinusoidal,
}

/// <summary>The activation of the Transformer's feed-forward blocks.</summary>
public enum TransformerActivation
{
    /// <summary>Gaussian error linear unit (exact, erf form).</summary>
    Gelu,
    /// <summary>max(0, x).</summary>
    Relu,
}

/// <summary>The Transformer's description, saved in the model file.</summary>
[NetworkFamily(KindName)]
internal sealed class TransformerNetworkSpec : NetworkSpec
{
    public const string KindName = "transformer";

    public int Layers { get; init; } = 2;
    public int Width { get; init; } = 128;
    public int Heads { get; init; } = 4;
    public int FeedForward { get; init; } = 512;
    public TransformerActivation Activation { get; init; }
    public float Dropout { get; init; }
    public float AttentionDropout { get; init; }
    public bool PreNorm { get; init; } = true;
    public double Epsilon { get; init; } = 1e-5;
    public PositionEncoding Positions { get; init; }
    public TransformerPooling Pooling { get; init; }

    /// <summary>Numeric sequences: values per step.</summary>
    public int FeaturesPerStep { get; init; } = 1;

    /// <summary>Images: the side of a square patch; 0 reads a numeric input as a sequence of steps.</summary>
    public int PatchSize { get; init; }

    /// <summary>Image shape (channels, height, width) for patches; zeros otherwise.</summary>
    public int Channels { get; init; }
    public int Height { get; init; }
    public int Width2D { get; init; }

    /// <summary>Self-supervised pretraining: a masked-token head instead of the task head; scoring gives the pooled encoding.</summary>
    public bool Pretraining { get; init; }

    /// <summary>Pretraining: the share of real tokens to predict.</summary>
    public float MaskProbability { get; init; } = 0.15f;

    /// <summary>Runtime choice (not saved): libtorch's fused scaled_dot_product_attention or the explicit form.</summary>
    public bool FusedAttention { get; set; } = true;

    public override nn.Module<Tensor, Tensor> Build(InputEncoder input, int outputSize) => new TransformerNetwork(this, Adapter(input), outputSize);

    /// <summary>What the input adapter needs: vocabulary, positions, per-step width, image geometry.</summary>
    internal InputShape Adapter(InputEncoder input)
    {
        int cls = Pooling == TransformerPooling.Cls ? 1 : 0;
        switch (input)
        {
            case TokenEncoder t:
                if (PatchSize > 0)
                    throw new ArgumentOutOfRangeException(nameof(TransformerOptions.PatchSize), "PatchSize applies to image pixels, but the feature column holds token ids.");
                return new InputShape(t.VocabularySize, checked(t.MaximumSequenceLength + cls), 0, 0);
            case DenseEncoder d when PatchSize > 0:
            {
                if ((long)Channels * Height * Width2D != d.Size)
                    throw new ArgumentOutOfRangeException(nameof(TransformerOptions.PatchSize),
                        $"The feature vector has {d.Size} values, not the {Channels}x{Height}x{Width2D} image the patches were planned for.");
                int patches = Height / PatchSize * (Width2D / PatchSize);
                return new InputShape(0, patches + cls, 0, patches);
            }
            case DenseEncoder d when d.Size % FeaturesPerStep == 0:
                return new InputShape(0, d.Size / FeaturesPerStep + cls, d.Size / FeaturesPerStep, 0);
            case DenseEncoder d:
                throw new ArgumentOutOfRangeException(nameof(SequenceOptions.FeaturesPerStep),
                    $"The feature vector has {d.Size} values, which is not a whole number of steps of {FeaturesPerStep} values (FeaturesPerStep).");
            default:
                throw new ArgumentOutOfRangeException(nameof(input), $"Transformers cannot read {input.Describe()}.");
        }
    }

    /// <summary>This spec with the masked-token pretraining head.</summary>
    public TransformerNetworkSpec AsPretraining(float maskProbability) => new()
    {
        Layers = Layers, Width = Width, Heads = Heads, FeedForward = FeedForward, Activation = Activation, Dropout = Dropout, AttentionDropout = AttentionDropout,
        PreNorm = PreNorm, Epsilon = Epsilon, Positions = Positions, Pooling = Pooling, FeaturesPerStep = FeaturesPerStep, PatchSize = PatchSize,
        Channels = Channels, Height = Height, Width2D = Width2D, FusedAttention = FusedAttention, Pretraining = true, MaskProbability = maskProbability,
    };

    /// <summary>This encoder's shape with another pooling and without the pretraining head (for fine-tuning).</summary>
    public TransformerNetworkSpec ForTask(TransformerPooling pooling, float dropout, bool fused) => new()
    {
        Layers = Layers, Width = Width, Heads = Heads, FeedForward = FeedForward, Activation = Activation, Dropout = dropout, AttentionDropout = AttentionDropout,
        PreNorm = PreNorm, Epsilon = Epsilon, Positions = Positions, Pooling = pooling, FeaturesPerStep = FeaturesPerStep, PatchSize = PatchSize,
        Channels = Channels, Height = Height, Width2D = Width2D, FusedAttention = fused,
    };

    internal readonly record struct InputShape(int Vocabulary, int Positions, int Steps, int Patches);

    public override long StateElements(InputEncoder input, int outputSize)
    {
        var shape = Adapter(input);
        long d = Width;
        checked
        {
            long n = shape.Vocabulary > 0 ? shape.Vocabulary * d
                : shape.Patches > 0 ? (long)Channels * PatchSize * PatchSize * d + d
                : LinearElements(FeaturesPerStep, d);
            if (Pooling == TransformerPooling.Cls) n += d;
            n += shape.Positions * d; // learned positions, or the sinusoid table (a buffer)
            // Per layer: the query-key-value and output projections, two layer norms, the feed-forward pair.
            n += Layers * (LinearElements(d, 3 * d) + LinearElements(d, d) + 4 * d + LinearElements(d, FeedForward) + LinearElements(FeedForward, d));
            if (PreNorm) n += 2 * d;
            if (Pooling == TransformerPooling.Attention) n += LinearElements(d, 1);
            return n + (Pretraining ? LinearElements(d, shape.Vocabulary) + d : LinearElements(d, outputSize));
        }
    }

    public override string Describe(InputEncoder input, int outputSize)
    {
        string source = input switch
        {
            TokenEncoder t => $"tokens ({t.VocabularySize} ids)",
            DenseEncoder when PatchSize > 0 => $"{Channels}x{Height}x{Width2D} image in {PatchSize}x{PatchSize} patches",
            DenseEncoder d => $"{d.Size / FeaturesPerStep} steps x {FeaturesPerStep}",
            _ => input.Describe(),
        };
        if (Pretraining) source += $", masked-token pretraining ({MaskProbability:P0} of the tokens)";
        return $"Transformer {source} -> {Layers} x (width {Width}, {Heads} heads, feed-forward {FeedForward} {Activation}, {(PreNorm ? "pre" : "post")}-norm), "
            + $"{Positions} positions, {Pooling} pooling" + (Dropout > 0 ? $", dropout {Dropout}" : "") + $" -> {outputSize}";
    }

    protected override void WriteBody(BinaryWriter w)
    {
        w.Write(Pretraining ? 2 : 1); // version 2 adds the pretraining head
        w.Write(Layers); w.Write(Width); w.Write(Heads); w.Write(FeedForward);
        w.Write((int)Activation); w.Write(Dropout); w.Write(AttentionDropout); w.Write(PreNorm); w.Write(Epsilon);
        w.Write((int)Positions); w.Write((int)Pooling); w.Write(FeaturesPerStep); w.Write(PatchSize);
        w.Write(Channels); w.Write(Height); w.Write(Width2D);
        if (Pretraining) w.Write(MaskProbability);
    }

    public static TransformerNetworkSpec ReadBody(BinaryReader r)
    {
        int version = r.ReadInt32();
        if (version is not (1 or 2)) throw new InvalidDataException($"Unknown Transformer format version {version}.");
        var spec = new TransformerNetworkSpec
        {
            Layers = r.ReadInt32(), Width = r.ReadInt32(), Heads = r.ReadInt32(), FeedForward = r.ReadInt32(),
            Activation = (TransformerActivation)r.ReadInt32(), Dropout = r.ReadSingle(), AttentionDropout = r.ReadSingle(), PreNorm = r.ReadBoolean(), Epsilon = r.ReadDouble(),
            Positions = (PositionEncoding)r.ReadInt32(), Pooling = (TransformerPooling)r.ReadInt32(), FeaturesPerStep = r.ReadInt32(), PatchSize = r.ReadInt32(),
            Channels = r.ReadInt32(), Height = r.ReadInt32(), Width2D = r.ReadInt32(),
        };
        if (version == 2) spec = spec.AsPretraining(r.ReadSingle());
        if (spec.Layers is <= 0 or > 1000 || spec.Width <= 0 || spec.Heads <= 0 || spec.Width % spec.Heads != 0 || spec.FeedForward <= 0
            || !Enum.IsDefined(spec.Activation) || !Enum.IsDefined(spec.Positions) || !Enum.IsDefined(spec.Pooling)
            || !(spec.Dropout is >= 0 and < 1) || !(spec.AttentionDropout is >= 0 and < 1) || !(spec.Epsilon > 0) || !double.IsFinite(spec.Epsilon) || spec.FeaturesPerStep <= 0 || spec.PatchSize < 0
            || spec.Channels < 0 || spec.Height < 0 || spec.Width2D < 0 || !(spec.MaskProbability is > 0 and < 1))
            throw new InvalidDataException("Corrupt Transformer description.");
        return spec;
    }
}

/// <summary>Multi-head self-attention over [B, T, D] with a key-padding mask; fused (SDPA) or explicit.</summary>
internal sealed class SelfAttention : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly int _heads;
    private readonly long _headWidth;
    private readonly double _dropout;
    private readonly Scalar _scale;
    internal readonly Linear qkv, output;
    private readonly TorchSharp.Modules.Dropout _attentionDropout;

    public SelfAttention(int width, int heads, double dropout) : base(nameof(SelfAttention))
    {
        _heads = heads;
        _headWidth = width / heads;
        _dropout = dropout;
        _scale = (1.0 / Math.Sqrt(_headWidth)).ToScalar();
        qkv = nn.Linear(width, 3L * width);
        output = nn.Linear(width, width);
        _attentionDropout = nn.Dropout(dropout);
        RegisterComponents();
    }

    /// <summary>Use libtorch's fused kernel (no weights come out of it).</summary>
    public bool Fused { get; set; } = true;

    /// <param name="x">[B, T, D].</param>
    /// <param name="valid">[B, T] bool, true for the positions that may be attended to.</param>
    public override Tensor forward(Tensor x, Tensor valid)
    {
        long b = x.shape[0], t = x.shape[1];
        var (q, k, v) = Project(x);
        var mask = valid.view(b, 1, 1, t);
        var context = Fused
            ? F.scaled_dot_product_attention(q, k, v, mask, training ? _dropout : 0, false)
            : _attentionDropout.forward(Softmax(q, k, mask)).matmul(v);
        return output.forward(context.transpose(1, 2).reshape(b, t, _heads * _headWidth));
    }

    /// <summary>ONNX: softmax(QKᵀ/√d)·V per head, decomposed (opset 17 has no attention operator); <paramref name="mask"/> [B, 1, 1, T] or null.</summary>
    public string ToOnnx(OnnxGraph g, string x, string? mask, string hint)
    {
        var parts = g.Node("Transpose", new[] { g.Reshape(g.Linear(x, qkv.weight!, qkv.bias, hint + ".qkv"), 0, 0, 3, _heads, _headWidth) }, null,
            ("perm", new long[] { 2, 0, 3, 1, 4 })); // [3, B, H, T, Dh]
        string Part(long i) => g.Node("Gather", new[] { parts, g.Longs(new[] { i }, Array.Empty<long>()) }, null, ("axis", 0));
        var q = Part(0);
        var k = Part(1);
        var v = Part(2);
        var scores = g.Node("Mul", new[] { g.Node("MatMul", new[] { q, g.Node("Transpose", new[] { k }, null, ("perm", new long[] { 0, 1, 3, 2 })) }), g.Scalar((float)(1.0 / Math.Sqrt(_headWidth))) });
        if (mask is not null) scores = g.Node("Where", new[] { mask, scores, g.Scalar(float.NegativeInfinity) });
        var context = g.Node("MatMul", new[] { g.Node("Softmax", new[] { scores }, null, ("axis", -1)), v }); // [B, H, T, Dh]
        var merged = g.Reshape(g.Node("Transpose", new[] { context }, null, ("perm", new long[] { 0, 2, 1, 3 })), 0, 0, -1);
        return g.Linear(merged, output.weight!, output.bias, hint + ".output");
    }

    /// <summary>The attention weights [B, H, T, T] (query × key; each row sums to 1 over the valid keys).</summary>
    public Tensor Weights(Tensor x, Tensor valid)
    {
        var (q, k, _) = Project(x);
        return Softmax(q, k, valid.view(x.shape[0], 1, 1, x.shape[1]));
    }

    private (Tensor Q, Tensor K, Tensor V) Project(Tensor x)
    {
        long b = x.shape[0], t = x.shape[1];
        var parts = qkv.forward(x).view(b, t, 3, _heads, _headWidth).permute(2, 0, 3, 1, 4); // [3, B, H, T, Dh]
        return (parts[0], parts[1], parts[2]);
    }

    private Tensor Softmax(Tensor q, Tensor k, Tensor mask) =>
        q.matmul(k.transpose(-2, -1)).mul(_scale).masked_fill(mask.logical_not(), SafeOps.NegativeInfinity).softmax(-1);

    protected override void Dispose(bool disposing)
    {
        if (disposing) _scale.Dispose();
        base.Dispose(disposing);
    }
}

/// <summary>One encoder layer: self-attention and feed-forward blocks with residuals, pre- or post-norm.</summary>
internal sealed class EncoderLayer : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly bool _preNorm;
    internal readonly SelfAttention attention;
    internal readonly LayerNorm norm1, norm2;
    internal readonly Linear ff1, ff2;
    private readonly nn.Module<Tensor, Tensor> _activation;
    private readonly TorchSharp.Modules.Dropout _drop1, _drop2, _dropFf;

    public EncoderLayer(TransformerNetworkSpec s) : base(nameof(EncoderLayer))
    {
        _preNorm = s.PreNorm;
        attention = new SelfAttention(s.Width, s.Heads, s.AttentionDropout);
        norm1 = nn.LayerNorm(s.Width, s.Epsilon);
        norm2 = nn.LayerNorm(s.Width, s.Epsilon);
        ff1 = nn.Linear(s.Width, s.FeedForward);
        ff2 = nn.Linear(s.FeedForward, s.Width);
        _activation = s.Activation == TransformerActivation.Gelu ? nn.GELU() : nn.ReLU();
        _drop1 = nn.Dropout(s.Dropout);
        _drop2 = nn.Dropout(s.Dropout);
        _dropFf = nn.Dropout(s.Dropout);
        RegisterComponents();
    }

    /// <summary>This layer's attention weights for input <paramref name="x"/> (what its attention block sees).</summary>
    public Tensor AttentionWeights(Tensor x, Tensor valid) => attention.Weights(_preNorm ? norm1.forward(x) : x, valid);

    private Tensor FeedForward(Tensor x) => ff2.forward(_dropFf.forward(_activation.forward(ff1.forward(x))));

    /// <summary>ONNX: the layer in evaluation mode (dropout is the identity).</summary>
    public string ToOnnx(OnnxGraph g, string x, string? mask, string hint)
    {
        string FeedForwardOnnx(string h)
        {
            var hidden = g.Linear(h, ff1.weight!, ff1.bias, hint + ".ff1");
            hidden = _activation is GELU ? g.Gelu(hidden) : g.Node("Relu", new[] { hidden });
            return g.Linear(hidden, ff2.weight!, ff2.bias, hint + ".ff2");
        }
        if (_preNorm)
        {
            x = g.Node("Add", new[] { x, attention.ToOnnx(g, OnnxModules.LayerNorm(g, norm1, x, hint + ".norm1"), mask, hint + ".attention") });
            return g.Node("Add", new[] { x, FeedForwardOnnx(OnnxModules.LayerNorm(g, norm2, x, hint + ".norm2")) });
        }
        x = OnnxModules.LayerNorm(g, norm1, g.Node("Add", new[] { x, attention.ToOnnx(g, x, mask, hint + ".attention") }), hint + ".norm1");
        return OnnxModules.LayerNorm(g, norm2, g.Node("Add", new[] { x, FeedForwardOnnx(x) }), hint + ".norm2");
    }

    public override Tensor forward(Tensor x, Tensor valid)
    {
        if (_preNorm)
        {
            x = SafeOps.Add(x, _drop1.forward(attention.forward(norm1.forward(x), valid)));
            return SafeOps.Add(x, _drop2.forward(FeedForward(norm2.forward(x))));
        }
        x = norm1.forward(SafeOps.Add(x, _drop1.forward(attention.forward(x, valid))));
        return norm2.forward(SafeOps.Add(x, _drop2.forward(FeedForward(x))));
    }
}

/// <summary>
/// The Transformer. Token input is int64 [B, T] with 0 = padding; numeric input is float [B, T·F] (steps) or
/// [B, C·H·W] (image patches). Returns [B, outputs].
/// </summary>
internal sealed class TransformerNetwork : nn.Module<Tensor, Tensor>, IEpochAware, IOnnxExportable
{
    /// <summary>
    /// ONNX: the input adapter (embedding with the padding mask, patches by a strided convolution, or projected steps),
    /// [CLS], positions, the layers with attention decomposed, the final norm, pooling over the valid positions and the head.
    /// </summary>
    public string ToOnnx(OnnxGraph g, string x)
    {
        if (head is null) throw new OnnxExportException("A pretrained encoder (masked-token head) cannot be exported; export the model fine-tuned from it.");
        string h;
        string? valid = null; // [B, T'] bool, token input only
        if (embedding is not null)
        {
            var notPadding = g.Node("Not", new[] { g.Node("Equal", new[] { x, g.Longs(new[] { 0L }, Array.Empty<long>()) }) });
            // The first position is always seen, so an empty row has a defined output (as in Embed).
            var range = g.Node("Range", new[] { g.Longs(new[] { 0L }, Array.Empty<long>()), g.Node("Squeeze", new[] { g.Dim(x, 1), g.Longs(new[] { 0L }) }), g.Longs(new[] { 1L }, Array.Empty<long>()) });
            var first = g.Node("Unsqueeze", new[] { g.Node("Equal", new[] { range, g.Longs(new[] { 0L }, Array.Empty<long>()) }), g.Longs(new[] { 0L }) });
            valid = g.Node("Or", new[] { notPadding, first });
            h = g.Node("Gather", new[] { g.Weight(embedding.weight!, "embedding"), x }, null, ("axis", 0));
        }
        else if (patchProjection is not null)
        {
            var images = g.Reshape(x, -1, _spec.Channels, _spec.Height, _spec.Width2D);
            var patches = OnnxModules.Conv(g, patchProjection, images, "patches"); // [B, D, h, w]
            h = g.Node("Transpose", new[] { g.Reshape(patches, 0, 0, -1) }, null, ("perm", new long[] { 0, 2, 1 }));
        }
        else h = g.Linear(g.Reshape(x, -1, _shape.Steps, _spec.FeaturesPerStep), stepProjection!.weight!, stepProjection.bias, "steps");

        if (cls is not null)
        {
            var batch = g.Dim(h, 0);
            var shape = g.Node("Concat", new[] { batch, g.Longs(new[] { 1L, (long)_spec.Width }) }, null, ("axis", 0));
            h = g.Node("Concat", new[] { g.Node("Expand", new[] { g.Weight(cls, "cls"), shape }), h }, null, ("axis", 1));
            if (valid is not null)
            {
                var ones = g.Node("Expand", new[] { g.Node("Cast", new[] { g.Longs(new[] { 1L }, new long[] { 1, 1 }) }, null, ("to", 9)),
                    g.Node("Concat", new[] { batch, g.Longs(new[] { 1L }) }, null, ("axis", 0)) });
                valid = g.Node("Concat", new[] { ones, valid }, null, ("axis", 1));
            }
        }
        var table = g.Weight(positions ?? _sinusoid!, "positions");
        var length = g.Dim(h, 1);
        h = g.Node("Add", new[] { h, g.Node("Slice", new[] { table, g.Longs(new[] { 0L }), length, g.Longs(new[] { 1L }) }) });

        var mask = valid is null ? null : g.Node("Unsqueeze", new[] { valid, g.Longs(new long[] { 1, 2 }) }); // [B, 1, 1, T']
        for (int i = 0; i < layers.Count; i++) h = layers[i].ToOnnx(g, h, mask, $"layer{i}");
        if (finalNorm is not null) h = OnnxModules.LayerNorm(g, finalNorm, h, "final_norm");

        string pooled;
        switch (_spec.Pooling)
        {
            case TransformerPooling.Cls:
                pooled = g.Node("Gather", new[] { h, g.Longs(new[] { 0L }, Array.Empty<long>()) }, null, ("axis", 1));
                break;
            case TransformerPooling.Mean when valid is null:
                pooled = g.Node("ReduceMean", new[] { h }, null, ("axes", new long[] { 1 }), ("keepdims", 0));
                break;
            case TransformerPooling.Mean:
            {
                var m = g.Node("Unsqueeze", new[] { g.Node("Cast", new[] { valid }, null, ("to", 1)), g.Longs(new[] { -1L }) });
                pooled = g.Node("Div", new[] { g.Node("ReduceSum", new[] { g.Node("Mul", new[] { h, m }), g.Longs(new[] { 1L }) }, null, ("keepdims", 0)),
                    g.Node("ReduceSum", new[] { m, g.Longs(new[] { 1L }) }, null, ("keepdims", 0)) });
                break;
            }
            default:
            {
                var scores = g.Node("Squeeze", new[] { g.Linear(h, attentionPool!.weight!, attentionPool.bias, "attention_pool"), g.Longs(new[] { -1L }) });
                if (valid is not null) scores = g.Node("Where", new[] { valid, scores, g.Scalar(float.NegativeInfinity) });
                var w = g.Node("Unsqueeze", new[] { g.Node("Softmax", new[] { scores }, null, ("axis", 1)), g.Longs(new[] { -1L }) });
                pooled = g.Node("ReduceSum", new[] { g.Node("Mul", new[] { h, w }), g.Longs(new[] { 1L }) }, null, ("keepdims", 0));
                break;
            }
        }
        return g.Linear(pooled, head.weight!, head.bias, "head");
    }

    private Generator? _augmentationRandom;

    /// <summary>Training-only image augmentation (not saved with the model).</summary>
    public ImageAugmentation? Augmentation { get; set; }

    /// <summary>Reseeds the augmentation from the run's seed and the epoch, so resumed runs repeat it exactly.</summary>
    public void BeginEpoch(int seed, int epoch)
    {
        if (Augmentation is null) return;
        _augmentationRandom?.Dispose();
        _augmentationRandom = new Generator(unchecked((ulong)(uint)seed * 1_000_003UL + (ulong)epoch));
    }

    private readonly TransformerNetworkSpec _spec;
    private readonly TransformerNetworkSpec.InputShape _shape;
    internal readonly Embedding? embedding;
    internal readonly Linear? stepProjection;
    internal readonly Conv2d? patchProjection;
    internal readonly Parameter? cls;
    internal readonly Parameter? positions;
    private readonly Tensor? _sinusoid;
    internal readonly ModuleList<EncoderLayer> layers;
    internal readonly LayerNorm? finalNorm;
    internal readonly TorchSharp.Modules.Dropout inputDropout, headDropout;
    internal readonly Linear? attentionPool;
    internal readonly Linear? head;
    internal readonly Linear? mlm;
    internal readonly Parameter? mask;
    private readonly Scalar _maskProbability, _eighty, _ninety;

    public TransformerNetwork(TransformerNetworkSpec spec, TransformerNetworkSpec.InputShape shape, int outputSize) : base("TransformerNetwork")
    {
        _spec = spec;
        _shape = shape;
        int d = spec.Width;
        if (shape.Vocabulary > 0) embedding = nn.Embedding(shape.Vocabulary, d, padding_idx: TokenEncoder.PaddingId);
        else if (shape.Patches > 0) patchProjection = nn.Conv2d(spec.Channels, d, spec.PatchSize, stride: spec.PatchSize);
        else stepProjection = nn.Linear(spec.FeaturesPerStep, d);
        // Parameters made here must leave any dispose scope they are made in (models are loaded inside the caller's scopes).
        if (spec.Pooling == TransformerPooling.Cls) cls = OwnParameter(1, 1, d);
        if (spec.Positions == PositionEncoding.Learned) positions = OwnParameter(1, shape.Positions, d);
        else _sinusoid = Sinusoid(shape.Positions, d);
        layers = new ModuleList<EncoderLayer>(Enumerable.Range(0, spec.Layers).Select(_ => new EncoderLayer(spec)).ToArray());
        if (spec.PreNorm) finalNorm = nn.LayerNorm(d, spec.Epsilon);
        inputDropout = nn.Dropout(spec.Dropout);
        headDropout = nn.Dropout(spec.Dropout);
        if (spec.Pooling == TransformerPooling.Attention) attentionPool = nn.Linear(d, 1);
        if (spec.Pretraining)
        {
            if (shape.Vocabulary == 0) throw new ArgumentOutOfRangeException(nameof(TransformerOptions.FeatureColumnName), "Masked-token pretraining needs token input.");
            mlm = nn.Linear(d, shape.Vocabulary);
            mask = OwnParameter(d);
        }
        else head = nn.Linear(d, outputSize);
        _maskProbability = ((double)spec.MaskProbability).ToScalar();
        _eighty = 0.8.ToScalar();
        _ninety = 0.9.ToScalar();
        RegisterComponents();
        Initialise();
        FusedAttention = spec.FusedAttention;
    }

    private static Parameter OwnParameter(params long[] shape)
    {
        var p = new Parameter(torch.zeros(shape));
        p.DetachFromDisposeScope();
        return p;
    }

    /// <summary>Copies the encoder's tensors (embedding, [CLS], positions, layers, final norm) that <paramref name="source"/>
    /// has with the same name and shape; returns how many were copied.</summary>
    internal int CopyEncoderFrom(TransformerNetwork source)
    {
        var from = source.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        int copied = 0;
        using var noGrad = torch.no_grad();
        foreach (var (name, p) in named_parameters())
        {
            if (name.StartsWith("head", StringComparison.Ordinal) || name.StartsWith("attentionPool", StringComparison.Ordinal)) continue;
            if (!from.TryGetValue(name, out var src)) continue;
            if (src.shape.SequenceEqual(p.shape) && (name != "positions" || (cls is null) == (source.cls is null)))
            {
                p.copy_(src);
                copied++;
            }
            else if (name == "positions")
            {
                // One side has a [CLS] slot at position 0 and the other not: copy the tokens' positions.
                long skipFrom = source.cls is null ? 0 : 1, skipTo = cls is null ? 0 : 1;
                long tokens = Math.Min(src.shape[1] - skipFrom, p.shape[1] - skipTo);
                using var s = src.narrow(1, skipFrom, tokens);
                using var d = p.narrow(1, skipTo, tokens);
                d.copy_(s);
                copied++;
            }
        }
        return copied;
    }

    /// <summary>Stops training the input adapter (embedding, [CLS], positions) and the lowest <paramref name="layerCount"/> layers.</summary>
    internal void FreezeEncoder(int layerCount)
    {
        foreach (var (name, p) in named_parameters())
        {
            bool input = name.StartsWith("embedding", StringComparison.Ordinal) || name.StartsWith("stepProjection", StringComparison.Ordinal)
                || name.StartsWith("patchProjection", StringComparison.Ordinal) || name is "cls" or "positions" or "mask";
            bool lowLayer = name.StartsWith("layers.", StringComparison.Ordinal) && int.Parse(name.Split('.')[1], System.Globalization.CultureInfo.InvariantCulture) < layerCount;
            if (input || lowLayer) p.requires_grad = false;
        }
    }

    /// <summary>The attention modules of the layers, lowest first.</summary>
    internal IEnumerable<SelfAttention> Attentions => layers.Select(l => l.attention);

    public bool FusedAttention
    {
        set { foreach (var a in Attentions) a.Fused = value; }
    }

    /// <summary>Training only (not saved): word-dropout rate of token input.</summary>
    public double TokenDropout { get; set; }

    /// <summary>BERT / ViT initialisation: normal(0, 0.02) for embeddings, positions and dense weights (the residual
    /// output projections scaled by 1/sqrt(2·layers)), zero biases, unit LayerNorm.</summary>
    private void Initialise()
    {
        using var noGrad = torch.no_grad();
        double residual = 0.02 / Math.Sqrt(2.0 * _spec.Layers);
        foreach (var (name, p) in named_parameters())
        {
            if (name.EndsWith("bias", StringComparison.Ordinal)) nn.init.zeros_(p);
            else if (name.Contains("norm", StringComparison.OrdinalIgnoreCase)) nn.init.ones_(p); // norm1, norm2, finalNorm
            else if (name.EndsWith("output.weight", StringComparison.Ordinal) || name.EndsWith("ff2.weight", StringComparison.Ordinal)) nn.init.normal_(p, 0, residual);
            else if (name.StartsWith("head", StringComparison.Ordinal)) nn.init.xavier_uniform_(p);
            else nn.init.normal_(p, 0, 0.02);
        }
        if (embedding is not null)
        {
            using var pad = embedding.weight!.select(0, TokenEncoder.PaddingId);
            pad.zero_();
        }
    }

    private static Tensor Sinusoid(int positions, int width)
    {
        var table = new float[positions * width];
        for (int p = 0; p < positions; p++)
            for (int i = 0; i < width; i++)
            {
                double angle = p / Math.Pow(10000, 2 * (i / 2) / (double)width);
                table[p * width + i] = (float)(i % 2 == 0 ? Math.Sin(angle) : Math.Cos(angle));
            }
        // Outside any dispose scope: the network owns it (models are loaded inside the caller's scopes too).
        return torch.tensor(table, new long[] { 1, positions, width }).DetachFromDisposeScope();
    }

    public override Tensor forward(Tensor x) => mlm is not null && training ? MaskedTokens(x) : Pool(Encode(x, out var valid), valid);

    /// <summary>
    /// Pretraining step (BERT's recipe): of the real tokens, <see cref="TransformerNetworkSpec.MaskProbability"/> are
    /// chosen; 80 % of those are replaced by a learned mask vector, 10 % by a random token, 10 % kept; the head
    /// predicts the original token at each chosen position. Returns per row [loss sum, correct, chosen count].
    /// </summary>
    private Tensor MaskedTokens(Tensor ids)
    {
        var real = ids.gt(SafeOps.LongOne); // not padding, not the unknown id
        var chosen = torch.rand(ids.shape).lt(_maskProbability).logical_and(real);
        if (!chosen.any().item<bool>()) chosen = real; // a batch with nothing chosen predicts all its tokens
        var draw = torch.rand(ids.shape);
        var masked = chosen.logical_and(draw.lt(_eighty));
        var randomised = chosen.logical_and(draw.ge(_eighty)).logical_and(draw.lt(_ninety));
        var input = torch.where(randomised, torch.randint(2, _shape.Vocabulary, ids.shape, ScalarType.Int64), ids);
        var h = Embed(input, out var valid, masked);
        foreach (var layer in layers) h = layer.forward(h, valid);
        if (finalNorm is not null) h = finalNorm.forward(h);
        if (cls is not null) h = h.narrow(1, 1, h.shape[1] - 1);
        var where = chosen.nonzero(); // [M, 2]: row, position
        var rows = where.select(1, 0);
        var logits = mlm!.forward(h.index(new TensorIndex[] { TensorIndex.Tensor(rows), TensorIndex.Tensor(where.select(1, 1)) }));
        var targets = ids.masked_select(chosen);
        var loss = F.cross_entropy(logits, targets, reduction: nn.Reduction.None);
        var correct = logits.argmax(1).eq(targets).to_type(ScalarType.Float32);
        long b = ids.shape[0];
        var lossSum = torch.zeros(b).scatter_add(0, rows, loss);
        var correctSum = torch.zeros(b).scatter_add(0, rows, correct);
        var count = torch.zeros(b).scatter_add(0, rows, torch.ones_like(loss));
        return torch.stack(new[] { lossSum, correctSum, count }, 1);
    }

    /// <summary>The per-position outputs [B, T', D] (after the final norm) and the valid positions [B, T'].</summary>
    internal Tensor Encode(Tensor x, out Tensor valid)
    {
        var h = Embed(x, out valid);
        foreach (var layer in layers) h = layer.forward(h, valid);
        if (finalNorm is not null) h = finalNorm.forward(h);
        return h;
    }

    /// <summary>The input adapter: embeddings (+ [CLS]) + positions, [B, T', D], and the valid positions [B, T'];
    /// <paramref name="masked"/> positions get the learned mask vector instead of their token's embedding.</summary>
    private Tensor Embed(Tensor x, out Tensor valid, Tensor? masked = null)
    {
        long b = x.shape[0];
        Tensor h;
        if (embedding is not null)
        {
            if (training && TokenDropout > 0) x = TokenEncoder.DropTokens(x, TokenDropout);
            valid = x.ne(SafeOps.LongZero);
            // An empty row (every token removed) is one padding step: let it be seen, so the row has a defined output.
            using (var first = valid.narrow(1, 0, 1)) first.fill_(SafeOps.True);
            h = embedding.forward(x);
            if (masked is not null) h = torch.where(masked.unsqueeze(-1), mask!.expand(h.shape), h);
        }
        else if (patchProjection is not null)
        {
            var images = x.view(b, _spec.Channels, _spec.Height, _spec.Width2D);
            if (training && Augmentation is not null && _augmentationRandom is not null) images = Augmentation.Apply(images, _augmentationRandom);
            h = patchProjection.forward(images).flatten(2).transpose(1, 2);
            valid = torch.ones(b, h.shape[1], ScalarType.Bool);
        }
        else
        {
            h = stepProjection!.forward(x.view(b, _shape.Steps, _spec.FeaturesPerStep));
            valid = torch.ones(b, h.shape[1], ScalarType.Bool);
        }
        if (cls is not null)
        {
            h = torch.cat(new[] { cls.expand(b, 1, _spec.Width), h }, 1);
            valid = torch.cat(new[] { torch.ones(b, 1, ScalarType.Bool), valid }, 1);
        }
        long t = h.shape[1];
        if (t > _shape.Positions)
            throw new ArgumentOutOfRangeException(nameof(SequenceOptions.MaximumSequenceLength), $"The input has {t} positions; the position table has {_shape.Positions}.");
        var table = positions ?? _sinusoid!;
        using (var pos = table.narrow(1, 0, t)) h = inputDropout.forward(SafeOps.Add(h, pos));
        return h;
    }

    /// <summary>Per layer, the attention weights [B, H, T', T'] of input <paramref name="x"/> (eval mode), and the valid positions.</summary>
    internal List<Tensor> AttentionMaps(Tensor x, out Tensor valid)
    {
        var maps = new List<Tensor>();
        var h = Embed(x, out valid);
        foreach (var layer in layers)
        {
            maps.Add(layer.AttentionWeights(h, valid));
            h = layer.forward(h, valid);
        }
        return maps;
    }

    private Tensor Pool(Tensor h, Tensor valid)
    {
        Tensor pooled;
        switch (_spec.Pooling)
        {
            case TransformerPooling.Cls:
                pooled = h.select(1, 0);
                break;
            case TransformerPooling.Mean:
            {
                var m = valid.unsqueeze(-1).to_type(h.dtype);
                pooled = h.mul(m).sum(1).div(m.sum(1));
                break;
            }
            default:
            {
                var scores = attentionPool!.forward(h).squeeze(-1).masked_fill(valid.logical_not(), SafeOps.NegativeInfinity);
                pooled = h.mul(scores.softmax(1).unsqueeze(-1)).sum(1);
                break;
            }
        }
        return head is null ? pooled : head.forward(headDropout.forward(pooled));
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _sinusoid?.Dispose();
            _maskProbability.Dispose();
            _eighty.Dispose();
            _ninety.Dispose();
        }
        base.Dispose(disposing);
    }
}
