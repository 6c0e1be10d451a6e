using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.SearchSpace;
using Microsoft.ML.Trainers;
using MLNetDeep.TestData;
using Xunit;
using Xunit.Abstractions;

namespace MLNetDeep.Tests;

/// <summary>Experiments on real data (bike-hour): determinism, failures, cancellation, pruning, leaderboard files.</summary>
public sealed class ExperimentTests
{
    private readonly ITestOutputHelper _out;

    public ExperimentTests(ITestOutputHelper output) => _out = output;

    private static ExperimentCandidate Mlp(int epochs, Action<EpochMetrics>? callback = null) => ExperimentCandidate.Create("MLNetDeep MLP",
        () => new MlpRegressionTrainer.Options { HiddenLayers = new[] { 32 }, NumberOfEpochs = epochs, EpochCallback = callback },
        (ml, o) => ml.Regression.Trainers.Mlp(o));

    private static ExperimentCandidate Sdca() => ExperimentCandidate.Create("SdcaRegression",
        () => new SdcaRegressionTrainer.Options { MaximumNumberOfIterations = 20 },
        (ml, o) => ml.Regression.Trainers.Sdca(o),
        new SearchSpace().Add(SearchParameter.Range(nameof(SdcaRegressionTrainer.Options.L2Regularization), 1e-6, 1, 1e-3, logScale: true)));

    private static Experiment Bike(MLContext ml, ExperimentOptions o, params ExperimentCandidate[] candidates)
    {
        var e = new Experiment(ml, o).SetFeaturizer(Pipelines.BikeFeatures(ml));
        foreach (var c in candidates) e.AddCandidate(c);
        return e;
    }

    [Fact]
    public void FixedTrialCountAndSeed_GiveTheSameTrialsAndRanking_Twice_AndTheLeaderboardIsSaved()
    {
        ExperimentResult Run() => Bike(new MLContext(seed: 1), new ExperimentOptions { Task = ExperimentTask.Regression, MaximumTrials = 6, Seed = 3 }, Mlp(10), Sdca())
            .Run(TestUtil.BikeTrainSubset(new MLContext(seed: 1), 3000));
        var a = Run();
        _out.WriteLine(a.ToTable());
        var b = Run();
        string Key(TrialResult t) => $"{t.Number} {t.Trainer} {t.Status} {t.ParametersText} {t.Metric:R}";
        Assert.Equal(a.Leaderboard.Select(Key), b.Leaderboard.Select(Key));
        Assert.Equal(6, a.Trials.Count);
        Assert.Contains(a.Trials, t => t.Trainer == "MLNetDeep MLP" && t.ParameterCount > 0);
        Assert.Contains(a.Trials, t => t.Trainer == "SdcaRegression" && t.ParameterCount is null);
        Assert.NotNull(a.BestModel);
        Assert.True(a.BestTrial!.Metric > 0.3, $"best R² {a.BestTrial.Metric:F3}");
        // The best model is the featurizer + the best trial's trained trainer: on the raw rows of the same validation
        // split (the split is seeded) it gives the leaderboard's figure.
        var ml = new MLContext(seed: 1);
        var split = ml.Data.TrainTestSplit(TestUtil.BikeTrainSubset(ml, 3000), 0.2, seed: 3);
        var r2 = ml.Regression.Evaluate(a.BestModel!.Transform(split.TestSet)).RSquared;
        Assert.Equal(a.BestTrial.Metric, r2, 12);

        string dir = TestUtil.TempDir();
        a.SaveCsv(Path.Combine(dir, "leaderboard.csv"));
        a.SaveMarkdown(Path.Combine(dir, "leaderboard.md"));
        var csv = File.ReadAllLines(Path.Combine(dir, "leaderboard.csv"));
        Assert.Equal(7, csv.Length);
        Assert.StartsWith("rank,trial,trainer,status,RSquared", csv[0]);
        Assert.Contains("| 1 |", File.ReadAllText(Path.Combine(dir, "leaderboard.md")));
        string png = Path.Combine(dir, "leaderboard.png");
        DeepPlots.SaveLeaderboard(a, png);
        using var image = SkiaSharp.SKBitmap.Decode(png);
        Assert.Equal(1000, image.Width);
    }

