using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using MLNetDeep.TestData;
using Xunit;
using Xunit.Abstractions;

namespace MLNetDeep.Tests;

/// <summary>ML.NET conventions users reach for: the binary decision threshold, example weights, pixels in 0–255.</summary>
public sealed class ConventionsTests
{
    private readonly ITestOutputHelper _out;
    public ConventionsTests(ITestOutputHelper output) => _out = output;

    [Fact]
    public void BinaryThreshold_FromChangeModelThreshold_DecidesPredictedLabel_IsSaved_AndExported()
    {
        var ml = new MLContext(seed: 1);
        var split = ml.Data.TrainTestSplit(RealData.Sms(ml), testFraction: 0.2, seed: 1);
        var features = Pipelines.SmsFeatures(ml).Fit(split.TrainSet);
        var test = features.Transform(split.TestSet);
        var model = ml.BinaryClassification.Trainers.Mlp(new MlpBinaryTrainer.Options { HiddenLayers = new[] { 32 }, NumberOfEpochs = 3 }).Fit(features.Transform(split.TrainSet));

        const float Threshold = 2f;
        var strict = ml.BinaryClassification.ChangeModelThreshold(model, Threshold);
        Assert.Equal(0f, model.Threshold); // the original is unchanged, as with ML.NET's ChangeModelThreshold
        Assert.Equal(Threshold, strict.Threshold);

        var scored = strict.Transform(test);
        float[] scores = TestUtil.Floats(scored, "Score");
        bool[] labels = scored.GetColumn<bool>("PredictedLabel").ToArray();
        Assert.Equal(scores.Select(s => s > Threshold), labels);
        bool[] defaults = model.Transform(test).GetColumn<bool>("PredictedLabel").ToArray();
        Assert.True(labels.Count(l => l) < defaults.Count(l => l), "a higher threshold predicts fewer positives");
        // (ML.NET's BinaryClassification.Evaluate thresholds Probability at 0.5 itself, whatever PredictedLabel says — as it
        // does for a model from its own ChangeModelThreshold — so the decision is checked on the column, as above.)
        _out.WriteLine($"SMS held-out: {defaults.Count(l => l)} positives at threshold 0, {labels.Count(l => l)} at threshold 2");

        // Saved and loaded in a fresh context: the threshold is part of the model.
        string path = Path.Combine(TestUtil.TempDir(), "strict.zip");
        ml.Model.Save(strict, test.Schema, path);
        var loaded = new MLContext().Model.Load(path, out _);
        Assert.Equal(labels, loaded.Transform(test).GetColumn<bool>("PredictedLabel"));
        Assert.Equal(Threshold, ((DeepPredictionTransformer<DeepBinaryModelParameters>)loaded).Threshold);

        // The exported ONNX graph decides with the same threshold.
        var onnx = new MemoryStream();
        ml.Model.ExportToOnnx(strict, onnx);
        using var session = new InferenceSession(onnx.ToArray());
        var rows = test.GetColumn<float[]>("Features").Take(200).ToArray();
        int width = rows[0].Length;
        var input = new DenseTensor<float>(rows.SelectMany(r => r).ToArray(), new[] { rows.Length, width });
        using var results = session.Run(new[] { NamedOnnxValue.CreateFromTensor("Features", input) });
        var onnxLabels = results.Single(r => r.Name == "PredictedLabel").AsEnumerable<bool>().ToArray();
        Assert.Equal(labels.Take(200), onnxLabels);

        // Only a binary classifier has a threshold.
        var bike = new MLContext(seed: 1);
        var reg = bike.Regression.Trainers.Mlp(new MlpRegressionTrainer.Options { NumberOfEpochs = 1 })
            .Fit(Pipelines.BikeFeatures(bike).Fit(TestUtil.BikeTrainSubset(bike, 300)).Transform(TestUtil.BikeTrainSubset(bike, 300)));
        var e = Assert.Throws<InvalidOperationException>(() => reg.Threshold = 1);
        Assert.Contains("binary", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => strict.Threshold = float.NaN);
    }

    public sealed class PixelsIn { [VectorType(1, 28, 28)] public float[] Features { get; set; } = Array.Empty<float>(); }
    public sealed class PixelsOut { [VectorType(1, 28, 28)] public float[] Pixels { get; set; } = Array.Empty<float>(); }

