// A small builder for ONNX graphs (opset 17, IR 8): nodes with unique names, initializers added only when used
// (ONNX Runtime warns about unused ones), shared constants, typed inputs and outputs, and the model envelope.
using Google.Protobuf;
using MLNetDeep.Onnx.Proto;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetDeep.Onnx;

internal sealed class OnnxGraph
{
    public const int Opset = 17;
    public const int IrVersion = 8;

    private readonly GraphProto _graph = new() { Name = "MLNetDeep" };
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _constants = new(StringComparer.Ordinal);

    /// <summary>A value name not used yet, from <paramref name="hint"/>.</summary>
    public string Fresh(string hint)
    {
        string name = hint;
        for (int i = 1; !_names.Add(name); i++) name = $"{hint}_{i}";
        return name;
    }

    /// <summary>Adds a node with one output; returns the output's name.</summary>
    public string Node(string op, IEnumerable<string> inputs, string? output = null, params (string Name, object Value)[] attributes) =>
        Nodes(op, inputs, new[] { output ?? Fresh(op.ToLowerInvariant()) }, attributes)[0];

    /// <summary>Adds a node with the given outputs (empty strings: unused optional outputs).</summary>
    public string[] Nodes(string op, IEnumerable<string> inputs, string[] outputs, params (string Name, object Value)[] attributes)
    {
        foreach (var o in outputs) if (o.Length > 0) _names.Add(o);
        var node = new NodeProto { OpType = op, Name = Fresh("node_" + op) };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        foreach (var (name, value) in attributes) node.Attribute.Add(Attribute(name, value));
        _graph.Node.Add(node);
        return outputs;
    }

    private static AttributeProto Attribute(string name, object value)
    {
        var a = new AttributeProto { Name = name };
        switch (value)
        {
            case int i: a.Type = AttributeProto.Types.AttributeType.Int; a.I = i; break;
            case long l: a.Type = AttributeProto.Types.AttributeType.Int; a.I = l; break;
            case bool b: a.Type = AttributeProto.Types.AttributeType.Int; a.I = b ? 1 : 0; break;
            case float f: a.Type = AttributeProto.Types.AttributeType.Float; a.F = f; break;
            case double d: a.Type = AttributeProto.Types.AttributeType.Float; a.F = (float)d; break;
            case string s: a.Type = AttributeProto.Types.AttributeType.String; a.S = ByteString.CopyFromUtf8(s); break;
            case long[] ls: a.Type = AttributeProto.Types.AttributeType.Ints; a.Ints.AddRange(ls); break;
            case int[] ints: a.Type = AttributeProto.Types.AttributeType.Ints; a.Ints.AddRange(ints.Select(v => (long)v)); break;
            case float[] fs: a.Type = AttributeProto.Types.AttributeType.Floats; a.Floats.AddRange(fs); break;
            case string[] ss: a.Type = AttributeProto.Types.AttributeType.Strings; a.Strings.AddRange(ss.Select(ByteString.CopyFromUtf8)); break;
            case TensorProto t: a.Type = AttributeProto.Types.AttributeType.Tensor; a.T = t; break;
            default: throw new ArgumentException($"Unsupported ONNX attribute value {value.GetType().Name} for '{name}'.");
        }
        return a;
    }

    /// <summary>A float32 weight from a tensor (copied to the CPU), named after <paramref name="hint"/>.</summary>
    public string Weight(Tensor t, string hint)
    {
        using var scope = torch.NewDisposeScope();
        var cpu = t.detach().to(ScalarType.Float32).cpu().contiguous();
        var values = cpu.data<float>().ToArray();
        return Floats(values, cpu.shape, hint);
    }

    /// <summary>A float32 initializer.</summary>
    public string Floats(float[] values, long[] dims, string hint)
    {
        var t = new TensorProto { Name = Fresh(hint), DataType = (int)TensorProto.Types.DataType.Float };
        t.Dims.AddRange(dims);
        var bytes = new byte[values.Length * sizeof(float)];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        t.RawData = ByteString.CopyFrom(bytes);
        _graph.Initializer.Add(t);
        return t.Name;
    }

    /// <summary>An int64 constant (shared between uses); <paramref name="dims"/> null means a 1-D tensor.</summary>
    public string Longs(long[] values, long[]? dims = null, string hint = "const")
    {
        string key = "i64:" + string.Join(",", values) + ":" + (dims is null ? "v" : string.Join("x", dims));
        if (_constants.TryGetValue(key, out var name)) return name;
        var t = new TensorProto { Name = Fresh(hint), DataType = (int)TensorProto.Types.DataType.Int64 };
        t.Dims.AddRange(dims ?? new[] { (long)values.Length });
        t.Int64Data.AddRange(values);
        _graph.Initializer.Add(t);
        return _constants[key] = t.Name;
    }

