using Microsoft.ML;
using MLNetDeep.TestData;
using Xunit;
using Xunit.Abstractions;

namespace MLNetDeep.Tests;

public sealed class RegressionTests
{
    private readonly ITestOutputHelper _out;
    public RegressionTests(ITestOutputHelper output) => _out = output;

    [Fact]
    public void BikeSharing_MlpBeatsSdca_OnTheHeldOutTestFile()
    {
        var ml = new MLContext(seed: 1);
        var train = RealData.BikeTrain(ml);
        var test = RealData.BikeTest(ml);

        var mlp = Pipelines.BikeFeatures(ml).Append(ml.Regression.Trainers.Mlp(new MlpRegressionTrainer.Options
        {
            HiddenLayers = new[] { 256, 128 },
            NumberOfEpochs = 40,
            BatchSize = 64,
            LearningRate = 3e-3,
            Schedule = LearningRateSchedule.OneCycle,
            Dropout = 0,
        }));
        var sdca = Pipelines.BikeFeatures(ml).Append(ml.Regression.Trainers.Sdca());
        var fastTree = Pipelines.BikeFeatures(ml).Append(ml.Regression.Trainers.FastTree());

        double R2(IEstimator<ITransformer> e) => ml.Regression.Evaluate(e.Fit(train).Transform(test)).RSquared;
        double rMlp = R2(mlp), rSdca = R2(sdca), rTree = R2(fastTree);
        _out.WriteLine($"bike-hour test R^2: MLP {rMlp:F4}, SDCA {rSdca:F4}, FastTree {rTree:F4}");
        Assert.True(rMlp > rSdca, $"MLP R^2 {rMlp:F4} should beat SDCA {rSdca:F4}");
        Assert.True(rMlp > 0.75, $"MLP R^2 {rMlp:F4} should exceed 0.75");
    }
}
