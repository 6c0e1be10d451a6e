using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetDeep.TestData;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;

namespace MLNetDeep.Tests;

/// <summary>
/// One process, several threads: trainings on two threads give the models they give alone (trainings take the
/// process-wide training lock), the engine's thread count is the process's again after <c>Fit</c>, and scoring from
/// many threads equals serial scoring. The overlap is forced with hooks, never with delays.
/// </summary>
public sealed class ConcurrencyTests
{
    private readonly ITestOutputHelper _out;
    public ConcurrencyTests(ITestOutputHelper output) => _out = output;

    private static MlpRegressionTrainer.Options Options(int epochs, float dropout) => new()
    {
        HiddenLayers = new[] { 32, 16 },
        Dropout = dropout,
        NumberOfEpochs = epochs,
        BatchSize = 64,
        Schedule = LearningRateSchedule.OneCycle,
    };

    private static float[] Train(int seed, MlpRegressionTrainer.Options o, int rows, Action? beforeFit = null)
    {
        var ml = new MLContext(seed: seed);
        var train = TestUtil.BikeTrainSubset(ml, rows);
        var features = Pipelines.BikeFeatures(ml).Fit(train);
        var prepared = features.Transform(train);
        beforeFit?.Invoke();
        var model = ml.Regression.Trainers.Mlp(o).Fit(prepared);
        var test = features.Transform(ml.Data.TakeRows(RealData.BikeTest(ml), 300));
        return TestUtil.Floats(model.Transform(test), "Score");
    }

    [Fact]
    public void TwoTrainingsOnTwoThreads_EachGiveTheModelItGivesAlone()
    {
        float[] aloneA = Train(1, Options(4, 0.3f), 2000);
        float[] aloneB = Train(2, Options(3, 0.2f), 1500);

        // A pauses in its first batch until B is waiting for the training lock, so the two trainings overlap.
        int waitsBefore = TorchEngine.TrainingWaits;
        var a = Options(4, 0.3f);
        bool sawB = false;
        a.BatchStarting = (epoch, batch) =>
        {
            if (epoch == 0 && batch == 0)
                sawB = SpinWait.SpinUntil(() => Volatile.Read(ref TorchEngine.TrainingWaits) > waitsBefore, TimeSpan.FromMinutes(5));
        };
        float[]? concurrentA = null, concurrentB = null;
        Exception? failure = null;
        var threads = new[]
        {
            new Thread(() => { try { concurrentA = Train(1, a, 2000); } catch (Exception e) { failure = e; } }),
            new Thread(() => { try { concurrentB = Train(2, Options(3, 0.2f), 1500); } catch (Exception e) { failure = e; } }),
        };
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();
        Assert.Null(failure);
        Assert.True(sawB, "the second training never waited for the first (they did not overlap)");
        Assert.Equal(aloneA, concurrentA);
        Assert.Equal(aloneB, concurrentB);
        _out.WriteLine($"concurrent trainings: {aloneA.Length} + {aloneB.Length} predictions bit-identical to the lone runs; trainings that waited: {TorchEngine.TrainingWaits - waitsBefore}");
    }

    [Fact]
    public void NumberOfThreads_AppliesDuringFitOnly_AlsoWhenFitFails()
    {
        int before = torch.get_num_threads();
        int wanted = before == 1 ? 2 : 1;
        int during = 0;
        var o = Options(1, 0);
        o.NumberOfThreads = wanted;
        o.BatchStarting = (_, _) => during = torch.get_num_threads();
        Train(1, o, 500);
        Assert.Equal(wanted, during);
        Assert.Equal(before, torch.get_num_threads());

        var failing = Options(2, 0);
        failing.NumberOfThreads = wanted;
        failing.BatchStarting = (epoch, _) => { if (epoch == 1) throw new InvalidOperationException("stop here"); };
        Assert.Throws<InvalidOperationException>(() => Train(1, failing, 500));
        Assert.Equal(before, torch.get_num_threads());
    }

    public sealed class BikeIn
    {
        [VectorType(12)] public float[] Features { get; set; } = new float[12];
    }

    public sealed class ScoreOut { public float Score { get; set; } }

