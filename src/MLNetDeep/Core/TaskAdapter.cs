using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MLNetDeep;

/// <summary>What differs between binary classification, multiclass classification and regression in the loop.</summary>
internal abstract class TaskAdapter : IDisposable
{
    public abstract LabelKind LabelKind { get; }
    public abstract int OutputSize { get; }
    public abstract string MetricName { get; }

    /// <summary>Loss of a batch (mean over rows).</summary>
    public abstract Tensor Loss(Tensor output, Tensor target);

    /// <summary>Adds a batch to the metric accumulator (no grad).</summary>
    public abstract void Accumulate(Tensor output, Tensor target, MetricAccumulator acc);

    /// <summary>Called once with the training data before the network is built (e.g. label statistics).</summary>
    public virtual void Prepare(TrainingData train, Device device) { }

    public virtual void Dispose() { }
}

/// <summary>Sums for accuracy (correct / rows) or R-squared (SSE, sum y, sum y^2).</summary>
internal sealed class MetricAccumulator
{
    public double Correct, Rows, Sse, SumY, SumY2;

    public double Accuracy => Rows > 0 ? Correct / Rows : double.NaN;

    public double RSquared
    {
        get
        {
            double sst = SumY2 - SumY * SumY / Math.Max(1, Rows);
            return sst > 0 ? 1 - Sse / sst : double.NaN;
        }
    }
}

internal sealed class BinaryTask : TaskAdapter
{
    private readonly double _positiveWeight;
    private Tensor? _posWeight;

    public BinaryTask(double positiveWeight) => _positiveWeight = positiveWeight;

    public override LabelKind LabelKind => LabelKind.Boolean;
    public override int OutputSize => 1;
    public override string MetricName => "accuracy";

    public override void Prepare(TrainingData train, Device device)
    {
        if (_positiveWeight != 1) _posWeight = torch.tensor(new[] { (float)_positiveWeight }, device: device).DetachFromDisposeScope();
    }

    public override Tensor Loss(Tensor output, Tensor target) =>
        F.binary_cross_entropy_with_logits(output.squeeze(1), target, pos_weights: _posWeight);

    public override void Accumulate(Tensor output, Tensor target, MetricAccumulator acc)
    {
        acc.Correct += output.squeeze(1).gt(SafeOps.Zero).eq(target.gt(SafeOps.Half)).sum().item<long>();
        acc.Rows += target.shape[0];
    }

    public override void Dispose() => _posWeight?.Dispose();
}

internal sealed class MulticlassTask : TaskAdapter
{
    private readonly float[]? _classWeights;
    private readonly double _labelSmoothing;
    private Tensor? _weights;

    public MulticlassTask(int classCount, float[]? classWeights, double labelSmoothing)
    {
        OutputSize = classCount;
        if (classWeights is not null && classWeights.Length != classCount)
            throw new ArgumentOutOfRangeException(nameof(DeepTrainerOptions.ClassWeights),
                $"ClassWeights has {classWeights.Length} values, but the label has {classCount} classes.");
        _classWeights = classWeights;
        _labelSmoothing = labelSmoothing;
    }

    public override LabelKind LabelKind => LabelKind.Key;
    public override int OutputSize { get; }
    public override string MetricName => "accuracy";

    public override void Prepare(TrainingData train, Device device)
    {
        if (_classWeights is not null) _weights = torch.tensor(_classWeights, device: device).DetachFromDisposeScope();
    }

    public override Tensor Loss(Tensor output, Tensor target) =>
        F.cross_entropy(output, target, _weights, label_smoothing: _labelSmoothing);

    public override void Accumulate(Tensor output, Tensor target, MetricAccumulator acc)
    {
        acc.Correct += output.argmax(1).eq(target).sum().item<long>();
        acc.Rows += target.shape[0];
    }

    public override void Dispose() => _weights?.Dispose();
}

internal sealed class RegressionTask : TaskAdapter
{
    private readonly RegressionLoss _loss;
    private readonly double _huberDelta;
    private readonly bool _standardize;

    public RegressionTask(RegressionLoss loss, double huberDelta, bool standardize)
    {
        _loss = loss;
        _huberDelta = huberDelta;
        _standardize = standardize;
    }

    public double Mean { get; private set; }
    public double Scale { get; private set; } = 1;

    public override LabelKind LabelKind => LabelKind.Float;
    public override int OutputSize => 1;
    public override string MetricName => "r-squared";

    public override void Prepare(TrainingData train, Device device)
    {
        if (!_standardize) return;
        var (mean, std) = train.LabelMoments();
        Mean = mean;
        Scale = std > 1e-12 ? std : 1;
    }

    private Tensor Standardized(Tensor target) => _standardize ? SafeOps.Affine(target, 1 / Scale, -Mean / Scale) : target;

    public override Tensor Loss(Tensor output, Tensor target)
    {
        var y = Standardized(target);
        return _loss == RegressionLoss.Huber ? F.huber_loss(output.squeeze(1), y, _huberDelta) : F.mse_loss(output.squeeze(1), y);
    }

    public override void Accumulate(Tensor output, Tensor target, MetricAccumulator acc)
    {
        var y = Standardized(target).to_type(ScalarType.Float64);
        var p = output.squeeze(1).to_type(ScalarType.Float64);
        var d = p - y;
        acc.Sse += d.mul(d).sum().item<double>(); // not square(): TorchSharp's square() passes a temporary Scalar
        acc.SumY += y.sum().item<double>();
        acc.SumY2 += y.mul(y).sum().item<double>();
        acc.Rows += target.shape[0];
    }
}
