using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetDeep.TestData;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;

namespace MLNetDeep.Tests;

/// <summary>Convolutional networks on real images: Fashion-MNIST subsets and the photo set through ImageAnalytics.</summary>
public sealed class CnnTests
{
    private readonly ITestOutputHelper _out;
    public CnnTests(ITestOutputHelper output) => _out = output;

    private static DeepPredictionTransformer<DeepMulticlassModelParameters> Stage(ITransformer t) =>
        t as DeepPredictionTransformer<DeepMulticlassModelParameters>
        ?? ((IEnumerable<ITransformer>)t).OfType<DeepPredictionTransformer<DeepMulticlassModelParameters>>().Single();

    [Fact]
    public void SmallCnn_OnAFashionMnistSubset_Reaches080OnHeldOutTestImages()
    {
        var ml = new MLContext(seed: 1);
        var model = ml.MulticlassClassification.Trainers.Cnn(new CnnMulticlassTrainer.Options { NumberOfEpochs = 4 }).Fit(FashionMnist.Train(ml, 5000));
        var m = ml.MulticlassClassification.Evaluate(model.Transform(FashionMnist.Test(ml, 2000)));
        _out.WriteLine($"SmallCnn, 5000 training images, 4 epochs: test accuracy {m.MicroAccuracy:F4} (macro {m.MacroAccuracy:F4}) on 2000 test images");
        _out.WriteLine(m.ConfusionMatrix.GetFormattedConfusionTable());
        Assert.True(m.MicroAccuracy >= 0.80, $"accuracy {m.MicroAccuracy:F4} < 0.80");
        Assert.Equal("CNN VGG [2x32, 2x64] + dense 128 on 1x28x28 -> 10", model.Model.Architecture);
        Assert.Equal(4, model.Model.History.Count);
    }

    [Fact]
    public void Presets_AndACustomStack_Train()
    {
        var ml = new MLContext(seed: 2);
        var train = FashionMnist.Train(ml, 600);
        var custom = CnnArchitecture.Custom(
            CnnLayer.Conv(8, 3), CnnLayer.BatchNorm(), CnnLayer.Activation(DeepActivation.Gelu), CnnLayer.AvgPool(2),
            CnnLayer.Conv(16, 3, stride: 2, padding: ConvPadding.Valid), CnnLayer.Relu(), CnnLayer.Dropout(0.1f),
            CnnLayer.Residual(16), CnnLayer.MaxPool(2), CnnLayer.Dense(32), CnnLayer.Relu());
        foreach (var arch in new[] { CnnArchitecture.LeNet5(), CnnArchitecture.Vgg(new[] { (1, 8), (1, 16) }, denseUnits: 0), CnnArchitecture.ResNet(new[] { 1, 1 }, width: 8), custom })
        {
            var model = ml.MulticlassClassification.Trainers.Cnn(new CnnMulticlassTrainer.Options { Architecture = arch, NumberOfEpochs = 2, LearningRate = 3e-3 }).Fit(train);
            var h = model.Model.History;
            _out.WriteLine($"{arch}: {model.Model.ParameterCount} parameters, loss {h[0].TrainLoss:F3} -> {h[^1].TrainLoss:F3}");
            Assert.True(h[^1].TrainLoss < h[0].TrainLoss, arch.Name);
        }
    }

    [Fact]
    public void CnnModel_LoadsInAnotherProcess_WithIdenticalPredictions()
    {
        var ml = new MLContext(seed: 3);
        var train = FashionMnist.Train(ml, 1000);
        var model = ml.MulticlassClassification.Trainers.Cnn(new CnnMulticlassTrainer.Options
        {
            Architecture = CnnArchitecture.ResNet(new[] { 1, 1 }, width: 8),
            NumberOfEpochs = 1,
        }).Fit(train);
        string path = Path.Combine(TestUtil.TempDir(), "cnn.zip");
        ml.Model.Save(model, train.Schema, path);
        var here = PredictionDump.Lines(model.Transform(FashionMnist.Test(ml, 500))).ToArray();
        var there = TestUtil.PredictInOtherProcess(path, "fashion");
        Assert.Equal(here, there);
    }

