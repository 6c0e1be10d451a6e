using System.Reflection;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using MLNetDeep.TestData;
using Xunit;
using Xunit.Abstractions;

namespace MLNetDeep.Tests;

/// <summary>
/// ONNX export: every family and task, scored by ONNX Runtime on real test rows, equals MLNetDeep's columns within
/// 1e-5 (relative to the value's size, at least 1) with identical predicted labels; the ApplyOnnxModel pipeline loads
/// and predicts in a process without MLNetDeep or TorchSharp.
/// </summary>
public sealed class OnnxExportTests
{
    private const double Tolerance = 1e-5;
    private readonly ITestOutputHelper _out;

    public OnnxExportTests(ITestOutputHelper output) => _out = output;

    [Fact]
    public void Mlp_AllThreeTasks_OnnxRuntimeEqualsMLNetDeep()
    {
        var ml = new MLContext(seed: 1);
        // Regression on bike-hour, with batch norm and dropout (dropout is training-only; batch norm uses its statistics).
        var bikeTest = ml.Data.TakeRows(RealData.BikeTest(ml), 300);
        var bike = TestUtil.BikeMlp(ml, new MlpRegressionTrainer.Options { HiddenLayers = new[] { 32, 16 }, BatchNorm = true, Dropout = 0.1f, NumberOfEpochs = 3 })
            .Fit(TestUtil.BikeTrainSubset(ml, 2000));
        AssertOnnxMatches(ml, bike, bikeTest, "bike regression");

        // Binary on SMS (n-gram features), with a SELU and an ELU network.
        var sms = ml.Data.TakeRows(RealData.Sms(ml), 1200);
        var split = ml.Data.TrainTestSplit(sms, 0.25, seed: 1);
        foreach (var activation in new[] { DeepActivation.Selu, DeepActivation.Elu, DeepActivation.Gelu, DeepActivation.Swish })
        {
            var model = Pipelines.SmsFeatures(ml).Append(ml.BinaryClassification.Trainers.Mlp(new MlpBinaryTrainer.Options
            {
                HiddenLayers = new[] { 16 }, Activation = activation, NumberOfEpochs = 2,
            })).Fit(split.TrainSet);
            AssertOnnxMatches(ml, model, split.TestSet, $"sms binary {activation}");
        }

        // Multiclass on Fashion-MNIST pixels: LeakyReLU, tanh.
        foreach (var activation in new[] { DeepActivation.LeakyRelu, DeepActivation.Tanh, DeepActivation.Sigmoid })
        {
            var model = ml.MulticlassClassification.Trainers.Mlp(new MlpMulticlassTrainer.Options { HiddenLayers = new[] { 32 }, Activation = activation, NumberOfEpochs = 1 })
                .Fit(FashionMnist.Train(ml, 1000));
            AssertOnnxMatches(ml, model, FashionMnist.Test(ml, 300), $"fashion multiclass {activation}");
        }
    }

    [Fact]
    public void Cnn_LeNetResNetAndACustomStack_OnnxRuntimeEqualsMLNetDeep()
    {
        var ml = new MLContext(seed: 2);
        var train = FashionMnist.Train(ml, 600);
        var test = FashionMnist.Test(ml, 200);
        var custom = CnnArchitecture.Custom(
            CnnLayer.Conv(8, 3), CnnLayer.BatchNorm(), CnnLayer.Activation(DeepActivation.Gelu), CnnLayer.AvgPool(2),
            CnnLayer.Conv(16, 3, stride: 2, padding: ConvPadding.Valid), CnnLayer.Relu(), CnnLayer.Dropout(0.1f),
            CnnLayer.Residual(16), CnnLayer.Residual(24, stride: 2), CnnLayer.MaxPool(2), CnnLayer.Dense(32), CnnLayer.Relu());
        foreach (var arch in new[] { CnnArchitecture.LeNet5(), CnnArchitecture.ResNet(new[] { 1, 1 }, width: 8), custom })
        {
            var model = ml.MulticlassClassification.Trainers.Cnn(new CnnMulticlassTrainer.Options { Architecture = arch, NumberOfEpochs = 1, LearningRate = 3e-3 }).Fit(train);
            AssertOnnxMatches(ml, model, test, arch.Name);
        }
        // Channels-last pixels (as ExtractPixels(interleavePixelColors: true) writes them) and input scaling inside the network.
        var channelsLast = ml.MulticlassClassification.Trainers.Cnn(new CnnMulticlassTrainer.Options
        {
            Architecture = CnnArchitecture.Custom(CnnLayer.Conv(8, 3), CnnLayer.Relu(), CnnLayer.MaxPool(2), CnnLayer.Dense(16), CnnLayer.Relu()),
            ImageChannels = 4, ImageHeight = 14, ImageWidth = 14, Layout = PixelLayout.HeightWidthChannels, InputScale = 2, InputOffset = -1, NumberOfEpochs = 1,
        }).Fit(train);
        AssertOnnxMatches(ml, channelsLast, test, "channels-last 14x14x4, scaled");
    }

