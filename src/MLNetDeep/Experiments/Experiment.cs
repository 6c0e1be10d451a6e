// An AutoML-style experiment: candidates (MLNetDeep and ML.NET trainers) after one shared featurizer, one train /
// validation split for all, a search per candidate, budgets that stop the running trial through cancellation, pruning
// of deep trials by successive halving, and a leaderboard.
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;

namespace MLNetDeep;

/// <summary>One trial of an experiment: what was trained, how it did and what it cost.</summary>
public sealed class TrialResult
{
    /// <summary>1-based trial number.</summary>
    public required int Number { get; init; }

    /// <summary>The candidate's name (the trainer).</summary>
    public required string Trainer { get; init; }

    /// <summary>The searched option values of this trial.</summary>
    public required IReadOnlyDictionary<string, object> Parameters { get; init; }

    /// <summary>Finished, pruned, stopped or failed.</summary>
    public required TrialStatus Status { get; init; }

    /// <summary>The optimised metric on the validation split, or its mean over the folds (NaN unless finished).</summary>
    public double Metric { get; init; } = double.NaN;

    /// <summary>With cross-validation, the standard deviation of the metric over the folds; else 0.</summary>
    public double MetricStandardDeviation { get; init; }

    /// <summary>Every metric of the task on the validation split, by ML.NET's names (empty unless finished).</summary>
    public IReadOnlyDictionary<string, double> Metrics { get; init; } = new Dictionary<string, double>();

    /// <summary>Seconds of training (Fit).</summary>
    public double TrainingSeconds { get; init; }

    /// <summary>Milliseconds per row of batch scoring on the validation split.</summary>
    public double PredictionMillisecondsPerRow { get; init; } = double.NaN;

    /// <summary>Peak resident memory of the process during the trial, MiB (Linux; elsewhere the process peak so far).</summary>
    public double PeakMemoryMegabytes { get; init; } = double.NaN;

    /// <summary>Trainable parameters of a deep model; null for other trainers.</summary>
    public long? ParameterCount { get; init; }

    /// <summary>Epochs run by a deep trainer (fewer than asked when pruned or stopped early); null for other trainers.</summary>
    public int? Epochs { get; init; }

    /// <summary>The exception message of a failed trial, or why it stopped.</summary>
    public string? Message { get; init; }

    /// <summary>The option values as <c>name=value</c> pairs.</summary>
    public string ParametersText => string.Join(", ", Parameters.Select(p => $"{p.Key}={Format(p.Value)}"));

    internal static string Format(object v) => v switch
    {
        double d => d.ToString("G4", CultureInfo.InvariantCulture),
        float f => f.ToString("G4", CultureInfo.InvariantCulture),
        IFormattable x => x.ToString(null, CultureInfo.InvariantCulture),
        _ => v.ToString() ?? "",
    };
}

/// <summary>What an experiment returns: the leaderboard (best first) and the best model.</summary>
public sealed class ExperimentResult
{
    internal ExperimentResult(ExperimentMetric metric, IReadOnlyList<TrialResult> trials, ITransformer? bestModel, double seconds)
    {
        Metric = metric;
        Trials = trials;
        BestModel = bestModel;
        Seconds = seconds;
        bool higher = ExperimentOptions.HigherIsBetter(metric);
        Leaderboard = trials.OrderBy(t => t.Status == TrialStatus.Finished ? 0 : 1)
            .ThenBy(t => t.Status == TrialStatus.Finished ? (higher ? -t.Metric : t.Metric) : 0)
            .ThenBy(t => t.Number).ToArray();
        BestTrial = Leaderboard.FirstOrDefault(t => t.Status == TrialStatus.Finished);
    }

    /// <summary>The optimised metric.</summary>
    public ExperimentMetric Metric { get; }

    /// <summary>Every trial in the order run.</summary>
    public IReadOnlyList<TrialResult> Trials { get; }

    /// <summary>The trials ranked: finished ones best first, then the others in the order run.</summary>
    public IReadOnlyList<TrialResult> Leaderboard { get; }

    /// <summary>The best finished trial, or null if none finished.</summary>
    public TrialResult? BestTrial { get; }

    /// <summary>The best trial's model: the featurizer followed by its trained trainer; null if no trial finished.</summary>
    public ITransformer? BestModel { get; }

    /// <summary>Seconds the experiment ran.</summary>
    public double Seconds { get; }

