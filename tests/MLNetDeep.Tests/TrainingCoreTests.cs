using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetDeep.TestData;
using Xunit;
using Xunit.Abstractions;

namespace MLNetDeep.Tests;

/// <summary>The shared training core: resume, determinism, cancellation, divergence, validation, early stopping, logging.</summary>
public sealed class TrainingCoreTests
{
    private readonly ITestOutputHelper _out;
    public TrainingCoreTests(ITestOutputHelper output) => _out = output;

    private static MlpRegressionTrainer.Options Small(int epochs = 3) => new() { HiddenLayers = new[] { 32, 16 }, NumberOfEpochs = epochs, BatchSize = 128 };

    private static DeepPredictionTransformer<DeepRegressionModelParameters> Stage(ITransformer chain) =>
        ((IEnumerable<ITransformer>)chain).OfType<DeepPredictionTransformer<DeepRegressionModelParameters>>().Single();

    [Fact]
    public void SameSeedTwice_GivesIdenticalPredictions_AndAnotherSeedDoesNot()
    {
        string[] Run(int seed)
        {
            var ml = new MLContext(seed: seed);
            var train = TestUtil.BikeTrainSubset(ml, 2000);
            var o = Small();
            o.Dropout = 0.2f;
            var model = TestUtil.BikeMlp(ml, o).Fit(train);
            return PredictionDump.Lines(model.Transform(RealData.BikeTest(ml))).ToArray();
        }
        var a = Run(11);
        var b = Run(11);
        var c = Run(12);
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
    }

    [Fact]
    public void Resume_AfterStopAtEpochK_ContinuesAtKPlus1_AndEndsWithTheConfiguredEpochs_MatchingAnUninterruptedRun()
    {
        string dir = TestUtil.TempDir();
        const int total = 5, stopAfter = 2;

        // First run: cancelled (through the MLContext) after epoch 2 has been checkpointed.
        var ml1 = new MLContext(seed: 5);
        var seen1 = new List<int>();
        var o1 = Small(total);
        o1.CheckpointDirectory = dir;
        o1.EpochCallback = m => { seen1.Add(m.Epoch); if (m.Epoch == stopAfter) ml1.CancelExecution(); };
        Assert.ThrowsAny<OperationCanceledException>(() => TestUtil.BikeMlp(ml1, o1).Fit(TestUtil.BikeTrainSubset(ml1, 2000)));
        Assert.Equal(new[] { 1, 2 }, seen1);
        Assert.True(File.Exists(Path.Combine(dir, "mlnetdeep-checkpoint.bin")));

        // Second run with the same directory resumes at epoch 3.
        var ml2 = new MLContext(seed: 5);
        var seen2 = new List<int>();
        var o2 = Small(total);
        o2.CheckpointDirectory = dir;
        o2.EpochCallback = m => seen2.Add(m.Epoch);
        var resumed = TestUtil.BikeMlp(ml2, o2).Fit(TestUtil.BikeTrainSubset(ml2, 2000));
        Assert.Equal(new[] { 3, 4, 5 }, seen2);
        Assert.Equal(Enumerable.Range(1, total), Stage(resumed).Model.History.Select(h => h.Epoch));

        // Identical to a run that was never interrupted.
        var ml3 = new MLContext(seed: 5);
        var straight = TestUtil.BikeMlp(ml3, Small(total)).Fit(TestUtil.BikeTrainSubset(ml3, 2000));
        var test = RealData.BikeTest(ml3);
        Assert.Equal(PredictionDump.Lines(straight.Transform(test)), PredictionDump.Lines(resumed.Transform(test)));
    }

    [Fact]
    public void Checkpoint_OfAnotherNetwork_IsRefusedWithAClearMessage()
    {
        string dir = TestUtil.TempDir();
        var ml = new MLContext(seed: 1);
        var o = Small(1);
        o.CheckpointDirectory = dir;
        TestUtil.BikeMlp(ml, o).Fit(TestUtil.BikeTrainSubset(ml, 500));
        var other = Small(2);
        other.HiddenLayers = new[] { 8 };
        other.CheckpointDirectory = dir;
        var e = Assert.Throws<InvalidOperationException>(() => TestUtil.BikeMlp(ml, other).Fit(TestUtil.BikeTrainSubset(ml, 500)));
        Assert.Contains("another network", e.Message);
        Assert.Contains(dir, e.Message);
    }