    [Theory]
    [InlineData(RecurrentCell.Lstm, true, 2, SequencePooling.Last)]
    [InlineData(RecurrentCell.Lstm, false, 1, SequencePooling.Mean)]
    [InlineData(RecurrentCell.Lstm, true, 1, SequencePooling.Max)]
    [InlineData(RecurrentCell.Lstm, false, 2, SequencePooling.Attention)]
    [InlineData(RecurrentCell.Gru, false, 2, SequencePooling.Last)]
    [InlineData(RecurrentCell.Gru, true, 2, SequencePooling.Mean)]
    [InlineData(RecurrentCell.Gru, true, 1, SequencePooling.Max)]
    [InlineData(RecurrentCell.Gru, false, 2, SequencePooling.Attention)]
    [InlineData(RecurrentCell.Rnn, true, 1, SequencePooling.Mean)]
    public void Rnn_OnTokensOfEveryLength_OnnxRuntimeEqualsMLNetDeep(RecurrentCell cell, bool bidirectional, int layers, SequencePooling pooling)
    {
        // SMS messages as word keys: rows of 1 to 100+ tokens in one padded batch (variable lengths via sequence_lens).
        var ml = new MLContext(seed: 4);
        var sms = ml.Data.TakeRows(RealData.Sms(ml), 1000);
        var split = ml.Data.TrainTestSplit(sms, 0.3, seed: 1);
        var model = Pipelines.SmsTokens(ml).Append(ml.BinaryClassification.Trainers.Rnn(new RnnBinaryTrainer.Options
        {
            FeatureColumnName = "Tokens", Cell = cell, Bidirectional = bidirectional, NumberOfLayers = layers, Pooling = pooling,
            HiddenSize = 16, EmbeddingSize = 16, NumberOfEpochs = 1, MaximumSequenceLength = 40,
        })).Fit(split.TrainSet);
        AssertOnnxMatches(ml, model, split.TestSet, $"sms {cell} bi={bidirectional} layers={layers} {pooling}");
    }

    [Fact]
    public void RnnOnSeries_AndForecasters_OnnxRuntimeEqualsMLNetDeep()
    {
        var ml = new MLContext(seed: 5);
        var windows = Sunspots.Windows(ml);
        foreach (var decoding in new[] { ForecastDecoding.Direct, ForecastDecoding.Autoregressive })
        {
            var model = ml.Forecasting.Trainers.Rnn(new RnnForecaster.Options
            {
                Cell = RecurrentCell.Lstm, NumberOfLayers = 2, HiddenSize = 16, NumberOfEpochs = 3, Dropout = 0, Decoding = decoding,
            }).Fit(windows.Train);
            AssertOnnxMatches(ml, model, windows.Test!, $"sunspots LSTM forecaster {decoding}");
        }
        var mlp = ml.Forecasting.Trainers.Mlp(new MlpForecaster.Options { HiddenLayers = new[] { 32 }, NumberOfEpochs = 5 }).Fit(windows.Train);
        AssertOnnxMatches(ml, mlp, windows.Test!, "sunspots MLP forecaster");
        // Fashion-MNIST read as 28 rows of 28 pixels by a bidirectional GRU, mean pooling.
        var rows = ml.MulticlassClassification.Trainers.Rnn(new RnnMulticlassTrainer.Options
        {
            Cell = RecurrentCell.Gru, Bidirectional = true, HiddenSize = 16, Pooling = SequencePooling.Mean, FeaturesPerStep = 28, NumberOfEpochs = 1,
        }).Fit(FashionMnist.Train(ml, 500));
        AssertOnnxMatches(ml, rows, FashionMnist.Test(ml, 200), "fashion rows GRU");
    }