    [Fact]
    public void TransferLearning_FrozenLayersStayBitIdentical_AndTheHeadHasTheNewClassCount()
    {
        var ml = new MLContext(seed: 4);
        var baseModel = ml.MulticlassClassification.Trainers.Cnn(new CnnMulticlassTrainer.Options { Architecture = CnnArchitecture.LeNet5(), NumberOfEpochs = 2 })
            .Fit(FashionMnist.Train(ml, 2000));
        string basePath = Path.Combine(TestUtil.TempDir(), "base.zip");
        ml.Model.Save(baseModel, FashionMnist.Train(ml, 1).Schema, basePath);

        // New task: 3 groups (tops, footwear, other) from the same images.
        var grouped = Group(ml, FashionMnist.Train(ml, 3000).Let(d => ml.Data.SkipRows(d, 2000)));
        var test = Group(ml, FashionMnist.Test(ml, 1000));
        var tuned = ml.MulticlassClassification.Trainers.Cnn(new CnnMulticlassTrainer.Options
        {
            LabelColumnName = "Group",
            BaseModelPath = basePath,
            FreezeFeatureLayers = true,
            NumberOfEpochs = 6,
            BatchSize = 32,
            LearningRate = 1e-2,
        }).Fit(grouped);

        Assert.Equal(3, tuned.Model.ClassCount);
        var before = BodyWeights(baseModel.Model);
        var after = BodyWeights(tuned.Model);
        Assert.Equal(before.Keys.OrderBy(k => k), after.Keys.OrderBy(k => k));
        foreach (var (name, bytes) in before) Assert.True(bytes.SequenceEqual(after[name]), $"frozen weight {name} changed");
        var m = ml.MulticlassClassification.Evaluate(tuned.Transform(test), labelColumnName: "Group");
        _out.WriteLine($"fine-tuned head on 3 groups: accuracy {m.MicroAccuracy:F4}");
        Assert.True(m.MicroAccuracy > 0.8, $"accuracy {m.MicroAccuracy:F4}");
    }

