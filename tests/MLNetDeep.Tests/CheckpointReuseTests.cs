using Microsoft.ML;
using Microsoft.ML.Trainers;
using MLNetDeep.TestData;
using Xunit;

namespace MLNetDeep.Tests;

/// <summary>
/// A checkpoint (or experiment) directory reused for other data with the same network and options is refused naming
/// what differs, for every family and the experiment runner — never a silent 0-epoch "resume" returning the first data's
/// model.
/// </summary>
public sealed class CheckpointReuseTests
{
    /// <summary>Trains one epoch on rows [skip, skip + take) of the family's real data with a checkpoint directory.</summary>
    private static void Train(string family, string dir, int skip, int take)
    {
        var ml = new MLContext(seed: 1);
        IDataView Part(IDataView all) => ml.Data.TakeRows(skip == 0 ? all : ml.Data.SkipRows(all, skip), take);
        switch (family)
        {
            case "mlp":
                var bike = Pipelines.BikeFeatures(ml).Fit(RealData.BikeTrain(ml));
                ml.Regression.Trainers.Mlp(new MlpRegressionTrainer.Options { HiddenLayers = new[] { 16 }, NumberOfEpochs = 1, CheckpointDirectory = dir })
                    .Fit(bike.Transform(Part(RealData.BikeTrain(ml))));
                break;
            case "cnn":
                ml.MulticlassClassification.Trainers.Cnn(new CnnMulticlassTrainer.Options { Architecture = CnnArchitecture.LeNet5(), NumberOfEpochs = 1, CheckpointDirectory = dir })
                    .Fit(Part(FashionMnist.Train(ml, 1000)));
                break;
            case "gru":
            case "transformer":
                var tokens = Pipelines.SmsTokens(ml).Fit(RealData.Sms(ml));
                var data = tokens.Transform(Part(RealData.Sms(ml)));
                if (family == "gru")
                    ml.BinaryClassification.Trainers.Rnn(new RnnBinaryTrainer.Options { FeatureColumnName = "Tokens", Cell = RecurrentCell.Gru, EmbeddingSize = 16, HiddenSize = 16, NumberOfEpochs = 1, CheckpointDirectory = dir }).Fit(data);
                else
                    ml.BinaryClassification.Trainers.Transformer(new TransformerBinaryTrainer.Options { FeatureColumnName = "Tokens", NumberOfLayers = 1, ModelWidth = 16, NumberOfHeads = 2, MaximumSequenceLength = 32, NumberOfEpochs = 1, CheckpointDirectory = dir }).Fit(data);
                break;
            case "forecaster":
                ml.Forecasting.Trainers.Mlp(new MlpForecaster.Options { HiddenLayers = new[] { 16 }, NumberOfEpochs = 1, CheckpointDirectory = dir })
                    .Fit(Part(Sunspots.Windows(ml).Train));
                break;
            default: throw new ArgumentException(family);
        }
    }

    [Theory]
    [InlineData("mlp")]
    [InlineData("cnn")]
    [InlineData("gru")]
    [InlineData("transformer")]
    [InlineData("forecaster")]
    public void CheckpointOfOtherData_IsRefused_NamingTheTrainingData(string family)
    {
        string dir = TestUtil.TempDir();
        Train(family, dir, 0, 200);
        Train(family, dir, 0, 200); // the same run again resumes (nothing left to train): no error
        var e = Assert.Throws<InvalidOperationException>(() => Train(family, dir, 200, 200));
        Assert.Contains("training data (checkpoint: 200 rows, hash", e.Message);
        Assert.Contains("CheckpointDirectory", e.Message);
    }

    [Fact]
    public void ExperimentDirectoryOfOtherData_IsRefused_NamingTheData()
    {
        string dir = TestUtil.TempDir();
        ExperimentResult Run(int skip)
        {
            var ml = new MLContext(seed: 1);
            var e = new Experiment(ml, new ExperimentOptions { Task = ExperimentTask.Regression, MaximumTrials = 2, Directory = dir })
                .SetFeaturizer(Pipelines.BikeFeatures(ml))
                .AddCandidate(ExperimentCandidate.Create("SdcaRegression", () => new SdcaRegressionTrainer.Options { MaximumNumberOfIterations = 5 }, (c, o) => c.Regression.Trainers.Sdca(o)));
            var all = RealData.BikeTrain(ml);
            return e.Run(ml.Data.TakeRows(skip == 0 ? all : ml.Data.SkipRows(all, skip), 500));
        }
        var first = Run(0);
        Assert.Equal(first.Trials.Count, Run(0).Trials.Count); // the same data resumes
        var error = Assert.Throws<ArgumentException>(() => Run(500));
        Assert.Equal(nameof(ExperimentOptions.Directory), error.ParamName);
        Assert.Contains("data=500 rows", error.Message);
    }
}
