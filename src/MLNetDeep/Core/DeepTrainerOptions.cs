using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.SearchSpace;

namespace MLNetDeep;

/// <summary>Optimizer used to update the network's weights.</summary>
public enum DeepOptimizer
{
    /// <summary>Stochastic gradient descent, with optional momentum and Nesterov momentum.</summary>
    Sgd,
    /// <summary>Adam (Kingma and Ba, 2015); <see cref="DeepTrainerOptions.WeightDecay"/> is L2 added to the gradient.</summary>
    Adam,
    /// <summary>AdamW (Loshchilov and Hutter, 2019): Adam with decoupled weight decay.</summary>
    AdamW,
}

/// <summary>How the learning rate changes during training.</summary>
public enum LearningRateSchedule
{
    /// <summary>The learning rate stays at <see cref="DeepTrainerOptions.LearningRate"/>.</summary>
    Constant,
    /// <summary>Multiplied by <see cref="DeepTrainerOptions.StepGamma"/> every <see cref="DeepTrainerOptions.StepSizeEpochs"/> epochs.</summary>
    Step,
    /// <summary>Cosine annealing from <see cref="DeepTrainerOptions.LearningRate"/> to <see cref="DeepTrainerOptions.MinimumLearningRate"/> over all batches.</summary>
    Cosine,
    /// <summary>One-cycle (Smith, 2018): warm up to <see cref="DeepTrainerOptions.LearningRate"/> over <see cref="DeepTrainerOptions.OneCycleWarmupFraction"/> of the batches, then anneal.</summary>
    OneCycle,
    /// <summary>Multiplied by <see cref="DeepTrainerOptions.PlateauFactor"/> when the monitored loss stops improving for <see cref="DeepTrainerOptions.PlateauPatience"/> epochs.</summary>
    ReduceOnPlateau,
    /// <summary>Linear warm-up from 0 to <see cref="DeepTrainerOptions.LearningRate"/> over <see cref="DeepTrainerOptions.WarmupFraction"/> of the batches, then cosine decay to <see cref="DeepTrainerOptions.MinimumLearningRate"/> (the usual Transformer schedule).</summary>
    WarmupCosine,
    /// <summary>Linear warm-up over <see cref="DeepTrainerOptions.WarmupFraction"/> of the batches, then linear decay to <see cref="DeepTrainerOptions.MinimumLearningRate"/> (BERT's schedule).</summary>
    WarmupLinear,
}

/// <summary>Loss minimised by a regression trainer.</summary>
public enum RegressionLoss
{
    /// <summary>Mean squared error.</summary>
    SquaredError,
    /// <summary>Huber loss with threshold <see cref="DeepTrainerOptions.HuberDelta"/> (in standardized label units when the label is standardized).</summary>
    Huber,
    /// <summary>Mean absolute error (L1): fits the conditional median; what to train when the model is judged by MAE, as forecasts usually are.</summary>
    AbsoluteError,
}

/// <summary>Where the training data is held between epochs.</summary>
public enum DataCaching
{
    /// <summary>Cache in memory when the dense features fit in <see cref="DeepTrainerOptions.MaximumCacheMegabytes"/>, otherwise stream.</summary>
    Auto,
    /// <summary>Read the data once into memory (one tensor); fastest for data that fits.</summary>
    Memory,
    /// <summary>Stream batches from the IDataView cursor every epoch; memory bounded by the batch size.</summary>
    None,
}

/// <summary>Compute device for training and scoring.</summary>
public enum DeepDevice
{
    /// <summary>The CPU (always available).</summary>
    Cpu,
    /// <summary>A CUDA GPU when a CUDA build of the engine is installed; see <see cref="DeepTrainerOptions.FallbackToCpu"/>.</summary>
    Cuda,
}

/// <summary>
/// Options shared by every MLNetDeep trainer: the training loop, optimizer, schedule, validation, early stopping,
/// checkpoints and device. Network families (MLP, ...) derive from this and add their layers' options.
/// </summary>
public abstract class DeepTrainerOptions
{
    /// <summary>Name of the label column. Default <c>Label</c>.</summary>
    public string LabelColumnName { get; set; } = DefaultColumnNames.Label;

    /// <summary>Name of the features column: a known-size <c>vector&lt;float&gt;</c>. Default <c>Features</c>.</summary>
    public string FeatureColumnName { get; set; } = DefaultColumnNames.Features;