    private static Dictionary<string, byte[]> BodyWeights(DeepModelParameters model) =>
        model.Network.state_dict().Where(kv => kv.Key.StartsWith("body.", StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key, kv => kv.Value.bytes.ToArray());

    private sealed class LabelIn { public uint Label { get; set; } }
    private sealed class GroupOut { public string GroupName { get; set; } = ""; }

    private static IDataView Group(MLContext ml, IDataView data)
    {
        // Key values 1..10 in FashionMnist.ClassNames order: tops 0,2,4,6; footwear 5,7,9; other 1,3,8.
        var mapped = ml.Transforms.CustomMapping<LabelIn, GroupOut>((i, o) =>
            o.GroupName = (i.Label - 1) switch { 0 or 2 or 4 or 6 => "top", 5 or 7 or 9 => "footwear", _ => "other" }, null).Fit(data).Transform(data);
        var keys = ml.Data.LoadFromEnumerable(new[] { new GroupOut { GroupName = "top" }, new GroupOut { GroupName = "footwear" }, new GroupOut { GroupName = "other" } });
        return ml.Transforms.Conversion.MapValueToKey("Group", "GroupName", keyData: keys).Fit(mapped).Transform(mapped);
    }

    [Fact]
    public void SeededAugmentation_IsReproducible_AndScoringNeverAugments()
    {
        using var images = torch.rand(new long[] { 16, 1, 28, 28 }, generator: new torch.Generator(7));
        var aug = new ImageAugmentation { HorizontalFlip = true, CropPadding = 2, MaxRotationDegrees = 10, ErasingProbability = 0.5f };
        using var a = aug.Apply(images, new torch.Generator(42));
        using var b = aug.Apply(images, new torch.Generator(42));
        using var c = aug.Apply(images, new torch.Generator(43));
        Assert.True(a.eq(b).all().item<bool>());
        Assert.False(a.eq(c).all().item<bool>());
        Assert.False(a.eq(images).all().item<bool>());

        string[] Run()
        {
            var ml = new MLContext(seed: 9);
            var model = ml.MulticlassClassification.Trainers.Cnn(new CnnMulticlassTrainer.Options
            {
                Architecture = CnnArchitecture.LeNet5(),
                Augmentation = ImageAugmentation.Strong,
                NumberOfEpochs = 1,
            }).Fit(FashionMnist.Train(ml, 500));
            var test = FashionMnist.Test(ml, 100);
            var first = PredictionDump.Lines(model.Transform(test)).ToArray();
            Assert.Equal(first, PredictionDump.Lines(model.Transform(test))); // scoring is deterministic: no augmentation
            return first;
        }
        Assert.Equal(Run(), Run());
    }

    [Fact]
    public void PixelVector_ThatIsNotCxHxW_AndNaNPixels_GiveClearExceptions()
    {
        var ml = new MLContext(seed: 1);
        var data = FashionMnist.Train(ml, 200);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.Cnn(new CnnMulticlassTrainer.Options
        {
            ImageChannels = 3, ImageHeight = 28, ImageWidth = 28, NumberOfEpochs = 1,
        }).Fit(data));
        Assert.Contains("784 values", e.Message);
        Assert.Contains("3×28×28", e.Message);

        var rows = ml.Data.CreateEnumerable<PixelRow>(ml.Transforms.Conversion.MapKeyToValue("Name", "Label").Fit(data).Transform(data), reuseRowObject: false).Take(50).ToList();
        rows[7].Features[100] = float.NaN;
        var withNaN = ml.Transforms.Conversion.MapValueToKey("Label", "Name").Fit(ml.Data.LoadFromEnumerable(rows)).Transform(ml.Data.LoadFromEnumerable(rows));
        var nan = Assert.Throws<InvalidOperationException>(() => ml.MulticlassClassification.Trainers.Cnn(new CnnMulticlassTrainer.Options
        {
            ImageChannels = 1, ImageHeight = 28, ImageWidth = 28, NumberOfEpochs = 1,
        }).Fit(withNaN));
        Assert.Contains("Feature column 'Features'", nan.Message);
        Assert.Contains("row 7, slot 100", nan.Message);

        var tripled = ml.Transforms.Concatenate("Features", "Features", "Features").Fit(data).Transform(data); // 2352 values, no dimensions
        var odd = Assert.Throws<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.Cnn().Fit(tripled));
        Assert.Contains("image shape", odd.Message);
        Assert.Contains("ImageChannels", odd.Message);
    }

    private sealed class PixelRow
    {
        public string Name { get; set; } = "";
        [VectorType(784)] public float[] Features { get; set; } = Array.Empty<float>();
    }

    private sealed class ImageRow
    {
        [LoadColumn(0)] public string ImagePath { get; set; } = "";
        [LoadColumn(1)] public string Label { get; set; } = "";
    }

    [Fact]
    public void ImageAnalyticsPipeline_LoadResizeExtractPixels_TrainsAndPredicts_AndAMissingImageIsNamed()
    {
        var ml = new MLContext(seed: 5);
        string dir = DataPaths.File("images");
        // test-tags.tsv has trailing tabs and spaces: trimWhitespace keeps the labels clean.
        var train = ml.Data.LoadFromTextFile<ImageRow>(Path.Combine(dir, "tags.tsv"), separatorChar: '\t', trimWhitespace: true);
        var test = ml.Data.LoadFromTextFile<ImageRow>(Path.Combine(dir, "test-tags.tsv"), separatorChar: '\t', trimWhitespace: true);
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.Transforms.LoadImages("Image", dir, nameof(ImageRow.ImagePath)))
            .Append(ml.Transforms.ResizeImages("Image", 32, 32))
            .Append(ml.Transforms.ExtractPixels("Features", "Image", scaleImage: 1 / 255f))
            .Append(ml.MulticlassClassification.Trainers.Cnn(new CnnMulticlassTrainer.Options { Architecture = CnnArchitecture.LeNet5(), NumberOfEpochs = 15, BatchSize = 4, LearningRate = 3e-3 }))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedTag", "PredictedLabel"));
        var model = pipeline.Fit(train);
        var stage = Stage(model);
        Assert.Equal("CNN LeNet-5 on 3x32x32 -> 3", stage.Model.Architecture);
        Assert.True(stage.Model.History[^1].TrainLoss < stage.Model.History[0].TrainLoss);
        var predicted = model.Transform(test).GetColumn<string>("PredictedTag").ToList();
        _out.WriteLine("test photos predicted as: " + string.Join(", ", predicted));
        Assert.Equal(3, predicted.Count);
        Assert.All(predicted, p => Assert.Contains(p, new[] { "food", "toy", "appliance" }));
        Assert.Equal(new[] { "food", "food", "toy" }, test.GetColumn<string>("Label"));

        string badTsv = Path.Combine(TestUtil.TempDir(), "bad.tsv");
        File.WriteAllText(badTsv, "pizza.jpg\tfood\nno-such-photo.jpg\ttoy\nteddy2.jpg\ttoy\n");
        var bad = ml.Data.LoadFromTextFile<ImageRow>(badTsv, separatorChar: '\t');
        var e = Assert.Throws<InvalidOperationException>(() => pipeline.Fit(bad));
        Assert.Contains("no-such-photo.jpg", e.Message);
    }

    [Fact]
    public void BinaryCnn_SeparatesSneakersFromAnkleBoots()
    {
        var ml = new MLContext(seed: 6);
        var train = ToBinary(ml, FashionMnist.Train(ml, 6000));
        var test = ToBinary(ml, FashionMnist.Test(ml, 2000));
        var model = ml.BinaryClassification.Trainers.Cnn(new CnnBinaryTrainer.Options { Architecture = CnnArchitecture.LeNet5(), LabelColumnName = "IsBoot", NumberOfEpochs = 2 }).Fit(train);
        var m = ml.BinaryClassification.Evaluate(model.Transform(test), labelColumnName: "IsBoot");
        _out.WriteLine($"sneaker vs ankle boot: accuracy {m.Accuracy:F4}, AUC {m.AreaUnderRocCurve:F4}");
        Assert.True(m.AreaUnderRocCurve > 0.95, $"AUC {m.AreaUnderRocCurve:F4}");
    }

    private sealed class BootOut { public bool IsBoot { get; set; } }

    private static IDataView ToBinary(MLContext ml, IDataView d)
    {
        // Keep sneakers (key 8) and ankle boots (key 10).
        var only = ml.Data.FilterByCustomPredicate<LabelIn>(d, r => r.Label != 8 && r.Label != 10);
        return ml.Transforms.CustomMapping<LabelIn, BootOut>((i, o) => o.IsBoot = i.Label == 10, null).Fit(only).Transform(only);
    }
}

internal static class LetExtension
{
    public static TOut Let<TIn, TOut>(this TIn value, Func<TIn, TOut> f) => f(value);
}