    [Theory]
    [InlineData(TransformerPooling.Cls, true, PositionEncoding.Learned, TransformerActivation.Gelu)]
    [InlineData(TransformerPooling.Mean, false, PositionEncoding.Sinusoidal, TransformerActivation.Relu)]
    [InlineData(TransformerPooling.Attention, true, PositionEncoding.Sinusoidal, TransformerActivation.Gelu)]
    public void Transformer_OnPaddedTokens_OnnxRuntimeEqualsMLNetDeep(TransformerPooling pooling, bool preNorm, PositionEncoding positions, TransformerActivation activation)
    {
        // SMS word keys in one padded batch: the key-padding mask keeps padding out of every row's attention and pooling.
        var ml = new MLContext(seed: 6);
        var sms = ml.Data.TakeRows(RealData.Sms(ml), 1000);
        var split = ml.Data.TrainTestSplit(sms, 0.3, seed: 1);
        var model = Pipelines.SmsTokens(ml).Append(ml.BinaryClassification.Trainers.Transformer(new TransformerBinaryTrainer.Options
        {
            FeatureColumnName = "Tokens", NumberOfLayers = 2, ModelWidth = 32, NumberOfHeads = 4, NumberOfEpochs = 1, MaximumSequenceLength = 48,
            Pooling = pooling, PreNorm = preNorm, Positions = positions, Activation = activation,
        })).Fit(split.TrainSet);
        AssertOnnxMatches(ml, model, split.TestSet, $"sms Transformer {pooling} preNorm={preNorm} {positions} {activation}");
    }

    [Fact]
    public void VisionTransformer_AndTransformerForecaster_OnnxRuntimeEqualsMLNetDeep()
    {
        var ml = new MLContext(seed: 7);
        var vit = ml.MulticlassClassification.Trainers.Transformer(new TransformerMulticlassTrainer.Options
        {
            PatchSize = 7, NumberOfLayers = 2, ModelWidth = 32, NumberOfHeads = 4, NumberOfEpochs = 1, Pooling = TransformerPooling.Mean,
        }).Fit(FashionMnist.Train(ml, 600));
        AssertOnnxMatches(ml, vit, FashionMnist.Test(ml, 200), "fashion ViT patch 7");

        var windows = Sunspots.Windows(ml);
        var forecaster = ml.Forecasting.Trainers.Transformer(new TransformerForecaster.Options
        {
            NumberOfLayers = 1, ModelWidth = 16, NumberOfHeads = 2, NumberOfEpochs = 3, PreNorm = false,
        }).Fit(windows.Train);
        AssertOnnxMatches(ml, forecaster, windows.Test!, "sunspots Transformer forecaster");
    }