    /// <summary>
    /// Name of a <c>Single</c> (float) column of example weights, as ML.NET's trainers take it: each training row's loss
    /// counts in proportion to its weight (0 leaves a row out; every weight 1 trains exactly as without weights). Weights
    /// must be finite and zero or positive, and not all zero. The validation loss and metric are unweighted. Default
    /// none (every row counts alike).
    /// </summary>
    public string? ExampleWeightColumnName { get; set; }

    /// <summary>Number of passes over the training data. Default 10.</summary>
    public int NumberOfEpochs { get; set; } = 10;

    /// <summary>Rows per mini-batch. Default 64.</summary>
    [Choice(new object[] { 32, 64, 128, 256 }, 64)]
    public int BatchSize { get; set; } = 64;

    /// <summary>Optimizer. Default <see cref="DeepOptimizer.AdamW"/>.</summary>
    public DeepOptimizer Optimizer { get; set; } = DeepOptimizer.AdamW;

    /// <summary>(Peak) learning rate. Default 1e-3.</summary>
    [Range(1e-4, 1e-2, 1e-3, true)]
    public double LearningRate { get; set; } = 1e-3;

    /// <summary>Momentum for <see cref="DeepOptimizer.Sgd"/>. Default 0.9.</summary>
    public double Momentum { get; set; } = 0.9;

    /// <summary>Use Nesterov momentum with <see cref="DeepOptimizer.Sgd"/>. Default false.</summary>
    public bool Nesterov { get; set; }

    /// <summary>Weight decay (L2 for SGD and Adam, decoupled for AdamW). Default 1e-4.</summary>
    [Range(1e-6, 1e-1, 1e-4, true)]
    public double WeightDecay { get; set; } = 1e-4;

    /// <summary>Clip the global gradient norm to this value; 0 disables clipping. Default 0.</summary>
    public double GradientClipNorm { get; set; }

    /// <summary>Learning-rate schedule. Default <see cref="LearningRateSchedule.Constant"/>.</summary>
    public LearningRateSchedule Schedule { get; set; } = LearningRateSchedule.Constant;

    /// <summary>Epochs between learning-rate drops with <see cref="LearningRateSchedule.Step"/>. Default 10.</summary>
    public int StepSizeEpochs { get; set; } = 10;

    /// <summary>Factor applied at each drop with <see cref="LearningRateSchedule.Step"/>. Default 0.1.</summary>
    public double StepGamma { get; set; } = 0.1;

    /// <summary>Final learning rate for <see cref="LearningRateSchedule.Cosine"/>. Default 0.</summary>
    public double MinimumLearningRate { get; set; }

    /// <summary>Fraction of all batches spent warming up with <see cref="LearningRateSchedule.OneCycle"/>. Default 0.3.</summary>
    public double OneCycleWarmupFraction { get; set; } = 0.3;

    /// <summary>Fraction of all batches spent in the linear warm-up of <see cref="LearningRateSchedule.WarmupCosine"/> and <see cref="LearningRateSchedule.WarmupLinear"/>. Default 0.1.</summary>
    public double WarmupFraction { get; set; } = 0.1;

    /// <summary>Adam / AdamW: decay rate of the first-moment (mean) estimate. Default 0.9.</summary>
    public double AdamBeta1 { get; set; } = 0.9;

    /// <summary>Adam / AdamW: decay rate of the second-moment estimate. Default 0.999 (Transformers often use 0.98).</summary>
    public double AdamBeta2 { get; set; } = 0.999;

    /// <summary>Adam / AdamW: term added to the denominator for numerical stability. Default 1e-8 (Transformers often use 1e-6).</summary>
    public double AdamEpsilon { get; set; } = 1e-8;

    /// <summary>Factor applied when the loss plateaus with <see cref="LearningRateSchedule.ReduceOnPlateau"/>. Default 0.5.</summary>
    public double PlateauFactor { get; set; } = 0.5;

    /// <summary>Epochs without improvement before reducing with <see cref="LearningRateSchedule.ReduceOnPlateau"/>. Default 2.</summary>
    public int PlateauPatience { get; set; } = 2;

    /// <summary>Data to validate on after every epoch (same schema as the training data). Default none.</summary>
    public IDataView? ValidationData { get; set; }

    /// <summary>
    /// When no <see cref="ValidationData"/> is given, hold out this fraction of the training rows (seeded) for
    /// validation. 0 (the default) validates on nothing.
    /// </summary>
    public double ValidationFraction { get; set; }

