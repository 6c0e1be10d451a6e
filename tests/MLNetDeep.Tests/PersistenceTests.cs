using System.IO.Compression;
using Microsoft.ML;
using MLNetDeep.TestData;
using Xunit;
using Xunit.Abstractions;

namespace MLNetDeep.Tests;

/// <summary>Save with mlContext.Model.Save; load in another process with new MLContext().Model.Load; same predictions.</summary>
public sealed class PersistenceTests
{
    private readonly ITestOutputHelper _out;
    public PersistenceTests(ITestOutputHelper output) => _out = output;

    private static void AssertSamePredictionsInOtherProcess(MLContext ml, ITransformer model, IDataView trainData, IDataView scoreData, string dataSet)
    {
        string path = Path.Combine(TestUtil.TempDir(), "model.zip");
        ml.Model.Save(model, trainData.Schema, path);
        var here = PredictionDump.Lines(model.Transform(scoreData)).ToArray();
        var there = TestUtil.PredictInOtherProcess(path, dataSet);
        Assert.NotEmpty(here);
        Assert.Equal(here.Length, there.Length);
        for (int i = 0; i < here.Length; i++)
            Assert.True(here[i] == there[i], $"row {i}: in-process {here[i]} vs other process {there[i]}");
    }

    [Fact]
    public void Regression_ConcatenateNormalizeMlp_LoadsInAnotherProcess_WithIdenticalPredictions()
    {
        var ml = new MLContext(seed: 3);
        var train = TestUtil.BikeTrainSubset(ml);
        var model = TestUtil.BikeMlp(ml, new MlpRegressionTrainer.Options { NumberOfEpochs = 2, BatchNorm = true, Dropout = 0.2f }).Fit(train);
        AssertSamePredictionsInOtherProcess(ml, model, train, RealData.BikeTest(ml), "bike");
    }

    [Fact]
    public void Binary_FeaturizeTextMlp_LoadsInAnotherProcess_WithIdenticalScoresAndProbabilities()
    {
        var ml = new MLContext(seed: 3);
        var data = RealData.Sms(ml);
        var model = Pipelines.SmsFeatures(ml).Append(ml.BinaryClassification.Trainers.Mlp(hiddenLayers: new[] { 32 }, numberOfEpochs: 1)).Fit(data);
        AssertSamePredictionsInOtherProcess(ml, model, data, data, "sms");
    }

    [Fact]
    public void Multiclass_WithMapKeyToValue_LoadsInAnotherProcess_WithIdenticalScores()
    {
        var ml = new MLContext(seed: 3);
        var data = RealData.GitHubIssues(ml);
        var model = Pipelines.GitHubFeatures(ml)
            .Append(ml.MulticlassClassification.Trainers.Mlp(hiddenLayers: new[] { 64 }, numberOfEpochs: 2))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedArea", "PredictedLabel"))
            .Fit(data);
        AssertSamePredictionsInOtherProcess(ml, model, data, data, "github");
    }

    [Fact]
    public void LoadedModel_KeepsHistoryAndArchitecture_AndPredictionEngineWorks()
    {
        var ml = new MLContext(seed: 3);
        var train = TestUtil.BikeTrainSubset(ml, 1000);
        var model = TestUtil.BikeMlp(ml, new MlpRegressionTrainer.Options { NumberOfEpochs = 3, HiddenLayers = new[] { 16 } }).Fit(train);
        string path = Path.Combine(TestUtil.TempDir(), "model.zip");
        ml.Model.Save(model, train.Schema, path);

        var loaded = new MLContext().Model.Load(path, out var inputSchema);
        Assert.NotNull(inputSchema.GetColumnOrNull("Hour"));
        var stage = ((IEnumerable<ITransformer>)loaded).OfType<DeepPredictionTransformer<DeepRegressionModelParameters>>().Single();
        var original = ((IEnumerable<ITransformer>)model).OfType<DeepPredictionTransformer<DeepRegressionModelParameters>>().Single();
        Assert.Equal(original.Model.History, stage.Model.History);
        Assert.Equal(original.Model.Architecture, stage.Model.Architecture);
        Assert.Equal(original.Model.LabelMean, stage.Model.LabelMean);

        var row = ml.Data.CreateEnumerable<BikeRow>(RealData.BikeTest(ml), reuseRowObject: false).First();
        var engine1 = ml.Model.CreatePredictionEngine<BikeRow, ScoreRow>(model);
        var engine2 = ml.Model.CreatePredictionEngine<BikeRow, ScoreRow>(loaded);
        Assert.Equal(engine1.Predict(row).Score, engine2.Predict(row).Score);
    }

    public sealed class ScoreRow { public float Score { get; set; } }

    [Fact]
    public void TruncatedModelFile_GivesAClearException()
    {
        var ml = new MLContext(seed: 3);
        var train = TestUtil.BikeTrainSubset(ml, 500);
        var model = TestUtil.BikeMlp(ml, new MlpRegressionTrainer.Options { NumberOfEpochs = 1, HiddenLayers = new[] { 8 } }).Fit(train);
        string path = Path.Combine(TestUtil.TempDir(), "model.zip");
        ml.Model.Save(model, train.Schema, path);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes.AsSpan(0, bytes.Length / 2).ToArray());
        var e = Assert.ThrowsAny<Exception>(() => new MLContext().Model.Load(path, out _));
        _out.WriteLine(e.GetType() + ": " + e.Message);
        Assert.True(e is InvalidDataException || e.Message.Contains("zip", StringComparison.OrdinalIgnoreCase) || e.Message.Contains("Central Directory"), e.ToString());
    }

    [Fact]
    public void CorruptWeights_GiveInvalidDataExceptionNamingTheWeights()
    {
        var ml = new MLContext(seed: 3);
        var train = TestUtil.BikeTrainSubset(ml, 500);
        var model = TestUtil.BikeMlp(ml, new MlpRegressionTrainer.Options { NumberOfEpochs = 1, HiddenLayers = new[] { 8 } }).Fit(train);
        string path = Path.Combine(TestUtil.TempDir(), "model.zip");
        ml.Model.Save(model, train.Schema, path);
        using (var zip = ZipFile.Open(path, ZipArchiveMode.Update))
        {
            var entry = zip.Entries.Single(e => e.FullName.EndsWith("Weights.bin", StringComparison.Ordinal));
            byte[] content;
            using (var s = entry.Open()) { var ms = new MemoryStream(); s.CopyTo(ms); content = ms.ToArray(); }
            content[content.Length - 5] ^= 0x5A;
            string name = entry.FullName;
            entry.Delete();
            using var w = zip.CreateEntry(name).Open();
            w.Write(content);
        }
        var e = Assert.ThrowsAny<Exception>(() => new MLContext().Model.Load(path, out _));
        while (e.InnerException is not null && e is not InvalidDataException) e = e.InnerException;
        Assert.IsType<InvalidDataException>(e);
        Assert.Contains("weights", e.Message);
        Assert.Contains("corrupt", e.Message);
    }
}
