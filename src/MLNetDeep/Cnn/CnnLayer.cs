using MLNetDeep.Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetDeep;

/// <summary>How a convolution pads its input.</summary>
public enum ConvPadding
{
    /// <summary>Pad so that the output has the input's size divided by the stride (odd kernels).</summary>
    Same,
    /// <summary>No padding: the output shrinks by kernel size − 1.</summary>
    Valid,
}

/// <summary>
/// One layer of a convolutional network, described in C#. Compose them with the factory methods
/// (<see cref="Conv"/>, <see cref="MaxPool"/>, <see cref="BatchNorm"/>, <see cref="Dense"/>, ...) into a
/// <see cref="CnnArchitecture"/>; the trainer infers every shape, initialises the weights (He before ReLU-like
/// activations, Xavier otherwise), adds the classification head and trains the whole stack.
/// </summary>
public abstract class CnnLayer
{
    private protected CnnLayer() { }

    /// <summary>A 2-D convolution with <paramref name="filters"/> output channels.</summary>
    public static CnnLayer Conv(int filters, int kernelSize = 3, int stride = 1, ConvPadding padding = ConvPadding.Same)
        => new ConvLayer(Check(filters, nameof(filters)), Check(kernelSize, nameof(kernelSize)), Check(stride, nameof(stride)), padding);

    /// <summary>Max pooling over <paramref name="size"/>×<paramref name="size"/> windows (stride defaults to the size).</summary>
    public static CnnLayer MaxPool(int size = 2, int? stride = null) => new PoolLayer(false, Check(size, nameof(size)), Check(stride ?? size, nameof(stride)));

    /// <summary>Average pooling over <paramref name="size"/>×<paramref name="size"/> windows (stride defaults to the size).</summary>
    public static CnnLayer AvgPool(int size = 2, int? stride = null) => new PoolLayer(true, Check(size, nameof(size)), Check(stride ?? size, nameof(stride)));

    /// <summary>Batch normalization (2-D on feature maps, 1-D after flattening).</summary>
    public static CnnLayer BatchNorm() => new BatchNormLayer();

    /// <summary>Dropout with probability <paramref name="p"/> (training only).</summary>
    public static CnnLayer Dropout(float p)
    {
        if (!(p >= 0 && p < 1)) throw new ArgumentOutOfRangeException(nameof(p), p, "Dropout probability must be in [0, 1).");
        return new DropoutLayer(p);
    }

    /// <summary>An activation function.</summary>
    public static CnnLayer Activation(DeepActivation activation) => new ActivationLayer(activation);

    /// <summary>ReLU, the usual activation.</summary>
    public static CnnLayer Relu() => new ActivationLayer(DeepActivation.Relu);

    /// <summary>Global average pooling: each feature map becomes one value.</summary>
    public static CnnLayer GlobalAveragePool() => new GlobalPoolLayer();

    /// <summary>Flattens feature maps into a vector (added automatically before the first <see cref="Dense"/> layer).</summary>
    public static CnnLayer Flatten() => new FlattenLayer();

    /// <summary>A fully connected layer of <paramref name="units"/> outputs.</summary>
    public static CnnLayer Dense(int units) => new DenseLayer(Check(units, nameof(units)));

    /// <summary>
    /// A basic residual block (He et al., 2016): two 3×3 convolutions with batch norm and ReLU, plus a shortcut
    /// (a 1×1 convolution with batch norm when the stride or the channel count changes).
    /// </summary>
    public static CnnLayer Residual(int filters, int stride = 1) => new ResidualLayer(Check(filters, nameof(filters)), Check(stride, nameof(stride)));

    private static int Check(int value, string name) =>
        value > 0 ? value : throw new ArgumentOutOfRangeException(name, value, $"{name} must be positive, not {value}.");

    /// <summary>Builds the module for an input of the given shape ([C, H, W] or [D]); returns the output shape.</summary>
    internal abstract nn.Module<Tensor, Tensor> Build(long[] input, DeepActivation? nextActivation, out long[] output);

    /// <summary>The output shape for an input of the given shape (throws when the layer does not fit it).</summary>
    internal virtual long[] OutputShape(long[] input) => input;

    /// <summary>Values of the state (parameters and buffers) of the module <see cref="Build"/> makes for this input.</summary>
    internal virtual long StateElements(long[] input) => 0;

    internal abstract byte Tag { get; }

    internal virtual void WriteBody(BinaryWriter w) { }

    internal void Write(BinaryWriter w)
    {
        w.Write(Tag);
        WriteBody(w);
    }

