namespace MLNetDeep;

/// <summary>The task an experiment trains for.</summary>
public enum ExperimentTask
{
    /// <summary>Boolean label; binary metrics.</summary>
    BinaryClassification,
    /// <summary>Key label; multiclass metrics.</summary>
    MulticlassClassification,
    /// <summary>Float label; regression metrics.</summary>
    Regression,
    /// <summary>
    /// Windows of a series (<see cref="ForecastWindows"/>) and a forecaster's H-value score; forecast metrics in series
    /// units on the windows' validation part (<see cref="Experiment.Run(ForecastWindows, CancellationToken)"/>).
    /// </summary>
    Forecasting,
}

/// <summary>The metric an experiment optimises (every metric of the task is reported).</summary>
public enum ExperimentMetric
{
    /// <summary>The task's usual metric: accuracy (binary), micro-accuracy (multiclass), R² (regression), MASE (forecasting).</summary>
    Default,
    /// <summary>Binary accuracy.</summary>
    Accuracy,
    /// <summary>Binary area under the ROC curve.</summary>
    AreaUnderRocCurve,
    /// <summary>Binary F1 score of the positive class.</summary>
    F1Score,
    /// <summary>Multiclass micro-accuracy.</summary>
    MicroAccuracy,
    /// <summary>Multiclass macro-accuracy.</summary>
    MacroAccuracy,
    /// <summary>Log-loss (binary or multiclass; lower is better).</summary>
    LogLoss,
    /// <summary>Regression R².</summary>
    RSquared,
    /// <summary>Regression or forecast mean absolute error (lower is better).</summary>
    MeanAbsoluteError,
    /// <summary>Regression or forecast root mean squared error (lower is better).</summary>
    RootMeanSquaredError,
    /// <summary>Forecast mean absolute scaled error over every horizon (lower is better).</summary>
    MeanAbsoluteScaledError,
    /// <summary>Forecast symmetric mean absolute percentage error over every horizon (lower is better).</summary>
    SymmetricMeanAbsolutePercentageError,
}

/// <summary>What became of a trial.</summary>
public enum TrialStatus
{
    /// <summary>Trained and evaluated.</summary>
    Finished,
    /// <summary>A deep trial stopped early by successive halving (its validation metric trailed at a rung).</summary>
    Pruned,
    /// <summary>Stopped by the per-trial or the total time budget, or by cancellation.</summary>
    Stopped,
    /// <summary>Threw; the message is kept and the experiment goes on.</summary>
    Failed,
}

/// <summary>Options of an <see cref="Experiment"/>.</summary>
public sealed class ExperimentOptions
{
    /// <summary>The task. Default binary classification.</summary>
    public ExperimentTask Task { get; set; } = ExperimentTask.BinaryClassification;

    /// <summary>The label column (after the featurizer). Default <c>Label</c>.</summary>
    public string LabelColumnName { get; set; } = "Label";

    /// <summary>The metric to optimise. Default: the task's usual metric.</summary>
    public ExperimentMetric Metric { get; set; } = ExperimentMetric.Default;

    /// <summary>Most trials to run. Default 20.</summary>
    public int MaximumTrials { get; set; } = 20;

    /// <summary>Total time budget; the running trial is stopped when it is spent. Default none.</summary>
    public TimeSpan? TotalTime { get; set; }

    /// <summary>Time budget of one trial. Default none.</summary>
    public TimeSpan? TrialTime { get; set; }

    /// <summary>Share of the data held out for validation (and for ranking). Default 0.2.</summary>
    public double ValidationFraction { get; set; } = 0.2;

    /// <summary>
    /// 0 (default): one train / validation split (<see cref="ValidationFraction"/>). 2 or more: k-fold cross-validation,
    /// stratified by class for classification (each fold holds about the same share of every class); every trial trains
    /// on each fold, its metric is the mean over the folds (<see cref="TrialResult.MetricStandardDeviation"/> the spread),
    /// successive halving watches the first fold, and <see cref="ExperimentResult.BestModel"/> is the best trial's
    /// first-fold model. The featurizer is fitted on each fold's training part.
    /// </summary>
    public int Folds { get; set; }

    /// <summary>Seed of the split, the searchers and every trial's MLContext. Default 1.</summary>
    public int Seed { get; set; } = 1;

    /// <summary>How each candidate's next configuration is chosen. Default <see cref="SearchStrategy.CostFrugal"/>.</summary>
    public SearchStrategy Search { get; set; } = SearchStrategy.CostFrugal;

    /// <summary>
    /// Successive halving for deep trials: at epochs <see cref="PruningMinimumEpochs"/> × <see cref="PruningFactor"/>^k
    /// a trial whose validation metric is not in the best 1 / factor of the trials that reached that epoch is stopped.
    /// Default true.
    /// </summary>
    public bool Pruning { get; set; } = true;