    [Fact]
    public void AFailingCandidate_IsListedAsFailed_AndTheExperimentGoesOn()
    {
        var ml = new MLContext(seed: 1);
        var broken = ExperimentCandidate.Fixed("broken MLP", m => m.Regression.Trainers.Mlp(new MlpRegressionTrainer.Options { LabelColumnName = "NoSuchColumn", NumberOfEpochs = 1 }));
        var result = Bike(ml, new ExperimentOptions { Task = ExperimentTask.Regression, MaximumTrials = 3 }, broken, Sdca()).Run(TestUtil.BikeTrainSubset(ml, 1000));
        var failed = Assert.Single(result.Trials, t => t.Status == TrialStatus.Failed);
        Assert.Equal("broken MLP", failed.Trainer);
        Assert.Contains("NoSuchColumn", failed.Message);
        Assert.Equal(2, result.Trials.Count(t => t.Status == TrialStatus.Finished));
        Assert.Equal("SdcaRegression", result.BestTrial!.Trainer);
    }

    [Fact]
    public void Cancellation_StopsTheRunningTrialPromptly_AndEndsTheExperiment()
    {
        // Cancelled from inside the second trial's third epoch (a hook, not a clock): that trial stops there, no other starts.
        var ml = new MLContext(seed: 1);
        using var cts = new CancellationTokenSource();
        int trials = 0;
        var o = new ExperimentOptions { Task = ExperimentTask.Regression, MaximumTrials = 5, Pruning = false, TrialCallback = _ => trials++ };
        var result = Bike(ml, o, Mlp(50, e => { if (trials == 1 && e.Epoch == 3) cts.Cancel(); })).Run(TestUtil.BikeTrainSubset(ml, 1000), cts.Token);
        Assert.Equal(2, result.Trials.Count);
        Assert.Equal(TrialStatus.Finished, result.Trials[0].Status);
        var stopped = result.Trials[1];
        Assert.Equal(TrialStatus.Stopped, stopped.Status);
        Assert.Equal(3, stopped.Epochs);
        Assert.Contains("cancellation", stopped.Message);
    }

    [Fact]
    public void TheTotalBudget_EndsTheExperiment_WithinTheRunningTrialsNextEpoch()
    {
        // The budget's clock is one the test moves: during the second trial's third epoch it passes the 10 minutes.
        var clock = new ManualClock();
        int trials = 0;
        var o = new ExperimentOptions
        {
            Task = ExperimentTask.Regression, MaximumTrials = 5, Pruning = false, TotalTime = TimeSpan.FromMinutes(10), TimeProvider = clock,
            TrialCallback = _ => trials++,
        };
        var ml = new MLContext(seed: 1);
        var result = Bike(ml, o, Mlp(50, e =>
        {
            if (e.Epoch == 2) clock.Advance(TimeSpan.FromMinutes(4)); // 4 minutes per trial, counted at its second epoch
            if (trials == 1 && e.Epoch == 3) clock.Advance(TimeSpan.FromMinutes(3)); // 4 + 4 + 3 > 10
        })).Run(TestUtil.BikeTrainSubset(ml, 1000));
        Assert.Equal(2, result.Trials.Count);
        Assert.Equal(TrialStatus.Finished, result.Trials[0].Status);
        Assert.Equal(50, result.Trials[0].Epochs);
        var stopped = result.Trials[1];
        Assert.Equal(TrialStatus.Stopped, stopped.Status);
        Assert.Equal(3, stopped.Epochs);
        Assert.Contains("time budget or cancellation", stopped.Message);
        Assert.NotNull(result.BestModel);
    }

    [Fact]
    public void ACancellationReportedAsAnAggregateException_IsAStoppedTrial_NotAFailedOne()
    {
        // FastTree reports a cancellation from its threads as an AggregateException of OperationCanceledExceptions.
        var ml = new MLContext(seed: 1);
        using var cts = new CancellationTokenSource();
        var o = new ExperimentOptions { Task = ExperimentTask.Regression, MaximumTrials = 3 };
        var result = Bike(ml, o, Sdca(), ExperimentCandidate.Fixed("threaded", _ => new ThrowsOnFit(() =>
        {
            cts.Cancel();
            throw new AggregateException(new OperationCanceledException(), new OperationCanceledException());
        }))).Run(TestUtil.BikeTrainSubset(ml, 500), cts.Token);
        Assert.Equal(2, result.Trials.Count);
        Assert.Equal(TrialStatus.Stopped, result.Trials[1].Status);
        Assert.Contains("cancellation", result.Trials[1].Message);
    }

