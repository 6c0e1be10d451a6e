// Regression (float label → Score) and forecasting (vector<float> label of H values → Score of H values). Both
// train on the label standardized with the training data's statistics and map scores back.
using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MLNetDeep;

/// <summary>What regression and forecasting share: the loss on a standardized label and its statistics.</summary>
internal abstract class NumericHead : TaskHead
{
    private RegressionLoss _loss;
    private double _huberDelta;
    private bool _standardize;

    protected NumericHead(RegressionLoss loss, double huberDelta, bool standardize)
    {
        _loss = loss;
        _huberDelta = huberDelta;
        _standardize = standardize;
    }

    public double Mean { get; private set; }
    public double Scale { get; private set; } = 1;

    public override void Prepare(TrainingData train, Device device)
    {
        if (!_standardize) return;
        var (mean, std) = train.LabelMoments();
        Mean = mean;
        Scale = std > 1e-12 ? std : 1;
    }

    /// <summary>The output in the network's units, shaped like the target.</summary>
    private protected abstract Tensor Shaped(Tensor output);

    private Tensor Standardized(Tensor target) => _standardize ? SafeOps.Affine(target, 1 / Scale, -Mean / Scale) : target;

    public override Tensor Loss(Tensor output, Tensor target)
    {
        var y = Standardized(target);
        var p = Shaped(output);
        return _loss switch
        {
            RegressionLoss.Huber => F.huber_loss(p, y, _huberDelta),
            RegressionLoss.AbsoluteError => F.l1_loss(p, y),
            _ => F.mse_loss(p, y),
        };
    }

    private protected override Tensor RowLosses(Tensor output, Tensor target)
    {
        var y = Standardized(target);
        var p = Shaped(output);
        var terms = _loss switch
        {
            RegressionLoss.Huber => F.huber_loss(p, y, _huberDelta, reduction: nn.Reduction.None),
            RegressionLoss.AbsoluteError => F.l1_loss(p, y, reduction: nn.Reduction.None),
            _ => F.mse_loss(p, y, reduction: nn.Reduction.None),
        };
        return terms.dim() == 1 ? terms : terms.mean(new long[] { 1 }); // forecasting: the mean over the horizon
    }

    public override void Accumulate(Tensor output, Tensor target, MetricAccumulator acc)
    {
        var y = Standardized(target).to_type(ScalarType.Float64);
        var p = Shaped(output).to_type(ScalarType.Float64);
        var d = p - y;
        acc.Sse += d.mul(d).sum().item<double>(); // not square(): TorchSharp's square() passes a temporary Scalar
        acc.SumY += y.sum().item<double>();
        acc.SumY2 += y.mul(y).sum().item<double>();
        acc.AbsoluteError += d.abs().sum().item<double>() * Scale;
        acc.Values += d.numel();
        acc.Rows += target.shape[0];
    }

    public override void PostProcess(ReadOnlySpan<float> raw, Span<float> values)
    {
        float mean = (float)Mean, scale = (float)Scale;
        for (int i = 0; i < raw.Length; i++) values[i] = raw[i] * scale + mean;
    }

    public override void Write(BinaryWriter w)
    {
        w.Write(Mean);
        w.Write(Scale);
    }

    public override void Read(BinaryReader r)
    {
        Mean = r.ReadDouble();
        Scale = r.ReadDouble();
        if (!double.IsFinite(Mean) || !double.IsFinite(Scale) || Scale <= 0)
            throw new InvalidDataException("MLNetDeep model file is corrupt: invalid label statistics.");
    }
}

internal sealed class RegressionHead : NumericHead
{
    public const string KindName = "regression";

    public RegressionHead(RegressionLoss loss, double huberDelta, bool standardize) : base(loss, huberDelta, standardize) { }

    public override string Kind => KindName;
    public override LabelKind LabelKind => LabelKind.Float;
    public override int OutputSize => 1;
    public override string MetricName => "r-squared";
    public override PredictionKind PredictionKind => PredictionKind.Regression;

    private protected override void CheckLabelType(DataViewSchema.Column col, string role)
    {
        if (col.Type != NumberDataViewType.Single) throw WrongLabel(col, role, "Single (float) for regression (use ConvertType)");
    }

