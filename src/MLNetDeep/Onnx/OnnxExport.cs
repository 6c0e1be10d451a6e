// ONNX export of a trained MLNetDeep network: input adapter (dense features or token ids), the family's network,
// the task's post-processing (sigmoid / softmax / argmax / class names / label de-standardisation) and metadata, so the
// ONNX outputs equal MLNetDeep's columns.
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetDeep.Onnx;
using MLNetDeep.Onnx.Proto;
using TorchSharp;
using static TorchSharp.torch;
using DataType = MLNetDeep.Onnx.Proto.TensorProto.Types.DataType;

namespace MLNetDeep;

/// <summary>What an exported ONNX model reads and writes (also stored in the model's metadata).</summary>
public sealed class OnnxExportInfo
{
    /// <summary>The task: <c>binary</c>, <c>multiclass</c>, <c>regression</c> or <c>forecast</c>.</summary>
    public required string Task { get; init; }

    /// <summary>The network, as <see cref="DeepModelParameters.Architecture"/> describes it.</summary>
    public required string Architecture { get; init; }

    /// <summary>The input's name: the feature column the model was trained on.</summary>
    public required string InputName { get; init; }

    /// <summary>
    /// True for token input: int64 [batch, tokens] of MLNetDeep ids. <see cref="PaddingId"/> pads short rows,
    /// <see cref="UnknownId"/> is a token the key mapping did not know, and the key value k (1-based) of the ML.NET
    /// column is id k + 1. Rows longer than <see cref="MaximumSequenceLength"/> are cut.
    /// </summary>
    public bool TokenInput { get; init; }

    /// <summary>Dense input: values per row. Token input: 0.</summary>
    public int InputSize { get; init; }

    /// <summary>Token input: embedding rows (padding, unknown and one per key).</summary>
    public int VocabularySize { get; init; }

    /// <summary>Token input: the id that pads short rows (0).</summary>
    public int PaddingId => TokenEncoder.PaddingId;

    /// <summary>Token input: the id of an unknown token (1).</summary>
    public int UnknownId => TokenEncoder.UnknownId;

    /// <summary>Token input: the most tokens of a row the network reads.</summary>
    public int MaximumSequenceLength { get; init; }

    /// <summary>The outputs, named as MLNetDeep's columns (<c>Score</c>, <c>Probability</c>, <c>PredictedLabel</c>).</summary>
    public required IReadOnlyList<string> OutputNames { get; init; }

    /// <summary>Multiclass: the class names in score order (PredictedLabel holds one of them); else null.</summary>
    public IReadOnlyList<string>? ClassNames { get; init; }

    /// <summary>Values per row of <c>Score</c> (classes, horizon, or 1).</summary>
    public int ScoreSize { get; init; }
}

/// <summary>ONNX export on <c>mlContext.Model</c>.</summary>
public static class OnnxExportCatalog
{
    /// <summary>
    /// Writes the MLNetDeep network of <paramref name="model"/> (an MLNetDeep prediction transformer, or a fitted chain
    /// holding one) as an ONNX model (opset 17, IR 8) to <paramref name="path"/>. Only the network step is exported:
    /// the ONNX input is the column it reads (the featurizers before it stay ML.NET). Its outputs equal the step's
    /// columns: binary <c>Score</c> (logit), <c>Probability</c>, <c>PredictedLabel</c> (bool); multiclass <c>Score</c>
    /// (probabilities) and <c>PredictedLabel</c> (class name, or the 1-based class index when the label's values are not
    /// text); regression and forecasting <c>Score</c> in label units. Throws <see cref="OnnxExportException"/> naming
    /// the layer or option that cannot be exported.
    /// </summary>
    public static OnnxExportInfo ExportToOnnx(this ModelOperationsCatalog catalog, ITransformer model, string path)
    {
        if (string.IsNullOrWhiteSpace(path)) throw new ArgumentException("Give the path of the .onnx file to write.", nameof(path));
        using var stream = File.Create(path);
        return ExportToOnnx(catalog, model, stream);
    }

    /// <inheritdoc cref="ExportToOnnx(ModelOperationsCatalog, ITransformer, string)"/>
    public static OnnxExportInfo ExportToOnnx(this ModelOperationsCatalog catalog, ITransformer model, Stream stream)
    {
        if (catalog is null) throw new ArgumentNullException(nameof(catalog));
        if (model is null) throw new ArgumentNullException(nameof(model));
        if (stream is null) throw new ArgumentNullException(nameof(stream));
        var (proto, info) = OnnxExporter.Build(OnnxExporter.Find(model), singleRow: false);
        OnnxExporter.Write(proto, stream);
        return info;
    }
}

/// <summary>The exception for what cannot be exported, naming the layer or option.</summary>
public sealed class OnnxExportException : NotSupportedException
{
    /// <summary>Create with a message that names what cannot be exported.</summary>
    public OnnxExportException(string message) : base(message) { }
}