    /// <summary>
    /// Stop after this many epochs without an improvement of the validation loss (the training loss when there is
    /// no validation data) of at least <see cref="EarlyStoppingMinDelta"/>. 0 (the default) never stops early.
    /// </summary>
    public int EarlyStoppingPatience { get; set; }

    /// <summary>Smallest decrease of the monitored loss that counts as an improvement. Default 0.</summary>
    public double EarlyStoppingMinDelta { get; set; }

    /// <summary>With early stopping, end with the weights of the best epoch rather than the last. Default true.</summary>
    public bool RestoreBestWeights { get; set; } = true;

    /// <summary>
    /// Directory for checkpoints. When set, every completed epoch writes the model, optimizer, schedule and
    /// history there atomically, and a training started again with the same directory resumes after the last
    /// completed epoch. Default none.
    /// </summary>
    public string? CheckpointDirectory { get; set; }

    /// <summary>
    /// Cancels training (checked before every batch, like the MLContext's own cancellation, see
    /// <see cref="MLContextExtensions.CancelExecution"/>); <see cref="OperationCanceledException"/> is thrown.
    /// </summary>
    public CancellationToken CancellationToken { get; set; }

    /// <summary>Called after every epoch with that epoch's figures (on the training thread).</summary>
    public Action<EpochMetrics>? EpochCallback { get; set; }

    /// <summary>Write a one-line progress display per epoch to the console (standard error). Default false.</summary>
    public bool ShowProgress { get; set; }

    /// <summary>
    /// When set, training writes training-curves.png there after the last epoch: the loss per epoch (training and
    /// validation) and the validation metric, drawn by <see cref="DeepPlots.SaveTrainingCurves"/>. The directory is
    /// created when missing; a failure to write the image is logged as a warning and does not fail the training.
    /// Default none.
    /// </summary>
    public string? PlotDirectory { get; set; }

    /// <summary>Where the training data is kept between epochs. Default <see cref="DataCaching.Auto"/>.</summary>
    public DataCaching Caching { get; set; } = DataCaching.Auto;

    /// <summary>Largest dense feature cache <see cref="DataCaching.Auto"/> builds, in MiB. Default 2048.</summary>
    public int MaximumCacheMegabytes { get; set; } = 2048;

    /// <summary>
    /// With streamed data (<see cref="DataCaching.None"/>) whose source cannot shuffle rows itself (text files),
    /// rows are shuffled through a pool of this many rows: larger shuffles better, and costs memory. Default 10000.
    /// </summary>
    public int ShufflePoolRows { get; set; } = 10_000;

    /// <summary>
    /// Threads the engine may use while this training runs; the thread count the process had is restored when
    /// <c>Fit</c> returns (the engine's setting is process-wide, and trainings in one process run one at a time). null
    /// leaves the engine's current setting (by default one thread per core). Default null.
    /// </summary>
    public int? NumberOfThreads { get; set; }

    /// <summary>Compute device. Default <see cref="DeepDevice.Cpu"/>.</summary>
    public DeepDevice Device { get; set; } = DeepDevice.Cpu;

    /// <summary>When <see cref="DeepDevice.Cuda"/> is asked for but unavailable, train on the CPU (with a warning) instead of failing. Default true.</summary>
    public bool FallbackToCpu { get; set; } = true;

    /// <summary>Multiclass only: a weight per class for the cross-entropy loss (unbalanced classes); null weighs all alike.</summary>
    public float[]? ClassWeights { get; set; }

    /// <summary>Multiclass only: label smoothing for the cross-entropy loss, in [0, 1). Default 0.</summary>
    public double LabelSmoothing { get; set; }

    /// <summary>Binary only: weight of the positive class in the loss (e.g. negatives/positives for rare positives). Default 1.</summary>
    public double PositiveClassWeight { get; set; } = 1;

    /// <summary>Regression and forecasting only: the loss. Default <see cref="MLNetDeep.RegressionLoss.SquaredError"/>.</summary>
    public RegressionLoss RegressionLoss { get; set; } = RegressionLoss.SquaredError;

    /// <summary>Regression only: threshold of the Huber loss. Default 1.</summary>
    public double HuberDelta { get; set; } = 1;

    /// <summary>
    /// Regression only: train on the label centred and scaled to unit variance (scores are mapped back), which
    /// makes the default learning rate suit labels of any magnitude. Default true.
    /// </summary>
    public bool StandardizeLabel { get; set; } = true;

