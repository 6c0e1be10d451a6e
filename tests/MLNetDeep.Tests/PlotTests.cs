using System.Buffers.Binary;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetDeep.TestData;
using Xunit;
using Xunit.Abstractions;

namespace MLNetDeep.Tests;

/// <summary>DeepPlots: training curves written by PlotDirectory, confusion matrices of ML.NET's metrics.</summary>
public sealed class PlotTests
{
    private readonly ITestOutputHelper _out;
    public PlotTests(ITestOutputHelper output) => _out = output;

    private static readonly byte[] PngSignature = { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0d, 0x0a, 0x1a, 0x0a };

    /// <summary>Checks the PNG signature and returns the width and height of the IHDR chunk.</summary>
    private static (int Width, int Height) PngSize(string path)
    {
        Assert.True(File.Exists(path), $"{path} was not written");
        var b = File.ReadAllBytes(path);
        Assert.True(b.Length > 1000, $"{path} is only {b.Length} bytes");
        Assert.Equal(PngSignature, b.Take(8).ToArray());
        Assert.Equal("IHDR", System.Text.Encoding.ASCII.GetString(b, 12, 4)); // the first chunk, after its 4-byte length
        return (BinaryPrimitives.ReadInt32BigEndian(b.AsSpan(16)), BinaryPrimitives.ReadInt32BigEndian(b.AsSpan(20)));
    }

    [Fact]
    public void Mlp_WithPlotDirectory_WritesTrainingCurves()
    {
        var ml = new MLContext(seed: 1);
        string dir = Path.Combine(TestUtil.TempDir(), "plots", "not-yet-created");
        var messages = new List<string>();
        ml.Log += (_, e) => { if (e.Message.Contains("training curves", StringComparison.Ordinal)) lock (messages) messages.Add(e.Message); };
        var model = TestUtil.BikeMlp(ml, new MlpRegressionTrainer.Options
        {
            HiddenLayers = new[] { 32 }, NumberOfEpochs = 4, ValidationFraction = 0.2, PlotDirectory = dir,
        }).Fit(TestUtil.BikeTrainSubset(ml, 2000));
        string png = Path.Combine(dir, "training-curves.png");
        _out.WriteLine(png);
        Assert.Equal((DeepPlots.TrainingCurvesWidth, DeepPlots.TrainingCurvesHeight), PngSize(png));
        Assert.Equal((1000, 450), PngSize(png));
        Assert.Contains(messages, m => m.Contains(png, StringComparison.Ordinal));
    }

    [Fact]
    public void Cnn_TrainingCurves_AndTheConfusionMatrixOfMLNetsMetrics_ArePngs()
    {
        var ml = new MLContext(seed: 1);
        string dir = TestUtil.TempDir();
        var model = ml.MulticlassClassification.Trainers.Cnn(new CnnMulticlassTrainer.Options
        {
            Architecture = CnnArchitecture.LeNet5(), NumberOfEpochs = 2, ValidationFraction = 0.2, LearningRate = 3e-3, PlotDirectory = dir,
        }).Fit(FashionMnist.Train(ml, 500));
        Assert.Equal((1000, 450), PngSize(Path.Combine(dir, "training-curves.png")));

        // The same history drawn again by hand, with a title.
        string again = Path.Combine(dir, "again", "curves.png");
        DeepPlots.SaveTrainingCurves(model.Model.History, again, "LeNet-5 on 500 Fashion-MNIST images");
        Assert.Equal((1000, 450), PngSize(again));

        var metrics = ml.MulticlassClassification.Evaluate(model.Transform(FashionMnist.Test(ml, 300)));
        Assert.Equal(10, metrics.ConfusionMatrix.NumberOfClasses);
        string named = Path.Combine(dir, "confusion-matrix.png");
        DeepPlots.SaveConfusionMatrix(metrics.ConfusionMatrix, named, FashionMnist.ClassNames, "LeNet-5, 300 test images");
        Assert.Equal((800, 800), PngSize(named));

        string unnamed = Path.Combine(dir, "sub", "confusion-unnamed.png"); // names recorded by the evaluator, or indices
        DeepPlots.SaveConfusionMatrix(metrics.ConfusionMatrix, unnamed);
        Assert.Equal((800, 800), PngSize(unnamed));
        _out.WriteLine(string.Join(Environment.NewLine, Directory.GetFiles(dir, "*.png", SearchOption.AllDirectories)));
    }

    [Fact]
    public void WithoutValidationData_AndWithOneEpoch_CurvesAreStillDrawn()
    {
        string dir = TestUtil.TempDir();
        var one = new[] { new EpochMetrics(1, 0.7, null, "accuracy", null, 1e-3, 2.5) };
        DeepPlots.SaveTrainingCurves(one, Path.Combine(dir, "one.png"));
        Assert.Equal((1000, 450), PngSize(Path.Combine(dir, "one.png")));
        var flat = Enumerable.Range(1, 30).Select(e => new EpochMetrics(e, 0.5, 0.5, "r-squared", 0.25, 1e-3, 1)).ToArray();
        DeepPlots.SaveTrainingCurves(flat, Path.Combine(dir, "flat.png"));
        Assert.Equal((1000, 450), PngSize(Path.Combine(dir, "flat.png")));
    }

