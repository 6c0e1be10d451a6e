using Microsoft.ML;

namespace MLNetDeep;

/// <summary>The steps of a fitted pipeline, nested chains flattened, in order.</summary>
internal static class TransformerSteps
{
    public static IEnumerable<ITransformer> Flatten(ITransformer t) =>
        t is IEnumerable<ITransformer> chain ? chain.SelectMany(Flatten) : new[] { t };
}