    [Fact]
    public void ScoringFromManyThreads_EqualsSerialScoring()
    {
        var ml = new MLContext(seed: 1);
        var train = TestUtil.BikeTrainSubset(ml, 1000);
        var features = Pipelines.BikeFeatures(ml).Fit(train);
        var model = ml.Regression.Trainers.Mlp(Options(2, 0.1f)).Fit(features.Transform(train));
        var test = features.Transform(ml.Data.TakeRows(RealData.BikeTest(ml), 400));
        float[] serialBatch = TestUtil.Floats(model.Transform(test), "Score");
        var rows = test.GetColumn<float[]>("Features").Select(f => new BikeIn { Features = f }).ToArray();
        var serialEngine = ml.Model.CreatePredictionEngine<BikeIn, ScoreOut>(model);
        float[] serialSingle = rows.Select(r => serialEngine.Predict(r).Score).ToArray();

        const int Threads = 4;
        var batch = new float[Threads][];
        var single = new float[Threads][];
        var start = new Barrier(Threads);
        Exception? failure = null;
        var workers = Enumerable.Range(0, Threads).Select(t => new Thread(() =>
        {
            try
            {
                var engine = ml.Model.CreatePredictionEngine<BikeIn, ScoreOut>(model); // one engine per thread, as ML.NET requires
                start.SignalAndWait();
                single[t] = rows.Select(r => engine.Predict(r).Score).ToArray();
                batch[t] = TestUtil.Floats(model.Transform(test), "Score");
            }
            catch (Exception e) { failure = e; }
        })).ToArray();
        foreach (var w in workers) w.Start();
        foreach (var w in workers) w.Join();
        Assert.Null(failure);
        for (int t = 0; t < Threads; t++)
        {
            Assert.Equal(serialSingle, single[t]);
            Assert.Equal(serialBatch, batch[t]);
        }
        _out.WriteLine($"{Threads} threads x ({rows.Length} PredictionEngine calls + a Transform of {rows.Length} rows) equal to serial scoring");
    }

    [Fact]
    public void Trainings_FromAnyThread_RunOnTheEnginesTrainingThread_WithTheCallersCulture()
    {
        // libtorch's OpenMP keeps a worker pool per thread that starts parallel work; trainings all run on one thread.
        var seen = new List<(int Thread, string Culture)>();
        MlpRegressionTrainer.Options Watched()
        {
            var o = Options(1, 0);
            o.BatchStarting = (_, b) => { if (b == 0) lock (seen) seen.Add((Environment.CurrentManagedThreadId, CultureInfo.CurrentCulture.Name)); };
            return o;
        }
        var callers = new List<int> { Environment.CurrentManagedThreadId };
        var previous = CultureInfo.CurrentCulture;
        CultureInfo.CurrentCulture = CultureInfo.GetCultureInfo("de-DE");
        try { Train(1, Watched(), 300); }
        finally { CultureInfo.CurrentCulture = previous; }
        Exception? failure = null;
        for (int i = 0; i < 2; i++)
        {
            var t = new Thread(() =>
            {
                try { CultureInfo.CurrentCulture = CultureInfo.GetCultureInfo("fr-FR"); Train(2, Watched(), 300); }
                catch (Exception e) { failure = e; }
            });
            t.Start();
            t.Join();
            callers.Add(t.ManagedThreadId);
        }
        Assert.Null(failure);
        Assert.Equal(3, seen.Count);
        Assert.Single(seen.Select(s => s.Thread).Distinct());
        Assert.Equal(TorchEngine.TrainingThreadId, seen[0].Thread);
        Assert.DoesNotContain(seen[0].Thread, callers);
        Assert.Equal(new[] { "de-DE", "fr-FR", "fr-FR" }, seen.Select(s => s.Culture));
    }

    [Fact]
    public void ATrainingStartedFromAnEpochCallback_RunsInsideTheOuterOne_AndGivesItsLoneModel()
    {
        float[]? inner = null;
        var outer = Options(2, 0);
        outer.EpochCallback = _ => inner ??= Train(3, Options(1, 0.2f), 300);
        Train(1, outer, 300);
        Assert.NotNull(inner);
        Assert.Equal(Train(3, Options(1, 0.2f), 300), inner);
    }

    [Fact]
    public void BatchScoring_RunsOnTheTrainingThreadWhenItIsFree_OnTheCallerDuringATraining_AndOneRowOnTheCaller()
    {
        var ml = new MLContext(seed: 1);
        var train = TestUtil.BikeTrainSubset(ml, 600);
        var features = Pipelines.BikeFeatures(ml).Fit(train);
        var model = ml.Regression.Trainers.Mlp(Options(1, 0)).Fit(features.Transform(train));
        var test = features.Transform(ml.Data.TakeRows(RealData.BikeTest(ml), 400)); // two batches of the default 256

        int before = TorchEngine.ScoringBatchesOnTrainingThread;
        float[] free = TestUtil.Floats(model.Transform(test), "Score");
        Assert.Equal(before + 2, TorchEngine.ScoringBatchesOnTrainingThread);

        var engine = ml.Model.CreatePredictionEngine<BikeIn, ScoreOut>(model);
        engine.Predict(new BikeIn { Features = test.GetColumn<float[]>("Features").First() });
        Assert.Equal(before + 2, TorchEngine.ScoringBatchesOnTrainingThread);

        // While a training holds the engine, another thread's batch scoring runs on that thread (no waiting, no deadlock:
        // the training waits for it inside its own batch hook).
        float[]? during = null;
        var o = Options(1, 0);
        o.BatchStarting = (_, b) =>
        {
            if (b != 0) return;
            var scorer = new Thread(() => during = TestUtil.Floats(model.Transform(test), "Score"));
            scorer.Start();
            scorer.Join();
        };
        ml.Regression.Trainers.Mlp(o).Fit(features.Transform(ml.Data.TakeRows(train, 300)));
        Assert.Equal(before + 2, TorchEngine.ScoringBatchesOnTrainingThread);
        Assert.Equal(free, during);
    }
}