    [Fact]
    public void OnnxPipeline_LoadsAndPredicts_InAProcessWithoutMLNetDeep()
    {
        var ml = new MLContext(seed: 3);
        // Multiclass from text: stock featurizers, the MLNetDeep MLP, then MapKeyToValue after it.
        var issues = ml.Data.TakeRows(RealData.GitHubIssues(ml), 1500);
        var split = ml.Data.TrainTestSplit(issues, 0.2, seed: 1);
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label", nameof(GitHubIssueRow.Area))
            .Append(ml.Transforms.Text.FeaturizeText("Features", nameof(GitHubIssueRow.Title)))
            .Append(ml.MulticlassClassification.Trainers.Mlp(new MlpMulticlassTrainer.Options { HiddenLayers = new[] { 32 }, NumberOfEpochs = 2 }))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedArea", "PredictedLabel"));
        var model = pipeline.Fit(split.TrainSet);
        var onnxModel = ml.Model.ConvertToOnnxPipeline(model, split.TrainSet);

        var expected = ScoreText.Lines(model.Transform(split.TestSet)).ToArray();
        var inProcess = ScoreText.Lines(onnxModel.Transform(split.TestSet)).ToArray();
        AssertClose(expected, inProcess, "github, ApplyOnnxModel in process");
        var mlnet = ml.MulticlassClassification.Evaluate(model.Transform(split.TestSet));
        var onnx = ml.MulticlassClassification.Evaluate(onnxModel.Transform(split.TestSet));
        Assert.Equal(mlnet.MicroAccuracy, onnx.MicroAccuracy);
        Assert.Equal(Names(model.Transform(split.TestSet), "PredictedArea"), Names(onnxModel.Transform(split.TestSet), "PredictedArea"));

        string dir = TestUtil.TempDir();
        string zip = Path.Combine(dir, "github-onnx.zip");
        ml.Model.Save(onnxModel, split.TrainSet.Schema, zip);
        var lines = ConsumeInOtherProcess(ml, zip, split.TestSet);
        AssertClose(expected, lines, "github, ApplyOnnxModel in a process without MLNetDeep");

        // Binary from pixels and regression from numbers, the same way.
        var boots = ml.Transforms.CustomMapping<LabelIn, BootOut>((i, o) => o.IsBoot = i.Label == 10, null);
        var bootTrain = boots.Fit(FashionMnist.Train(ml, 800)).Transform(FashionMnist.Train(ml, 800));
        var bootTest = boots.Fit(FashionMnist.Test(ml, 200)).Transform(FashionMnist.Test(ml, 200));
        var bootModel = ml.BinaryClassification.Trainers.Cnn(new CnnBinaryTrainer.Options { Architecture = CnnArchitecture.LeNet5(), LabelColumnName = "IsBoot", NumberOfEpochs = 1 }).Fit(bootTrain);
        var bootOnnx = ml.Model.ConvertToOnnxPipeline(bootModel, bootTrain);
        var bootData = ml.Transforms.DropColumns("Label", "IsBoot").Fit(bootTest).Transform(bootTest);
        string bootZip = Path.Combine(dir, "boot-onnx.zip");
        ml.Model.Save(bootOnnx, bootData.Schema, bootZip);
        AssertClose(ScoreText.Lines(bootModel.Transform(bootTest)).ToArray(), ConsumeInOtherProcess(ml, bootZip, bootData), "fashion boot binary, other process");
        var bm = ml.BinaryClassification.Evaluate(bootOnnx.Transform(bootTest), "IsBoot");
        Assert.Equal(ml.BinaryClassification.Evaluate(bootModel.Transform(bootTest), "IsBoot").Accuracy, bm.Accuracy);

        // Token input: stock text transforms to word keys, a bidirectional LSTM; the ONNX model reads the raw UInt32 keys.
        var sms = ml.Data.TrainTestSplit(ml.Data.TakeRows(RealData.Sms(ml), 800), 0.25, seed: 1);
        var lstm = Pipelines.SmsTokens(ml).Append(ml.BinaryClassification.Trainers.Rnn(new RnnBinaryTrainer.Options
        {
            FeatureColumnName = "Tokens", Bidirectional = true, HiddenSize = 16, EmbeddingSize = 16, NumberOfEpochs = 1, MaximumSequenceLength = 30,
        })).Fit(sms.TrainSet);
        var lstmOnnx = ml.Model.ConvertToOnnxPipeline(lstm, sms.TrainSet);
        string lstmZip = Path.Combine(dir, "sms-lstm-onnx.zip");
        ml.Model.Save(lstmOnnx, sms.TrainSet.Schema, lstmZip);
        AssertClose(ScoreText.Lines(lstm.Transform(sms.TestSet)).ToArray(), ConsumeInOtherProcess(ml, lstmZip, sms.TestSet), "sms BiLSTM on word keys, other process");

        // A forecaster: Score is a vector of the horizon's values, straight from ONNX.
        var windows = Sunspots.Windows(ml);
        var gru = ml.Forecasting.Trainers.Rnn(new RnnForecaster.Options { Cell = RecurrentCell.Gru, HiddenSize = 16, NumberOfEpochs = 3 }).Fit(windows.Train);
        var gruOnnx = ml.Model.ConvertToOnnxPipeline(gru, windows.Train);
        string gruZip = Path.Combine(dir, "sunspots-gru-onnx.zip");
        ml.Model.Save(gruOnnx, windows.Train.Schema, gruZip);
        AssertClose(ScoreText.Lines(gru.Transform(windows.Test!)).ToArray(), ConsumeInOtherProcess(ml, gruZip, windows.Test!), "sunspots GRU forecaster, other process", LabelScale(gru));

        var bikeTrain = TestUtil.BikeTrainSubset(ml, 1500);
        var bikeTest = ml.Data.TakeRows(RealData.BikeTest(ml), 200);
        var bike = TestUtil.BikeMlp(ml, new MlpRegressionTrainer.Options { HiddenLayers = new[] { 16 }, NumberOfEpochs = 2 }).Fit(bikeTrain);
        var bikeOnnx = ml.Model.ConvertToOnnxPipeline(bike, bikeTrain, Path.Combine(dir, "bike.onnx"));
        Assert.True(new FileInfo(Path.Combine(dir, "bike.onnx")).Length > 0);
        string bikeZip = Path.Combine(dir, "bike-onnx.zip");
        ml.Model.Save(bikeOnnx, bikeTrain.Schema, bikeZip);
        AssertClose(ScoreText.Lines(bike.Transform(bikeTest)).ToArray(), ConsumeInOtherProcess(ml, bikeZip, bikeTest), "bike regression, other process", LabelScale(bike));
    }