    [Fact]
    public void Pixels_InExtractPixelsDefaultRange_AreScaledByTheCnn_AndSaidSo()
    {
        var ml = new MLContext(seed: 1);
        var messages = new List<string>();
        ml.Log += (_, e) => { if (e.Message.Contains("MLNetDeep: the pixels")) lock (messages) messages.Add(e.Message); };
        // Fashion-MNIST as ExtractPixels gives pixels by default: 0-255.
        var to255 = ml.Transforms.CustomMapping<PixelsIn, PixelsOut>((i, o) => o.Pixels = i.Features.Select(v => v * 255f).ToArray(), contractName: null);
        var train = to255.Fit(FashionMnist.Train(ml, 2000)).Transform(FashionMnist.Train(ml, 2000));
        var test = to255.Fit(FashionMnist.Test(ml, 500)).Transform(FashionMnist.Test(ml, 500));
        Assert.Equal(255f, train.GetColumn<float[]>("Pixels").Max(p => p.Max()));
        var model = ml.MulticlassClassification.Trainers.Cnn(new CnnMulticlassTrainer.Options
        {
            FeatureColumnName = "Pixels", Architecture = CnnArchitecture.LeNet5(), NumberOfEpochs = 2,
        }).Fit(train);
        Assert.Contains(messages, m => m.Contains("scales them by 1/255"));
        double accuracy = ml.MulticlassClassification.Evaluate(model.Transform(test)).MacroAccuracy;
        _out.WriteLine($"LeNet-5, 2 epochs on 2 000 images in 0-255: held-out macro accuracy {accuracy:F4}");
        Assert.True(accuracy > 0.65, $"accuracy {accuracy:F4}");

        // The scale is part of the saved model: a fresh context scores the same 0-255 column identically.
        string path = Path.Combine(TestUtil.TempDir(), "cnn255.zip");
        ml.Model.Save(model, train.Schema, path);
        var loaded = new MLContext().Model.Load(path, out _);
        Assert.Equal(model.Transform(test).GetColumn<float[]>("Score").SelectMany(v => v), loaded.Transform(test).GetColumn<float[]>("Score").SelectMany(v => v));
    }

    public sealed class Weighted { public float Weight { get; set; } }

    private static IDataView WithWeights(MLContext ml, IDataView data, Func<bool, float> weight) =>
        ml.Transforms.CustomMapping<RealData.SpamLabel, Weighted>((l, w) => w.Weight = weight(l.Label), contractName: null).Fit(data).Transform(data);

    [Fact]
    public void ExampleWeights_WeighTheLoss_OnesTrainAsWithout_AndHeavierSpamRaisesRecall()
    {
        var ml = new MLContext(seed: 1);
        var split = ml.Data.TrainTestSplit(RealData.Sms(ml), testFraction: 0.2, seed: 1);
        var features = Pipelines.SmsFeatures(ml).Fit(split.TrainSet);
        var test = features.Transform(split.TestSet);
        MlpBinaryTrainer.Options Options(string? weights) => new() { HiddenLayers = new[] { 32 }, NumberOfEpochs = 3, ExampleWeightColumnName = weights };
        IDataView Train(Func<bool, float> weight) => WithWeights(ml, features.Transform(split.TrainSet), weight);

        var plain = ml.BinaryClassification.Trainers.Mlp(Options(null)).Fit(features.Transform(split.TrainSet));
        var ones = ml.BinaryClassification.Trainers.Mlp(Options("Weight")).Fit(Train(_ => 1f));
        var spam10 = ml.BinaryClassification.Trainers.Mlp(Options("Weight")).Fit(Train(spam => spam ? 10f : 1f));
        float[] a = TestUtil.Floats(plain.Transform(test), "Probability"), b = TestUtil.Floats(ones.Transform(test), "Probability");
        double largest = a.Zip(b).Max(p => Math.Abs(p.First - p.Second));
        Assert.True(largest < 1e-3, $"weights of 1 should train as no weights: largest probability difference {largest:G3}");
        var mPlain = ml.BinaryClassification.Evaluate(plain.Transform(test));
        var mSpam = ml.BinaryClassification.Evaluate(spam10.Transform(test));
        _out.WriteLine($"SMS held-out: no weights recall {mPlain.PositiveRecall:F4} precision {mPlain.PositivePrecision:F4}; spam weighted 10: recall {mSpam.PositiveRecall:F4} precision {mSpam.PositivePrecision:F4}; weights 1 vs none: largest difference {largest:G3}");
        Assert.True(mSpam.PositiveRecall > mPlain.PositiveRecall, "weighting the spam rows 10x should find more spam");
    }