internal static class OnnxExporter
{
    /// <summary>The name of the network's output in the one-row form (consumed by the stock head that follows it).</summary>
    public const string NetworkOutput = "MLNetDeep.NetworkOutput";

    /// <summary>
    /// The MLNetDeep prediction step of a model (the last one of a chain). A pretrained encoder is one too; its network
    /// refuses export itself, naming why.
    /// </summary>
    public static IDeepPredictor Find(ITransformer transformer) =>
        TransformerSteps.Flatten(transformer).OfType<IDeepPredictor>().LastOrDefault()
        ?? throw new ArgumentException("The model holds no MLNetDeep prediction transformer to export.", "model");

    public static void Write(ModelProto proto, Stream stream)
    {
        using var coded = new Google.Protobuf.CodedOutputStream(stream, leaveOpen: true);
        proto.WriteTo(coded);
        coded.Flush();
    }

    /// <summary>
    /// The ONNX model of <paramref name="predictor"/>. Batch form: a batch dimension everywhere, token input as int64 ids,
    /// the step's columns as outputs. One-row form (<paramref name="singleRow"/>, for ML.NET's ApplyOnnxModel, which reads
    /// tensors of rank 1 and up only): batch 1, token input as the key column's raw UInt32 values, and one output — the
    /// network's values per row (<see cref="NetworkOutput"/>: the logit, class logits or label-unit value) for the stock
    /// ML.NET head that follows, or <c>Score</c> for forecasting.
    /// </summary>
    public static (ModelProto Model, OnnxExportInfo Info) Build(IDeepPredictor predictor, bool singleRow)
    {
        TorchEngine.EnsureLoaded();
        var m = predictor.DeepModel;
        bool single = singleRow;
        object batch = single ? 1 : "batch";
        var g = new OnnxGraph();
        string feature = predictor.FeatureColumnName;
        string x;
        int inputSize = 0, vocabulary = 0, maxLength = 0;
        switch (m.Encoder)
        {
            case DenseEncoder d:
                inputSize = d.Size;
                x = g.Input(feature, DataType.Float, batch, d.Size);
                break;
            case TokenEncoder t:
                vocabulary = t.VocabularySize;
                maxLength = t.MaximumSequenceLength;
                x = TokenInput(g, feature, t, single);
                break;
            default:
                throw new OnnxExportException($"The input encoder {m.Encoder.Kind} cannot be exported to ONNX.");
        }

        string raw;
        using (torch.no_grad())
            raw = OnnxModules.Emit(g, m.Network, x, "network");

        var classNames = predictor.ClassNames();
        var outputs = Head(g, m.Head, raw, single, classNames, batch, predictor.Threshold);
        var info = new OnnxExportInfo
        {
            Task = m.Head.Kind, Architecture = m.Architecture, InputName = feature, TokenInput = m.Encoder is TokenEncoder, InputSize = inputSize,
            VocabularySize = vocabulary, MaximumSequenceLength = maxLength, OutputNames = outputs, ClassNames = classNames,
            ScoreSize = m.Head.ValueWidth,
        };
        var metadata = new Dictionary<string, string>
        {
            ["mlnetdeep.version"] = OnnxGraph.ProductVersion,
            ["mlnetdeep.task"] = info.Task,
            ["mlnetdeep.architecture"] = info.Architecture,
            ["mlnetdeep.input"] = m.Encoder.Describe(),
            ["mlnetdeep.input_name"] = feature,
            ["mlnetdeep.form"] = single ? "ApplyOnnxModel (one row per call)" : "batch",
        };
        if (info.TokenInput)
        {
            metadata["mlnetdeep.vocabulary_size"] = vocabulary.ToString(System.Globalization.CultureInfo.InvariantCulture);
            metadata["mlnetdeep.padding_id"] = TokenEncoder.PaddingId.ToString(System.Globalization.CultureInfo.InvariantCulture);
            metadata["mlnetdeep.unknown_id"] = TokenEncoder.UnknownId.ToString(System.Globalization.CultureInfo.InvariantCulture);
            metadata["mlnetdeep.max_sequence_length"] = maxLength.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        if (classNames is not null) metadata["mlnetdeep.class_names"] = JsonSerializer.Serialize(classNames);
        if (m.Head is NumericHead n)
        {
            metadata["mlnetdeep.label_mean"] = n.Mean.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
            metadata["mlnetdeep.label_scale"] = n.Scale.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
        }
        return (g.ToModel(metadata, $"MLNetDeep {info.Task} model: {info.Architecture}"), info);
    }

    /// <summary>Token ids [B, T] (int64) from the input, cut to the position table, at least one step long.</summary>
    private static string TokenInput(OnnxGraph g, string name, TokenEncoder t, bool single)
    {
        string ids;
        if (single)
        {
            // ML.NET's raw key values: k → k + 1, missing (0) → unknown.
            var keys = g.Node("Cast", new[] { g.Input(name, DataType.Uint32, 1, "tokens") }, null, ("to", (int)DataType.Int64));
            var isMissing = g.Node("Equal", new[] { keys, g.Longs(new[] { 0L }, Array.Empty<long>()) });
            ids = g.Node("Where", new[] { isMissing, g.Longs(new[] { (long)TokenEncoder.UnknownId }, Array.Empty<long>()), g.Node("Add", new[] { keys, g.Longs(new[] { 1L }, Array.Empty<long>()) }) });
        }
        else ids = g.Input(name, DataType.Int64, "batch", "tokens");
        ids = g.Node("Slice", new[] { ids, g.Longs(new[] { 0L }), g.Longs(new[] { (long)t.MaximumSequenceLength }), g.Longs(new[] { 1L }) });
        // An empty row is one padding step, as MLNetDeep collates it.
        var length = g.Node("Gather", new[] { g.Node("Shape", new[] { ids }), g.Longs(new[] { 1L }) });
        var missing = g.Node("Max", new[] { g.Node("Sub", new[] { g.Longs(new[] { 1L }), length }), g.Longs(new[] { 0L }) });
        var pads = g.Node("Concat", new[] { g.Longs(new[] { 0L, 0L, 0L }), missing }, null, ("axis", 0));
        return g.Node("Pad", new[] { ids, pads, g.Longs(new[] { 0L }, Array.Empty<long>()) });
    }

    private static IReadOnlyList<string> Head(OnnxGraph g, TaskHead head, string raw, bool single, IReadOnlyList<string>? classNames, object batch, float threshold)
    {
        if (single) return OneRowOutput(g, head, raw);
        string Flat(string v) => g.Reshape(v, -1);
        object[] Dims(params object[] perRow) => new[] { batch }.Concat(perRow).ToArray();
        switch (head)
        {
            case BinaryHead:
            {
                var score = Flat(raw);
                g.Output(DefaultColumnNames.Score, score, DataType.Float, Dims());
                g.Output(DefaultColumnNames.Probability, g.Node("Sigmoid", new[] { score }), DataType.Float, Dims());
                g.Output(DefaultColumnNames.PredictedLabel, g.Node("Greater", new[] { score, g.Scalar(threshold) }), DataType.Bool, Dims());
                return new[] { DefaultColumnNames.Score, DefaultColumnNames.Probability, DefaultColumnNames.PredictedLabel };
            }
            case MulticlassHead mc:
            {
                int k = mc.OutputSize;
                var probabilities = g.Node("Softmax", new[] { raw }, null, ("axis", -1));
                var index = g.Node("ArgMax", new[] { raw }, null, ("axis", 1), ("keepdims", 0));
                g.Output(DefaultColumnNames.Score, probabilities, DataType.Float, Dims(k));
                if (classNames is not null)
                    g.Output(DefaultColumnNames.PredictedLabel, g.Node("Gather", new[] { g.Strings(classNames, "class_names"), index }, null, ("axis", 0)), DataType.String, Dims());
                else
                    g.Output(DefaultColumnNames.PredictedLabel, g.Node("Add", new[] { index, g.Longs(new[] { 1L }, Array.Empty<long>()) }), DataType.Int64, Dims());
                return new[] { DefaultColumnNames.Score, DefaultColumnNames.PredictedLabel };
            }
            case NumericHead n:
            {
                var value = g.Node("Add", new[] { g.Node("Mul", new[] { raw, g.Scalar((float)n.Scale) }), g.Scalar((float)n.Mean) });
                if (head is ForecastHead f) g.Output(DefaultColumnNames.Score, value, DataType.Float, Dims(f.OutputSize));
                else g.Output(DefaultColumnNames.Score, Flat(value), DataType.Float, Dims());
                return new[] { DefaultColumnNames.Score };
            }
            default:
                throw new OnnxExportException($"The task '{head.Kind}' cannot be exported to ONNX.");
        }
    }

    /// <summary>One-row form: a rank-1 output per row (ApplyOnnxModel cannot read rank-0 tensors).</summary>
    private static IReadOnlyList<string> OneRowOutput(OnnxGraph g, TaskHead head, string raw)
    {
        int width = head.OutputSize;
        switch (head)
        {
            case BinaryHead or MulticlassHead:
                g.Output(NetworkOutput, g.Reshape(raw, width), DataType.Float, width);
                return new[] { NetworkOutput };
            case NumericHead n:
                var value = g.Reshape(g.Node("Add", new[] { g.Node("Mul", new[] { raw, g.Scalar((float)n.Scale) }), g.Scalar((float)n.Mean) }), width);
                string name = head is ForecastHead ? DefaultColumnNames.Score : NetworkOutput;
                g.Output(name, value, DataType.Float, width);
                return new[] { name };
            default:
                throw new OnnxExportException($"The task '{head.Kind}' cannot be exported to ONNX.");
        }
    }
}