    [Fact]
    public void Cancellation_IsHonouredWithinOneBatch()
    {
        // Deterministic: the per-batch hook cancels the MLContext at batch 3 of epoch 2; batch 4 must never start.
        var ml = new MLContext(seed: 1);
        var o = Small(50);
        o.BatchSize = 16;
        var started = new List<(int Epoch, long Batch)>();
        o.BatchStarting = (epoch, batch) =>
        {
            started.Add((epoch, batch));
            if (epoch == 1 && batch == 3) ml.CancelExecution();
        };
        Assert.ThrowsAny<OperationCanceledException>(() => TestUtil.BikeMlp(ml, o).Fit(TestUtil.BikeTrainSubset(ml, 3000)));
        Assert.Equal((1, 3L), started[^1]);
        Assert.DoesNotContain((1, 4L), started);
    }

    [Fact]
    public void CancellationToken_StopsTrainingBeforeTheNextBatch()
    {
        var ml = new MLContext(seed: 1);
        using var cts = new CancellationTokenSource();
        var seen = new List<int>();
        var o = Small(10);
        o.CancellationToken = cts.Token;
        o.EpochCallback = m => { seen.Add(m.Epoch); cts.Cancel(); };
        Assert.ThrowsAny<OperationCanceledException>(() => TestUtil.BikeMlp(ml, o).Fit(TestUtil.BikeTrainSubset(ml, 1000)));
        Assert.Equal(new[] { 1 }, seen);
    }

    [Fact]
    public void DivergingLoss_StopsWithAnExceptionNamingEpochBatchAndLearningRate()
    {
        var ml = new MLContext(seed: 1);
        var o = Small(5);
        o.Optimizer = DeepOptimizer.Sgd;
        o.LearningRate = 50;
        o.StandardizeLabel = false;
        var e = Assert.Throws<InvalidOperationException>(() => TestUtil.BikeMlp(ml, o).Fit(TestUtil.BikeTrainSubset(ml, 2000)));
        _out.WriteLine(e.Message);
        Assert.Matches(@"loss became (NaN|-?∞|-?Infinity) at epoch \d+, batch \d+", e.Message);
        Assert.Contains("LearningRate", e.Message);
    }

    [Fact]
    public void ValidationData_FillsHistory_CallbackAndLog_AndEarlyStoppingStopsAndRestoresBest()
    {
        var ml = new MLContext(seed: 2);
        var logged = new List<string>();
        ml.Log += (_, e) => { if (e.Message.Contains("MLNetDeep:")) lock (logged) logged.Add(e.Message); };
        var calls = new List<EpochMetrics>();
        var o = Small(30);
        o.ValidationFraction = 0.2;
        o.EarlyStoppingPatience = 2;
        o.EarlyStoppingMinDelta = 1e6; // nothing improves by that much: stops after 1 + patience epochs
        o.EpochCallback = calls.Add;
        var model = TestUtil.BikeMlp(ml, o).Fit(TestUtil.BikeTrainSubset(ml, 2000));
        var history = Stage(model).Model.History;
        Assert.Equal(3, history.Count);
        Assert.Equal(history, calls);
        Assert.All(history, h => Assert.NotNull(h.ValidationLoss));
        Assert.All(history, h => Assert.Equal("r-squared", h.MetricName));
        Assert.All(history, h => Assert.True(h.Seconds > 0));
        Assert.Contains(logged, l => l.Contains("early stopping after epoch 3"));
        Assert.Contains(logged, l => l.Contains("restored the weights of the best epoch (1)"));
    }

    [Fact]
    public void ExplicitValidationSet_ReportsAccuracyForClassification()
    {
        var ml = new MLContext(seed: 2);
        var split = ml.Data.TrainTestSplit(RealData.Sms(ml), 0.2, seed: 2);
        var features = Pipelines.SmsFeatures(ml).Fit(split.TrainSet);
        var trainer = ml.BinaryClassification.Trainers.Mlp(new MlpBinaryTrainer.Options
        {
            HiddenLayers = new[] { 32 },
            NumberOfEpochs = 2,
            ValidationData = features.Transform(split.TestSet),
            PositiveClassWeight = 2,
        });
        var model = trainer.Fit(features.Transform(split.TrainSet));
        var last = model.Model.History[^1];
        Assert.Equal("accuracy", last.MetricName);
        Assert.InRange(last.ValidationMetric!.Value, 0.9, 1.0);
    }