    [Fact]
    public void ExampleWeights_OfZero_LeaveRowsOut_ForRegressionAndForecasting()
    {
        // Bike rentals with every other training row's label corrupted (x 20): weight 0 on those rows trains as the clean rows do.
        var ml = new MLContext(seed: 1);
        var shuffled = ml.Data.ShuffleRows(RealData.BikeTrain(ml), seed: 1);
        var raw = ml.Data.TakeRows(shuffled, 4000);
        var rows = ml.Data.CreateEnumerable<BikeRow>(raw, reuseRowObject: false).ToList();
        var corrupted = rows.Select((r, i) => new WeightedBike(r, i % 2 == 0 ? r.Count * 20 : r.Count, i % 2 == 0 ? 0f : 1f)).ToList();
        var data = ml.Data.LoadFromEnumerable(corrupted);
        var pipeline = ml.Transforms.Concatenate("Features", BikeRow.FeatureColumns).Append(ml.Transforms.NormalizeMeanVariance("Features"));
        var test = ml.Data.TakeRows(ml.Data.SkipRows(shuffled, 4000), 2000); // held-out rows of the same hours
        double R2(string? weights)
        {
            var model = pipeline.Append(ml.Regression.Trainers.Mlp(new MlpRegressionTrainer.Options
            {
                LabelColumnName = nameof(WeightedBike.Target), HiddenLayers = new[] { 64, 32 }, NumberOfEpochs = 20, LearningRate = 3e-3, ExampleWeightColumnName = weights,
            })).Fit(data);
            return ml.Regression.Evaluate(model.Transform(test)).RSquared; // their Label is the true count
        }
        double weighted = R2(nameof(WeightedBike.Weight)), unweighted = R2(null);
        data = ml.Data.FilterRowsByColumn(data, nameof(WeightedBike.Weight), lowerBound: 0.5);
        double clean = R2(null);
        _out.WriteLine($"bike, half the labels corrupted x20: held-out R² {weighted:F4} with weight 0 on them, {unweighted:F4} without weights, {clean:F4} trained on the clean half alone");
        Assert.True(clean > 0.3, $"clean R² {clean:F4}"); // a small MLP on 2 000 rows: it learned something
        Assert.True(Math.Abs(weighted - clean) < 0.1, $"weighted R² {weighted:F4} vs clean {clean:F4}");
        Assert.True(unweighted < clean - 0.5, $"unweighted R² {unweighted:F4}");

        // Forecasting takes weights too: weights of 1 train as no weights; weight 0 on every other window still trains.
        var windows = Sunspots.Windows(ml);
        int n = 0;
        var ones = ml.Transforms.CustomMapping<WindowIndex, Weighted>((_, w) => w.Weight = 1f, contractName: null).Fit(windows.Train).Transform(windows.Train);
        var half = ml.Transforms.CustomMapping<WindowIndex, Weighted>((_, w) => w.Weight = Interlocked.Increment(ref n) % 2, contractName: null).Fit(windows.Train).Transform(windows.Train);
        float[] Forecast(IDataView train, string? weights) => ml.Forecasting.Trainers.Mlp(new MlpForecaster.Options { HiddenLayers = new[] { 16 }, NumberOfEpochs = 3, ExampleWeightColumnName = weights })
            .Fit(train).Transform(windows.Test!).GetColumn<float[]>("Score").SelectMany(v => v).ToArray();
        float[] plain = Forecast(windows.Train, null), weightedOnes = Forecast(ones, nameof(Weighted.Weight));
        Assert.True(plain.Zip(weightedOnes).Max(p => Math.Abs(p.First - p.Second)) < 1e-2, "forecaster: weights of 1 should train as no weights");
        Assert.All(Forecast(half, nameof(Weighted.Weight)), v => Assert.True(float.IsFinite(v)));
    }

    public sealed class WindowIndex { }

    public sealed class WeightedBike
    {
        public WeightedBike() { }
        public WeightedBike(BikeRow r, float target, float weight)
        {
            Season = r.Season; Year = r.Year; Month = r.Month; Hour = r.Hour; Holiday = r.Holiday; Weekday = r.Weekday; WorkingDay = r.WorkingDay;
            Weather = r.Weather; Temperature = r.Temperature; FeelsLike = r.FeelsLike; Humidity = r.Humidity; WindSpeed = r.WindSpeed;
            Count = r.Count; Target = target; Weight = weight;
        }
        public float Season { get; set; }
        public float Year { get; set; }
        public float Month { get; set; }
        public float Hour { get; set; }
        public float Holiday { get; set; }
        public float Weekday { get; set; }
        public float WorkingDay { get; set; }
        public float Weather { get; set; }
        public float Temperature { get; set; }
        public float FeelsLike { get; set; }
        public float Humidity { get; set; }
        public float WindSpeed { get; set; }
        public float Count { get; set; }
        public float Target { get; set; }
        public float Weight { get; set; }
    }
}