    [Fact]
    public void BadArguments_GiveClearExceptions()
    {
        string dir = TestUtil.TempDir();
        var history = new[] { new EpochMetrics(1, 0.7, 0.8, "accuracy", 0.6, 1e-3, 2.5) };
        var empty = Assert.Throws<ArgumentException>(() => DeepPlots.SaveTrainingCurves(Array.Empty<EpochMetrics>(), Path.Combine(dir, "x.png")));
        Assert.Contains("empty", empty.Message);
        Assert.Equal("history", empty.ParamName);
        Assert.Equal("pngPath", Assert.ThrowsAny<ArgumentException>(() => DeepPlots.SaveTrainingCurves(history, null!)).ParamName);
        Assert.Equal("pngPath", Assert.Throws<ArgumentException>(() => DeepPlots.SaveTrainingCurves(history, " ")).ParamName);
        Assert.Equal("history", Assert.ThrowsAny<ArgumentException>(() => DeepPlots.SaveTrainingCurves(null!, Path.Combine(dir, "x.png"))).ParamName);

        var ml = new MLContext(seed: 1);
        var schema = SchemaDefinition.Create(typeof(Scored));
        schema[nameof(Scored.Label)].ColumnType = new KeyDataViewType(typeof(uint), 3);
        schema[nameof(Scored.PredictedLabel)].ColumnType = new KeyDataViewType(typeof(uint), 3);
        var data = ml.Data.LoadFromEnumerable(new[]
        {
            new Scored { Label = 1, PredictedLabel = 1, Score = new[] { 0.9f, 0.1f, 0f } },
            new Scored { Label = 2, PredictedLabel = 2, Score = new[] { 0.2f, 0.7f, 0.1f } },
            new Scored { Label = 3, PredictedLabel = 2, Score = new[] { 0.1f, 0.6f, 0.3f } },
        }, schema);
        var matrix = ml.MulticlassClassification.Evaluate(data).ConfusionMatrix;
        Assert.Equal(3, matrix.NumberOfClasses);
        var names = Assert.Throws<ArgumentException>(() => DeepPlots.SaveConfusionMatrix(matrix, Path.Combine(dir, "cm.png"), new[] { "a", "b" }));
        Assert.Contains("2 class names", names.Message);
        Assert.Contains("3 classes", names.Message);
        Assert.Equal("pngPath", Assert.ThrowsAny<ArgumentException>(() => DeepPlots.SaveConfusionMatrix(matrix, null!)).ParamName);
        DeepPlots.SaveConfusionMatrix(matrix, Path.Combine(dir, "cm.png"), new[] { "a", "b", "c" });
        Assert.Equal((800, 800), PngSize(Path.Combine(dir, "cm.png")));

        var o = new MlpRegressionTrainer.Options { PlotDirectory = "  " };
        Assert.Equal("PlotDirectory", Assert.Throws<ArgumentOutOfRangeException>(o.Validate).ParamName);
    }

    private sealed class Scored
    {
        public uint Label { get; set; }
        public uint PredictedLabel { get; set; }
        [VectorType(3)] public float[] Score { get; set; } = Array.Empty<float>();
    }

    private sealed class ImageRow
    {
        [LoadColumn(0)] public string ImagePath { get; set; } = "";
        [LoadColumn(1)] public string Label { get; set; } = "";
    }

    /// <summary>
    /// ImageAnalytics (SkiaSharp through ML.NET's MLImage) and DeepPlots (SkiaSharp directly) in one process: guards
    /// against a SkiaSharp 3 upgrade, which breaks ML.NET 5.0.1's ExtractPixels (SKBitmap.GetPixelSpan).
    /// </summary>
    [Fact]
    public void ImageAnalytics_AndPlots_LoadTogether()
    {
        var ml = new MLContext(seed: 5);
        string images = DataPaths.File("images");
        var train = ml.Data.LoadFromTextFile<ImageRow>(Path.Combine(images, "tags.tsv"), separatorChar: '\t', trimWhitespace: true);
        string dir = TestUtil.TempDir();
        var model = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.Transforms.LoadImages("Image", images, nameof(ImageRow.ImagePath)))
            .Append(ml.Transforms.ResizeImages("Image", 32, 32))
            .Append(ml.Transforms.ExtractPixels("Features", "Image", scaleImage: 1 / 255f))
            .Append(ml.MulticlassClassification.Trainers.Cnn(new CnnMulticlassTrainer.Options
                { Architecture = CnnArchitecture.LeNet5(), NumberOfEpochs = 2, BatchSize = 4, PlotDirectory = dir }))
            .Fit(train);
        Assert.Equal((1000, 450), PngSize(Path.Combine(dir, "training-curves.png")));
        var metrics = ml.MulticlassClassification.Evaluate(model.Transform(train));
        DeepPlots.SaveConfusionMatrix(metrics.ConfusionMatrix, Path.Combine(dir, "photos.png"));
        Assert.Equal((800, 800), PngSize(Path.Combine(dir, "photos.png")));
        _out.WriteLine(dir);
    }
}
