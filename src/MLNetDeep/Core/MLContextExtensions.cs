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
}
