// What one prediction task (binary, multiclass, regression, forecasting) adds to the shared core: its label, loss,
// metric, output columns and their values, and the state it saves with the model.
using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetDeep;

/// <summary>What the label column holds and how it becomes a target tensor.</summary>
internal enum LabelKind
{
    /// <summary><c>bool</c> label, float target 0/1.</summary>
    Boolean,
    /// <summary>Key-typed label, int64 target 0..K-1.</summary>
    Key,
    /// <summary><c>float</c> label, float target.</summary>
    Float,
    /// <summary>Known-size <c>vector&lt;float&gt;</c> label (forecast horizon), float target [N, H].</summary>
    FloatVector,
    /// <summary>No label (self-supervised: the targets come from the features); the target is a zero per row.</summary>
    None,
}

/// <summary>
/// A task head: everything the loop, the model file and the prediction transformer need to know of one task. The
/// loop knows only this interface; a new task is one file here (plus its model-parameters shell for ML.NET's loader).
/// </summary>
internal abstract class TaskHead : IDisposable
{
    /// <summary>Identifies the task in the model file and the checkpoint fingerprint.</summary>
    public abstract string Kind { get; }

    public abstract LabelKind LabelKind { get; }

    /// <summary>Values per label (the horizon for forecasting, else 1).</summary>
    public virtual int LabelWidth => 1;

    /// <summary>Number of network outputs per row.</summary>
    public abstract int OutputSize { get; }

    /// <summary>Name of the validation metric shown in the history (accuracy, r-squared, mae).</summary>
    public abstract string MetricName { get; }

    /// <summary>Task options that apply to this task only, as given; the trainer rejects those set on another task.</summary>
    public static void RejectForeignOptions(DeepTrainerOptions o, string task)
    {
        if (task == MaskedTokenHead.KindName && o.ExampleWeightColumnName is not null)
            throw new ArgumentException("ExampleWeightColumnName applies to supervised trainers; masked-token pretraining has no label to weigh.", nameof(o.ExampleWeightColumnName));
        void Reject(bool set, string option, string belongs)
        {
            if (set)
                throw new ArgumentException($"{option} applies to {belongs} only; this is a {task} trainer. Leave it at its default.", option);
        }
        Reject(task != MulticlassHead.KindName && o.ClassWeights is not null, nameof(o.ClassWeights), "multiclass classification");
        Reject(task != MulticlassHead.KindName && o.LabelSmoothing != 0, nameof(o.LabelSmoothing), "multiclass classification");
        Reject(task != BinaryHead.KindName && o.PositiveClassWeight != 1, nameof(o.PositiveClassWeight), "binary classification");
        bool numeric = task is RegressionHead.KindName or ForecastHead.KindName;
        Reject(!numeric && o.RegressionLoss != RegressionLoss.SquaredError, nameof(o.RegressionLoss), "regression and forecasting");
        Reject(!numeric && o.HuberDelta != 1, nameof(o.HuberDelta), "regression and forecasting");
        Reject(!numeric && !o.StandardizeLabel, nameof(o.StandardizeLabel), "regression and forecasting");
    }

    /// <summary>Checks the label column of the training or validation data; throws naming the column.</summary>
    public void CheckLabel(DataViewSchema schema, string labelColumn, string role)
    {
        var col = schema.GetColumnOrNull(labelColumn)
            ?? throw new ArgumentOutOfRangeException(nameof(DeepTrainerOptions.LabelColumnName), $"The {role} data has no label column '{labelColumn}'.");
        CheckLabelType(col, role);
    }

    private protected abstract void CheckLabelType(DataViewSchema.Column col, string role);

    /// <summary>Loss of a batch (mean over rows).</summary>
    public abstract Tensor Loss(Tensor output, Tensor target);

    /// <summary>
    /// Loss of a batch with example weights: Σ wᵢ·lossᵢ / Σ wᵢ (with class weights, Σ wᵢ·cᵢ in the denominator, so that
    /// weights of 1 give exactly <see cref="Loss(Tensor, Tensor)"/>'s mean); a batch whose weights are all 0 gives 0.
    /// </summary>
    public Tensor Loss(Tensor output, Tensor target, Tensor? weights)
    {
        if (weights is null) return Loss(output, target);
        return RowLosses(output, target).mul(weights).sum().div(WeightTotal(weights, target).clamp_min(SafeOps.Tiny));
    }

    /// <summary>The loss of each row of a batch, shape [rows] (the terms <see cref="Loss(Tensor, Tensor)"/> averages).</summary>
    private protected virtual Tensor RowLosses(Tensor output, Tensor target) =>
        throw new NotSupportedException($"A {Kind} model does not take example weights.");

