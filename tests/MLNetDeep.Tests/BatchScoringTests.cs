using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetDeep.TestData;
using Xunit;

namespace MLNetDeep.Tests;

/// <summary>Transform scores in batches; the result must not depend on the batch size and must match PredictionEngine.</summary>
public sealed class BatchScoringTests
{
    private readonly Xunit.Abstractions.ITestOutputHelper _out;
    public BatchScoringTests(Xunit.Abstractions.ITestOutputHelper output) => _out = output;

    private sealed class ImageIn
    {
        public uint Label { get; set; }
        [VectorType(1, 28, 28)] public float[] Features { get; set; } = Array.Empty<float>();
    }

    private sealed class ImageOut
    {
        public float[] Score { get; set; } = Array.Empty<float>();
        public uint PredictedLabel { get; set; }
    }

    private static float[][] Scores(IDataView scored) =>
        scored.GetColumn<float[]>("Score").ToArray();

    [Fact]
    public void BatchSizes_AndPredictionEngine_AgreeOnEveryRow()
    {
        var ml = new MLContext(seed: 1);
        var model = ml.MulticlassClassification.Trainers.Cnn(new CnnMulticlassTrainer.Options { Architecture = CnnArchitecture.LeNet5(), NumberOfEpochs = 1 })
            .Fit(FashionMnist.Train(ml, 1000));
        var test = FashionMnist.Test(ml, 300);
        model.ScoringBatchSize = 256;
        var big = Scores(model.Transform(test));
        model.ScoringBatchSize = 7; // 300 = 42 * 7 + 6: a partial last batch
        var small = Scores(model.Transform(test));
        model.ScoringBatchSize = 1;
        var single = Scores(model.Transform(test));
        Assert.Equal(300, big.Length);

        var engine = ml.Model.CreatePredictionEngine<ImageIn, ImageOut>(model);
        var rows = ml.Data.CreateEnumerable<ImageIn>(test, reuseRowObject: false).ToList();
        int differing = 0;
        double largest = 0;
        for (int i = 0; i < rows.Count; i++)
        {
            var p = engine.Predict(rows[i]);
            // README: a batch of one is PredictionEngine's computation, bit for bit; larger batches agree to 1e-5.
            Assert.Equal(single[i], p.Score);
            if (!big[i].SequenceEqual(p.Score)) differing++;
            largest = Math.Max(largest, big[i].Zip(p.Score).Max(z => Math.Abs(z.First - z.Second)));
            for (int k = 0; k < 10; k++)
            {
                Assert.True(Math.Abs(big[i][k] - small[i][k]) < 1e-5, $"row {i} class {k}: batch 256 {big[i][k]} vs batch 7 {small[i][k]}");
                Assert.True(Math.Abs(big[i][k] - single[i][k]) < 1e-5, $"row {i} class {k}: batch 256 {big[i][k]} vs batch 1 {single[i][k]}");
                Assert.True(Math.Abs(big[i][k] - p.Score[k]) < 1e-5, $"row {i} class {k}: Transform {big[i][k]} vs PredictionEngine {p.Score[k]}");
            }
            Assert.Equal((uint)Array.IndexOf(p.Score, p.Score.Max()) + 1, p.PredictedLabel);
        }
        _out.WriteLine($"PredictionEngine vs Transform (batch 256): {differing} of {rows.Count} rows differ in the last bits, largest difference {largest:G3}; vs batch 1: identical");
    }

    [Fact]
    public void OutputColumns_CarryTheAnnotationsOfMLNetsScorers()
    {
        var ml = new MLContext(seed: 1);
        var model = ml.MulticlassClassification.Trainers.Cnn(new CnnMulticlassTrainer.Options { Architecture = CnnArchitecture.LeNet5(), NumberOfEpochs = 1 })
            .Fit(FashionMnist.Train(ml, 300));
        var schema = model.Transform(FashionMnist.Test(ml, 10)).Schema;
        VBuffer<ReadOnlyMemory<char>> slotNames = default;
        schema["Score"].GetSlotNames(ref slotNames);
        Assert.Equal(FashionMnist.ClassNames, slotNames.DenseValues().Select(n => n.ToString()));
        VBuffer<ReadOnlyMemory<char>> keyValues = default;
        schema["PredictedLabel"].GetKeyValues(ref keyValues);
        Assert.Equal(FashionMnist.ClassNames, keyValues.DenseValues().Select(n => n.ToString()));
        ReadOnlyMemory<char> kind = default;
        schema["Score"].Annotations.GetValue("ScoreColumnKind", ref kind);
        Assert.Equal("MulticlassClassification", kind.ToString());

        // A consumer reading only a pass-through column never needs the network.
        Assert.Equal(10, model.Transform(FashionMnist.Test(ml, 10)).GetColumn<uint>("Label").Count());
    }
}

public sealed class FeatureImportanceTests
{
    [Fact]
    public void PermutationFeatureImportance_RanksHourFirstForBikeRentals()
    {
        var ml = new MLContext(seed: 1);
        var train = MLNetDeep.TestData.RealData.BikeTrain(ml);
        var features = Pipelines.BikeFeatures(ml).Fit(train);
        var prepared = features.Transform(train);
        var mlp = ml.Regression.Trainers.Mlp(new MlpRegressionTrainer.Options { HiddenLayers = new[] { 64, 32 }, NumberOfEpochs = 8, LearningRate = 3e-3 }).Fit(prepared);
        var test = features.Transform(MLNetDeep.TestData.RealData.BikeTest(ml));
        var importance = ml.Regression.PermutationFeatureImportance(mlp, test, permutationCount: 1);
        var drops = importance.Select(m => m.RSquared.Mean).ToArray();
        Assert.Equal(MLNetDeep.TestData.BikeRow.FeatureColumns.Length, drops.Length);
        int mostImportant = Array.IndexOf(drops, drops.Min()); // largest fall of R^2
        Assert.Equal("Hour", MLNetDeep.TestData.BikeRow.FeatureColumns[mostImportant]);
    }
}
