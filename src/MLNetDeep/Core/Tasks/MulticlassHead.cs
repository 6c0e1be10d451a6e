// Multiclass classification: key label, one logit per class; Score (probabilities, slot names = class names) and
// PredictedLabel (a key with the label's values).
using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MLNetDeep;

internal sealed class MulticlassHead : TaskHead
{
    public const string KindName = "multiclass";
    private readonly float[]? _classWeights;
    private readonly double _labelSmoothing;
    private Tensor? _weights;

    public MulticlassHead(int classCount, float[]? classWeights, double labelSmoothing)
    {
        OutputSize = classCount;
        if (classWeights is not null && classWeights.Length != classCount)
            throw new ArgumentOutOfRangeException(nameof(DeepTrainerOptions.ClassWeights),
                $"ClassWeights has {classWeights.Length} values, but the label has {classCount} classes.");
        _classWeights = classWeights;
        _labelSmoothing = labelSmoothing;
    }

    /// <summary>Number of classes of a key-typed label column (checked first).</summary>
    public static int ClassCount(DataViewSchema schema, string labelColumn)
    {
        var col = schema.GetColumnOrNull(labelColumn)
            ?? throw new ArgumentOutOfRangeException(nameof(DeepTrainerOptions.LabelColumnName), $"The training data has no label column '{labelColumn}'.");
        if (col.Type is not KeyDataViewType key)
            throw WrongLabel(col, "training", "a key type for multiclass classification (use mlContext.Transforms.Conversion.MapValueToKey)");
        if (key.Count < 2 || key.Count > int.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(DeepTrainerOptions.LabelColumnName), $"Label column '{labelColumn}' must have at least 2 classes, has {key.Count}.");
        return (int)key.Count;
    }

    public override string Kind => KindName;
    public override LabelKind LabelKind => LabelKind.Key;
    public override int OutputSize { get; }
    public override string MetricName => "accuracy";
    public override PredictionKind PredictionKind => PredictionKind.MulticlassClassification;

    private protected override void CheckLabelType(DataViewSchema.Column col, string role)
    {
        if (col.Type is not KeyDataViewType)
            throw WrongLabel(col, role, "a key type for multiclass classification (use mlContext.Transforms.Conversion.MapValueToKey)");
        if (col.Type.RawType != typeof(uint))
            throw new ArgumentOutOfRangeException(nameof(DeepTrainerOptions.LabelColumnName), $"Label column '{col.Name}' must be a UInt32 key type, is {col.Type}.");
    }

    public override void Prepare(TrainingData train, Device device)
    {
        if (_classWeights is not null) _weights = torch.tensor(_classWeights, device: device).DetachFromDisposeScope();
    }

    public override Tensor Loss(Tensor output, Tensor target) =>
        F.cross_entropy(output, target, _weights, label_smoothing: _labelSmoothing);

    private protected override Tensor RowLosses(Tensor output, Tensor target) =>
        F.cross_entropy(output, target, _weights, reduction: nn.Reduction.None, label_smoothing: _labelSmoothing);

    private protected override Tensor WeightTotal(Tensor weights, Tensor target) =>
        _weights is null ? weights.sum() : weights.mul(_weights.index_select(0, target)).sum();

    public override void Accumulate(Tensor output, Tensor target, MetricAccumulator acc)
    {
        acc.Correct += output.argmax(1).eq(target).sum().item<long>();
        acc.Rows += target.shape[0];
    }

    public override double Metric(MetricAccumulator acc) => acc.Accuracy;

    public override IEnumerable<SchemaShape.Column> OutputShape(SchemaShape.Column? label)
    {
        if (label is not { } l)
            throw new ArgumentOutOfRangeException(nameof(DeepTrainerOptions.LabelColumnName), "The input has no label column.");
        if (!l.IsKey)
            throw new ArgumentOutOfRangeException(nameof(DeepTrainerOptions.LabelColumnName),
                $"Label column '{l.Name}' is {l.GetTypeString()}; expected a key type for multiclass classification (use mlContext.Transforms.Conversion.MapValueToKey).");
        var annotations = new SchemaShape(l.Annotations.Where(a => a.Name == AnnotationUtils.Kinds.KeyValues).Concat(AnnotationUtils.GetTrainerOutputAnnotation()));
        return new[]
        {
            new SchemaShape.Column(DefaultColumnNames.Score, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false, new SchemaShape(AnnotationUtils.AnnotationsForMulticlassScoreColumn(l))),
            new SchemaShape.Column(DefaultColumnNames.PredictedLabel, SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.UInt32, true, annotations),
        };
    }

    public override IReadOnlyList<(string Name, DataViewType Type, DataViewSchema.Annotations Annotations)> OutputColumns(DataViewSchema.Column? label)
    {
        int k = OutputSize;
        var keyValues = label?.Annotations.Schema.GetColumnOrNull(AnnotationUtils.Kinds.KeyValues);
        var score = Kinds(AnnotationUtils.Const.ScoreColumnKind.MulticlassClassification, AnnotationUtils.Const.ScoreValueKind.Score, a =>
        {
            if (keyValues is { Type: VectorDataViewType { ItemType: TextDataViewType } kvType } && kvType.Size == k)
            {
                var getter = label!.Value.Annotations.GetGetter<VBuffer<ReadOnlyMemory<char>>>(keyValues.Value);
                a.Add(AnnotationUtils.Kinds.SlotNames, new VectorDataViewType(TextDataViewType.Instance, k), getter);
            }
        });
        var predicted = new DataViewSchema.Annotations.Builder();
        if (keyValues is not null) predicted.Add(label!.Value.Annotations, n => n == AnnotationUtils.Kinds.KeyValues);
        predicted.Add(Kinds(AnnotationUtils.Const.ScoreColumnKind.MulticlassClassification, AnnotationUtils.Const.ScoreValueKind.PredictedLabel), _ => true);
        return new[]
        {
            (DefaultColumnNames.Score, (DataViewType)new VectorDataViewType(NumberDataViewType.Single, k), score),
            (DefaultColumnNames.PredictedLabel, new KeyDataViewType(typeof(uint), k), predicted.ToAnnotations()),
        };
    }

    public override void PostProcess(ReadOnlySpan<float> raw, Span<float> values) => Softmax(raw, values);

    public override Delegate Getter(int which, Action ensure, float[] raw, float[] values)
    {
        if (which == 0)
            return (ValueGetter<VBuffer<float>>)((ref VBuffer<float> v) =>
            {
                ensure();
                var editor = VBufferEditor.Create(ref v, values.Length);
                values.AsSpan().CopyTo(editor.Values);
                v = editor.Commit();
            });
        return (ValueGetter<uint>)((ref uint v) =>
        {
            ensure();
            int best = 0;
            for (int i = 1; i < raw.Length; i++) if (raw[i] > raw[best]) best = i;
            v = (uint)best + 1;
        });
    }

    internal static void Softmax(ReadOnlySpan<float> logits, Span<float> probabilities)
    {
        float max = float.NegativeInfinity;
        foreach (float v in logits) max = Math.Max(max, v);
        double sum = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            float e = MathF.Exp(logits[i] - max);
            probabilities[i] = e;
            sum += e;
        }
        for (int i = 0; i < logits.Length; i++) probabilities[i] = (float)(probabilities[i] / sum);
    }

    public override void Dispose() => _weights?.Dispose();
}
