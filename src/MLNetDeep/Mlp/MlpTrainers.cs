using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using Microsoft.ML.SearchSpace;

namespace MLNetDeep;

/// <summary>Options of the multilayer-perceptron trainers: the layers, plus every option of the training core.</summary>
public abstract class MlpOptions : DeepTrainerOptions
{
    /// <summary>Widths of the hidden layers, input side first. Default { 128, 64 }.</summary>
    public int[] HiddenLayers { get; set; } = { 128, 64 };

    /// <summary>Activation after each hidden layer. Default <see cref="DeepActivation.Relu"/>.</summary>
    [Choice(new object[] { DeepActivation.Relu, DeepActivation.Gelu, DeepActivation.Swish, DeepActivation.Tanh }, DeepActivation.Relu)]
    public DeepActivation Activation { get; set; } = DeepActivation.Relu;

    /// <summary>Dropout probability after each hidden layer (alpha dropout with SELU); 0 disables. Default 0.1.</summary>
    [Range(0f, 0.5f, 0.1f)]
    public float Dropout { get; set; } = 0.1f;

    /// <summary>Batch normalization after each hidden linear layer. Default false.</summary>
    [BooleanChoice(false)]
    public bool BatchNorm { get; set; }

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        if (HiddenLayers is null)
            throw new ArgumentNullException(nameof(HiddenLayers), "HiddenLayers must not be null; use an empty array for a linear model.");
        if (HiddenLayers.Any(h => h <= 0))
            throw new ArgumentOutOfRangeException(nameof(HiddenLayers), $"HiddenLayers must all be positive, not [{string.Join(", ", HiddenLayers)}].");
        Require(Dropout >= 0 && Dropout < 1, nameof(Dropout), "must be in [0, 1)");
    }

    internal MlpNetworkSpec ToSpec() => new(HiddenLayers, Activation, Dropout, BatchNorm);
}

/// <summary>Trains a multilayer perceptron for binary classification (<c>bool</c> label).</summary>
public sealed class MlpBinaryTrainer : DeepBinaryTrainerBase
{
    /// <summary>Options of <see cref="MlpBinaryTrainer"/>.</summary>
    public sealed class Options : MlpOptions { }

    internal MlpBinaryTrainer(IHostEnvironment env, Options options) : base(env, nameof(MlpBinaryTrainer), options) { }

    private protected override NetworkSpec CreateNetworkSpec(InputEncoder input, int outputSize) => ((MlpOptions)TrainerOptions).ToSpec();
}

/// <summary>Trains a multilayer perceptron for multiclass classification (key-typed label).</summary>
public sealed class MlpMulticlassTrainer : DeepMulticlassTrainerBase
{
    /// <summary>Options of <see cref="MlpMulticlassTrainer"/>.</summary>
    public sealed class Options : MlpOptions { }

    internal MlpMulticlassTrainer(IHostEnvironment env, Options options) : base(env, nameof(MlpMulticlassTrainer), options) { }

    private protected override NetworkSpec CreateNetworkSpec(InputEncoder input, int outputSize) => ((MlpOptions)TrainerOptions).ToSpec();
}

/// <summary>Trains a multilayer perceptron for regression (<c>float</c> label).</summary>
public sealed class MlpRegressionTrainer : DeepRegressionTrainerBase
{
    /// <summary>Options of <see cref="MlpRegressionTrainer"/>.</summary>
    public sealed class Options : MlpOptions { }

    internal MlpRegressionTrainer(IHostEnvironment env, Options options) : base(env, nameof(MlpRegressionTrainer), options) { }

    private protected override NetworkSpec CreateNetworkSpec(InputEncoder input, int outputSize) => ((MlpOptions)TrainerOptions).ToSpec();
}

/// <summary>Catalog extensions: <c>mlContext.{BinaryClassification,MulticlassClassification,Regression}.Trainers.Mlp(...)</c>.</summary>
public static class MlpCatalog
{
    /// <summary>A multilayer-perceptron binary classifier.</summary>
    /// <param name="catalog">The binary classification trainer catalog.</param>
    /// <param name="labelColumnName">Label column (<c>bool</c>).</param>
    /// <param name="featureColumnName">Features column (known-size vector of float).</param>
    /// <param name="hiddenLayers">Hidden layer widths; default { 128, 64 }.</param>
    /// <param name="numberOfEpochs">Passes over the data.</param>
    /// <param name="batchSize">Rows per mini-batch.</param>
    /// <param name="learningRate">AdamW learning rate.</param>
    public static MlpBinaryTrainer Mlp(this BinaryClassificationCatalog.BinaryClassificationTrainers catalog,
        string labelColumnName = DefaultColumnNames.Label, string featureColumnName = DefaultColumnNames.Features,
        int[]? hiddenLayers = null, int numberOfEpochs = 10, int batchSize = 64, double learningRate = 1e-3)
        => Mlp(catalog, Fill(new MlpBinaryTrainer.Options(), labelColumnName, featureColumnName, hiddenLayers, numberOfEpochs, batchSize, learningRate));

    /// <summary>A multilayer-perceptron binary classifier with all options.</summary>
    public static MlpBinaryTrainer Mlp(this BinaryClassificationCatalog.BinaryClassificationTrainers catalog, MlpBinaryTrainer.Options options)
        => new(CatalogUtils.GetEnvironment(catalog), options ?? throw new ArgumentNullException(nameof(options)));

