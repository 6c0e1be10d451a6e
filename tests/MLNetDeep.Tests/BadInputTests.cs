using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetDeep.TestData;
using Xunit;

namespace MLNetDeep.Tests;

/// <summary>Bad data and bad options give exceptions of the right type that name the column or option.</summary>
public sealed class BadInputTests
{
    private sealed class Row
    {
        public float Label { get; set; }
        [VectorType(3)] public float[] Features { get; set; } = new float[3];
    }

    private sealed class KeyRow
    {
        public string Label { get; set; } = "";
        [VectorType(3)] public float[] Features { get; set; } = new float[3];
    }

    private static IEnumerable<Row> Rows(int n, Func<int, Row?>? special = null) =>
        Enumerable.Range(0, n).Select(i => special?.Invoke(i) ?? new Row { Label = i % 7, Features = new[] { i % 3f, i % 5f, 1f } });

    private static MlpRegressionTrainer.Options Opt() => new() { NumberOfEpochs = 1, HiddenLayers = new[] { 4 } };

    [Fact]
    public void WrongVectorSizeAtScoring_IsRejectedNamingTheFeatures()
    {
        var ml = new MLContext(seed: 1);
        var train = TestUtil.BikeTrainSubset(ml, 300);
        var model = TestUtil.BikeMlp(ml, Opt()).Fit(train);
        var mlpStage = ((IEnumerable<ITransformer>)model).Last();
        var wrong = ml.Transforms.Concatenate("Features", BikeRow.FeatureColumns.Skip(1).ToArray()).Fit(train).Transform(train);
        var e = Assert.ThrowsAny<Exception>(() => mlpStage.Transform(wrong).Preview(5));
        Assert.True(e is ArgumentOutOfRangeException or InvalidOperationException, e.GetType().ToString());
        Assert.Contains("Feature column 'Features'", e.Message);
        Assert.Contains("Vector<Single, 11>", e.Message);
        Assert.Contains("Vector<Single, 12>", e.Message);
    }

    [Fact]
    public void WrongVectorSizeThroughPredictionEngine_IsRejected()
    {
        var ml = new MLContext(seed: 1);
        var model = ml.Regression.Trainers.Mlp(Opt()).Fit(ml.Data.LoadFromEnumerable(Rows(50)));
        var e = Assert.ThrowsAny<Exception>(() => ml.Model.CreatePredictionEngine<FourFeatures, ScoreOut>(model).Predict(new FourFeatures()));
        Assert.Contains("Feature column 'Features'", e.Message);
        Assert.Contains("Vector<Single, 4>", e.Message);
    }

    private sealed class FourFeatures { [VectorType(4)] public float[] Features { get; set; } = new float[4]; }
    private sealed class ScoreOut { public float Score { get; set; } }

    [Fact]
    public void NaNLabel_NamesTheColumnAndRow()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(Rows(50, i => i == 17 ? new Row { Label = float.NaN, Features = new[] { 1f, 2f, 3f } } : null));
        var e = Assert.Throws<InvalidOperationException>(() => ml.Regression.Trainers.Mlp(Opt()).Fit(data));
        Assert.Contains("Label column 'Label'", e.Message);
        Assert.Contains("row 17", e.Message);
    }

    [Fact]
    public void NaNFeature_NamesTheColumnRowAndSlot_CachedAndStreamed()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(Rows(50, i => i == 23 ? new Row { Label = 1, Features = new[] { 1f, float.NaN, 3f } } : null));
        foreach (var caching in new[] { DataCaching.Memory, DataCaching.None })
        {
            var o = Opt();
            o.Caching = caching;
            var e = Assert.Throws<InvalidOperationException>(() => ml.Regression.Trainers.Mlp(o).Fit(data));
            Assert.Contains("Feature column 'Features'", e.Message);
            Assert.True(e.Message.Contains("row 23, slot 1"), e.Message);
        }
    }

    [Fact]
    public void NonKeyLabel_ForMulticlass_SuggestsMapValueToKey()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(new[] { new KeyRow { Label = "a" }, new KeyRow { Label = "b" } });
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.Mlp().Fit(data));
        Assert.Equal("LabelColumnName", e.ParamName);
        Assert.Contains("'Label'", e.Message);
        Assert.Contains("MapValueToKey", e.Message);
    }

    [Fact]
    public void FloatLabel_ForBinary_AndMissingColumns_AreNamed()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(Rows(20));
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => ml.BinaryClassification.Trainers.Mlp().Fit(data));
        Assert.Contains("Boolean", e.Message);
        var f = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Regression.Trainers.Mlp(featureColumnName: "Pixels").Fit(data));
        Assert.Contains("'Pixels'", f.Message);
        var g = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Regression.Trainers.Mlp(labelColumnName: "Price").Fit(data));
        Assert.Contains("'Price'", g.Message);
    }

    [Fact]
    public void EmptyData_SaysSo()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(Rows(0));
        foreach (var caching in new[] { DataCaching.Memory, DataCaching.None })
        {
            var o = Opt();
            o.Caching = caching;
            var e = Assert.Throws<InvalidOperationException>(() => ml.Regression.Trainers.Mlp(o).Fit(data));
            Assert.Contains("training data is empty", e.Message);
        }
    }

    [Fact]
    public void InvalidOptions_AreRejectedWhenTheTrainerIsCreated_NamingTheOption()
    {
        var ml = new MLContext();
        void Check(Action<MlpRegressionTrainer.Options> edit, string option)
        {
            var o = new MlpRegressionTrainer.Options();
            edit(o);
            var e = Assert.ThrowsAny<ArgumentException>(() => ml.Regression.Trainers.Mlp(o));
            Assert.Equal(option, e.ParamName);
            Assert.Contains(option, e.Message);
        }
        Check(o => o.BatchSize = 0, "BatchSize");
        Check(o => o.NumberOfEpochs = -1, "NumberOfEpochs");
        Check(o => o.LearningRate = double.NaN, "LearningRate");
        Check(o => o.HiddenLayers = new[] { 16, 0 }, "HiddenLayers");
        Check(o => o.HiddenLayers = null!, "HiddenLayers");
        Check(o => o.Dropout = 1, "Dropout");
        Check(o => o.ValidationFraction = 1.5, "ValidationFraction");
        Check(o => o.Nesterov = true, "Nesterov");
        Check(o => o.ClassWeights = new[] { -1f, 1f }, "ClassWeights");
        Check(o => o.MinimumLearningRate = 1, "MinimumLearningRate");
    }

    [Fact]
    public void ClassWeights_OfTheWrongLength_NameTheClassCount()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(new[] { new KeyRow { Label = "a" }, new KeyRow { Label = "b" } }))
            .Transform(ml.Data.LoadFromEnumerable(new[] { new KeyRow { Label = "a" }, new KeyRow { Label = "b" } }));
        var o = new MlpMulticlassTrainer.Options { ClassWeights = new[] { 1f, 2f, 3f } };
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.Mlp(o).Fit(data));
        Assert.Contains("3 values", e.Message);
        Assert.Contains("2 classes", e.Message);
    }
}
