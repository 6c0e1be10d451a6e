using System.Reflection;
using System.Runtime.ExceptionServices;
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

    /// <summary>
    /// Loads a model exactly as <see cref="ModelOperationsCatalog.Load(string, out DataViewSchema)"/> does, but when the
    /// file cannot be loaded throws the exception that says why. ML.NET 5.0.1 creates every component of a model by
    /// reflection and lets the reflection's <see cref="TargetInvocationException"/> through, one per nesting level, so
    /// after <c>Load</c> the reason — e.g. MLNetDeep's <see cref="InvalidDataException"/> "MLNetDeep model file is
    /// corrupt: …" for a damaged file — is only <c>e.GetBaseException()</c>. This method rethrows that innermost exception
    /// (with its stack trace); a model that loads is returned unchanged. The file is checked the same way either way.
    /// </summary>
    /// <param name="catalog">The model operations catalog (<c>mlContext.Model</c>).</param>
    /// <param name="filePath">The model file (a zip written by <c>mlContext.Model.Save</c>).</param>
    /// <param name="inputSchema">The saved input schema, or <see langword="null"/> when the file has none.</param>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is damaged or was not written by MLNetDeep and ML.NET (the message
    /// says which part and what is wrong).</exception>
    public static ITransformer LoadChecked(this ModelOperationsCatalog catalog, string filePath, out DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(filePath);
        if (!File.Exists(filePath)) throw new FileNotFoundException($"The model file '{filePath}' does not exist.", filePath);
        using var stream = File.OpenRead(filePath);
        return catalog.LoadChecked(stream, out inputSchema);
    }

    /// <summary>
    /// Loads a model from a stream exactly as <see cref="ModelOperationsCatalog.Load(Stream, out DataViewSchema)"/> does,
    /// but throws the innermost exception — the one that says what is wrong — instead of ML.NET's reflection wrappers
    /// (see <see cref="LoadChecked(ModelOperationsCatalog, string, out DataViewSchema)"/>).
    /// </summary>
    /// <param name="catalog">The model operations catalog (<c>mlContext.Model</c>).</param>
    /// <param name="stream">A readable, seekable stream holding the model zip.</param>
    /// <param name="inputSchema">The saved input schema, or <see langword="null"/> when the file has none.</param>
    public static ITransformer LoadChecked(this ModelOperationsCatalog catalog, Stream stream, out DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(stream);
        try
        {
            return catalog.Load(stream, out inputSchema);
        }
        catch (Exception e) when (Reason(e) != e)
        {
            ExceptionDispatchInfo.Capture(Reason(e)).Throw();
            throw; // not reached
        }
    }

    /// <summary>The exception inside ML.NET's instantiation wrappers (itself when it is not wrapped).</summary>
    internal static Exception Reason(Exception e)
    {
        var x = e;
        while (x.InnerException is Exception inner
            && (x is TargetInvocationException || (x is InvalidOperationException && x.Message.StartsWith("Error during class instantiation", StringComparison.Ordinal))))
            x = inner;
        return x;
    }
}