    [Theory]
    [InlineData(DeepOptimizer.Sgd, LearningRateSchedule.Step, DataCaching.Memory)]
    [InlineData(DeepOptimizer.Adam, LearningRateSchedule.Cosine, DataCaching.None)]
    [InlineData(DeepOptimizer.AdamW, LearningRateSchedule.ReduceOnPlateau, DataCaching.Memory)]
    public void OptimizersSchedulesAndStreaming_AllLearnBikeSharing(DeepOptimizer optimizer, LearningRateSchedule schedule, DataCaching caching)
    {
        var ml = new MLContext(seed: 4);
        var o = new MlpRegressionTrainer.Options
        {
            HiddenLayers = new[] { 64, 32 },
            NumberOfEpochs = 8,
            Optimizer = optimizer,
            LearningRate = optimizer == DeepOptimizer.Sgd ? 0.05 : 3e-3,
            Nesterov = optimizer == DeepOptimizer.Sgd,
            Schedule = schedule,
            StepSizeEpochs = 6,
            GradientClipNorm = 5,
            Caching = caching,
            Activation = DeepActivation.Gelu,
            BatchNorm = optimizer == DeepOptimizer.Adam,
        };
        var model = TestUtil.BikeMlp(ml, o).Fit(RealData.BikeTrain(ml));
        double r2 = ml.Regression.Evaluate(model.Transform(RealData.BikeTest(ml))).RSquared;
        _out.WriteLine($"{optimizer}/{schedule}/{caching}: R^2 {r2:F4}");
        Assert.True(r2 > 0.5, $"R^2 {r2:F4}");
        var lrs = Stage(model).Model.History.Select(h => h.LearningRate).ToList();
        if (schedule is LearningRateSchedule.Step or LearningRateSchedule.Cosine) Assert.True(lrs[^1] < lrs[0]);
    }

    [Theory]
    [InlineData(DeepActivation.LeakyRelu)]
    [InlineData(DeepActivation.Elu)]
    [InlineData(DeepActivation.Selu)]
    [InlineData(DeepActivation.Swish)]
    [InlineData(DeepActivation.Tanh)]
    [InlineData(DeepActivation.Sigmoid)]
    public void EveryActivation_Trains(DeepActivation activation)
    {
        var ml = new MLContext(seed: 4);
        var o = Small(4);
        o.Activation = activation;
        o.LearningRate = 3e-3;
        var model = TestUtil.BikeMlp(ml, o).Fit(TestUtil.BikeTrainSubset(ml, 3000));
        var h = Stage(model).Model.History;
        Assert.True(h[^1].TrainLoss < h[0].TrainLoss, $"{activation}: loss {h[0].TrainLoss} -> {h[^1].TrainLoss}");
    }

    [Fact]
    public void CudaRequested_WithoutCuda_FallsBackToCpuOrFailsClearly()
    {
        var ml = new MLContext(seed: 1);
        var warnings = new List<string>();
        ml.Log += (_, e) => { if (e.Kind == Microsoft.ML.Runtime.ChannelMessageKind.Warning) lock (warnings) warnings.Add(e.Message); };
        var o = Small(1);
        o.Device = DeepDevice.Cuda;
        TestUtil.BikeMlp(ml, o).Fit(TestUtil.BikeTrainSubset(ml, 300));
        Assert.Contains(warnings, w => w.Contains("Falling back to the CPU"));

        o.FallbackToCpu = false;
        var e = Assert.Throws<InvalidOperationException>(() => TestUtil.BikeMlp(ml, o).Fit(TestUtil.BikeTrainSubset(ml, 300)));
        Assert.Contains("CUDA", e.Message);
        Assert.Contains("FallbackToCpu", e.Message);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void ShowProgress_DrawsABarOnATerminal_OneLinePerEpochInALog_AndNumberOfThreadsIsApplied(bool terminal)
    {
        var ml = new MLContext(seed: 1);
        var o = Small(2);
        o.ShowProgress = true;
        o.NumberOfThreads = 1;
        int threadsBefore = TorchSharp.torch.get_num_threads();
        var captured = new StringWriter();
        var stderr = Console.Error;
        bool redraw = ConsoleProgress.Redraw;
        ConsoleProgress.Redraw = terminal; // what a terminal / a redirected log gives (Console.IsErrorRedirected)
        Console.SetError(captured);
        try
        {
            int during = 0;
            o.EpochCallback = _ => during = TorchSharp.torch.get_num_threads();
            TestUtil.BikeMlp(ml, o).Fit(TestUtil.BikeTrainSubset(ml, 1000));
            Assert.Equal(1, during);
            Assert.Equal(threadsBefore, TorchSharp.torch.get_num_threads()); // restored after Fit
        }
        finally
        {
            Console.SetError(stderr);
            ConsoleProgress.Redraw = redraw;
            TorchSharp.torch.set_num_threads(threadsBefore);
        }
        string text = captured.ToString();
        Assert.Contains("[1/2] epoch 1: train loss", text);
        Assert.Contains("[2/2] epoch 2: train loss", text);
        if (terminal) Assert.Contains("epoch 1/2 [", text);
        else
        {
            Assert.DoesNotContain("\r", text);
            Assert.Equal(2, text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        }
    }

    [Fact]
    public void LearningRateSchedules_FollowTheirDefinitions()
    {
        var o = Small(10);
        o.LearningRate = 0.1;
        o.Schedule = LearningRateSchedule.Step; o.StepSizeEpochs = 3; o.StepGamma = 0.5;
        var s = new LearningRateScheduler(o, 10);
        Assert.Equal(0.1, s.Rate(2, 9), 12);
        Assert.Equal(0.05, s.Rate(3, 0), 12);
        Assert.Equal(0.025, s.Rate(6, 0), 12);

        o.Schedule = LearningRateSchedule.Cosine; o.MinimumLearningRate = 0.01;
        s = new LearningRateScheduler(o, 10);
        Assert.Equal(0.1, s.Rate(0, 0), 12);
        Assert.Equal(0.055, s.Rate(5, 0), 12);
        Assert.True(s.Rate(9, 9) < 0.0101);

        o.Schedule = LearningRateSchedule.OneCycle; o.OneCycleWarmupFraction = 0.3;
        s = new LearningRateScheduler(o, 10);
        Assert.Equal(0.1 / 25, s.Rate(0, 0), 12);
        Assert.Equal(0.1, s.Rate(3, 0), 9);
        Assert.True(s.Rate(9, 9) < 0.1 / 25);

        o.Schedule = LearningRateSchedule.ReduceOnPlateau; o.PlateauPatience = 1; o.PlateauFactor = 0.5;
        s = new LearningRateScheduler(o, 10);
        Assert.False(s.EndEpoch(1.0));
        Assert.False(s.EndEpoch(1.0));
        Assert.True(s.EndEpoch(1.0));
        Assert.Equal(0.05, s.Rate(3, 0), 12);
    }

    /// <summary>An IDataView that announces a wrong row count (as a buggy custom view or source might).</summary>
    private sealed class WrongRowCount(IDataView inner, long announced) : IDataView
    {
        public bool CanShuffle => false;
        public DataViewSchema Schema => inner.Schema;
        public long? GetRowCount() => announced;
        public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) => inner.GetRowCursor(columnsNeeded);
        public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) => new[] { GetRowCursor(columnsNeeded) };
    }