    [Fact]
    public void MulticlassLabelWithNumericKeyValues_ExportsTheClassIndex_AndConvertsToAKey()
    {
        // Bike-hour's weekday (0-6, a float) as a key label: its key values are numbers, not names.
        var ml = new MLContext(seed: 9);
        var data = ml.Data.TakeRows(RealData.BikeTrain(ml), 1500);
        var model = ml.Transforms.Conversion.MapValueToKey("Label", nameof(BikeRow.Weekday))
            .Append(Pipelines.BikeFeatures(ml))
            .Append(ml.MulticlassClassification.Trainers.Mlp(new MlpMulticlassTrainer.Options { HiddenLayers = new[] { 16 }, NumberOfEpochs = 2 })).Fit(data);
        var test = ml.Data.TakeRows(RealData.BikeTest(ml), 200);
        AssertOnnxMatches(ml, model, test, "bike weekday (numeric key values)");
        var onnx = ml.Model.ConvertToOnnxPipeline(model, data);
        AssertClose(ScoreText.Lines(model.Transform(test)).ToArray(), ScoreText.Lines(onnx.Transform(test)).ToArray(), "bike weekday, ApplyOnnxModel pipeline");
        Assert.Equal(ml.MulticlassClassification.Evaluate(model.Transform(test)).MicroAccuracy, ml.MulticlassClassification.Evaluate(onnx.Transform(test)).MicroAccuracy);
    }