    /// <summary>Checks every option; throws <see cref="ArgumentOutOfRangeException"/> or <see cref="ArgumentException"/> naming the option.</summary>
    public virtual void Validate()
    {
        Require(!string.IsNullOrWhiteSpace(LabelColumnName), nameof(LabelColumnName), "must name a column");
        Require(!string.IsNullOrWhiteSpace(FeatureColumnName), nameof(FeatureColumnName), "must name a column");
        Positive(NumberOfEpochs, nameof(NumberOfEpochs));
        Positive(BatchSize, nameof(BatchSize));
        Require(LearningRate > 0 && double.IsFinite(LearningRate), nameof(LearningRate), "must be a positive number");
        Require(Momentum >= 0 && Momentum < 1, nameof(Momentum), "must be in [0, 1)");
        Require(!Nesterov || Optimizer == DeepOptimizer.Sgd && Momentum > 0, nameof(Nesterov), "needs Optimizer = Sgd and Momentum > 0");
        Require(WeightDecay >= 0 && double.IsFinite(WeightDecay), nameof(WeightDecay), "must be zero or positive");
        Require(GradientClipNorm >= 0 && double.IsFinite(GradientClipNorm), nameof(GradientClipNorm), "must be zero (off) or positive");
        Positive(StepSizeEpochs, nameof(StepSizeEpochs));
        Require(StepGamma > 0 && StepGamma <= 1, nameof(StepGamma), "must be in (0, 1]");
        Require(MinimumLearningRate >= 0 && MinimumLearningRate <= LearningRate, nameof(MinimumLearningRate), "must be in [0, LearningRate]");
        Require(OneCycleWarmupFraction > 0 && OneCycleWarmupFraction < 1, nameof(OneCycleWarmupFraction), "must be in (0, 1)");
        Require(WarmupFraction >= 0 && WarmupFraction < 1, nameof(WarmupFraction), "must be in [0, 1)");
        Require(AdamBeta1 >= 0 && AdamBeta1 < 1, nameof(AdamBeta1), "must be in [0, 1)");
        Require(AdamBeta2 >= 0 && AdamBeta2 < 1, nameof(AdamBeta2), "must be in [0, 1)");
        Require(AdamEpsilon > 0 && double.IsFinite(AdamEpsilon), nameof(AdamEpsilon), "must be a positive number");
        Require(Enum.IsDefined(Schedule), nameof(Schedule), "must be a LearningRateSchedule value");
        Require(PlateauFactor > 0 && PlateauFactor < 1, nameof(PlateauFactor), "must be in (0, 1)");
        Require(PlateauPatience >= 0, nameof(PlateauPatience), "must be zero or positive");
        Require(ValidationFraction >= 0 && ValidationFraction < 1, nameof(ValidationFraction), "must be in [0, 1)");
        Require(EarlyStoppingPatience >= 0, nameof(EarlyStoppingPatience), "must be zero (off) or positive");
        Require(EarlyStoppingMinDelta >= 0, nameof(EarlyStoppingMinDelta), "must be zero or positive");
        Positive(MaximumCacheMegabytes, nameof(MaximumCacheMegabytes));
        Positive(ShufflePoolRows, nameof(ShufflePoolRows));
        Require(ClassWeights is null || ClassWeights.All(w => w >= 0 && float.IsFinite(w)) && ClassWeights.Any(w => w > 0), nameof(ClassWeights), "must be finite, non-negative and not all zero");
        Require(LabelSmoothing >= 0 && LabelSmoothing < 1, nameof(LabelSmoothing), "must be in [0, 1)");
        Require(PositiveClassWeight > 0 && double.IsFinite(PositiveClassWeight), nameof(PositiveClassWeight), "must be positive");
        Require(HuberDelta > 0 && double.IsFinite(HuberDelta), nameof(HuberDelta), "must be positive");
        Require(NumberOfThreads is null || NumberOfThreads > 0, nameof(NumberOfThreads), "must be positive or null");
        Require(PlotDirectory is null || !string.IsNullOrWhiteSpace(PlotDirectory), nameof(PlotDirectory), "must name a directory or be null");
        Require(CheckpointDirectory is null || !string.IsNullOrWhiteSpace(CheckpointDirectory), nameof(CheckpointDirectory), "must name a directory or be null");
        Require(ExampleWeightColumnName is null || !string.IsNullOrWhiteSpace(ExampleWeightColumnName), nameof(ExampleWeightColumnName), "must name a column or be null");
        foreach (var p in GetType().GetProperties(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance))
        {
            // Every enum option (the families' too) must hold a defined value: (DeepOptimizer)42 is refused here, not mid-training.
            var type = Nullable.GetUnderlyingType(p.PropertyType) ?? p.PropertyType;
            if (type.IsEnum && p.GetIndexParameters().Length == 0 && p.GetValue(this) is { } value && !Enum.IsDefined(type, value))
                throw new ArgumentOutOfRangeException(p.Name, value, $"{p.Name} must be a {type.Name} value ({string.Join(", ", Enum.GetNames(type))}), not {value}.");
        }
    }

