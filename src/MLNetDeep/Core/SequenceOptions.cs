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
    }
}
