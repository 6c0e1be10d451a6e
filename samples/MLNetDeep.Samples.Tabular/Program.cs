// MLNetDeep main sample: deep MLPs trained inside ordinary ML.NET pipelines, compared in the same run with
// ML.NET's classic trainers on three real data sets, then saved, reloaded in a fresh MLContext and used through
// a PredictionEngine the way Model Builder's generated code does.
//
//   dotnet run -c Release --project samples/MLNetDeep.Samples.Tabular [-- --output DIR]
using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Text;
using MLNetDeep;
using MLNetDeep.TestData;
using MLNetDeep.Samples;
using static MLNetDeep.Samples.SampleKit;

string output = args.SkipWhile(a => a != "--output").Skip(1).FirstOrDefault() ?? Path.Combine(Directory.GetCurrentDirectory(), "mlnetdeep-output");
Directory.CreateDirectory(output);
var ml = new MLContext(seed: 1);
ml.Log += (_, e) => { if (e.RawMessage.StartsWith("MLNetDeep: epoch", StringComparison.Ordinal)) Console.WriteLine("    " + e.RawMessage["MLNetDeep: ".Length..]); };
Console.WriteLine($"MLNetDeep sample — data from {DataPaths.Root}; models to {output}");

// ---------- Regression: bike sharing, hourly rentals (label cnt) ----------
{
    var train = RealData.BikeTrain(ml);
    var test = RealData.BikeTest(ml);
    var features = ml.Transforms.Concatenate("Features", BikeRow.FeatureColumns).Append(ml.Transforms.NormalizeMeanVariance("Features"));
    var board = new Leaderboard("Regression — bike-hour (train 13948 rows, test 3429 rows)", "R^2", "RMSE");
    ITransformer? mlp = null;
    foreach (var (name, trainer) in new (string, IEstimator<ITransformer>)[]
    {
        ("MLNetDeep MLP [256,128]", ml.Regression.Trainers.Mlp(new MlpRegressionTrainer.Options
            { HiddenLayers = new[] { 256, 128 }, NumberOfEpochs = 40, LearningRate = 3e-3, Schedule = LearningRateSchedule.OneCycle, Dropout = 0 })),
        ("SDCA", ml.Regression.Trainers.Sdca()),
        ("FastTree", ml.Regression.Trainers.FastTree()),
        ("LightGbm", ml.Regression.Trainers.LightGbm()),
    })
    {
        var (model, seconds) = Timed(() => features.Append(trainer).Fit(train));
        var m = ml.Regression.Evaluate(model.Transform(test));
        board.Add(name, seconds, m.RSquared, m.RootMeanSquaredError);
        mlp ??= model;
    }
    board.Print();
    SaveReloadPredict<BikeRow, RegressionScore>(ml, mlp!, train.Schema, Path.Combine(output, "bike-mlp.zip"),
        ml.Data.CreateEnumerable<BikeRow>(test, reuseRowObject: false).First(), p => $"predicted rentals {p.Score:F0}");
}