    /// <summary>The leaderboard as a text table.</summary>
    public string ToTable(int? top = null)
    {
        var rows = Leaderboard.Take(top ?? Leaderboard.Count).ToList();
        var sb = new StringBuilder();
        sb.AppendLine(FormattableString.Invariant($"{"#",3}  {"trainer",-28} {"status",-8} {Metric,12} {"± sd",7} {"train s",8} {"ms/row",8} {"peak MiB",8} {"params",9} {"epochs",6}  parameters"));
        foreach (var t in rows)
            sb.AppendLine(FormattableString.Invariant($"{t.Number,3}  {Cut(t.Trainer, 28),-28} {t.Status,-8} {t.Metric,12:F4} {t.MetricStandardDeviation,7:F4} {t.TrainingSeconds,8:F1} {t.PredictionMillisecondsPerRow,8:F3} {t.PeakMemoryMegabytes,8:F0} {t.ParameterCount?.ToString(CultureInfo.InvariantCulture) ?? "",9} {t.Epochs?.ToString(CultureInfo.InvariantCulture) ?? "",6}  {t.ParametersText}{(t.Message is null ? "" : "  [" + t.Message + "]")}"));
        return sb.ToString();
    }

    /// <summary>Writes the leaderboard as CSV (one row per trial, every metric a column).</summary>
    public void SaveCsv(string path)
    {
        var metricNames = Trials.SelectMany(t => t.Metrics.Keys).Distinct().ToList();
        var sb = new StringBuilder();
        sb.AppendLine(string.Join(",", new[] { "rank", "trial", "trainer", "status", Metric.ToString(), Metric + "_sd" }.Concat(metricNames)
            .Concat(new[] { "training_seconds", "prediction_ms_per_row", "peak_memory_mib", "parameters", "epochs", "hyperparameters", "message" })));
        int rank = 1;
        foreach (var t in Leaderboard)
        {
            var cells = new List<string> { (rank++).ToString(CultureInfo.InvariantCulture), t.Number.ToString(CultureInfo.InvariantCulture), Csv(t.Trainer), t.Status.ToString(), Num(t.Metric), Num(t.MetricStandardDeviation) };
            cells.AddRange(metricNames.Select(m => t.Metrics.TryGetValue(m, out var v) ? Num(v) : ""));
            cells.AddRange(new[] { Num(t.TrainingSeconds), Num(t.PredictionMillisecondsPerRow), Num(t.PeakMemoryMegabytes),
                t.ParameterCount?.ToString(CultureInfo.InvariantCulture) ?? "", t.Epochs?.ToString(CultureInfo.InvariantCulture) ?? "", Csv(t.ParametersText), Csv(t.Message ?? "") });
            sb.AppendLine(string.Join(",", cells));
        }
        File.WriteAllText(path, sb.ToString());
    }

    /// <summary>Writes the leaderboard as a Markdown table.</summary>
    public void SaveMarkdown(string path)
    {
        var sb = new StringBuilder();
        sb.AppendLine(FormattableString.Invariant($"| rank | trial | trainer | status | {Metric} | ± sd | train s | ms/row | peak MiB | params | epochs | hyperparameters |"));
        sb.AppendLine("|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|");
        int rank = 1;
        foreach (var t in Leaderboard)
            sb.AppendLine(FormattableString.Invariant($"| {rank++} | {t.Number} | {t.Trainer} | {t.Status} | {t.Metric:F4} | {t.MetricStandardDeviation:F4} | {t.TrainingSeconds:F1} | {t.PredictionMillisecondsPerRow:F3} | {t.PeakMemoryMegabytes:F0} | {t.ParameterCount} | {t.Epochs} | {t.ParametersText.Replace("|", "\\|")}{(t.Message is null ? "" : " — " + t.Message.Replace("|", "\\|"))} |"));
        File.WriteAllText(path, sb.ToString());
    }

    private static string Cut(string s, int n) => s.Length <= n ? s : s[..(n - 1)] + "…";
    private static string Num(double v) => double.IsNaN(v) ? "" : v.ToString("R", CultureInfo.InvariantCulture);
    private static string Csv(string s) => s.IndexOfAny(new[] { ',', '"', '\n' }) < 0 ? s : "\"" + s.Replace("\"", "\"\"") + "\"";
}

/// <summary>
/// An AutoML-style experiment: candidates after one shared featurizer, trained on one split and ranked on its
/// validation part under a trial count and time budgets. Trials run one after another (each trainer uses the cores).
/// </summary>
public sealed class Experiment
{
    private readonly MLContext _ml;
    private readonly ExperimentOptions _o;
    private readonly List<ExperimentCandidate> _candidates = new();
    private IEstimator<ITransformer>? _featurizer;

    /// <summary>Create an experiment; the options are validated here.</summary>
    public Experiment(MLContext mlContext, ExperimentOptions options)
    {
        _ml = mlContext ?? throw new ArgumentNullException(nameof(mlContext));
        _o = options ?? throw new ArgumentNullException(nameof(options));
        _o.Validate();
    }

    /// <summary>The featurization every candidate trains after (fitted once, on the training part of the split).</summary>
    public Experiment SetFeaturizer(IEstimator<ITransformer> featurizer)
    {
        _featurizer = featurizer ?? throw new ArgumentNullException(nameof(featurizer));
        return this;
    }

    /// <summary>Adds a candidate; names must be unique.</summary>
    public Experiment AddCandidate(ExperimentCandidate candidate)
    {
        if (candidate is null) throw new ArgumentNullException(nameof(candidate));
        if (_candidates.Any(c => c.Name == candidate.Name)) throw new ArgumentException($"There is already a candidate named '{candidate.Name}'.", nameof(candidate));
        _candidates.Add(candidate);
        return this;
    }

    /// <summary>
    /// Runs the experiment on <paramref name="data"/> (split by <see cref="ExperimentOptions.ValidationFraction"/> with the
    /// seed) until the trial count, the total time or <paramref name="cancellationToken"/> ends it; the running trial is
    /// cancelled, not abandoned. Returns the leaderboard and the best model.
    /// </summary>
    public ExperimentResult Run(IDataView data, CancellationToken cancellationToken = default)
    {
        if (data is null) throw new ArgumentNullException(nameof(data));
        if (_o.Task == ExperimentTask.Forecasting)
            throw new InvalidOperationException("A Forecasting experiment runs on windows cut from the series: call Run(ForecastWindows) (ForecastWindows.Create with a validation part).");
        if (_candidates.Count == 0) throw new InvalidOperationException("Add at least one candidate (AddCandidate) before Run.");
        return RunCore(() => Splits(data), Evaluate, data.Schema, () => DataFingerprint.Of(data, cancellationToken), cancellationToken);
    }

    /// <summary>
    /// Runs a <see cref="ExperimentTask.Forecasting"/> experiment: every forecaster trains on
    /// <see cref="ForecastWindows.Train"/> and is ranked on <see cref="ForecastWindows.Validation"/> by
    /// <see cref="ForecastWindows.Evaluate"/> (series units; MASE by default), split by time, never shuffled. The test
    /// part stays untouched for the final evaluation. No featurizer applies (the windows are the features).
    /// </summary>
    /// <exception cref="InvalidOperationException">The task is not Forecasting, or the windows have no validation part.</exception>
    public ExperimentResult Run(ForecastWindows windows, CancellationToken cancellationToken = default)
    {
        if (windows is null) throw new ArgumentNullException(nameof(windows));
        if (_o.Task != ExperimentTask.Forecasting)
            throw new InvalidOperationException($"Run(ForecastWindows) is for Task = Forecasting; this experiment's Task is {_o.Task}.");
        if (windows.Validation is null)
            throw new InvalidOperationException("The windows have no validation part to rank forecasters on: set ForecastWindowOptions.ValidationCount or ValidationFraction.");
        if (_o.Folds != 0) throw new ArgumentOutOfRangeException(nameof(ExperimentOptions.Folds), _o.Folds, "A Forecasting experiment validates on the windows' validation part (split by time); Folds must be 0.");
        if (_featurizer is not null) throw new InvalidOperationException("A Forecasting experiment takes no featurizer: the windows are the features.");
        if (_candidates.Count == 0) throw new InvalidOperationException("Add at least one candidate (AddCandidate) before Run.");
        return RunCore(() => new List<Split> { new(new TransformerChain<ITransformer>(), windows.Train, windows.Validation) },
            scored => ForecastMetricsOf(windows.Evaluate(scored)), windows.Train.Schema,
            () => $"train {DataFingerprint.Of(windows.Train, cancellationToken)}; validation {DataFingerprint.Of(windows.Validation, cancellationToken)}", cancellationToken);
    }

    private static Dictionary<string, double> ForecastMetricsOf(ForecastMetrics m) => new()
    {
        [nameof(ExperimentMetric.MeanAbsoluteScaledError)] = m.MeanAbsoluteScaledError,
        [nameof(ExperimentMetric.SymmetricMeanAbsolutePercentageError)] = m.SymmetricMeanAbsolutePercentageError,
        [nameof(ExperimentMetric.MeanAbsoluteError)] = m.MeanAbsoluteError,
        [nameof(ExperimentMetric.RootMeanSquaredError)] = m.RootMeanSquaredError,
    };

    private ExperimentResult RunCore(Func<List<Split>> makeSplits, Func<IDataView, Dictionary<string, double>> evaluate, DataViewSchema inputSchema,
        Func<string> dataFingerprint, CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        using var budget = _o.TotalTime is { } b ? new CancellationTokenSource(b, _o.TimeProvider) : new CancellationTokenSource();
        using var total = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, budget.Token);

        var splits = makeSplits();
        var featurizer = splits[0].Featurizer;

        var metric = _o.ResolvedMetric;
        bool higher = ExperimentOptions.HigherIsBetter(metric);
        var searchers = _candidates.Select((c, i) => Searcher.Create(_o.Search, c.SearchSpace, _o.Seed * 7919 + i)).ToArray();
        var tried = new int[_candidates.Count];
        var best = new double?[_candidates.Count];
        var pick = new Random(_o.Seed);
        var halving = new SuccessiveHalving(_o.PruningMinimumEpochs, _o.PruningFactor);
        var results = new List<TrialResult>();
        ITransformer? bestModel = null;
        double? bestScore = null;
        // The directory's description includes the data (row count and a hash of its first rows): a directory reused for
        // other data is refused instead of replaying trials measured on the first data.
        var store = _o.Directory is null ? null : new ExperimentStore(_o.Directory, Describe() + "\ndata=" + dataFingerprint());
        var history = store?.Trials ?? new List<TrialRecord>();
        bool bestFromHistory = false;

        using var ch = ((IHostEnvironment)_ml).Register(nameof(Experiment)).Start("Experiment");
        for (int n = 1; n <= _o.MaximumTrials && !total.IsCancellationRequested; n++)
        {
            int c = ChooseCandidate(tried, best, pick);
            if (c < 0) break; // every candidate is a fixed one that has run
            var point = searchers[c].Propose();
            var values = _candidates[c].SearchSpace.Decode(point);
            TrialResult result;
            ITransformer? model = null;
            if (n <= history.Count)
            {
                // Resume: the same choice and point as recorded (checked), the recorded outcome instead of training.
                var record = history[n - 1];
                if (record.Trainer != _candidates[c].Name || !record.Point.SequenceEqual(point))
                    throw new InvalidDataException($"Trial {n} in '{store!.TrialsPath}' ({record.Trainer}) is not what this experiment proposes now ({_candidates[c].Name}); use another Directory.");
                foreach (var (epoch, value) in record.Rungs) halving.ShouldStop(epoch, value);
                result = record.ToResult(values);
            }
            else
            {
                var rungs = new List<(int, double)>();
                (result, model) = RunTrial(n, _candidates[c], values, splits, evaluate, metric, halving, rungs, total.Token);
                store?.Append(TrialRecord.From(result, point, rungs));
            }
            tried[c]++;
            double? score = result.Status == TrialStatus.Finished ? (higher ? result.Metric : -result.Metric) : null;
            searchers[c].Report(point, score);
            if (score is double s && (best[c] is null || s > best[c])) best[c] = s;
            if (score is double s2 && (bestScore is null || s2 > bestScore))
            {
                bestScore = s2;
                bestFromHistory = model is null;
                bestModel = model is null ? null : featurizer.Append(model);
                if (bestModel is not null && store is not null) store.SaveBestModel(_ml, bestModel, inputSchema);
            }
            results.Add(result);
            ch.Info(FormattableString.Invariant($"MLNetDeep experiment: trial {n} {result.Trainer} {result.Status} {metric} {result.Metric:F4} ({result.TrainingSeconds:F1} s) {result.ParametersText}{(result.Message is null ? "" : " — " + result.Message)}"));
            _o.TrialCallback?.Invoke(result);
        }
        if (bestFromHistory && store is not null) bestModel = store.LoadBestModel(_ml);
        return new ExperimentResult(metric, results, bestModel, watch.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// Trains a finished trial's configuration again on <paramref name="data"/> — typically all the training data, the
    /// validation part included, as Model Builder does before it writes the model: the featurizer refitted, the
    /// trial's trainer with its searched values, a deep trainer for exactly the epochs the trial ran (there is no
    /// validation part left to stop on). Returns featurizer + trained trainer.
    /// </summary>
    /// <exception cref="ArgumentException">The trial did not finish, or is not one of this experiment's candidates.</exception>
    public ITransformer Refit(TrialResult trial, IDataView data, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(trial);
        ArgumentNullException.ThrowIfNull(data);
        if (trial.Status != TrialStatus.Finished) throw new ArgumentException($"Trial {trial.Number} is {trial.Status}; only a finished trial can be refitted.", nameof(trial));
        var candidate = _candidates.FirstOrDefault(c => c.Name == trial.Trainer)
            ?? throw new ArgumentException($"Trial {trial.Number}'s trainer '{trial.Trainer}' is not a candidate of this experiment.", nameof(trial));
        var featurizer = (_featurizer ?? new EmptyEstimator()).Fit(data);
        var featurized = _ml.Data.Cache(featurizer.Transform(data));
        var ml = new MLContext(seed: _o.Seed + trial.Number);
        using var stop = cancellationToken.Register(() => ml.CancelExecution());
        var hooks = new TrialHooks { Validation = null, Token = cancellationToken, OnEpoch = _ => { }, Epochs = trial.Epochs };
        var model = candidate.Build(ml, trial.Parameters, hooks).Fit(featurized);
        return featurizer.Append(model);
    }

    /// <summary>What the experiment is, for the directory's check on resume: everything that changes the trials.</summary>
    private string Describe() => string.Join("\n", new[]
    {
        $"task={_o.Task}", $"metric={_o.ResolvedMetric}", $"seed={_o.Seed}", $"search={_o.Search}",
        FormattableString.Invariant($"validationFraction={_o.ValidationFraction}"), $"pruning={_o.Pruning},{_o.PruningMinimumEpochs},{_o.PruningFactor}",
        $"label={_o.LabelColumnName}", $"featurizer={_featurizer?.GetType().Name ?? "none"}", $"folds={_o.Folds}",
    }.Concat(_candidates.Select(c => $"candidate={c.Name}: {c.SearchSpace.ToString().Replace(Environment.NewLine, "; ")}")));

    /// <summary>
    /// Every candidate once, in order; then the best so far half of the time, otherwise one drawn uniformly. A candidate
    /// with nothing to search runs once. -1 when nothing is left to try.
    /// </summary>
    private int ChooseCandidate(int[] tried, double?[] best, Random pick)
    {
        int untried = Array.IndexOf(tried, 0);
        if (untried >= 0) return untried;
        var open = Enumerable.Range(0, _candidates.Count).Where(i => _candidates[i].SearchSpace.Count > 0).ToList();
        if (open.Count == 0) return -1;
        double draw = pick.NextDouble();
        int uniform = open[pick.Next(open.Count)];
        var scored = open.Where(i => best[i] is not null).ToList();
        if (draw < 0.5 && scored.Count > 0) return scored.OrderByDescending(i => best[i]).ThenBy(i => i).First();
        return uniform;
    }

    /// <summary>One featurized train / validation pair: the featurizer fitted on its training part, both parts cached.</summary>
    private sealed record Split(ITransformer Featurizer, IDataView Train, IDataView Validation);

    /// <summary>The holdout split, or the k stratified folds of cross-validation.</summary>
    private List<Split> Splits(IDataView data)
    {
        var estimator = _featurizer ?? new EmptyEstimator();
        Split Make(IDataView train, IDataView validation)
        {
            var f = estimator.Fit(train);
            var t = _ml.Data.Cache(f.Transform(train));
            if (t.Schema.GetColumnOrNull(_o.LabelColumnName) is null)
                throw new ArgumentOutOfRangeException(nameof(ExperimentOptions.LabelColumnName), $"The featurized data has no label column '{_o.LabelColumnName}'.");
            return new Split(f, t, _ml.Data.Cache(f.Transform(validation)));
        }
        if (_o.Folds == 0)
        {
            var split = _ml.Data.TrainTestSplit(data, _o.ValidationFraction, seed: _o.Seed);
            return new List<Split> { Make(split.TrainSet, split.TestSet) };
        }
        var folds = FoldAssignment(data);
        var result = new List<Split>();
        for (int k = 0; k < _o.Folds; k++)
        {
            var marked = new FoldColumnView(data, folds, k);
            var validation = _ml.Transforms.DropColumns(FoldColumnView.ColumnName).Fit(marked).Transform(_ml.Data.FilterRowsByColumn(marked, FoldColumnView.ColumnName, 0.5, 2));
            var train = _ml.Transforms.DropColumns(FoldColumnView.ColumnName).Fit(marked).Transform(_ml.Data.FilterRowsByColumn(marked, FoldColumnView.ColumnName, -1, 0.5));
            result.Add(Make(train, validation));
        }
        return result;
    }

    /// <summary>
    /// Each row's fold: rows are shuffled (seeded) and dealt out in turn, within each class for classification (the
    /// label read through the featurizer fitted on all rows, only to know each row's class).
    /// </summary>
    internal int[] FoldAssignment(IDataView data)
    {
        var classes = new List<string>();
        if (_o.Task != ExperimentTask.Regression)
        {
            var labelled = (_featurizer ?? new EmptyEstimator()).Fit(data).Transform(data);
            var col = labelled.Schema.GetColumnOrNull(_o.LabelColumnName)
                ?? throw new ArgumentOutOfRangeException(nameof(ExperimentOptions.LabelColumnName), $"The featurized data has no label column '{_o.LabelColumnName}'.");
            using var cursor = labelled.GetRowCursor(new[] { col });
            var getter = RowCursorUtils.GetGetterAsStringBuilder(cursor, col.Index);
            var text = new StringBuilder();
            while (cursor.MoveNext())
            {
                getter(ref text);
                classes.Add(text.ToString());
            }
        }
        else
        {
            using var cursor = data.GetRowCursor(Array.Empty<DataViewSchema.Column>());
            while (cursor.MoveNext()) classes.Add("");
        }
        if (classes.Count < _o.Folds) throw new ArgumentOutOfRangeException(nameof(ExperimentOptions.Folds), _o.Folds, $"Folds is {_o.Folds}, but the data has {classes.Count} rows.");
        var random = new Random(_o.Seed);
        var folds = new int[classes.Count];
        int next = 0;
        foreach (var group in Enumerable.Range(0, classes.Count).GroupBy(i => classes[i]).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var rows = group.ToArray();
            random.Shuffle(rows);
            foreach (int row in rows) folds[row] = next++ % _o.Folds; // dealt in turn, continuing across classes
        }
        return folds;
    }

    private (TrialResult Result, ITransformer? Model) RunTrial(int number, ExperimentCandidate candidate, IReadOnlyDictionary<string, object> values,
        List<Split> splits, Func<IDataView, Dictionary<string, double>> evaluate, ExperimentMetric metric, SuccessiveHalving halving, List<(int Epoch, double Value)> rungs, CancellationToken total)
    {
        using var timer = _o.TrialTime is { } t ? new CancellationTokenSource(t, _o.TimeProvider) : new CancellationTokenSource();
        using var trial = CancellationTokenSource.CreateLinkedTokenSource(total, timer.Token);
        int epochs = 0;
        bool pruned = false;
        PeakMemory.Reset();
        var watch = Stopwatch.StartNew();
        try
        {
            ITransformer? firstModel = null;
            var foldMetrics = new List<Dictionary<string, double>>();
            double trainSeconds = 0, scoreMilliseconds = 0;
            long scoredRows = 0;
            int? deepEpochs = null;
            long? parameters = null;
            for (int f = 0; f < splits.Count; f++)
            {
                var (_, train, validation) = splits[f];
                var trialMl = new MLContext(seed: _o.Seed + number);
                using var stopMl = trial.Token.Register(() => trialMl.CancelExecution());
                bool first = f == 0;
                var hooks = new TrialHooks
                {
                    Validation = validation,
                    Token = trial.Token,
                    OnEpoch = e =>
                    {
                        if (!first) return;
                        epochs = e.Epoch;
                        if (_o.Pruning && e.ValidationMetric is double v && halving.IsRung(e.Epoch)) rungs.Add((e.Epoch, v));
                        if (_o.Pruning && e.ValidationMetric is double w && halving.ShouldStop(e.Epoch, w))
                        {
                            pruned = true;
                            trial.Cancel();
                        }
                    },
                };
                var fit = Stopwatch.StartNew();
                var model = candidate.Build(trialMl, values, hooks).Fit(train);
                trainSeconds += fit.Elapsed.TotalSeconds;
                var scoreWatch = Stopwatch.StartNew();
                var scored = _ml.Data.Cache(model.Transform(validation));
                using (var cursor = scored.GetRowCursor(scored.Schema)) while (cursor.MoveNext()) scoredRows++;
                scoreMilliseconds += scoreWatch.Elapsed.TotalMilliseconds;
                foldMetrics.Add(evaluate(scored));
                if (first)
                {
                    firstModel = model;
                    var deep = DeepModelParameters.Find(model);
                    deepEpochs = deep?.History.Count;
                    parameters = deep?.ParameterCount;
                }
            }
            var metrics = foldMetrics[0].Keys.ToDictionary(k => k, k => foldMetrics.Average(m => m[k]));
            var values0 = foldMetrics.Select(m => m[metric.ToString()]).ToArray();
            double mean = values0.Average();
            double sd = values0.Length > 1 ? Math.Sqrt(values0.Sum(v => (v - mean) * (v - mean)) / (values0.Length - 1)) : 0;
            return (new TrialResult
            {
                Number = number, Trainer = candidate.Name, Parameters = values, Status = TrialStatus.Finished,
                Metric = mean, MetricStandardDeviation = sd, Metrics = metrics, TrainingSeconds = trainSeconds,
                PredictionMillisecondsPerRow = scoreMilliseconds / Math.Max(1, scoredRows),
                PeakMemoryMegabytes = PeakMemory.Megabytes(), ParameterCount = parameters, Epochs = deepEpochs,
            }, firstModel);
        }
        catch (Exception e) when (trial.IsCancellationRequested && IsCancellation(e))
        {
            string why = pruned ? $"pruned after epoch {epochs} (successive halving)"
                : total.IsCancellationRequested ? "the experiment's time budget or cancellation stopped it"
                : "its time budget (TrialTime) stopped it";
            return (Unfinished(number, candidate, values, pruned ? TrialStatus.Pruned : TrialStatus.Stopped, watch, epochs, why), null);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            var inner = e is System.Reflection.TargetInvocationException { InnerException: { } ie } ? ie : e;
            return (Unfinished(number, candidate, values, TrialStatus.Failed, watch, candidate.IsDeep ? epochs : null, $"{inner.GetType().Name}: {inner.Message}"), null);
        }
    }

    /// <summary>
    /// A cancellation, also as ML.NET's multi-threaded trainers report it (FastTree: an AggregateException of one
    /// OperationCanceledException per thread) or wrapped by reflection.
    /// </summary>
    private static bool IsCancellation(Exception? e) => e switch
    {
        OperationCanceledException => true,
        AggregateException a => a.Flatten().InnerExceptions.Count > 0 && a.Flatten().InnerExceptions.All(IsCancellation),
        System.Reflection.TargetInvocationException { InnerException: var inner } => IsCancellation(inner),
        _ => false,
    };

    private static TrialResult Unfinished(int number, ExperimentCandidate candidate, IReadOnlyDictionary<string, object> values, TrialStatus status, Stopwatch watch, int? epochs, string message) => new()
    {
        Number = number, Trainer = candidate.Name, Parameters = values, Status = status, TrainingSeconds = watch.Elapsed.TotalSeconds,
        PeakMemoryMegabytes = PeakMemory.Megabytes(), Epochs = candidate.IsDeep ? epochs : null, Message = message,
    };

    private Dictionary<string, double> Evaluate(IDataView scored) => Evaluate(_ml, _o.Task, scored, _o.LabelColumnName);

    /// <summary>
    /// Every metric an experiment reports for <paramref name="task"/>, by <see cref="ExperimentMetric"/> name, from
    /// ML.NET's evaluators (e.g. to evaluate a refitted model on held-out data the way the leaderboard does). Not for
    /// forecasting (use <see cref="ForecastWindows.Evaluate"/>).
    /// </summary>
    public static Dictionary<string, double> Evaluate(MLContext mlContext, ExperimentTask task, IDataView scored, string labelColumnName = "Label")
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentNullException.ThrowIfNull(scored);
        string label = labelColumnName;
        switch (task)
        {
            case ExperimentTask.BinaryClassification:
            {
                var hasProbability = scored.Schema.GetColumnOrNull("Probability") is not null;
                var m = hasProbability ? mlContext.BinaryClassification.Evaluate(scored, label) : mlContext.BinaryClassification.EvaluateNonCalibrated(scored, label);
                var d = new Dictionary<string, double>
                {
                    [nameof(ExperimentMetric.Accuracy)] = m.Accuracy, [nameof(ExperimentMetric.AreaUnderRocCurve)] = m.AreaUnderRocCurve,
                    [nameof(ExperimentMetric.F1Score)] = m.F1Score,
                };
                d[nameof(ExperimentMetric.LogLoss)] = m is CalibratedBinaryClassificationMetrics c ? c.LogLoss : double.NaN;
                return d;
            }
            case ExperimentTask.MulticlassClassification:
            {
                var m = mlContext.MulticlassClassification.Evaluate(scored, label);
                return new Dictionary<string, double>
                {
                    [nameof(ExperimentMetric.MicroAccuracy)] = m.MicroAccuracy, [nameof(ExperimentMetric.MacroAccuracy)] = m.MacroAccuracy,
                    [nameof(ExperimentMetric.LogLoss)] = m.LogLoss,
                };
            }
            case ExperimentTask.Forecasting:
                throw new ArgumentOutOfRangeException(nameof(task), task, "Forecasts are evaluated by ForecastWindows.Evaluate (series units, MASE).");
            default:
            {
                var m = mlContext.Regression.Evaluate(scored, label);
                return new Dictionary<string, double>
                {
                    [nameof(ExperimentMetric.RSquared)] = m.RSquared, [nameof(ExperimentMetric.MeanAbsoluteError)] = m.MeanAbsoluteError,
                    [nameof(ExperimentMetric.RootMeanSquaredError)] = m.RootMeanSquaredError,
                };
            }
        }
    }

    /// <summary>An estimator that changes nothing (no featurizer given).</summary>
    private sealed class EmptyEstimator : IEstimator<ITransformer>
    {
        public ITransformer Fit(IDataView input) => new TransformerChain<ITransformer>();
        public SchemaShape GetOutputSchema(SchemaShape inputSchema) => inputSchema;
    }
}

/// <summary>The process's peak resident memory since the last reset (Linux: VmHWM after writing 5 to clear_refs).</summary>
internal static class PeakMemory
{
    private static bool _canReset = OperatingSystem.IsLinux();

    public static void Reset()
    {
        if (!_canReset) return;
        try { File.WriteAllText("/proc/self/clear_refs", "5"); }
        catch (Exception) { _canReset = false; }
    }

    public static double Megabytes()
    {
        if (OperatingSystem.IsLinux())
        {
            try
            {
                foreach (var line in File.ReadLines("/proc/self/status"))
                    if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                        return long.Parse(line.AsSpan(6).Trim().ToString().Split(' ')[0], CultureInfo.InvariantCulture) / 1024.0;
            }
            catch (IOException) { }
        }
        return Process.GetCurrentProcess().PeakWorkingSet64 / 1048576.0;
    }
}

/// <summary>One finished trial as kept in <c>trials.jsonl</c>.</summary>
internal sealed class TrialRecord
{
    public int Number { get; set; }
    public string Trainer { get; set; } = "";
    public double[] Point { get; set; } = Array.Empty<double>();
    public TrialStatus Status { get; set; }
    public double? Metric { get; set; }
    public double MetricStandardDeviation { get; set; }
    public Dictionary<string, double?> Metrics { get; set; } = new();
    public double TrainingSeconds { get; set; }
    public double? PredictionMillisecondsPerRow { get; set; }
    public double? PeakMemoryMegabytes { get; set; }
    public long? ParameterCount { get; set; }
    public int? Epochs { get; set; }
    public string? Message { get; set; }
    public List<double[]> RungScores { get; set; } = new();

    public IEnumerable<(int Epoch, double Value)> Rungs => RungScores.Select(r => ((int)r[0], r[1]));

    private static double? Finite(double v) => double.IsFinite(v) ? v : null;

    public static TrialRecord From(TrialResult r, double[] point, List<(int Epoch, double Value)> rungs) => new()
    {
        Number = r.Number, Trainer = r.Trainer, Point = point, Status = r.Status, Metric = Finite(r.Metric), MetricStandardDeviation = r.MetricStandardDeviation,
        Metrics = r.Metrics.ToDictionary(m => m.Key, m => Finite(m.Value)), TrainingSeconds = r.TrainingSeconds,
        PredictionMillisecondsPerRow = Finite(r.PredictionMillisecondsPerRow), PeakMemoryMegabytes = Finite(r.PeakMemoryMegabytes),
        ParameterCount = r.ParameterCount, Epochs = r.Epochs, Message = r.Message, RungScores = rungs.Select(x => new[] { x.Epoch, x.Value }).ToList(),
    };

    public TrialResult ToResult(IReadOnlyDictionary<string, object> values) => new()
    {
        Number = Number, Trainer = Trainer, Parameters = values, Status = Status, Metric = Metric ?? double.NaN, MetricStandardDeviation = MetricStandardDeviation,
        Metrics = Metrics.ToDictionary(m => m.Key, m => m.Value ?? double.NaN), TrainingSeconds = TrainingSeconds,
        PredictionMillisecondsPerRow = PredictionMillisecondsPerRow ?? double.NaN, PeakMemoryMegabytes = PeakMemoryMegabytes ?? double.NaN,
        ParameterCount = ParameterCount, Epochs = Epochs, Message = Message,
    };
}

/// <summary>The experiment directory: its description, the trial history (appended and flushed per trial) and the best model.</summary>
internal sealed class ExperimentStore
{
    private const string DescriptionFile = "experiment.json", TrialsFile = "trials.jsonl", BestModelFile = "best-model.zip";
    private readonly string _directory;

    public ExperimentStore(string directory, string description)
    {
        _directory = directory;
        try { System.IO.Directory.CreateDirectory(directory); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"Directory '{directory}' cannot be created: {e.Message}", nameof(ExperimentOptions.Directory), e);
        }
        string descriptionPath = Path.Combine(directory, DescriptionFile);
        if (File.Exists(descriptionPath))
        {
            var saved = JsonSerializer.Deserialize<string[]>(File.ReadAllText(descriptionPath)) ?? Array.Empty<string>();
            var now = description.Split('\n');
            var differences = saved.Except(now).Select(l => "was " + l).Concat(now.Except(saved).Select(l => "now " + l)).ToList();
            if (differences.Count > 0)
                throw new ArgumentException($"Directory '{directory}' holds another experiment ({string.Join("; ", differences)}). Use another Directory or delete it.", nameof(ExperimentOptions.Directory));
        }
        else File.WriteAllText(descriptionPath, JsonSerializer.Serialize(description.Split('\n'), new JsonSerializerOptions { WriteIndented = true }));
        if (File.Exists(TrialsPath))
            foreach (var line in File.ReadAllLines(TrialsPath))
            {
                // A crash while writing leaves at most a torn last line: it and anything after it are ignored.
                try { Trials.Add(JsonSerializer.Deserialize<TrialRecord>(line)!); }
                catch (JsonException) { break; }
            }
    }

    public List<TrialRecord> Trials { get; } = new();

    public string TrialsPath => Path.Combine(_directory, TrialsFile);

    public void Append(TrialRecord record)
    {
        using var f = new FileStream(TrialsPath, FileMode.Append, FileAccess.Write, FileShare.Read);
        var bytes = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(record) + "\n");
        f.Write(bytes);
        f.Flush(flushToDisk: true);
    }

