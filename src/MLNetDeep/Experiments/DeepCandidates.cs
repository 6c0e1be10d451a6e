using Microsoft.ML;

namespace MLNetDeep;

/// <summary>
/// Ready-made experiment candidates for MLNetDeep's trainers, for any task: the trainer's Options with the given number
/// of epochs (the most a trial runs; successive halving stops poor ones earlier), searched over the ranges their
/// attributes declare (learning rate, batch size, weight decay, dropout, widths, layers, ...). <c>configure</c> sets
/// anything else on each trial's Options (e.g. an epoch callback, the thread count, a schedule).
/// </summary>
public static class DeepCandidates
{
    /// <summary>A multilayer perceptron on a dense feature vector (for <see cref="ExperimentTask.Forecasting"/>, on the windows).</summary>
    public static ExperimentCandidate Mlp(ExperimentTask task, int epochs = 20, string featureColumnName = "Features", string labelColumnName = "Label", int[]? hiddenLayers = null, Action<DeepTrainerOptions>? configure = null)
    {
        var hidden = hiddenLayers ?? new[] { 128, 64 };
        T Set<T>(T o) where T : MlpOptions => Prepare(o, epochs, featureColumnName, labelColumnName, configure, x => x.HiddenLayers = hidden);
        return task switch
        {
            ExperimentTask.BinaryClassification => ExperimentCandidate.Create("MLNetDeep MLP", () => Set(new MlpBinaryTrainer.Options()), (ml, o) => ml.BinaryClassification.Trainers.Mlp(o)),
            ExperimentTask.MulticlassClassification => ExperimentCandidate.Create("MLNetDeep MLP", () => Set(new MlpMulticlassTrainer.Options()), (ml, o) => ml.MulticlassClassification.Trainers.Mlp(o)),
            ExperimentTask.Forecasting => ExperimentCandidate.Create("MLNetDeep MLP forecaster", () => Set(new MlpForecaster.Options()), (ml, o) => ml.Forecasting.Trainers.Mlp(o)),
            _ => ExperimentCandidate.Create("MLNetDeep MLP", () => Set(new MlpRegressionTrainer.Options()), (ml, o) => ml.Regression.Trainers.Mlp(o)),
        };
    }

    /// <summary>
    /// A recurrent network (LSTM by default) on token keys or numeric steps; for <see cref="ExperimentTask.Forecasting"/>
    /// a forecaster on the windows. The feature column defaults to <c>Tokens</c> (<c>Features</c> when forecasting).
    /// </summary>
    public static ExperimentCandidate Rnn(ExperimentTask task, int epochs = 10, string? featureColumnName = null, string labelColumnName = "Label", RecurrentCell cell = RecurrentCell.Lstm, Action<DeepTrainerOptions>? configure = null)
    {
        featureColumnName ??= task == ExperimentTask.Forecasting ? "Features" : "Tokens";
        T Set<T>(T o) where T : RnnOptions => Prepare(o, epochs, featureColumnName, labelColumnName, configure, x => x.Cell = cell);
        string name = $"MLNetDeep {cell.ToString().ToUpperInvariant()}";
        return task switch
        {
            ExperimentTask.BinaryClassification => ExperimentCandidate.Create(name, () => Set(new RnnBinaryTrainer.Options()), (ml, o) => ml.BinaryClassification.Trainers.Rnn(o)),
            ExperimentTask.MulticlassClassification => ExperimentCandidate.Create(name, () => Set(new RnnMulticlassTrainer.Options()), (ml, o) => ml.MulticlassClassification.Trainers.Rnn(o)),
            ExperimentTask.Forecasting => ExperimentCandidate.Create(name + " forecaster", () => Set(new RnnForecaster.Options()), (ml, o) => ml.Forecasting.Trainers.Rnn(o), NumericSteps<RnnForecaster.Options>()),
            _ => ExperimentCandidate.Create(name, () => Set(new RnnRegressionTrainer.Options()), (ml, o) => ml.Regression.Trainers.Rnn(o)),
        };
    }