    /// <summary>The denominator of the weighted mean.</summary>
    private protected virtual Tensor WeightTotal(Tensor weights, Tensor target) => weights.sum();

    /// <summary>Adds a batch to the metric accumulator (no grad).</summary>
    public abstract void Accumulate(Tensor output, Tensor target, MetricAccumulator acc);

    /// <summary>The metric from the accumulated sums.</summary>
    public abstract double Metric(MetricAccumulator acc);

    /// <summary>Called once with the training data before the network is built (e.g. label statistics).</summary>
    public virtual void Prepare(TrainingData train, Device device) { }

    // ---------------------------------------------------------------- scoring

    /// <summary>The prediction columns as the estimator announces them.</summary>
    public abstract IEnumerable<SchemaShape.Column> OutputShape(SchemaShape.Column? label);

    /// <summary>The prediction columns the transformer adds (<paramref name="label"/>: the training label column, for key values).</summary>
    public abstract IReadOnlyList<(string Name, DataViewType Type, DataViewSchema.Annotations Annotations)> OutputColumns(DataViewSchema.Column? label);

    /// <summary>Values per row that <see cref="PostProcess"/> writes (probabilities, de-standardized scores).</summary>
    public virtual int ValueWidth => OutputSize;

    /// <summary>Turns the raw network outputs of one row into the values the output columns show.</summary>
    public abstract void PostProcess(ReadOnlySpan<float> raw, Span<float> values);

    /// <summary>The getter of output column <paramref name="which"/>; <paramref name="ensure"/> scores the current row first.</summary>
    public abstract Delegate Getter(int which, Action ensure, float[] raw, float[] values);

    /// <summary>The ML.NET prediction kind.</summary>
    public abstract PredictionKind PredictionKind { get; }

    // ---------------------------------------------------------------- persistence

    /// <summary>Writes what the head learned in training (e.g. label statistics).</summary>
    public virtual void Write(BinaryWriter w) { }

    /// <summary>Reads what <see cref="Write"/> wrote.</summary>
    public virtual void Read(BinaryReader r) { }

    /// <summary>A head for the kind written in a model file, before its state is read.</summary>
    public static TaskHead Create(string kind, int outputSize) => kind switch
    {
        BinaryHead.KindName => new BinaryHead(1),
        MulticlassHead.KindName => new MulticlassHead(outputSize, null, 0),
        RegressionHead.KindName => new RegressionHead(RegressionLoss.SquaredError, 1, true),
        ForecastHead.KindName => new ForecastHead(outputSize, RegressionLoss.SquaredError, 1, true),
        MaskedTokenHead.KindName => new MaskedTokenHead(outputSize),
        _ => throw new InvalidDataException($"This model uses the task '{kind}', which this version of MLNetDeep does not know. Update the MLNetDeep package."),
    };

    public virtual void Dispose() { }

    /// <summary>Score-column annotations as ML.NET's scorers write them.</summary>
    private protected static DataViewSchema.Annotations Kinds(string columnKind, string valueKind, Action<DataViewSchema.Annotations.Builder>? more = null)
    {
        var a = new DataViewSchema.Annotations.Builder();
        a.Add(AnnotationUtils.Kinds.ScoreColumnKind, TextDataViewType.Instance, (ref ReadOnlyMemory<char> v) => v = columnKind.AsMemory());
        a.Add(AnnotationUtils.Kinds.ScoreValueKind, TextDataViewType.Instance, (ref ReadOnlyMemory<char> v) => v = valueKind.AsMemory());
        more?.Invoke(a);
        return a.ToAnnotations();
    }

    private protected static ArgumentOutOfRangeException WrongLabel(DataViewSchema.Column col, string role, string expected) =>
        new(nameof(DeepTrainerOptions.LabelColumnName), $"Label column '{col.Name}' of the {role} data is {col.Type}; expected {expected}.");
}

/// <summary>Sums for accuracy (correct / rows), R-squared (SSE, sum y, sum y^2) and mean absolute error.</summary>
internal sealed class MetricAccumulator
{
    public double Correct, Rows, Sse, SumY, SumY2, AbsoluteError, Values;

    public double Accuracy => Rows > 0 ? Correct / Rows : double.NaN;

    public double RSquared
    {
        get
        {
            double sst = SumY2 - SumY * SumY / Math.Max(1, Rows);
            return sst > 0 ? 1 - Sse / sst : double.NaN;
        }
    }

    public double MeanAbsoluteError => Values > 0 ? AbsoluteError / Values : double.NaN;
}
