// TorchSharp modules → ONNX nodes: the standard layers every family builds from (linear, convolution, pooling, batch
// and layer norm, activations, dropout, flatten, sequential), and the hook by which a family's own module exports itself.
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNetDeep.Onnx;

/// <summary>A module of a network family that writes its own ONNX nodes (a whole network, or a block such as a residual unit).</summary>
internal interface IOnnxExportable
{
    /// <summary>Adds the nodes computing this module in evaluation mode on <paramref name="x"/>; returns the output's name.</summary>
    string ToOnnx(OnnxGraph g, string x);
}

internal static class OnnxModules
{
    /// <summary>Adds the nodes of <paramref name="module"/> (evaluation mode) on input <paramref name="x"/>.</summary>
    public static string Emit(OnnxGraph g, nn.Module module, string x, string hint)
    {
        switch (module)
        {
            case IOnnxExportable own:
                return own.ToOnnx(g, x);
            case Sequential seq:
                foreach (var (name, child) in seq.named_children()) x = Emit(g, child, x, $"{hint}.{name}");
                return x;
            case Linear l:
                return g.Linear(x, l.weight!, l.bias, hint);
            case Conv2d c:
                return Conv(g, c, x, hint);
            case BatchNorm1d or BatchNorm2d:
                return BatchNorm(g, (NormBase)module, x, hint);
            case LayerNorm ln:
                return LayerNorm(g, ln, x, hint);
            case MaxPool2d p:
                if (p.ceil_mode) throw Unsupported(hint, "MaxPool2d with ceil_mode");
                return g.Node("MaxPool", new[] { x }, null, ("kernel_shape", p.kernel_size), ("strides", p.stride ?? p.kernel_size),
                    ("pads", Pads(p.padding, 2)), ("dilations", p.dilation ?? new long[] { 1, 1 }));
            case AvgPool2d p:
                if (p.ceil_mode || p.divisor_override is not null) throw Unsupported(hint, "AvgPool2d with ceil_mode or divisor_override");
                return g.Node("AveragePool", new[] { x }, null, ("kernel_shape", p.kernel_size), ("strides", p.stride ?? p.kernel_size),
                    ("pads", Pads(p.padding, 2)), ("count_include_pad", p.count_include_pad ? 1 : 0));
            case AdaptiveAvgPool2d a when a.output_size.All(s => s == 1):
                return g.Node("GlobalAveragePool", new[] { x });
            case Flatten f:
                if (f.end_dim != -1) throw Unsupported(hint, $"Flatten to dimension {f.end_dim}");
                return g.Node("Flatten", new[] { x }, null, ("axis", f.start_dim));
            case Dropout or AlphaDropout or Identity:
                return x;
            case ReLU:
                return g.Node("Relu", new[] { x });
            case SafeOps.LeakyRelu lr:
                return g.Node("LeakyRelu", new[] { x }, null, ("alpha", (float)lr.Slope));
            case SafeOps.Elu:
                return g.Node("Elu", new[] { x }, null, ("alpha", 1f));
            case SELU:
                return g.Node("Selu", new[] { x }, null, ("alpha", 1.6732632423543772f), ("gamma", 1.0507009873554805f));
            case GELU:
                return g.Gelu(x);
            case SiLU:
                return g.Node("Mul", new[] { x, g.Node("Sigmoid", new[] { x }) });
            case Tanh:
                return g.Node("Tanh", new[] { x });
            case Sigmoid:
                return g.Node("Sigmoid", new[] { x });
            default:
                throw Unsupported(hint, module.GetType().Name);
        }
    }

    /// <summary>An activation by kind, as <see cref="NetworkSpec.CreateActivation"/> builds it.</summary>
    public static string Activation(OnnxGraph g, DeepActivation kind, string x) => kind switch
    {
        DeepActivation.Relu => g.Node("Relu", new[] { x }),
        DeepActivation.LeakyRelu => g.Node("LeakyRelu", new[] { x }, null, ("alpha", 0.01f)),
        DeepActivation.Elu => g.Node("Elu", new[] { x }, null, ("alpha", 1f)),
        DeepActivation.Selu => g.Node("Selu", new[] { x }, null, ("alpha", 1.6732632423543772f), ("gamma", 1.0507009873554805f)),
        DeepActivation.Gelu => g.Gelu(x),
        DeepActivation.Swish => g.Node("Mul", new[] { x, g.Node("Sigmoid", new[] { x }) }),
        DeepActivation.Tanh => g.Node("Tanh", new[] { x }),
        DeepActivation.Sigmoid => g.Node("Sigmoid", new[] { x }),
        _ => throw new OnnxExportException($"The activation {kind} cannot be exported to ONNX."),
    };

    public static string Conv(OnnxGraph g, Conv2d c, string x, string hint)
    {
        if (c.padding is null) throw Unsupported(hint, "Conv2d with symbolic padding ('same'/'valid')");
        if (c.padding_mode != PaddingModes.Zeros) throw Unsupported(hint, $"Conv2d with padding mode {c.padding_mode}");
        var inputs = new List<string> { x, g.Weight(c.weight, hint + ".weight") };
        if (c.bias is not null) inputs.Add(g.Weight(c.bias, hint + ".bias"));
        return g.Node("Conv", inputs, null, ("kernel_shape", c.kernel_size), ("strides", c.stride), ("pads", Pads(c.padding, 2)),
            ("dilations", c.dilation), ("group", c.groups));
    }

    public static string BatchNorm(OnnxGraph g, NormBase bn, string x, string hint)
    {
        if (bn.running_mean is null || bn.running_var is null) throw Unsupported(hint, "batch norm without running statistics");
        using var scope = torch.NewDisposeScope();
        long n = bn.num_features;
        var scale = bn.weight is { } w ? g.Weight(w, hint + ".weight") : g.Floats(Enumerable.Repeat(1f, (int)n).ToArray(), new[] { n }, hint + ".weight");
        var shift = bn.bias is { } b ? g.Weight(b, hint + ".bias") : g.Floats(new float[n], new[] { n }, hint + ".bias");
        return g.Node("BatchNormalization", new[] { x, scale, shift, g.Weight(bn.running_mean, hint + ".mean"), g.Weight(bn.running_var, hint + ".var") },
            null, ("epsilon", (float)bn.eps));
    }

    public static string LayerNorm(OnnxGraph g, LayerNorm ln, string x, string hint)
    {
        long n = ln.normalized_shape.Aggregate(1L, (a, b) => a * b);
        var scale = ln.weight is { } w ? g.Weight(w, hint + ".weight") : g.Floats(Enumerable.Repeat(1f, (int)n).ToArray(), ln.normalized_shape, hint + ".weight");
        var inputs = new List<string> { x, scale };
        if (ln.bias is { } b) inputs.Add(g.Weight(b, hint + ".bias"));
        return g.Node("LayerNormalization", inputs, null, ("axis", -ln.normalized_shape.Length), ("epsilon", (float)ln.eps));
    }

    private static long[] Pads(long[]? padding, int rank)
    {
        var p = padding is null || padding.Length == 0 ? new long[rank] : padding.Length == 1 ? Enumerable.Repeat(padding[0], rank).ToArray() : padding;
        return p.Concat(p).ToArray();
    }

    public static OnnxExportException Unsupported(string where, string what) =>
        new($"'{where}': {what} cannot be exported to ONNX.");
}
