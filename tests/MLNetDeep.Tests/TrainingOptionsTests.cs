using Microsoft.ML;
using MLNetDeep.TestData;
using Xunit;

namespace MLNetDeep.Tests;

/// <summary>Options are the trainer's own copy, belong to their task, and identify a checkpointed run completely.</summary>
public sealed class TrainingOptionsTests
{
    private static MlpRegressionTrainer.Options Small(int epochs = 1) => new() { HiddenLayers = new[] { 16 }, NumberOfEpochs = epochs, BatchSize = 128 };

    [Fact]
    public void OptionsChangedAfterTheTrainerIsMade_DoNotChangeIt()
    {
        var ml = new MLContext(seed: 1);
        var o = Small(2);
        var trainer = TestUtil.BikeMlp(ml, o);
        o.NumberOfEpochs = 7;
        o.HiddenLayers[0] = 64;
        var model = trainer.Fit(TestUtil.BikeTrainSubset(ml, 500));
        var mlp = ((IEnumerable<ITransformer>)model).OfType<DeepPredictionTransformer<DeepRegressionModelParameters>>().Single();
        Assert.Equal(2, mlp.Model.History.Count);
        Assert.Contains("[16]", mlp.Model.Architecture);
    }

    [Fact]
    public void TaskOptionsOnAnotherTask_AreRejectedNamingTheOption()
    {
        var ml = new MLContext(seed: 1);
        var e1 = Assert.Throws<ArgumentException>(() => ml.Regression.Trainers.Mlp(new MlpRegressionTrainer.Options { ClassWeights = new[] { 1f, 2f } }));
        Assert.Equal(nameof(DeepTrainerOptions.ClassWeights), e1.ParamName);
        Assert.Contains("multiclass", e1.Message);
        var e2 = Assert.Throws<ArgumentException>(() => ml.BinaryClassification.Trainers.Mlp(new MlpBinaryTrainer.Options { RegressionLoss = RegressionLoss.Huber }));
        Assert.Equal(nameof(DeepTrainerOptions.RegressionLoss), e2.ParamName);
        var e3 = Assert.Throws<ArgumentException>(() => ml.MulticlassClassification.Trainers.Mlp(new MlpMulticlassTrainer.Options { PositiveClassWeight = 3 }));
        Assert.Equal(nameof(DeepTrainerOptions.PositiveClassWeight), e3.ParamName);
        // On their own task they are accepted.
        ml.MulticlassClassification.Trainers.Mlp(new MlpMulticlassTrainer.Options { LabelSmoothing = 0.1 });
        ml.Forecasting.Trainers.Mlp(new MlpForecaster.Options { RegressionLoss = RegressionLoss.Huber });
    }

    [Fact]
    public void Checkpoint_OfAnotherLearningRateOrOtherData_IsRefusedNamingWhatDiffers()
    {
        string dir = TestUtil.TempDir();
        var ml = new MLContext(seed: 1);
        var o = Small(1);
        o.CheckpointDirectory = dir;
        TestUtil.BikeMlp(ml, o).Fit(TestUtil.BikeTrainSubset(ml, 500));

        var otherRate = Small(2);
        otherRate.LearningRate = 3e-3;
        otherRate.CheckpointDirectory = dir;
        var e1 = Assert.Throws<InvalidOperationException>(() => TestUtil.BikeMlp(ml, otherRate).Fit(TestUtil.BikeTrainSubset(ml, 500)));
        Assert.Contains("LearningRate (checkpoint: 0.001; now: 0.003)", e1.Message);
        Assert.DoesNotContain("training data", e1.Message);

        var otherData = Small(2);
        otherData.CheckpointDirectory = dir;
        var e2 = Assert.Throws<InvalidOperationException>(() => TestUtil.BikeMlp(ml, otherData).Fit(ml.Data.SkipRows(RealData.BikeTrain(ml), 500).Let(d => ml.Data.TakeRows(d, 500))));
        Assert.Contains("training data", e2.Message);
        Assert.DoesNotContain("LearningRate", e2.Message);

        // The same run with more epochs (a constant schedule) continues from the checkpoint.
        var more = Small(2);
        more.CheckpointDirectory = dir;
        var model = TestUtil.BikeMlp(ml, more).Fit(TestUtil.BikeTrainSubset(ml, 500));
        Assert.Equal(2, ((IEnumerable<ITransformer>)model).OfType<DeepPredictionTransformer<DeepRegressionModelParameters>>().Single().Model.History.Count);
    }

    [Fact]
    public void AutoCaching_OfAnUnknownRowCount_StreamsWhenTheBudgetIsExceeded_WithTheSamePredictions()
    {
        // SMS through FeaturizeText: a text file (unknown row count) of 16 564 floats per row, far over 1 MiB.
        var messages = new List<string>();
        IDataView Fit(DataCaching caching, int megabytes)
        {
            var ml = new MLContext(seed: 4);
            ml.Log += (_, e) => { if (e.Message.Contains("training data")) messages.Add(e.Message); };
            var data = RealData.Sms(ml);
            Assert.Null(data.GetRowCount());
            var model = Pipelines.SmsFeatures(ml).Append(ml.BinaryClassification.Trainers.Mlp(new MlpBinaryTrainer.Options
            {
                HiddenLayers = new[] { 8 }, NumberOfEpochs = 1, Caching = caching, MaximumCacheMegabytes = megabytes,
            })).Fit(data);
            return model.Transform(ml.Data.TakeRows(data, 300));
        }
        var auto = Probabilities(Fit(DataCaching.Auto, 1));
        Assert.Contains(messages, m => m.Contains("does not fit in MaximumCacheMegabytes (1 MiB)"));
        Assert.DoesNotContain(messages, m => m.Contains("cached in memory"));
        var streamed = Probabilities(Fit(DataCaching.None, 1));
        // The same rows in the same order: the same model up to the last bits of the engine's threaded sums.
        Assert.Equal(streamed.Length, auto.Length);
        for (int i = 0; i < auto.Length; i++) Assert.Equal(streamed[i], auto[i], 5);
    }

    private static float[] Probabilities(IDataView scored) => TestUtil.Floats(scored, "Probability");
}