    [Fact]
    public void Metadata_DescribesTheModel_AndWhatCannotBeExportedIsNamed()
    {
        var ml = new MLContext(seed: 8);
        var issues = ml.Data.TakeRows(RealData.GitHubIssues(ml), 600);
        var tokens = ml.Transforms.Conversion.MapValueToKey("Label", nameof(GitHubIssueRow.Area))
            .Append(ml.Transforms.Text.NormalizeText("Normalized", nameof(GitHubIssueRow.Title)))
            .Append(ml.Transforms.Text.TokenizeIntoWords("Tokens", "Normalized"))
            .Append(ml.Transforms.Conversion.MapValueToKey("Tokens"));
        var model = tokens.Append(ml.MulticlassClassification.Trainers.Rnn(new RnnMulticlassTrainer.Options
        {
            FeatureColumnName = "Tokens", Cell = RecurrentCell.Gru, HiddenSize = 8, EmbeddingSize = 8, NumberOfEpochs = 1, MaximumSequenceLength = 20,
        })).Fit(issues);
        string path = Path.Combine(TestUtil.TempDir(), "github-gru.onnx");
        var info = ml.Model.ExportToOnnx(model, path);
        using var session = new InferenceSession(path);
        var meta = session.ModelMetadata;
        Assert.Equal("MLNetDeep", meta.ProducerName);
        var map = meta.CustomMetadataMap;
        Assert.Equal("multiclass", map["mlnetdeep.task"]);
        Assert.Equal(typeof(OnnxExportInfo).Assembly.GetName().Version!.ToString(3), map["mlnetdeep.version"]);
        var classNames = System.Text.Json.JsonSerializer.Deserialize<string[]>(map["mlnetdeep.class_names"])!;
        var keyValues = default(VBuffer<ReadOnlyMemory<char>>);
        model.Transform(issues).Schema["Label"].GetKeyValues(ref keyValues);
        Assert.Equal(keyValues.DenseValues().Select(v => v.ToString()), classNames);
        Assert.Equal(info.ClassNames, classNames);
        var deep = DeepModelParameters.Find(model)!;
        Assert.Equal(((TokenEncoder)deep.Encoder).VocabularySize.ToString(), map["mlnetdeep.vocabulary_size"]);
        Assert.Equal("0", map["mlnetdeep.padding_id"]);
        Assert.Equal("20", map["mlnetdeep.max_sequence_length"]);
        Assert.Equal("Tokens", session.InputMetadata.Keys.Single());
        Assert.Equal(new[] { -1, -1 }, session.InputMetadata["Tokens"].Dimensions); // dynamic batch and length

        // A pretrained encoder has no task head to export; a pipeline with another MLNetDeep step cannot drop MLNetDeep.
        var sms = ml.Data.TakeRows(RealData.Sms(ml), 200);
        var pretrained = Pipelines.SmsTokens(ml).Append(ml.Transforms.Text.PretrainTransformerEncoder(new TransformerPretrainer.Options
        {
            FeatureColumnName = "Tokens", NumberOfLayers = 1, ModelWidth = 16, NumberOfHeads = 2, NumberOfEpochs = 1,
        })).Fit(sms);
        var encoder = Assert.Throws<OnnxExportException>(() => ml.Model.ExportToOnnx(pretrained, new MemoryStream()));
        Assert.Contains("pretrained encoder", encoder.Message);
        var subwords = ml.Transforms.Text.TokenizeIntoSubwords("Tokens", nameof(SmsRow.Message), SubwordTokenizer.Cl100kBase())
            .Append(ml.Transforms.Conversion.MapValueToKey("Label", nameof(SmsRow.LabelText)))
            .Append(ml.MulticlassClassification.Trainers.Transformer(new TransformerMulticlassTrainer.Options
            {
                FeatureColumnName = "Tokens", NumberOfLayers = 1, ModelWidth = 16, NumberOfHeads = 2, NumberOfEpochs = 1,
            })).Fit(sms);
        ml.Model.ExportToOnnx(subwords, new MemoryStream()); // the network alone exports
        var step = Assert.Throws<OnnxExportException>(() => ml.Model.ConvertToOnnxPipeline(subwords, sms));
        Assert.Contains("SubwordTokenizingTransformer", step.Message);
        var none = Assert.Throws<ArgumentException>(() => ml.Model.ExportToOnnx(tokens.Fit(issues), new MemoryStream()));
        Assert.Contains("no MLNetDeep prediction transformer", none.Message);
    }

