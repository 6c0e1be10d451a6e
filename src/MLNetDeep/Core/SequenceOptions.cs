namespace MLNetDeep;

/// <summary>
/// Options of the trainers that read sequences (recurrent networks, Transformers): token-id sequences (a
/// <c>vector&lt;key&gt;</c> from TokenizeIntoWords → MapValueToKey, or TokenizeIntoCharactersAsKeys) or numeric
/// sequences (a <c>vector&lt;float&gt;</c> of time steps × features per step), plus every option of the training core.
/// </summary>
public abstract class SequenceOptions : DeepTrainerOptions
{
    /// <summary>Token input: a row keeps at most this many tokens (its first ones). Default 256.</summary>
    public int MaximumSequenceLength { get; set; } = 256;

    /// <summary>
    /// Token input: batch rows of similar length together (seeded; pools of 50 batches sorted by length, the batches in
    /// random order), so little time goes to padding. Cached data only. Default false.
    /// </summary>
    public bool BucketByLength { get; set; }

    /// <summary>
    /// Token input, training only: the probability that a token is replaced by the "unknown" id (word dropout). At
    /// scoring, every word the key mapping did not see at training is unknown, but in the training data no word is, so
    /// without this the network never learns what an unknown word means. Typical 0.05–0.1. Default 0.
    /// </summary>
    [Microsoft.ML.SearchSpace.Range(0.0, 0.3, 0.1)]
    public double TokenDropout { get; set; }

    /// <summary>
    /// Numeric input: values per time step. Null (default) takes it from the column's dimensions (the last one, e.g.
    /// [L, F] from <see cref="ForecastWindows"/>, 28 for a 1×28×28 image read row by row), or 1 for a plain vector.
    /// </summary>
    public int? FeaturesPerStep { get; set; }

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        Positive(MaximumSequenceLength, nameof(MaximumSequenceLength));
        if (FeaturesPerStep is int f) Positive(f, nameof(FeaturesPerStep));
        Require(TokenDropout >= 0 && TokenDropout < 1, nameof(TokenDropout), "must be in [0, 1)");
    }
}