    [Theory]
    [InlineData(null)]    // the view does not know its row count (TextLoader): blocks joined at the end
    [InlineData(1500L)]   // announces fewer rows than it has
    [InlineData(2600L)]   // announces more rows than it has
    [InlineData(2000L)]   // tells the truth
    public void Caching_ReadsEveryRow_WhateverRowCountTheViewAnnounces(long? announced)
    {
        string[] Run(Func<IDataView, IDataView> wrap, List<string> log)
        {
            var ml = new MLContext(seed: 1);
            ml.Log += (_, e) => { if (e.RawMessage.Contains("cached in memory", StringComparison.Ordinal)) log.Add(e.RawMessage); };
            // Featurize first so that the trainer sees the wrapped view directly.
            var features = Pipelines.BikeFeatures(ml).Fit(TestUtil.BikeTrainSubset(ml, 2000));
            var train = ml.Data.Cache(features.Transform(TestUtil.BikeTrainSubset(ml, 2000)));
            var o = Small(2);
            o.Caching = DataCaching.Memory;
            var model = ml.Regression.Trainers.Mlp(o).Fit(wrap(train));
            return PredictionDump.Lines(model.Transform(features.Transform(RealData.BikeTest(ml)))).ToArray();
        }
        var honestLog = new List<string>();
        var wrongLog = new List<string>();
        var honest = Run(v => v, honestLog);
        // Small blocks (300 rows of 12 features) so that the rows cross many block boundaries.
        int saved = DenseStore.BlockElements;
        DenseStore.BlockElements = 300 * 12;
        string[] wrong;
        try { wrong = Run(v => announced is long n ? new WrongRowCount(v, n) : new UnknownRowCount(v), wrongLog); }
        finally { DenseStore.BlockElements = saved; }
        _out.WriteLine(string.Join("\n", honestLog.Concat(wrongLog)));
        Assert.Contains("2000 rows", Assert.Single(honestLog));
        Assert.Contains("2000 rows", Assert.Single(wrongLog));
        Assert.Equal(honest, wrong);
    }

    private sealed class UnknownRowCount(IDataView inner) : IDataView
    {
        public bool CanShuffle => false;
        public DataViewSchema Schema => inner.Schema;
        public long? GetRowCount() => null;
        public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) => inner.GetRowCursor(columnsNeeded);
        public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) => new[] { GetRowCursor(columnsNeeded) };
    }
}