    internal static CnnLayer Read(BinaryReader r)
    {
        byte tag = r.ReadByte();
        int Positive(string what) => ModelFileChecks.ReadPositive(r, "A CNN layer's " + what);
        return tag switch
        {
            1 => new ConvLayer(Positive("filter count"), Positive("kernel size"), Positive("stride"), ModelFileChecks.ReadEnum<ConvPadding>(r, "CNN padding")),
            2 => new PoolLayer(r.ReadBoolean(), Positive("pool size"), Positive("stride")),
            3 => new BatchNormLayer(),
            4 => new DropoutLayer(ModelFileChecks.ReadProbability(r, "CNN dropout")),
            5 => new ActivationLayer(ModelFileChecks.ReadEnum<DeepActivation>(r, "CNN activation")),
            6 => new GlobalPoolLayer(),
            7 => new FlattenLayer(),
            8 => new DenseLayer(Positive("unit count")),
            9 => new ResidualLayer(Positive("filter count"), Positive("stride")),
            _ => throw new InvalidDataException($"Unknown CNN layer kind {tag} in the model file."),
        };
    }

    private protected static string Shape(long[] s) => string.Join("×", s);

    private protected static long[] RequireMaps(long[] input, string layer)
    {
        if (input.Length != 3)
            throw new ArgumentException($"{layer} needs feature maps (channels × height × width), but follows a flattened or dense layer (shape {Shape(input)}).");
        return input;
    }

    private protected static long OutSize(long size, int kernel, int stride, int pad, string layer)
    {
        long o = (size + 2 * pad - kernel) / stride + 1;
        if (o <= 0) throw new ArgumentException($"Architecture: {layer} does not fit a {size}-pixel input: the output would be empty. Use fewer pooling or strided layers, or larger images.", nameof(CnnOptions.Architecture));
        return o;
    }

    internal sealed class ConvLayer(int filters, int kernel, int stride, ConvPadding padding) : CnnLayer
    {
        internal override byte Tag => 1;

        internal override void WriteBody(BinaryWriter w)
        {
            w.Write(filters); w.Write(kernel); w.Write(stride); w.Write((int)padding);
        }

        private int Pad => padding == ConvPadding.Same ? kernel / 2 : 0;

        internal override long[] OutputShape(long[] input)
        {
            RequireMaps(input, ToString());
            return new[] { (long)filters, OutSize(input[1], kernel, stride, Pad, ToString()), OutSize(input[2], kernel, stride, Pad, ToString()) };
        }

        internal override long StateElements(long[] input) => checked(input[0] * filters * kernel * kernel + filters);

        internal override nn.Module<Tensor, Tensor> Build(long[] input, DeepActivation? next, out long[] output)
        {
            output = OutputShape(input);
            var conv = nn.Conv2d(input[0], filters, kernel, stride: stride, padding: Pad);
            NetworkSpec.Initialise(conv.weight!, conv.bias, next);
            return conv;
        }

        public override string ToString() => $"Conv({filters}, {kernel}x{kernel}" + (stride > 1 ? $", stride {stride}" : "") + (padding == ConvPadding.Valid ? ", valid" : "") + ")";
    }

    internal sealed class PoolLayer(bool average, int size, int stride) : CnnLayer
    {
        internal override byte Tag => 2;

        internal override void WriteBody(BinaryWriter w)
        {
            w.Write(average); w.Write(size); w.Write(stride);
        }

        internal override long[] OutputShape(long[] input)
        {
            RequireMaps(input, ToString());
            return new[] { input[0], OutSize(input[1], size, stride, 0, ToString()), OutSize(input[2], size, stride, 0, ToString()) };
        }

        internal override nn.Module<Tensor, Tensor> Build(long[] input, DeepActivation? next, out long[] output)
        {
            output = OutputShape(input);
            return average ? nn.AvgPool2d(size, stride) : nn.MaxPool2d(size, stride);
        }

        public override string ToString() => (average ? "AvgPool(" : "MaxPool(") + size + (stride != size ? $", stride {stride}" : "") + ")";
    }

    internal sealed class BatchNormLayer : CnnLayer
    {
        internal override byte Tag => 3;

        internal override long StateElements(long[] input) => checked(4 * input[0]); // weight, bias, running mean and variance

        internal override nn.Module<Tensor, Tensor> Build(long[] input, DeepActivation? next, out long[] output)
        {
            output = input;
            return input.Length == 3 ? SafeOps.BatchNorm2d(input[0]) : SafeOps.BatchNorm1d(input[0]);
        }

        public override string ToString() => "BatchNorm";
    }

    internal sealed class DropoutLayer(float p) : CnnLayer
    {
        internal override byte Tag => 4;
        internal override void WriteBody(BinaryWriter w) => w.Write(p);

        internal override nn.Module<Tensor, Tensor> Build(long[] input, DeepActivation? next, out long[] output)
        {
            output = input;
            return nn.Dropout(p);
        }

        public override string ToString() => $"Dropout({p})";
    }

    internal sealed class ActivationLayer(DeepActivation activation) : CnnLayer
    {
        public DeepActivation Kind => activation;
        internal override byte Tag => 5;
        internal override void WriteBody(BinaryWriter w) => w.Write((int)activation);

        internal override nn.Module<Tensor, Tensor> Build(long[] input, DeepActivation? next, out long[] output)
        {
            output = input;
            return NetworkSpec.CreateActivation(activation);
        }

        public override string ToString() => activation.ToString();
    }

    internal sealed class GlobalPoolLayer : CnnLayer
    {
        internal override byte Tag => 6;