    // ------------------------------------------------------------------ helpers

    private sealed class LabelIn { public uint Label { get; set; } }
    private sealed class BootOut { public bool IsBoot { get; set; } }

    private static string[] Names(IDataView data, string column)
    {
        var col = data.Schema[column];
        using var cursor = data.GetRowCursor(new[] { col });
        var get = cursor.GetGetter<ReadOnlyMemory<char>>(col);
        var list = new List<string>();
        ReadOnlyMemory<char> v = default;
        while (cursor.MoveNext()) { get(ref v); list.Add(v.ToString()); }
        return list.ToArray();
    }

    /// <summary>Saves <paramref name="rows"/> as an ML.NET binary file and scores it with the ONNX consumer in another process.</summary>
    private string[] ConsumeInOtherProcess(MLContext ml, string zip, IDataView rows)
    {
        string consumer = typeof(OnnxExportTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "OnnxConsumer").Value!;
        Assert.True(File.Exists(consumer), "ONNX consumer not built: " + consumer);
        string dir = Path.GetDirectoryName(zip)!;
        string idv = Path.Combine(dir, Path.GetFileNameWithoutExtension(zip) + ".idv");
        using (var f = File.Create(idv)) ml.Data.SaveAsBinary(rows, f, keepHidden: false);
        string output = Path.Combine(dir, Path.GetFileNameWithoutExtension(zip) + ".txt");
        TestUtil.RunDotnet(new[] { consumer, zip, idv, output }, what: "ONNX consumer");
        // The consumer references no MLNetDeep at all: its output folder holds no MLNetDeep or TorchSharp assembly.
        var folder = Path.GetDirectoryName(consumer)!;
        Assert.Empty(Directory.GetFiles(folder, "MLNetDeep.dll").Concat(Directory.GetFiles(folder, "TorchSharp*.dll")));
        return File.ReadAllLines(output);
    }

