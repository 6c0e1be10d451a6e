using Microsoft.ML;

namespace MLNetDeep;

/// <summary>Extensions of <see cref="MLContext"/>.</summary>
public static class MLContextExtensions
{
    /// <summary>
    /// Cancels every operation running on this context (ML.NET keeps this internal in 5.0.1; MLNetDeep's trainers
    /// check it before every batch and throw <see cref="OperationCanceledException"/>). The context cannot be
    /// used for training afterwards; create a new one. To cancel a single training, prefer
    /// <see cref="DeepTrainerOptions.CancellationToken"/>.
    /// </summary>
    public static void CancelExecution(this MLContext mlContext)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        mlContext.CancelExecution();
    }

    /// <summary>
    /// ML.NET's <c>ChangeModelThreshold</c> for an MLNetDeep binary classifier: a copy of <paramref name="model"/> (the
    /// trained network is shared, not copied) whose <c>PredictedLabel</c> is <c>Score &gt; threshold</c>, where Score is the
    /// logit (0 is probability 0.5; ln(p / (1 - p)) is probability p). The threshold is saved with the model and exported
    /// to ONNX.
    /// </summary>
    /// <param name="catalog">The binary classification catalog.</param>
    /// <param name="model">A trained MLNetDeep binary classifier (e.g. a chain's <c>LastTransformer</c>).</param>
    /// <param name="threshold">The decision threshold on Score.</param>
    public static DeepPredictionTransformer<DeepBinaryModelParameters> ChangeModelThreshold(this BinaryClassificationCatalog catalog,
        DeepPredictionTransformer<DeepBinaryModelParameters> model, float threshold)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(model);
        return model.WithThreshold(threshold);
    }
}
