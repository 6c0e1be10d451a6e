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
}