    /// <summary>
    /// Compares predictions: identical labels, and every score within <see cref="Tolerance"/> of MLNetDeep's, relative to
    /// the larger of 1, the value and <paramref name="unit"/> — the label scale for regression, whose network computes in
    /// standardized units (float32 resolves 1e-7 of those, i.e. 1e-7 × scale in label units).
    /// </summary>
    private void AssertClose(string[] expected, string[] actual, string what, double unit = 1)
    {
        Assert.Equal(expected.Length, actual.Length);
        double worst = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            var e = ScoreText.Parse(expected[i]);
            var a = ScoreText.Parse(actual[i]);
            Assert.Equal(e.Label, a.Label);
            Assert.Equal(e.Scores.Length, a.Scores.Length);
            for (int j = 0; j < e.Scores.Length; j++) worst = Math.Max(worst, Relative(e.Scores[j], a.Scores[j], unit));
            if (!float.IsNaN(e.Probability)) worst = Math.Max(worst, Relative(e.Probability, a.Probability, 1));
        }
        _out.WriteLine($"{what}: {expected.Length} rows, largest difference {worst:G3}, predicted labels identical");
        Assert.True(worst <= Tolerance, $"{what}: largest difference {worst:G3} > {Tolerance}");
    }

    private static double Relative(float expected, float actual, double unit) =>
        Math.Abs((double)expected - actual) / Math.Max(Math.Max(1, unit), Math.Abs((double)expected));

    private static double LabelScale(ITransformer model) => DeepModelParameters.Find(model) switch
    {
        DeepRegressionModelParameters r => r.LabelScale,
        DeepForecastModelParameters f => f.LabelScale,
        _ => 1,
    };

    /// <summary>
    /// Exports the model's MLNetDeep step (batch form), scores the step's input rows with ONNX Runtime in one batch,
    /// and compares every output with MLNetDeep's columns on the same rows.
    /// </summary>
    private void AssertOnnxMatches(MLContext ml, ITransformer model, IDataView test, string what)
    {
        var scored = model.Transform(test);
        var expected = ScoreText.Lines(scored).ToArray();
        using var stream = new MemoryStream();
        var info = ml.Model.ExportToOnnx(model, stream);
        var bytes = stream.ToArray();
        AssertEveryInitializerIsUsed(bytes);
        using var session = new InferenceSession(bytes);
        Assert.Equal(info.OutputNames, session.OutputMetadata.Keys.ToArray());

        var input = info.TokenInput ? TokenBatch(scored, info.InputName) : DenseBatch(scored, info.InputName, info.InputSize);
        using var results = session.Run(new[] { input });
        var byName = results.ToDictionary(r => r.Name);
        int n = expected.Length;
        var actual = new string[n];
        var score = byName["Score"].AsTensor<float>().ToArray();
        int width = score.Length / n;
        float[]? probability = byName.TryGetValue("Probability", out var p) ? p.AsTensor<float>().ToArray() : null;
        string[]? labels = null;
        if (byName.TryGetValue("PredictedLabel", out var l))
            labels = l.ElementType switch
            {
                TensorElementType.Bool => l.AsTensor<bool>().Select(b => b ? "true" : "false").ToArray(),
                TensorElementType.String => l.AsTensor<string>().ToArray(),
                _ => l.AsTensor<long>().Select(v => v.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray(),
            };
        for (int i = 0; i < n; i++)
            actual[i] = string.Join(" ", score.Skip(i * width).Take(width).Select(v => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture)))
                + "|" + (probability is null ? "" : probability[i].ToString("R", System.Globalization.CultureInfo.InvariantCulture)) + "|" + (labels?[i] ?? "");
        AssertClose(expected, actual, $"{what} ({info.Architecture})", LabelScale(model));
    }

    /// <summary>ONNX Runtime warns on stderr about initializers no node reads: the exporter writes none.</summary>
    private static void AssertEveryInitializerIsUsed(byte[] model)
    {
        var graph = MLNetDeep.Onnx.Proto.ModelProto.Parser.ParseFrom(model).Graph;
        var read = graph.Node.SelectMany(n => n.Input).ToHashSet();
        Assert.DoesNotContain(graph.Initializer.Select(i => i.Name), n => !read.Contains(n));
        Assert.Equal(graph.Initializer.Count, graph.Initializer.Select(i => i.Name).Distinct().Count());
    }

    private static NamedOnnxValue DenseBatch(IDataView data, string column, int size)
    {
        var col = data.Schema[column];
        using var cursor = data.GetRowCursor(new[] { col });
        var get = cursor.GetGetter<VBuffer<float>>(col);
        VBuffer<float> v = default;
        var values = new List<float>();
        int rows = 0;
        while (cursor.MoveNext())
        {
            get(ref v);
            values.AddRange(v.DenseValues());
            rows++;
        }
        return NamedOnnxValue.CreateFromTensor(column, new DenseTensor<float>(values.ToArray(), new[] { rows, size }));
    }

    /// <summary>Token rows as MLNetDeep ids (key k → k + 1, missing → unknown 1), padded with 0 to the longest row.</summary>
    internal static NamedOnnxValue TokenBatch(IDataView data, string column)
    {
        var col = data.Schema[column];
        using var cursor = data.GetRowCursor(new[] { col });
        var get = cursor.GetGetter<VBuffer<uint>>(col);
        VBuffer<uint> v = default;
        var rows = new List<long[]>();
        while (cursor.MoveNext())
        {
            get(ref v);
            rows.Add(v.DenseValues().Select(k => k == 0 ? 1L : k + 1L).ToArray());
        }
        int t = Math.Max(1, rows.Max(r => r.Length));
        var ids = new long[rows.Count * t];
        for (int i = 0; i < rows.Count; i++) rows[i].CopyTo(ids, i * t);
        return NamedOnnxValue.CreateFromTensor(column, new DenseTensor<long>(ids, new[] { rows.Count, t }));
    }
}