    /// <summary>A float32 scalar constant (rank 0, shared).</summary>
    public string Scalar(float value)
    {
        string key = "f32:" + BitConverter.SingleToInt32Bits(value);
        if (_constants.TryGetValue(key, out var name)) return name;
        var t = new TensorProto { Name = Fresh("scalar"), DataType = (int)TensorProto.Types.DataType.Float };
        t.FloatData.Add(value);
        _graph.Initializer.Add(t);
        return _constants[key] = t.Name;
    }

    /// <summary>A string constant tensor (e.g. class names).</summary>
    public string Strings(IReadOnlyList<string> values, string hint)
    {
        var t = new TensorProto { Name = Fresh(hint), DataType = (int)TensorProto.Types.DataType.String };
        t.Dims.Add(values.Count);
        t.StringData.AddRange(values.Select(ByteString.CopyFromUtf8));
        _graph.Initializer.Add(t);
        return t.Name;
    }

    /// <summary>Declares a graph input; each dimension is a number or a symbolic name (string).</summary>
    public string Input(string name, TensorProto.Types.DataType type, params object[] dims)
    {
        if (!_names.Add(name)) throw new InvalidOperationException($"ONNX value '{name}' is declared twice.");
        _graph.Input.Add(Value(name, type, dims));
        return name;
    }

    /// <summary>Declares a graph output, renaming <paramref name="value"/> to <paramref name="name"/> with an Identity if needed.</summary>
    public void Output(string name, string value, TensorProto.Types.DataType type, params object[] dims)
    {
        if (value != name) Node("Identity", new[] { value }, name);
        _graph.Output.Add(Value(name, type, dims));
    }

    private static ValueInfoProto Value(string name, TensorProto.Types.DataType type, object[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
            shape.Dim.Add(d switch
            {
                string s => new TensorShapeProto.Types.Dimension { DimParam = s },
                int i => new TensorShapeProto.Types.Dimension { DimValue = i },
                long l => new TensorShapeProto.Types.Dimension { DimValue = l },
                _ => throw new ArgumentException($"Bad ONNX dimension {d}."),
            });
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } } };
    }

    // ------------------------------------------------------------ common patterns

    /// <summary>x · Wᵀ + b for a TorchSharp-layout weight [out, in] on an input of any rank (MatMul broadcasts).</summary>
    public string Linear(string x, Tensor weight, Tensor? bias, string hint)
    {
        // A layer applied several times (an unrolled loop) shares one copy of its weights.
        if (!_linears.TryGetValue(weight.Handle, out var names))
        {
            using var scope = torch.NewDisposeScope();
            names = (Weight(weight.detach().t(), hint + ".weight"), bias is null ? null : Weight(bias, hint + ".bias"));
            _linears[weight.Handle] = names;
        }
        var y = Node("MatMul", new[] { x, names.Weight });
        return names.Bias is null ? y : Node("Add", new[] { y, names.Bias });
    }

    private readonly Dictionary<IntPtr, (string Weight, string? Bias)> _linears = new();

    /// <summary>GELU in its exact (erf) form: 0.5·x·(1 + erf(x/√2)); opset 17 has no Gelu.</summary>
    public string Gelu(string x)
    {
        var erf = Node("Erf", new[] { Node("Mul", new[] { x, Scalar((float)(1 / Math.Sqrt(2))) }) });
        var onePlus = Node("Add", new[] { erf, Scalar(1f) });
        return Node("Mul", new[] { Node("Mul", new[] { x, onePlus }), Scalar(0.5f) });
    }

    /// <summary>Dimension <paramref name="axis"/> of <paramref name="x"/> as an int64 [1] tensor.</summary>
    public string Dim(string x, int axis) => Node("Gather", new[] { Node("Shape", new[] { x }), Longs(new[] { (long)axis }) }, null, ("axis", 0));

    /// <summary>Reshape to a fixed shape (0 copies a dimension, -1 infers one).</summary>
    public string Reshape(string x, params long[] shape) => Node("Reshape", new[] { x, Longs(shape) });

    /// <summary>The model: IR 8, opset 17, producer MLNetDeep, and metadata.</summary>
    public ModelProto ToModel(IEnumerable<KeyValuePair<string, string>> metadata, string docString)
    {
        var model = new ModelProto
        {
            IrVersion = IrVersion, ProducerName = "MLNetDeep", ProducerVersion = ProductVersion, Domain = "ai.mlnetdeep", ModelVersion = 1,
            DocString = docString, Graph = _graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
        foreach (var (k, v) in metadata) model.MetadataProps.Add(new StringStringEntryProto { Key = k, Value = v });
        return model;
    }

    public static string ProductVersion =>
        typeof(OnnxGraph).Assembly.GetName().Version?.ToString(3) ?? "0.0.0";
}