    private protected override Tensor Shaped(Tensor output) => output.squeeze(1);

    public override double Metric(MetricAccumulator acc) => acc.RSquared;

    public override IEnumerable<SchemaShape.Column> OutputShape(SchemaShape.Column? label) => new[]
    {
        new SchemaShape.Column(DefaultColumnNames.Score, SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.Single, false, new SchemaShape(AnnotationUtils.GetTrainerOutputAnnotation())),
    };

    public override IReadOnlyList<(string Name, DataViewType Type, DataViewSchema.Annotations Annotations)> OutputColumns(DataViewSchema.Column? label) => new[]
    {
        (DefaultColumnNames.Score, (DataViewType)NumberDataViewType.Single, Kinds(AnnotationUtils.Const.ScoreColumnKind.Regression, AnnotationUtils.Const.ScoreValueKind.Score)),
    };

    public override Delegate Getter(int which, Action ensure, float[] raw, float[] values) =>
        (ValueGetter<float>)((ref float v) => { ensure(); v = values[0]; });
}

/// <summary>Forecasting: a <c>vector&lt;float&gt;</c> label of the horizon's H values → a Score vector of H values.</summary>
internal sealed class ForecastHead : NumericHead
{
    public const string KindName = "forecast";

    public ForecastHead(int horizon, RegressionLoss loss, double huberDelta, bool standardize) : base(loss, huberDelta, standardize)
        => OutputSize = horizon;

    /// <summary>The horizon: values of a known-size vector label (checked first).</summary>
    public static int Horizon(DataViewSchema schema, string labelColumn)
    {
        var col = schema.GetColumnOrNull(labelColumn)
            ?? throw new ArgumentOutOfRangeException(nameof(DeepTrainerOptions.LabelColumnName), $"The training data has no label column '{labelColumn}'.");
        CheckVector(col, "training");
        return ((VectorDataViewType)col.Type).Size;
    }

    private static void CheckVector(DataViewSchema.Column col, string role)
    {
        if (col.Type is not VectorDataViewType { ItemType: NumberDataViewType n, IsKnownSize: true, Size: > 0 } || n != NumberDataViewType.Single)
            throw WrongLabel(col, role, "a known-size vector of Single (float) holding the next H values to forecast (ForecastWindows makes one)");
    }

    public override string Kind => KindName;
    public override LabelKind LabelKind => LabelKind.FloatVector;
    public override int LabelWidth => OutputSize;
    public override int OutputSize { get; }
    public override string MetricName => "mae";
    public override PredictionKind PredictionKind => PredictionKind.MultiOutputRegression;

    private protected override void CheckLabelType(DataViewSchema.Column col, string role)
    {
        CheckVector(col, role);
        int size = ((VectorDataViewType)col.Type).Size;
        if (size != OutputSize)
            throw new ArgumentOutOfRangeException(nameof(DeepTrainerOptions.LabelColumnName),
                $"Label column '{col.Name}' of the {role} data has {size} values, but the horizon is {OutputSize}.");
    }

    private protected override Tensor Shaped(Tensor output) => output;

    public override double Metric(MetricAccumulator acc) => acc.MeanAbsoluteError;

    public override IEnumerable<SchemaShape.Column> OutputShape(SchemaShape.Column? label) => new[]
    {
        new SchemaShape.Column(DefaultColumnNames.Score, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false, new SchemaShape(AnnotationUtils.GetTrainerOutputAnnotation())),
    };

    public override IReadOnlyList<(string Name, DataViewType Type, DataViewSchema.Annotations Annotations)> OutputColumns(DataViewSchema.Column? label) => new[]
    {
        (DefaultColumnNames.Score, (DataViewType)new VectorDataViewType(NumberDataViewType.Single, OutputSize),
            Kinds(AnnotationUtils.Const.ScoreColumnKind.MultiOutputRegression, AnnotationUtils.Const.ScoreValueKind.Score)),
    };

    public override Delegate Getter(int which, Action ensure, float[] raw, float[] values) =>
        (ValueGetter<VBuffer<float>>)((ref VBuffer<float> v) =>
        {
            ensure();
            var editor = VBufferEditor.Create(ref v, values.Length);
            values.AsSpan().CopyTo(editor.Values);
            v = editor.Commit();
        });
}