        internal override long[] OutputShape(long[] input) => new[] { RequireMaps(input, ToString())[0] };

        internal override nn.Module<Tensor, Tensor> Build(long[] input, DeepActivation? next, out long[] output)
        {
            output = OutputShape(input);
            return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten());
        }

        public override string ToString() => "GlobalAveragePool";
    }

    internal sealed class FlattenLayer : CnnLayer
    {
        internal override byte Tag => 7;

        internal override long[] OutputShape(long[] input) => new[] { input.Aggregate(1L, (a, b) => checked(a * b)) };

        internal override nn.Module<Tensor, Tensor> Build(long[] input, DeepActivation? next, out long[] output)
        {
            output = OutputShape(input);
            return nn.Flatten();
        }

        public override string ToString() => "Flatten";
    }

    internal sealed class DenseLayer(int units) : CnnLayer
    {
        internal override byte Tag => 8;
        internal override void WriteBody(BinaryWriter w) => w.Write(units);

        internal override long[] OutputShape(long[] input) => input.Length == 1 ? new[] { (long)units }
            : throw new InvalidOperationException("Dense needs a flat input; the architecture inserts Flatten first.");

        internal override long StateElements(long[] input) => checked(input[0] * units + units);

        internal override nn.Module<Tensor, Tensor> Build(long[] input, DeepActivation? next, out long[] output)
        {
            output = OutputShape(input);
            var linear = nn.Linear(input[0], units);
            NetworkSpec.Initialise(linear.weight!, linear.bias, next);
            return linear;
        }

        public override string ToString() => $"Dense({units})";
    }

    internal sealed class ResidualLayer(int filters, int stride) : CnnLayer
    {
        internal override byte Tag => 9;

        internal override void WriteBody(BinaryWriter w)
        {
            w.Write(filters); w.Write(stride);
        }

        internal override long[] OutputShape(long[] input)
        {
            RequireMaps(input, ToString());
            return new[] { (long)filters, OutSize(input[1], 3, stride, 1, ToString()), OutSize(input[2], 3, stride, 1, ToString()) };
        }

        /// <summary>Two 3×3 convolutions without bias and their batch norms; a 1×1 projection and its batch norm when the shape changes.</summary>
        internal override long StateElements(long[] input) => checked(input[0] * filters * 9 + 4L * filters + (long)filters * filters * 9 + 4L * filters
            + (stride != 1 || input[0] != filters ? input[0] * filters + 4L * filters : 0));

        internal override nn.Module<Tensor, Tensor> Build(long[] input, DeepActivation? next, out long[] output)
        {
            output = OutputShape(input);
            return new BasicBlock(input[0], filters, stride);
        }

        public override string ToString() => $"Residual({filters}" + (stride > 1 ? $", stride {stride}" : "") + ")";
    }

    /// <summary>The residual block's module.</summary>
    private sealed class BasicBlock : nn.Module<Tensor, Tensor>, IOnnxExportable
    {
        public string ToOnnx(OnnxGraph g, string x)
        {
            var y = OnnxModules.BatchNorm(g, bn1, OnnxModules.Conv(g, conv1, x, "residual.conv1"), "residual.bn1");
            y = OnnxModules.BatchNorm(g, bn2, OnnxModules.Conv(g, conv2, g.Node("Relu", new[] { y }), "residual.conv2"), "residual.bn2");
            var s = shortcut is null ? x : OnnxModules.Emit(g, shortcut, x, "residual.shortcut");
            return g.Node("Relu", new[] { g.Node("Add", new[] { y, s }) });
        }

        private readonly TorchSharp.Modules.Conv2d conv1, conv2;
        private readonly TorchSharp.Modules.BatchNorm2d bn1, bn2;
        private readonly nn.Module<Tensor, Tensor>? shortcut;

        public BasicBlock(long inChannels, long filters, int stride) : base(nameof(BasicBlock))
        {
            conv1 = nn.Conv2d(inChannels, filters, 3, stride: stride, padding: 1, bias: false);
            bn1 = SafeOps.BatchNorm2d(filters);
            conv2 = nn.Conv2d(filters, filters, 3, stride: 1, padding: 1, bias: false);
            bn2 = SafeOps.BatchNorm2d(filters);
            NetworkSpec.Initialise(conv1.weight!, null, DeepActivation.Relu);
            NetworkSpec.Initialise(conv2.weight!, null, DeepActivation.Relu);
            if (stride != 1 || inChannels != filters)
            {
                var proj = nn.Conv2d(inChannels, filters, 1, stride: stride, bias: false);
                NetworkSpec.Initialise(proj.weight!, null, null);
                shortcut = nn.Sequential(proj, SafeOps.BatchNorm2d(filters));
            }
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            using var scope = torch.NewDisposeScope();
            var y = bn2.forward(conv2.forward(nn.functional.relu(bn1.forward(conv1.forward(x)))));
            var s = shortcut is null ? x : shortcut.forward(x);
            return nn.functional.relu(SafeOps.Add(y, s)).MoveToOuterDisposeScope();
        }
    }
}