    private sealed class ThrowsOnFit(Action fit) : IEstimator<ITransformer>
    {
        public ITransformer Fit(IDataView input)
        {
            fit();
            throw new InvalidOperationException("unreachable");
        }

        public SchemaShape GetOutputSchema(SchemaShape inputSchema) => inputSchema;
    }

    [Fact]
    public void TheTrialBudget_StopsEachTrial_AndTheExperimentGoesOn()
    {
        var clock = new ManualClock();
        var o = new ExperimentOptions { Task = ExperimentTask.Regression, MaximumTrials = 3, Pruning = false, TrialTime = TimeSpan.FromMinutes(1), TimeProvider = clock };
        var ml = new MLContext(seed: 1);
        var result = Bike(ml, o, Mlp(50, e => { if (e.Epoch == 2) clock.Advance(TimeSpan.FromSeconds(61)); }), Sdca()).Run(TestUtil.BikeTrainSubset(ml, 1000));
        Assert.Equal(3, result.Trials.Count);
        var deep = result.Trials.Where(t => t.Trainer == "MLNetDeep MLP").ToList();
        Assert.NotEmpty(deep);
        Assert.All(deep, t =>
        {
            Assert.Equal(TrialStatus.Stopped, t.Status);
            Assert.Equal(2, t.Epochs);
            Assert.Contains("TrialTime", t.Message);
        });
        Assert.All(result.Trials.Where(t => t.Trainer == "SdcaRegression"), t => Assert.Equal(TrialStatus.Finished, t.Status));
    }

    /// <summary>A clock that moves only when told: its timers fire inside <see cref="Advance"/>, on the caller's thread.</summary>
    private sealed class ManualClock : TimeProvider
    {
        private readonly object _lock = new();
        private readonly List<Timer> _timers = new();
        private DateTimeOffset _now = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

        public override DateTimeOffset GetUtcNow() { lock (_lock) return _now; }
        public override long TimestampFrequency => TimeSpan.TicksPerSecond;
        public override long GetTimestamp() { lock (_lock) return _now.UtcTicks; }

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            var timer = new Timer(this, callback, state);
            timer.Change(dueTime, period);
            return timer;
        }

        public void Advance(TimeSpan by)
        {
            List<Timer> due;
            lock (_lock)
            {
                _now += by;
                due = _timers.Where(t => t.Due <= _now).ToList();
                foreach (var t in due) t.Due = null; // one-shot (the experiment's budgets have no period)
            }
            foreach (var t in due) t.Fire();
        }

        private sealed class Timer(ManualClock clock, TimerCallback callback, object? state) : ITimer
        {
            public DateTimeOffset? Due;

            public bool Change(TimeSpan dueTime, TimeSpan period)
            {
                lock (clock._lock)
                {
                    Due = dueTime == Timeout.InfiniteTimeSpan ? null : clock._now + dueTime;
                    if (!clock._timers.Contains(this)) clock._timers.Add(this);
                }
                return true;
            }

            public void Fire() => callback(state);

            public void Dispose() { lock (clock._lock) clock._timers.Remove(this); }