    /// <summary>
    /// Checks, before any data is read, that the directories training will write to can be written: a directory that is
    /// a file, or cannot be created, is reported naming the option rather than after the first epoch.
    /// </summary>
    internal void CheckDirectories()
    {
        CheckWritableDirectory(CheckpointDirectory, nameof(CheckpointDirectory));
        CheckWritableDirectory(PlotDirectory, nameof(PlotDirectory));
    }

    private static void CheckWritableDirectory(string? path, string option)
    {
        if (path is null) return;
        if (File.Exists(path))
            throw new ArgumentException($"{option} '{path}' is a file, not a directory. Name a directory (it is created when missing).", option);
        string probe = Path.Combine(path, $".mlnetdeep-write-test-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            Directory.CreateDirectory(path);
            File.WriteAllBytes(probe, Array.Empty<byte>());
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException)
        {
            throw new ArgumentException($"{option} '{path}' cannot be created or written: {e.Message}", option, e);
        }
    }

    /// <summary>
    /// Test hook: called before every training batch with the 0-based epoch and batch, after the cancellation checks
    /// have passed (so a test can cancel at batch k and see that batch k + 1 never starts).
    /// </summary>
    internal Action<int, long>? BatchStarting { get; set; }

    /// <summary>A copy the trainer keeps: later changes to these options do not change a trainer already made.</summary>
    internal DeepTrainerOptions Copy()
    {
        var copy = (DeepTrainerOptions)MemberwiseClone();
        foreach (var p in GetType().GetProperties(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance))
            if (p.PropertyType.IsArray && p.CanWrite && p.GetValue(this) is Array a) p.SetValue(copy, a.Clone());
        return copy;
    }

    /// <summary>Sets the options every catalog method's simple overload takes; returns this.</summary>
    internal T WithBasics<T>(string label, string features, int epochs, int batchSize, double learningRate) where T : DeepTrainerOptions
    {
        LabelColumnName = label;
        FeatureColumnName = features;
        NumberOfEpochs = epochs;
        BatchSize = batchSize;
        LearningRate = learningRate;
        return (T)this;
    }

    private protected static void Positive(int value, string name)
    {
        if (value <= 0)
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be positive, not {value}.");
    }

    private protected static void Require(bool ok, string name, string what)
    {
        if (!ok)
            throw new ArgumentOutOfRangeException(name, $"{name} {what}.");
    }
}

/// <summary>The figures of one training epoch, kept in the trained model's history and passed to <see cref="DeepTrainerOptions.EpochCallback"/>.</summary>
/// <param name="Epoch">1-based epoch number.</param>
/// <param name="TrainLoss">Mean training loss over the epoch's batches.</param>
/// <param name="ValidationLoss">Mean validation loss, or null without validation data.</param>
/// <param name="MetricName">Name of <see cref="ValidationMetric"/>: accuracy for classification, R-squared for regression.</param>
/// <param name="ValidationMetric">The task metric on the validation data, or null without validation data.</param>
/// <param name="LearningRate">Learning rate at the end of the epoch.</param>
/// <param name="Seconds">Wall time of the epoch, validation included.</param>
public sealed record EpochMetrics(int Epoch, double TrainLoss, double? ValidationLoss, string MetricName, double? ValidationMetric, double LearningRate, double Seconds)
{
    /// <summary>One line for logs.</summary>
    public override string ToString() =>
        $"epoch {Epoch}: train loss {TrainLoss:G5}"
        + (ValidationLoss is double v ? $", validation loss {v:G5}" : "")
        + (ValidationMetric is double m ? $", validation {MetricName} {m:F4}" : "")
        + $", lr {LearningRate:G3}, {Seconds:F1}s";
}