    /// <summary>
    /// A Transformer encoder on token keys or numeric steps; for <see cref="ExperimentTask.Forecasting"/> a forecaster on
    /// the windows. The feature column defaults to <c>Tokens</c> (<c>Features</c> when forecasting).
    /// </summary>
    public static ExperimentCandidate Transformer(ExperimentTask task, int epochs = 10, string? featureColumnName = null, string labelColumnName = "Label", Action<DeepTrainerOptions>? configure = null)
    {
        featureColumnName ??= task == ExperimentTask.Forecasting ? "Features" : "Tokens";
        T Set<T>(T o) where T : TransformerOptions => Prepare(o, epochs, featureColumnName, labelColumnName, configure);
        return task switch
        {
            ExperimentTask.BinaryClassification => ExperimentCandidate.Create("MLNetDeep Transformer", () => Set(new TransformerBinaryTrainer.Options()), (ml, o) => ml.BinaryClassification.Trainers.Transformer(o)),
            ExperimentTask.MulticlassClassification => ExperimentCandidate.Create("MLNetDeep Transformer", () => Set(new TransformerMulticlassTrainer.Options()), (ml, o) => ml.MulticlassClassification.Trainers.Transformer(o)),
            ExperimentTask.Forecasting => ExperimentCandidate.Create("MLNetDeep Transformer forecaster", () => Set(new TransformerForecaster.Options()), (ml, o) => ml.Forecasting.Trainers.Transformer(o), NumericSteps<TransformerForecaster.Options>()),
            _ => ExperimentCandidate.Create("MLNetDeep Transformer", () => Set(new TransformerRegressionTrainer.Options()), (ml, o) => ml.Regression.Trainers.Transformer(o)),
        };
    }

    /// <summary>
    /// A convolutional network (classification only) with the given architecture (default SmallCnn), named
    /// <paramref name="name"/> in the leaderboard (default "MLNetDeep CNN (architecture)").
    /// </summary>
    public static ExperimentCandidate Cnn(ExperimentTask task, int epochs = 10, string featureColumnName = "Features", string labelColumnName = "Label", CnnArchitecture? architecture = null, Action<DeepTrainerOptions>? configure = null,
        string? name = null)
    {
        T Set<T>(T o) where T : CnnOptions => Prepare(o, epochs, featureColumnName, labelColumnName, configure, x => x.Architecture = architecture ?? CnnArchitecture.SmallCnn());
        name ??= $"MLNetDeep CNN ({(architecture ?? CnnArchitecture.SmallCnn()).Name})";
        return task switch
        {
            ExperimentTask.BinaryClassification => ExperimentCandidate.Create(name, () => Set(new CnnBinaryTrainer.Options()), (ml, o) => ml.BinaryClassification.Trainers.Cnn(o)),
            ExperimentTask.MulticlassClassification => ExperimentCandidate.Create(name, () => Set(new CnnMulticlassTrainer.Options()), (ml, o) => ml.MulticlassClassification.Trainers.Cnn(o)),
            _ => throw new ArgumentOutOfRangeException(nameof(task), task, $"The CNN trainers classify images (binary or multiclass); there is no CNN trainer for {task}."),
        };
    }

    /// <summary>What every family's defaults share: epochs and columns, then the family's own settings, then the caller's.</summary>
    private static T Prepare<T>(T o, int epochs, string featureColumnName, string labelColumnName, Action<DeepTrainerOptions>? configure, Action<T>? family = null)
        where T : DeepTrainerOptions
    {
        o.NumberOfEpochs = epochs;
        o.FeatureColumnName = featureColumnName;
        o.LabelColumnName = labelColumnName;
        family?.Invoke(o);
        configure?.Invoke(o);
        return o;
    }

    /// <summary>The attributes' search space without what only token input has (word dropout, embedding width): forecasters read numbers.</summary>
    private static SearchSpace NumericSteps<T>() => SearchSpace.FromOptions<T>().Remove(nameof(SequenceOptions.TokenDropout)).Remove(nameof(RnnOptions.EmbeddingSize));
}
