using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetDeep.TestData;
using Xunit;
using Xunit.Abstractions;

namespace MLNetDeep.Tests;

public sealed class ClassificationTests
{
    private readonly ITestOutputHelper _out;
    public ClassificationTests(ITestOutputHelper output) => _out = output;

    [Fact]
    public void SmsSpam_MlpReachesAuc097_OnHeldOut20Percent_BesideSdcaLogisticRegression()
    {
        var ml = new MLContext(seed: 1);
        var split = ml.Data.TrainTestSplit(RealData.Sms(ml), testFraction: 0.2, seed: 1);
        var mlp = Pipelines.SmsFeatures(ml).Append(ml.BinaryClassification.Trainers.Mlp(new MlpBinaryTrainer.Options
        {
            HiddenLayers = new[] { 128 },
            NumberOfEpochs = 5,
        }));
        var sdca = Pipelines.SmsFeatures(ml).Append(ml.BinaryClassification.Trainers.SdcaLogisticRegression());

        var m = ml.BinaryClassification.Evaluate(mlp.Fit(split.TrainSet).Transform(split.TestSet));
        var s = ml.BinaryClassification.Evaluate(sdca.Fit(split.TrainSet).Transform(split.TestSet));
        _out.WriteLine($"sms-spam held-out 20%: MLP accuracy {m.Accuracy:F4} AUC {m.AreaUnderRocCurve:F4} F1 {m.F1Score:F4}; "
            + $"SDCA-LR accuracy {s.Accuracy:F4} AUC {s.AreaUnderRocCurve:F4} F1 {s.F1Score:F4}");
        Assert.True(m.AreaUnderRocCurve >= 0.97, $"MLP AUC {m.AreaUnderRocCurve:F4} < 0.97");
        Assert.True(m.Accuracy >= 0.95, $"MLP accuracy {m.Accuracy:F4} < 0.95");
        Assert.True(m.F1Score >= 0.85, $"MLP F1 {m.F1Score:F4} < 0.85");
    }

    [Fact]
    public void GitHubIssues_Mlp_MicroAndMacroAccuracy_BesideSdcaMaximumEntropy_AndPredictsAreaNames()
    {
        var ml = new MLContext(seed: 1);
        var split = ml.Data.TrainTestSplit(RealData.GitHubIssues(ml), testFraction: 0.2, seed: 1);
        var mlp = Pipelines.GitHubFeatures(ml)
            .Append(ml.MulticlassClassification.Trainers.Mlp(new MlpMulticlassTrainer.Options { HiddenLayers = new[] { 256 }, NumberOfEpochs = 15, Dropout = 0.3f }))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedArea", "PredictedLabel"));
        var sdca = Pipelines.GitHubFeatures(ml).Append(ml.MulticlassClassification.Trainers.SdcaMaximumEntropy());

        var model = mlp.Fit(split.TrainSet);
        var scored = model.Transform(split.TestSet);
        var m = ml.MulticlassClassification.Evaluate(scored);
        var s = ml.MulticlassClassification.Evaluate(sdca.Fit(split.TrainSet).Transform(split.TestSet));
        _out.WriteLine($"github-issues held-out 20%: MLP micro {m.MicroAccuracy:F4} macro {m.MacroAccuracy:F4} log-loss {m.LogLoss:F4}; "
            + $"SdcaMaximumEntropy micro {s.MicroAccuracy:F4} macro {s.MacroAccuracy:F4} log-loss {s.LogLoss:F4}");
        Assert.True(m.MicroAccuracy >= 0.6, $"MLP micro accuracy {m.MicroAccuracy:F4} < 0.6");
        Assert.True(m.MicroAccuracy >= s.MicroAccuracy - 0.03, $"MLP micro {m.MicroAccuracy:F4} far below SDCA {s.MicroAccuracy:F4}");
        Assert.True(m.MacroAccuracy >= 0.35, $"MLP macro accuracy {m.MacroAccuracy:F4} < 0.35");
        Assert.Equal(22, m.ConfusionMatrix.NumberOfClasses);

        // PredictedLabel is a key carrying the label's values: MapKeyToValue gives area names back.
        var areas = scored.GetColumn<ReadOnlyMemory<char>>("PredictedArea").Select(a => a.ToString()).ToList();
        var truth = split.TestSet.GetColumn<string>(nameof(GitHubIssueRow.Area)).ToList();
        Assert.All(areas, a => Assert.StartsWith("area-", a));
        double agree = areas.Zip(truth).Count(p => p.First == p.Second) / (double)areas.Count;
        Assert.Equal(m.MicroAccuracy, agree, 6);

        // The trained transformer exposes the model and its history, like ML.NET's LastTransformer.Model.
        var mlpModel = model.GetMlpStage().Model;
        Assert.Equal(22, mlpModel.ClassCount);
        Assert.Equal(15, mlpModel.History.Count);
        Assert.Contains("MLP 5000 -> [256] -> 22", mlpModel.Architecture);
        Assert.True(mlpModel.History[^1].TrainLoss < mlpModel.History[0].TrainLoss);
    }
}

internal static class ChainExtensions
{
    public static DeepPredictionTransformer<DeepMulticlassModelParameters> GetMlpStage(this ITransformer chain) =>
        ((IEnumerable<ITransformer>)chain).OfType<DeepPredictionTransformer<DeepMulticlassModelParameters>>().Single();
}
