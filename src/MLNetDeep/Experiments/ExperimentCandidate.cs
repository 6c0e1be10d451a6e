using Microsoft.ML;

namespace MLNetDeep;

/// <summary>
/// A trainer an <see cref="Experiment"/> searches: an MLNetDeep trainer or any ML.NET trainer estimator, configured
/// through an Options object whose searched properties come from a <see cref="SearchSpace"/> (by default the Options
/// class's <c>[Range]</c> / <c>[Choice]</c> attributes).
/// </summary>
public sealed class ExperimentCandidate
{
    private readonly Func<MLContext, IReadOnlyDictionary<string, object>, TrialHooks, IEstimator<ITransformer>> _create;

    private ExperimentCandidate(string name, SearchSpace space, bool isDeep, Func<MLContext, IReadOnlyDictionary<string, object>, TrialHooks, IEstimator<ITransformer>> create)
    {
        if (string.IsNullOrWhiteSpace(name)) throw new ArgumentException("A candidate needs a name (it is shown in the leaderboard).", nameof(name));
        Name = name;
        SearchSpace = space;
        IsDeep = isDeep;
        _create = create;
    }

    /// <summary>The name shown in the leaderboard (the trainer's real name).</summary>
    public string Name { get; }

    /// <summary>The options searched.</summary>
    public SearchSpace SearchSpace { get; }

    /// <summary>An MLNetDeep trainer: trained epoch by epoch against the validation split, so successive halving can stop it early.</summary>
    public bool IsDeep { get; }

    /// <summary>
    /// A candidate configured through <typeparamref name="TOptions"/>: each trial takes <paramref name="defaults"/>, sets the
    /// searched values on it and builds the trainer with <paramref name="trainer"/>. An MLNetDeep Options object also gets
    /// the validation split, the trial's cancellation and an epoch callback (for pruning); leave those unset.
    /// </summary>
    /// <param name="name">Shown in the leaderboard.</param>
    /// <param name="defaults">A fresh Options object with everything not searched set (e.g. the number of epochs).</param>
    /// <param name="trainer">Builds the trainer, e.g. <c>(ml, o) => ml.Regression.Trainers.LightGbm(o)</c>.</param>
    /// <param name="searchSpace">The options to search; null reads the attributes of <typeparamref name="TOptions"/>.</param>
    public static ExperimentCandidate Create<TOptions>(string name, Func<TOptions> defaults, Func<MLContext, TOptions, IEstimator<ITransformer>> trainer,
        SearchSpace? searchSpace = null) where TOptions : class
    {
        if (defaults is null) throw new ArgumentNullException(nameof(defaults));
        if (trainer is null) throw new ArgumentNullException(nameof(trainer));
        var space = searchSpace ?? SearchSpace.FromOptions<TOptions>();
        bool deep = typeof(DeepTrainerOptions).IsAssignableFrom(typeof(TOptions));
        return new ExperimentCandidate(name, space, deep, (ml, values, hooks) =>
        {
            var options = defaults();
            SearchSpace.Apply(options, values);
            if (options is DeepTrainerOptions d) hooks.Wire(d);
            return trainer(ml, options);
        });
    }

    /// <summary>A trainer with nothing to search (one configuration; tried once).</summary>
    public static ExperimentCandidate Fixed(string name, Func<MLContext, IEstimator<ITransformer>> trainer)
    {
        if (trainer is null) throw new ArgumentNullException(nameof(trainer));
        return new ExperimentCandidate(name, new SearchSpace(), false, (ml, _, _) => trainer(ml));
    }

    internal IEstimator<ITransformer> Build(MLContext ml, IReadOnlyDictionary<string, object> values, TrialHooks hooks) => _create(ml, values, hooks);

    /// <summary>The name.</summary>
    public override string ToString() => Name;
}

/// <summary>What a trial gives a deep trainer: the validation split, its cancellation and the per-epoch report.</summary>
internal sealed class TrialHooks
{
    /// <summary>The validation split, or null when refitting on all the data (no early stopping then).</summary>
    public required IDataView? Validation { get; init; }
    public required CancellationToken Token { get; init; }
    public required Action<EpochMetrics> OnEpoch { get; init; }
    /// <summary>When refitting: the epochs the trial ran (its deep trainer trains exactly that many).</summary>
    public int? Epochs { get; init; }

    public void Wire(DeepTrainerOptions o)
    {
        o.ValidationData = Validation;
        o.ValidationFraction = 0;
        if (Epochs is int epochs)
        {
            o.NumberOfEpochs = epochs;
            o.EarlyStoppingPatience = 0;
        }
        o.CancellationToken = Token;
        var user = o.EpochCallback;
        o.EpochCallback = e =>
        {
            user?.Invoke(e);
            OnEpoch(e);
        };
    }
}

/// <summary>
/// Asynchronous successive halving (ASHA; Li et al., 2020) for trials run one after another: rungs at
/// r·η^k epochs; at a rung a trial continues only if its validation metric is among the best ⌈n/η⌉ of the n trials
/// that reached that rung (itself included); with fewer than η trials there, it continues.
/// </summary>
internal sealed class SuccessiveHalving
{
    private readonly int _minimum, _factor;
    private readonly Dictionary<int, List<double>> _rungs = new();

    public SuccessiveHalving(int minimumEpochs, int factor)
    {
        _minimum = minimumEpochs;
        _factor = factor;
    }

    public bool IsRung(int epoch)
    {
        for (long r = _minimum; r <= epoch; r *= _factor) if (r == epoch) return true;
        return false;
    }

    /// <summary>Records a trial's score (higher is better) at <paramref name="epoch"/>; true if the trial should stop.</summary>
    public bool ShouldStop(int epoch, double score)
    {
        if (!IsRung(epoch) || double.IsNaN(score)) return false;
        if (!_rungs.TryGetValue(epoch, out var scores)) _rungs[epoch] = scores = new List<double>();
        scores.Add(score);
        if (scores.Count < _factor) return false;
        int keep = (int)Math.Ceiling(scores.Count / (double)_factor);
        double threshold = scores.OrderByDescending(s => s).ElementAt(keep - 1);
        return score < threshold;
    }
}