// ---------- Binary: SMS spam ----------
{
    var split = ml.Data.TrainTestSplit(RealData.Sms(ml), testFraction: 0.2, seed: 1);
    var features = ml.Transforms.Text.FeaturizeText("Features", new TextFeaturizingEstimator.Options
        {
            WordFeatureExtractor = new WordBagEstimator.Options { NgramLength = 2 },
            CharFeatureExtractor = new WordBagEstimator.Options { NgramLength = 3, UseAllLengths = false },
        }, nameof(SmsRow.Message))
        .Append(ml.Transforms.FeatureSelection.SelectFeaturesBasedOnCount("Features", count: 3));
    var board = new Leaderboard("Binary — SMS spam (80/20 split of 5574 messages)", "accuracy", "AUC", "F1");
    ITransformer? mlp = null;
    foreach (var (name, trainer) in new (string, IEstimator<ITransformer>)[]
    {
        ("MLNetDeep MLP [128]", ml.BinaryClassification.Trainers.Mlp(new MlpBinaryTrainer.Options { HiddenLayers = new[] { 128 }, NumberOfEpochs = 5 })),
        ("SDCA logistic regression", ml.BinaryClassification.Trainers.SdcaLogisticRegression()),
        ("FastTree", ml.BinaryClassification.Trainers.FastTree()),
    })
    {
        var (model, seconds) = Timed(() => features.Append(trainer).Fit(split.TrainSet));
        var m = ml.BinaryClassification.Evaluate(model.Transform(split.TestSet));
        board.Add(name, seconds, m.Accuracy, m.AreaUnderRocCurve, m.F1Score);
        mlp ??= model;
    }
    board.Print();
    SaveReloadPredict<SmsInput, SpamPrediction>(ml, mlp!, split.TrainSet.Schema, Path.Combine(output, "sms-mlp.zip"),
        new SmsInput { Message = "WINNER!! You have won a free prize, call 09061701461 now to claim" },
        p => $"spam: {p.PredictedLabel} (probability {p.Probability:F3})");
}

// ---------- Multiclass: GitHub issues, 22 unbalanced areas ----------
{
    var split = ml.Data.TrainTestSplit(RealData.GitHubIssues(ml), testFraction: 0.2, seed: 1);
    var features = ml.Transforms.Conversion.MapValueToKey("Label", nameof(GitHubIssueRow.Area))
        .Append(ml.Transforms.Text.FeaturizeText("TitleFeaturized", nameof(GitHubIssueRow.Title)))
        .Append(ml.Transforms.Text.FeaturizeText("DescriptionFeaturized", nameof(GitHubIssueRow.Description)))
        .Append(ml.Transforms.Concatenate("Features", "TitleFeaturized", "DescriptionFeaturized"))
        .Append(ml.Transforms.FeatureSelection.SelectFeaturesBasedOnMutualInformation("Features", slotsInOutput: 5000));
    var board = new Leaderboard("Multiclass — GitHub issues (80/20 split of 1615 issues, 22 areas)", "micro-acc", "macro-acc", "log-loss");
    ITransformer? mlp = null;
    foreach (var (name, trainer) in new (string, IEstimator<ITransformer>)[]
    {
        ("MLNetDeep MLP [256]", ml.MulticlassClassification.Trainers.Mlp(new MlpMulticlassTrainer.Options { HiddenLayers = new[] { 256 }, NumberOfEpochs = 15, Dropout = 0.3f })),
        ("SdcaMaximumEntropy", ml.MulticlassClassification.Trainers.SdcaMaximumEntropy()),
        ("LightGbm", ml.MulticlassClassification.Trainers.LightGbm()),
    })
    {
        var (model, seconds) = Timed(() => features.Append(trainer).Append(ml.Transforms.Conversion.MapKeyToValue("PredictedArea", "PredictedLabel")).Fit(split.TrainSet));
        var m = ml.MulticlassClassification.Evaluate(model.Transform(split.TestSet));
        board.Add(name, seconds, m.MicroAccuracy, m.MacroAccuracy, m.LogLoss);
        mlp ??= model;
    }
    board.Print();
    SaveReloadPredict<GitHubIssueRow, AreaPrediction>(ml, mlp!, split.TrainSet.Schema, Path.Combine(output, "github-mlp.zip"),
        new GitHubIssueRow { Title = "HttpClient throws on redirect to https", Description = "When the server answers 302 the socket handler fails with an SslStream exception" },
        p => $"area: {p.PredictedArea}");
}
return 0;

sealed class RegressionScore { public float Score { get; set; } }
sealed class SmsInput { public string Message { get; set; } = ""; public bool Label { get; set; } }
sealed class SpamPrediction { public bool PredictedLabel { get; set; } public float Probability { get; set; } }
sealed class AreaPrediction { public string PredictedArea { get; set; } = ""; }