    public void SaveBestModel(MLContext ml, ITransformer model, DataViewSchema schema)
    {
        string path = Path.Combine(_directory, BestModelFile), temporary = path + ".tmp";
        ml.Model.Save(model, schema, temporary);
        File.Move(temporary, path, overwrite: true);
    }

    public ITransformer? LoadBestModel(MLContext ml)
    {
        string path = Path.Combine(_directory, BestModelFile);
        return File.Exists(path) ? ml.Model.LoadChecked(path, out _) : null;
    }
}

/// <summary>The source rows plus a column that is 1 for the rows of one fold and 0 for the others (by row position).</summary>
internal sealed class FoldColumnView : IDataView
{
    public const string ColumnName = "MLNetDeep.Fold";
    private readonly IDataView _source;
    private readonly int[] _folds;
    private readonly int _fold;

    public FoldColumnView(IDataView source, int[] folds, int fold)
    {
        _source = source;
        _folds = folds;
        _fold = fold;
        var b = new DataViewSchema.Builder();
        b.AddColumns(source.Schema);
        b.AddColumn(ColumnName, NumberDataViewType.Single);
        Schema = b.ToSchema();
    }

    public bool CanShuffle => false;
    public DataViewSchema Schema { get; }
    public long? GetRowCount() => _folds.Length;

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var needed = columnsNeeded.Where(c => c.Index < _source.Schema.Count).Select(c => _source.Schema[c.Index]).ToList();
        return new Cursor(this, _source.GetRowCursor(needed));
    }

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        new[] { GetRowCursor(columnsNeeded, rand) };

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly FoldColumnView _parent;
        private readonly DataViewRowCursor _input;

        public Cursor(FoldColumnView parent, DataViewRowCursor input)
        {
            _parent = parent;
            _input = input;
        }

        public override DataViewSchema Schema => _parent.Schema;
        public override long Position => _input.Position;
        public override long Batch => _input.Batch;
        public override ValueGetter<DataViewRowId> GetIdGetter() => _input.GetIdGetter();
        public override bool MoveNext() => _input.MoveNext();
        public override bool IsColumnActive(DataViewSchema.Column column) => column.Index == _parent._source.Schema.Count || _input.IsColumnActive(_input.Schema[column.Index]);

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (column.Index < _parent._source.Schema.Count) return _input.GetGetter<TValue>(_input.Schema[column.Index]);
            ValueGetter<float> getter = (ref float v) =>
            {
                long row = _input.Position;
                if (row < 0 || row >= _parent._folds.Length)
                    throw new InvalidOperationException($"The data has more rows than the {_parent._folds.Length} counted when the folds were made.");
                v = _parent._folds[row] == _parent._fold ? 1f : 0f;
            };
            return (ValueGetter<TValue>)(Delegate)getter;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) _input.Dispose();
            base.Dispose(disposing);
        }
    }
}
