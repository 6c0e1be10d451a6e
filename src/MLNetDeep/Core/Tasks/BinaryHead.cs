// Binary classification: bool label, one logit; Score (logit), Probability, PredictedLabel.
using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MLNetDeep;

internal sealed class BinaryHead : TaskHead
{
    public const string KindName = "binary";
    private readonly double _positiveWeight;
    private Tensor? _posWeight;

    public BinaryHead(double positiveWeight) => _positiveWeight = positiveWeight;

    public override string Kind => KindName;
    public override LabelKind LabelKind => LabelKind.Boolean;
    public override int OutputSize => 1;
    public override string MetricName => "accuracy";
    public override PredictionKind PredictionKind => PredictionKind.BinaryClassification;

    private protected override void CheckLabelType(DataViewSchema.Column col, string role)
    {
        if (col.Type != BooleanDataViewType.Instance)
            throw WrongLabel(col, role, "Boolean for binary classification (use a bool column, or MapValue/expression to make one)");
    }

    public override void Prepare(TrainingData train, Device device)
    {
        if (_positiveWeight != 1) _posWeight = torch.tensor(new[] { (float)_positiveWeight }, device: device).DetachFromDisposeScope();
    }

    public override Tensor Loss(Tensor output, Tensor target) =>
        F.binary_cross_entropy_with_logits(output.squeeze(1), target, pos_weights: _posWeight);

    private protected override Tensor RowLosses(Tensor output, Tensor target) =>
        F.binary_cross_entropy_with_logits(output.squeeze(1), target, pos_weights: _posWeight, reduction: nn.Reduction.None);

    public override void Accumulate(Tensor output, Tensor target, MetricAccumulator acc)
    {
        acc.Correct += output.squeeze(1).gt(SafeOps.Zero).eq(target.gt(SafeOps.Half)).sum().item<long>();
        acc.Rows += target.shape[0];
    }

    public override double Metric(MetricAccumulator acc) => acc.Accuracy;

    public override IEnumerable<SchemaShape.Column> OutputShape(SchemaShape.Column? label) => new[]
    {
        new SchemaShape.Column(DefaultColumnNames.Score, SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.Single, false, new SchemaShape(AnnotationUtils.GetTrainerOutputAnnotation())),
        new SchemaShape.Column(DefaultColumnNames.Probability, SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.Single, false, new SchemaShape(AnnotationUtils.GetTrainerOutputAnnotation(true))),
        new SchemaShape.Column(DefaultColumnNames.PredictedLabel, SchemaShape.Column.VectorKind.Scalar, BooleanDataViewType.Instance, false, new SchemaShape(AnnotationUtils.GetTrainerOutputAnnotation())),
    };

    public override IReadOnlyList<(string Name, DataViewType Type, DataViewSchema.Annotations Annotations)> OutputColumns(DataViewSchema.Column? label) => new[]
    {
        (DefaultColumnNames.Score, (DataViewType)NumberDataViewType.Single, Kinds(AnnotationUtils.Const.ScoreColumnKind.BinaryClassification, AnnotationUtils.Const.ScoreValueKind.Score)),
        (DefaultColumnNames.Probability, NumberDataViewType.Single, Kinds(AnnotationUtils.Const.ScoreColumnKind.BinaryClassification, AnnotationUtils.Const.ScoreValueKind.Probability,
            a => a.Add(AnnotationUtils.Kinds.IsNormalized, BooleanDataViewType.Instance, (ref bool v) => v = true))),
        (DefaultColumnNames.PredictedLabel, BooleanDataViewType.Instance, Kinds(AnnotationUtils.Const.ScoreColumnKind.BinaryClassification, AnnotationUtils.Const.ScoreValueKind.PredictedLabel)),
    };

    /// <summary>Index of PredictedLabel among the output columns (Score, Probability, PredictedLabel).</summary>
    public const int PredictedLabelIndex = 2;

    public override void PostProcess(ReadOnlySpan<float> raw, Span<float> values) => values[0] = 1f / (1f + MathF.Exp(-raw[0]));

    public override Delegate Getter(int which, Action ensure, float[] raw, float[] values) => which switch
    {
        0 => (ValueGetter<float>)((ref float v) => { ensure(); v = raw[0]; }),
        1 => (ValueGetter<float>)((ref float v) => { ensure(); v = values[0]; }),
        _ => (ValueGetter<bool>)((ref bool v) => { ensure(); v = raw[0] > 0; }),
    };

    public override void Dispose() => _posWeight?.Dispose();
}