    /// <summary>First rung of successive halving, in epochs. Default 1.</summary>
    public int PruningMinimumEpochs { get; set; } = 1;

    /// <summary>Reduction factor η of successive halving. Default 3.</summary>
    public int PruningFactor { get; set; } = 3;

    /// <summary>
    /// A directory for the experiment's state: <c>experiment.json</c> (what the experiment is), <c>trials.jsonl</c> (one
    /// line per finished trial, written as it ends) and <c>best-model.zip</c>. An experiment run again with the same
    /// directory and options replays the recorded trials (no training) and continues with the next one — after a crash
    /// too — reaching the leaderboard an uninterrupted run would. Different options are refused, naming the difference.
    /// Default none (nothing kept).
    /// </summary>
    public string? Directory { get; set; }

    /// <summary>Called after every trial with its result (a monitor). Default none.</summary>
    public Action<TrialResult>? TrialCallback { get; set; }

    /// <summary>
    /// The clock of <see cref="TotalTime"/> and <see cref="TrialTime"/> (their timers run on it). Default
    /// <see cref="TimeProvider.System"/>; a test can pass a clock it advances itself.
    /// </summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>Throws naming the first invalid option.</summary>
    public void Validate()
    {
        if (!Enum.IsDefined(Task)) throw new ArgumentOutOfRangeException(nameof(Task), Task, "Task must be BinaryClassification, MulticlassClassification, Regression or Forecasting.");
        if (TimeProvider is null) throw new ArgumentNullException(nameof(TimeProvider), "TimeProvider must be set (TimeProvider.System by default).");
        if (string.IsNullOrWhiteSpace(LabelColumnName)) throw new ArgumentOutOfRangeException(nameof(LabelColumnName), "LabelColumnName must name a column.");
        if (MaximumTrials < 1) throw new ArgumentOutOfRangeException(nameof(MaximumTrials), MaximumTrials, "MaximumTrials must be at least 1.");
        if (TotalTime is { } t && t <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(TotalTime), t, "TotalTime must be positive.");
        if (TrialTime is { } tt && tt <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(TrialTime), tt, "TrialTime must be positive.");
        if (Folds is 1 or < 0 or > 50) throw new ArgumentOutOfRangeException(nameof(Folds), Folds, "Folds must be 0 (one split) or 2 to 50.");
        if (!(ValidationFraction > 0 && ValidationFraction < 1)) throw new ArgumentOutOfRangeException(nameof(ValidationFraction), ValidationFraction, "ValidationFraction must be in (0, 1).");
        if (PruningMinimumEpochs < 1) throw new ArgumentOutOfRangeException(nameof(PruningMinimumEpochs), PruningMinimumEpochs, "PruningMinimumEpochs must be at least 1.");
        if (PruningFactor < 2) throw new ArgumentOutOfRangeException(nameof(PruningFactor), PruningFactor, "PruningFactor must be at least 2.");
        var valid = Task switch
        {
            ExperimentTask.BinaryClassification => new[] { ExperimentMetric.Accuracy, ExperimentMetric.AreaUnderRocCurve, ExperimentMetric.F1Score, ExperimentMetric.LogLoss },
            ExperimentTask.MulticlassClassification => new[] { ExperimentMetric.MicroAccuracy, ExperimentMetric.MacroAccuracy, ExperimentMetric.LogLoss },
            ExperimentTask.Forecasting => new[] { ExperimentMetric.MeanAbsoluteScaledError, ExperimentMetric.SymmetricMeanAbsolutePercentageError, ExperimentMetric.MeanAbsoluteError, ExperimentMetric.RootMeanSquaredError },
            _ => new[] { ExperimentMetric.RSquared, ExperimentMetric.MeanAbsoluteError, ExperimentMetric.RootMeanSquaredError },
        };
        if (Metric != ExperimentMetric.Default && !valid.Contains(Metric))
            throw new ArgumentOutOfRangeException(nameof(Metric), Metric, $"Metric {Metric} does not apply to {Task}; use one of {string.Join(", ", valid)}.");
    }

    /// <summary>The metric optimised (the default resolved).</summary>
    internal ExperimentMetric ResolvedMetric => Metric != ExperimentMetric.Default ? Metric : Task switch
    {
        ExperimentTask.BinaryClassification => ExperimentMetric.Accuracy,
        ExperimentTask.MulticlassClassification => ExperimentMetric.MicroAccuracy,
        ExperimentTask.Forecasting => ExperimentMetric.MeanAbsoluteScaledError,
        _ => ExperimentMetric.RSquared,
    };

    internal static bool HigherIsBetter(ExperimentMetric m) => m is not (ExperimentMetric.LogLoss or ExperimentMetric.MeanAbsoluteError
        or ExperimentMetric.RootMeanSquaredError or ExperimentMetric.MeanAbsoluteScaledError or ExperimentMetric.SymmetricMeanAbsolutePercentageError);
}