    /// <summary>A multilayer-perceptron multiclass classifier.</summary>
    /// <param name="catalog">The multiclass classification trainer catalog.</param>
    /// <param name="labelColumnName">Label column (key type: use MapValueToKey).</param>
    /// <param name="featureColumnName">Features column (known-size vector of float).</param>
    /// <param name="hiddenLayers">Hidden layer widths; default { 128, 64 }.</param>
    /// <param name="numberOfEpochs">Passes over the data.</param>
    /// <param name="batchSize">Rows per mini-batch.</param>
    /// <param name="learningRate">AdamW learning rate.</param>
    public static MlpMulticlassTrainer Mlp(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        string labelColumnName = DefaultColumnNames.Label, string featureColumnName = DefaultColumnNames.Features,
        int[]? hiddenLayers = null, int numberOfEpochs = 10, int batchSize = 64, double learningRate = 1e-3)
        => Mlp(catalog, Fill(new MlpMulticlassTrainer.Options(), labelColumnName, featureColumnName, hiddenLayers, numberOfEpochs, batchSize, learningRate));

    /// <summary>A multilayer-perceptron multiclass classifier with all options.</summary>
    public static MlpMulticlassTrainer Mlp(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog, MlpMulticlassTrainer.Options options)
        => new(CatalogUtils.GetEnvironment(catalog), options ?? throw new ArgumentNullException(nameof(options)));

    /// <summary>A multilayer-perceptron regressor.</summary>
    /// <param name="catalog">The regression trainer catalog.</param>
    /// <param name="labelColumnName">Label column (float).</param>
    /// <param name="featureColumnName">Features column (known-size vector of float).</param>
    /// <param name="hiddenLayers">Hidden layer widths; default { 128, 64 }.</param>
    /// <param name="numberOfEpochs">Passes over the data.</param>
    /// <param name="batchSize">Rows per mini-batch.</param>
    /// <param name="learningRate">AdamW learning rate.</param>
    public static MlpRegressionTrainer Mlp(this RegressionCatalog.RegressionTrainers catalog,
        string labelColumnName = DefaultColumnNames.Label, string featureColumnName = DefaultColumnNames.Features,
        int[]? hiddenLayers = null, int numberOfEpochs = 10, int batchSize = 64, double learningRate = 1e-3)
        => Mlp(catalog, Fill(new MlpRegressionTrainer.Options(), labelColumnName, featureColumnName, hiddenLayers, numberOfEpochs, batchSize, learningRate));

    /// <summary>A multilayer-perceptron regressor with all options.</summary>
    public static MlpRegressionTrainer Mlp(this RegressionCatalog.RegressionTrainers catalog, MlpRegressionTrainer.Options options)
        => new(CatalogUtils.GetEnvironment(catalog), options ?? throw new ArgumentNullException(nameof(options)));

    private static T Fill<T>(T o, string label, string features, int[]? hidden, int epochs, int batchSize, double lr) where T : MlpOptions
    {
        if (hidden is not null) o.HiddenLayers = hidden;
        return o.WithBasics<T>(label, features, epochs, batchSize, lr);
    }
}

/// <summary>
/// Trains a multilayer perceptron to forecast the next H values of a series from a window of past values: features a
/// known-size <c>vector&lt;float&gt;</c> (see <see cref="ForecastWindows"/>), label a <c>vector&lt;float&gt;</c> of H values.
/// </summary>
public sealed class MlpForecaster : DeepForecastTrainerBase
{
    /// <summary>Options of <see cref="MlpForecaster"/>.</summary>
    public sealed class Options : MlpOptions { }

    internal MlpForecaster(IHostEnvironment env, Options options) : base(env, nameof(MlpForecaster), options) { }

    private protected override NetworkSpec CreateNetworkSpec(InputEncoder input, int outputSize) => ((MlpOptions)TrainerOptions).ToSpec();
}

/// <summary>Catalog extension: <c>mlContext.Forecasting.Trainers.Mlp(...)</c>.</summary>
public static class MlpForecastingCatalog
{
    /// <summary>A multilayer-perceptron forecaster: a window of past values → the next H values.</summary>
    /// <param name="catalog">The forecasting trainer catalog.</param>
    /// <param name="labelColumnName">Label column: a vector of the H values to forecast.</param>
    /// <param name="featureColumnName">The window: a known-size vector of float.</param>
    /// <param name="hiddenLayers">Hidden layer widths; default { 128, 64 }.</param>
    /// <param name="numberOfEpochs">Passes over the data.</param>
    /// <param name="batchSize">Windows per mini-batch.</param>
    /// <param name="learningRate">AdamW learning rate.</param>
    public static MlpForecaster Mlp(this ForecastingCatalog.Forecasters catalog,
        string labelColumnName = DefaultColumnNames.Label, string featureColumnName = DefaultColumnNames.Features,
        int[]? hiddenLayers = null, int numberOfEpochs = 100, int batchSize = 32, double learningRate = 1e-3)
    {
        var o = new MlpForecaster.Options();
        if (hiddenLayers is not null) o.HiddenLayers = hiddenLayers;
        return Mlp(catalog, o.WithBasics<MlpForecaster.Options>(labelColumnName, featureColumnName, numberOfEpochs, batchSize, learningRate));
    }

    /// <summary>A multilayer-perceptron forecaster with all options.</summary>
    public static MlpForecaster Mlp(this ForecastingCatalog.Forecasters catalog, MlpForecaster.Options options)
        => new(CatalogUtils.GetEnvironment(catalog), options ?? throw new ArgumentNullException(nameof(options)));
}