            public ValueTask DisposeAsync()
            {
                Dispose();
                return ValueTask.CompletedTask;
            }
        }
    }

    [Fact]
    public void SuccessiveHalving_StopsPoorDeepTrialsEarly()
    {
        var ml = new MLContext(seed: 1);
        var o = new ExperimentOptions { Task = ExperimentTask.Regression, MaximumTrials = 8, Search = SearchStrategy.Random, PruningMinimumEpochs = 1, PruningFactor = 3 };
        var result = Bike(ml, o, Mlp(9)).Run(TestUtil.BikeTrainSubset(ml, 1500));
        _out.WriteLine(result.ToTable());
        var pruned = result.Trials.Where(t => t.Status == TrialStatus.Pruned).ToList();
        Assert.NotEmpty(pruned);
        Assert.All(pruned, t => Assert.True(t.Epochs is 1 or 3, $"pruned at epoch {t.Epochs}, not at a rung"));
        int saved = pruned.Sum(t => 9 - t.Epochs!.Value);
        _out.WriteLine($"{pruned.Count} of {result.Trials.Count} trials pruned; {saved} of {9 * result.Trials.Count} epochs saved");
        Assert.Contains(result.Trials, t => t.Status == TrialStatus.Finished && t.Epochs == 9);

        var bad = Assert.Throws<ArgumentOutOfRangeException>(() => new Experiment(ml, new ExperimentOptions { Task = ExperimentTask.Regression, Metric = ExperimentMetric.F1Score }));
        Assert.Equal(nameof(ExperimentOptions.Metric), bad.ParamName);
        Assert.Throws<ArgumentOutOfRangeException>(() => new Experiment(ml, new ExperimentOptions { PruningFactor = 1 }));
    }

    [Fact]
    public void AnExperimentStoppedByACrash_ResumesFromItsDirectory_ToTheLeaderboardOfAnUninterruptedRun()
    {
        ExperimentOptions Options(string dir, Action<TrialResult>? callback = null) => new()
        {
            Task = ExperimentTask.Regression, MaximumTrials = 7, Seed = 5, Directory = dir, TrialCallback = callback,
        };
        ExperimentResult Run(string dir, Action<TrialResult>? callback = null) =>
            Bike(new MLContext(seed: 1), Options(dir, callback), Mlp(5), Sdca()).Run(TestUtil.BikeTrainSubset(new MLContext(seed: 1), 1500));

        var uninterrupted = Run(TestUtil.TempDir());
        string dir = TestUtil.TempDir();
        // A crash after the third trial was recorded (an exception out of the monitor, deterministic: no clock, no kill).
        Assert.Throws<InvalidOperationException>(() => Run(dir, t => { if (t.Number == 3) throw new InvalidOperationException("simulated crash"); }));
        Assert.Equal(3, File.ReadAllLines(Path.Combine(dir, "trials.jsonl")).Length);
        var resumed = Run(dir);
        string Key(TrialResult t) => $"{t.Number} {t.Trainer} {t.Status} {t.ParametersText} {t.Metric:R} {t.Epochs}";
        Assert.Equal(uninterrupted.Leaderboard.Select(Key), resumed.Leaderboard.Select(Key));
        Assert.Equal(7, File.ReadAllLines(Path.Combine(dir, "trials.jsonl")).Length);
        Assert.NotNull(resumed.BestModel);
        Assert.True(File.Exists(Path.Combine(dir, "best-model.zip")));

        // The same directory with other options is refused, naming what differs.
        var other = Assert.Throws<ArgumentException>(() => Bike(new MLContext(seed: 1), new ExperimentOptions
        {
            Task = ExperimentTask.Regression, MaximumTrials = 7, Seed = 6, Directory = dir,
        }, Mlp(5), Sdca()).Run(TestUtil.BikeTrainSubset(new MLContext(seed: 1), 1500)));
        Assert.Contains("seed=6", other.Message);
    }

    [Fact]
    public void CrossValidation_FoldsAreStratified_AndTrialsReportTheMeanAndSpread()
    {
        var ml = new MLContext(seed: 1);
        var sms = ml.Data.TakeRows(RealData.Sms(ml), 1000);
        var experiment = new Experiment(ml, new ExperimentOptions { Task = ExperimentTask.BinaryClassification, Folds = 4, MaximumTrials = 3, Seed = 2 })
            .SetFeaturizer(Pipelines.SmsFeatures(ml))
            .AddCandidate(ExperimentCandidate.Create("MLNetDeep MLP", () => new MlpBinaryTrainer.Options { HiddenLayers = new[] { 16 }, NumberOfEpochs = 10 },
                (m, o) => m.BinaryClassification.Trainers.Mlp(o)))
            .AddCandidate(ExperimentCandidate.Fixed("SdcaLogisticRegression", m => m.BinaryClassification.Trainers.SdcaLogisticRegression(maximumNumberOfIterations: 20)));

        // Stratified: every fold holds the overall share of spam to within one message.
        var folds = experiment.FoldAssignment(sms);
        var spam = sms.GetColumn<bool>("Label").ToArray();
        double share = spam.Count(x => x) / (double)spam.Length;
        for (int k = 0; k < 4; k++)
        {
            var rows = Enumerable.Range(0, folds.Length).Where(i => folds[i] == k).ToList();
            Assert.InRange(rows.Count, 249, 251);
            Assert.InRange(rows.Count(i => spam[i]), share * rows.Count - 1, share * rows.Count + 1);
        }

        var result = experiment.Run(sms);
        _out.WriteLine(result.ToTable());
        Assert.All(result.Trials, t => Assert.Equal(TrialStatus.Finished, t.Status));
        Assert.All(result.Trials, t => Assert.True(t.MetricStandardDeviation > 0 && t.MetricStandardDeviation < 0.1, $"{t.Trainer}: sd {t.MetricStandardDeviation}"));
        Assert.True(result.BestTrial!.Metric > 1 - share + 0.05, $"best accuracy {result.BestTrial.Metric:F4}; always 'ham' scores {1 - share:F4}");
        Assert.Throws<ArgumentOutOfRangeException>(() => new Experiment(ml, new ExperimentOptions { Folds = 1 }));
    }

    [Fact]
    public void DeepCandidates_OfEveryFamily_RunInAnExperiment()
    {
        var ml = new MLContext(seed: 1);
        var sms = ml.Data.TakeRows(RealData.Sms(ml), 600);
        var text = new Experiment(ml, new ExperimentOptions { Task = ExperimentTask.BinaryClassification, MaximumTrials = 2 })
            .SetFeaturizer(Pipelines.SmsTokens(ml))
            .AddCandidate(DeepCandidates.Rnn(ExperimentTask.BinaryClassification, epochs: 2, cell: RecurrentCell.Gru))
            .AddCandidate(DeepCandidates.Transformer(ExperimentTask.BinaryClassification, epochs: 2))
            .Run(sms);
        _out.WriteLine(text.ToTable());
        Assert.Equal(new[] { "MLNetDeep GRU", "MLNetDeep Transformer" }, text.Trials.Select(t => t.Trainer));
        Assert.All(text.Trials, t => Assert.Equal(TrialStatus.Finished, t.Status));

        var images = new Experiment(ml, new ExperimentOptions { Task = ExperimentTask.MulticlassClassification, MaximumTrials = 2 })
            .AddCandidate(DeepCandidates.Cnn(ExperimentTask.MulticlassClassification, epochs: 1, architecture: CnnArchitecture.LeNet5()))
            .AddCandidate(DeepCandidates.Mlp(ExperimentTask.MulticlassClassification, epochs: 5))
            .Run(FashionMnist.Train(ml, 600));
        _out.WriteLine(images.ToTable());
        Assert.All(images.Trials, t => Assert.Equal(TrialStatus.Finished, t.Status));
        Assert.True(images.BestTrial!.Metric > 0.4, $"best micro-accuracy {images.BestTrial.Metric:F3} (chance 0.1)");
        Assert.Throws<ArgumentOutOfRangeException>(() => DeepCandidates.Cnn(ExperimentTask.Regression));
    }

    [Fact]
    public void AForecastingExperiment_RanksForecastersByMaseOnTheValidationPart_SplitByTime()
    {
        var ml = new MLContext(seed: 1);
        var windows = ForecastWindows.Create(ml, Sunspots.Load(ml), new ForecastWindowOptions
            { TargetColumn = nameof(SunspotRow.SUNACTIVITY), Lookback = 11, Horizon = 5, TestCount = 30, ValidationCount = 30 });
        var o = new ExperimentOptions { Task = ExperimentTask.Forecasting, MaximumTrials = 3, Pruning = false };
        var experiment = new Experiment(ml, o)
            .AddCandidate(DeepCandidates.Mlp(ExperimentTask.Forecasting, epochs: 20))
            .AddCandidate(DeepCandidates.Rnn(ExperimentTask.Forecasting, epochs: 20, cell: RecurrentCell.Gru))
            .AddCandidate(DeepCandidates.Transformer(ExperimentTask.Forecasting, epochs: 5));
        var result = experiment.Run(windows);
        _out.WriteLine(result.ToTable());
        Assert.Equal(ExperimentMetric.MeanAbsoluteScaledError, result.Metric);
        Assert.All(result.Trials, t => Assert.Equal(TrialStatus.Finished, t.Status));
        Assert.Equal(new[] { "MLNetDeep MLP forecaster", "MLNetDeep GRU forecaster", "MLNetDeep Transformer forecaster" }, result.Trials.Select(t => t.Trainer));
        // Numeric steps: nothing of token input is searched.
        Assert.All(result.Trials, t => Assert.False(t.Parameters.ContainsKey("TokenDropout") || t.Parameters.ContainsKey("EmbeddingSize")));
        // The leaderboard's MASE is the windows' own evaluation of the validation part; lower ranks first.
        var best = result.BestTrial!;
        Assert.Equal(result.Trials.Min(t => t.Metric), best.Metric);
        double recomputed = windows.Evaluate(result.BestModel!.Transform(windows.Validation!)).MeanAbsoluteScaledError;
        Assert.Equal(recomputed, best.Metric, 6);
        Assert.True(best.Metric < windows.EvaluateNaive(ForecastSplit.Validation).MeanAbsoluteScaledError, "the best forecaster does not beat the naive forecast");

        Assert.Throws<InvalidOperationException>(() => experiment.Run(windows.Train));
        var regression = new Experiment(ml, new ExperimentOptions { Task = ExperimentTask.Regression }).AddCandidate(Sdca());
        Assert.Contains("Task = Forecasting", Assert.Throws<InvalidOperationException>(() => regression.Run(windows)).Message);
        var noValidation = ForecastWindows.Create(ml, Sunspots.Load(ml), new ForecastWindowOptions { TargetColumn = nameof(SunspotRow.SUNACTIVITY), Lookback = 11, Horizon = 5, TestCount = 30 });
        Assert.Contains("ValidationCount", Assert.Throws<InvalidOperationException>(() => experiment.Run(noValidation)).Message);
    }

    [Fact]
    public void Refit_TrainsTheBestConfigurationAgainOnAllTheData_ForTheEpochsItRan()
    {
        var ml = new MLContext(seed: 1);
        var split = ml.Data.TrainTestSplit(TestUtil.BikeTrainSubset(ml, 3000), 0.3, seed: 1);
        var (data, test) = (split.TrainSet, split.TestSet);
        var experiment = Bike(ml, new ExperimentOptions { Task = ExperimentTask.Regression, MaximumTrials = 4, Seed = 2 }, Mlp(6), Sdca());
        var result = experiment.Run(data);
        var deep = result.Trials.First(t => t.Trainer == "MLNetDeep MLP" && t.Status == TrialStatus.Finished);
        var refit = experiment.Refit(deep, data);
        var parameters = DeepModelParameters.Find(refit)!;
        Assert.Equal(deep.Epochs, parameters.History.Count);
        Assert.All(parameters.History, h => Assert.Null(h.ValidationMetric)); // no validation part left: every row trains
        double r2 = ml.Regression.Evaluate(refit.Transform(test)).RSquared;
        var classic = experiment.Refit(result.Trials.First(t => t.Trainer == "SdcaRegression"), data);
        double classicR2 = ml.Regression.Evaluate(classic.Transform(test)).RSquared;
        _out.WriteLine(result.ToTable());
        _out.WriteLine($"held-out R²: refitted MLP {r2}, refitted SDCA {classicR2}, best trial's model {ml.Regression.Evaluate(result.BestModel!.Transform(test)).RSquared}");
        Assert.True(r2 > 0.1, $"the refitted MLP's held-out R² is {r2}");
        Assert.True(classicR2 > 0.1, $"the refitted SDCA's held-out R² is {classicR2}");
        var unfinished = new TrialResult { Number = 99, Trainer = "MLNetDeep MLP", Parameters = deep.Parameters, Status = TrialStatus.Pruned };
        Assert.Contains("only a finished trial", Assert.Throws<ArgumentException>(() => experiment.Refit(unfinished, data)).Message);
        var stranger = new TrialResult { Number = 98, Trainer = "Nobody", Parameters = deep.Parameters, Status = TrialStatus.Finished };
        Assert.Contains("not a candidate", Assert.Throws<ArgumentException>(() => experiment.Refit(stranger, data)).Message);
    }

    [Fact]
    public void MLNetDeepOptions_CarrySearchRanges()
    {
        var mlp = SearchSpace.FromOptions<MlpRegressionTrainer.Options>();
        Assert.Contains(mlp.Parameters, p => p.Name == nameof(DeepTrainerOptions.LearningRate) && p.LogScale);
        Assert.Contains(mlp.Parameters, p => p.Name == nameof(MlpRegressionTrainer.Options.Dropout));
        var transformer = SearchSpace.FromOptions<TransformerBinaryTrainer.Options>();
        Assert.Contains(transformer.Parameters, p => p.Name == nameof(TransformerOptions.ModelWidth) && p.Choices!.Count == 3);
        Assert.Contains(SearchSpace.FromOptions<RnnBinaryTrainer.Options>().Parameters, p => p.Name == nameof(RnnOptions.HiddenSize) && p.IsInteger);
    }
}
