using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetDeep.TestData;
using Xunit;
using Xunit.Abstractions;

namespace MLNetDeep.Tests;

/// <summary>The Transformer family on word keys (SMS), image patches (Fashion-MNIST) and numeric windows (sunspots).</summary>
public sealed class TransformerTests
{
    private readonly ITestOutputHelper _out;
    public TransformerTests(ITestOutputHelper output) => _out = output;

    private static TransformerBinaryTrainer.Options SmallText(int epochs = 1) => new()
    {
        FeatureColumnName = "Tokens",
        NumberOfLayers = 2,
        ModelWidth = 32,
        NumberOfHeads = 4,
        NumberOfEpochs = epochs,
        BatchSize = 32,
        LearningRate = 1e-3,
        MaximumSequenceLength = 64,
    };

    private static IEstimator<ITransformer> Sms(MLContext ml, TransformerBinaryTrainer.Options o) =>
        Pipelines.SmsTokens(ml).Append(ml.BinaryClassification.Trainers.Transformer(o));

    private static float[] Scores(IDataView scored) => TestUtil.Floats(scored, "Score");

    /// <summary>The MLNetDeep model at the end of a fitted pipeline.</summary>
    private static DeepModelParameters Deep(ITransformer model) =>
        ((IPredictionTransformer<DeepModelParameters>)((IEnumerable<ITransformer>)model).Last()).Model;

    [Fact]
    public void SmsSpam_Transformer_OnWordKeys_ReachesTheIssuesGoal_OnHeldOut20Percent()
    {
        var ml = new MLContext(seed: 1);
        var split = ml.Data.TrainTestSplit(RealData.Sms(ml), testFraction: 0.2, seed: 1);
        var o = SmallText(8);
        o.ModelWidth = 64;
        o.LearningRate = 5e-4;
        o.TokenDropout = 0.1;
        o.BucketByLength = true;
        o.MaximumSequenceLength = 128;
        var model = Sms(ml, o).Fit(split.TrainSet);
        var m = ml.BinaryClassification.Evaluate(model.Transform(split.TestSet));
        _out.WriteLine($"sms-spam held-out 20%: Transformer accuracy {m.Accuracy:F4} AUC {m.AreaUnderRocCurve:F4} F1 {m.F1Score:F4}; {Deep(model).Architecture}");
        Assert.True(m.Accuracy >= 0.985, $"accuracy {m.Accuracy:F4} < 0.985");
        Assert.True(m.F1Score >= 0.94, $"F1 {m.F1Score:F4} < 0.94");
    }

    [Theory]
    [InlineData(TransformerPooling.Cls, true, true)]
    [InlineData(TransformerPooling.Mean, false, true)]
    [InlineData(TransformerPooling.Attention, true, false)]
    public void PaddingMask_DoesNotChangeARowsPrediction(TransformerPooling pooling, bool preNorm, bool fused)
    {
        // Each row scored alone (PredictionEngine: no padding) equals the same row inside batches padded to longer rows.
        var ml = new MLContext(seed: 2);
        var data = ml.Data.TakeRows(RealData.Sms(ml), 600);
        var o = SmallText();
        o.Pooling = pooling;
        o.PreNorm = preNorm;
        o.FusedAttention = fused;
        var model = Sms(ml, o).Fit(data);
        var batched = Scores(model.Transform(data));
        var engine = ml.Model.CreatePredictionEngine<RnnTests.SmsIn, RnnTests.BinaryOut>(model);
        var rows = ml.Data.CreateEnumerable<RnnTests.SmsIn>(data, reuseRowObject: false).ToList();
        double worst = 0;
        for (int i = 0; i < rows.Count; i++) worst = Math.Max(worst, Math.Abs(engine.Predict(rows[i]).Score - batched[i]));
        _out.WriteLine($"{pooling} preNorm={preNorm} fused={fused}: largest |alone - batched| = {worst:G3}");
        Assert.True(worst < 1e-4, $"a row's score changed by {worst} when padded in a batch");
    }

    [Fact]
    public void FusedAndExplicitAttention_GiveTheSamePredictions()
    {
        var ml = new MLContext(seed: 3);
        var data = ml.Data.TakeRows(RealData.Sms(ml), 400);
        var model = Sms(ml, SmallText()).Fit(data);
        var fused = Scores(model.Transform(data));
        var net = (TransformerNetwork)Deep(model).Network;
        net.FusedAttention = false;
        var explicitScores = Scores(model.Transform(data));
        net.FusedAttention = true;
        double worst = fused.Zip(explicitScores, (a, b) => Math.Abs(a - b)).Max();
        _out.WriteLine($"largest |fused - explicit| = {worst:G3}");
        Assert.True(worst < 1e-4, $"fused and explicit attention differ by {worst}");
    }

    [Fact]
    public void OverlongAndEmptySequences_AreTruncatedToThePositionTable_OrGetOnePosition()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.TakeRows(RealData.Sms(ml), 500);
        var o = SmallText();
        o.MaximumSequenceLength = 5; // the position table: 5 tokens + [CLS]
        var model = Sms(ml, o).Fit(data);
        var engine = ml.Model.CreatePredictionEngine<RnnTests.SmsIn, RnnTests.BinaryOut>(model);
        var longer = engine.Predict(new RnnTests.SmsIn { Message = "call me when you get home tonight please" }).Score;
        var firstFive = engine.Predict(new RnnTests.SmsIn { Message = "call me when you get" }).Score;
        var firstFour = engine.Predict(new RnnTests.SmsIn { Message = "call me when you" }).Score;
        Assert.Equal(firstFive, longer);
        Assert.NotEqual(firstFour, longer);
        var empty = engine.Predict(new RnnTests.SmsIn { Message = "?! ... !!" });
        Assert.True(float.IsFinite(empty.Score) && float.IsFinite(empty.Probability));
    }

    [Fact]
    public void AttentionWeights_OfARow_SumToOneOverItsTokens_AndDrawAsAHeatmap()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.TakeRows(RealData.Sms(ml), 500);
        var o = SmallText(2);
        o.FusedAttention = true; // the weights come from the explicit form either way
        var model = Sms(ml, o).Fit(data);
        var row = ml.Data.LoadFromEnumerable(new[] { new RnnTests.SmsIn { Message = "WINNER you have won a free prize zzzunseenzzz" } });
        var w = model.GetAttentionWeights(row);
        Assert.Equal(2, w.LayerCount);
        Assert.Equal(4, w.HeadCount);
        Assert.Equal(1 + 8, w.Length); // [CLS] + 8 words
        Assert.Equal("[CLS]", w.Positions[0]);
        Assert.Equal("winner", w.Positions[1]);
        Assert.Equal("[UNK]", w.Positions[8]);
        for (int l = 0; l < w.LayerCount; l++)
            for (int h = 0; h < w.HeadCount; h++)
                for (int q = 0; q < w.Length; q++)
                {
                    double sum = 0;
                    for (int k = 0; k < w.Length; k++) { Assert.True(w[l, h, q, k] >= 0); sum += w[l, h, q, k]; }
                    Assert.True(Math.Abs(sum - 1) < 1e-5, $"layer {l} head {h} query {q}: weights sum to {sum}");
                }
        string png = Path.Combine(TestUtil.TempDir(), "attention.png");
        w.SaveHeatmap(png);
        var bytes = File.ReadAllBytes(png);
        Assert.True(bytes.Length > 1000);
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, bytes[..4]);
        Assert.Throws<ArgumentOutOfRangeException>(() => w.SaveHeatmap(png, layer: 2));
        Assert.Throws<ArgumentException>(() => ml.Transforms.Text.NormalizeText("N", "Message").Fit(row).GetAttentionWeights(row));
    }

    [Fact]
    public void TransformerModel_LoadsInAnotherProcess_WithIdenticalPredictions()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.TakeRows(RealData.Sms(ml), 800);
        var o = SmallText(1);
        o.Positions = PositionEncoding.Sinusoidal;
        o.PreNorm = false;
        var model = Sms(ml, o).Fit(data);
        string path = Path.Combine(TestUtil.TempDir(), "transformer.zip");
        ml.Model.Save(model, data.Schema, path);
        var expected = PredictionDump.Lines(model.Transform(RealData.Sms(ml))).ToArray();
        Assert.Equal(expected, TestUtil.PredictInOtherProcess(path, "sms"));
    }

    [Fact]
    public void FashionMnist_VisionTransformer_LearnsFromPatches()
    {
        var ml = new MLContext(seed: 1);
        var model = ml.MulticlassClassification.Trainers.Transformer(new TransformerMulticlassTrainer.Options
        {
            PatchSize = 7, NumberOfLayers = 2, ModelWidth = 64, NumberOfHeads = 4, NumberOfEpochs = 3, BatchSize = 64, LearningRate = 1e-3,
        }).Fit(FashionMnist.Train(ml, 4000));
        Assert.Contains("1x28x28 image in 7x7 patches", model.Model.Architecture);
        var m = ml.MulticlassClassification.Evaluate(model.Transform(FashionMnist.Test(ml, 1000)));
        _out.WriteLine($"fashion ViT, 4000 training images, 3 epochs: accuracy {m.MicroAccuracy:F4}");
        Assert.True(m.MicroAccuracy >= 0.60, $"accuracy {m.MicroAccuracy:F4} < 0.60 (chance: 0.10)");
    }

    [Fact]
    public void VisionTransformer_Augmentation_IsReproducible_ChangesTraining_AndNeedsPatches()
    {
        TransformerMulticlassTrainer.Options Options(ImageAugmentation? augmentation) => new()
        {
            PatchSize = 7, NumberOfLayers = 1, ModelWidth = 32, NumberOfHeads = 2, NumberOfEpochs = 2, BatchSize = 64, Augmentation = augmentation,
        };
        string[] Fit(ImageAugmentation? augmentation)
        {
            var ml = new MLContext(seed: 3);
            var model = ml.MulticlassClassification.Trainers.Transformer(Options(augmentation)).Fit(FashionMnist.Train(ml, 640));
            return PredictionDump.Lines(model.Transform(FashionMnist.Test(ml, 50))).ToArray();
        }
        var strong = Fit(ImageAugmentation.Strong);
        Assert.Equal(strong, Fit(ImageAugmentation.Strong));
        Assert.NotEqual(strong, Fit(null));

        var ml = new MLContext(seed: 1);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => ml.BinaryClassification.Trainers.Transformer(new TransformerBinaryTrainer.Options { Augmentation = ImageAugmentation.Standard }));
        Assert.Equal(nameof(TransformerOptions.Augmentation), e.ParamName);
        Assert.Contains("PatchSize", e.Message);
    }

    [Fact]
    public void Sunspots_TransformerForecaster_BeatsSeasonalNaive()
    {
        var ml = new MLContext(seed: 1);
        var windows = Sunspots.Windows(ml, lookback: 20);
        var model = ml.Forecasting.Trainers.Transformer(new TransformerForecaster.Options
        {
            NumberOfLayers = 2, ModelWidth = 32, NumberOfHeads = 4, NumberOfEpochs = 60, BatchSize = 16, LearningRate = 1e-3,
            Dropout = 0, AttentionDropout = 0, Pooling = TransformerPooling.Mean,
        }).Fit(windows.Train);
        var t = windows.Evaluate(model.Transform(windows.Test!), name: "Transformer");
        var seasonal = windows.EvaluateSeasonalNaive(11);
        _out.WriteLine(ForecastMetrics.ToTable(t, seasonal));
        Assert.True(t.MeanAbsoluteError < seasonal.MeanAbsoluteError, $"Transformer mean MAE {t.MeanAbsoluteError:F2} >= seasonal naive {seasonal.MeanAbsoluteError:F2}");
    }

    [Fact]
    public void WarmupSchedules_RiseThenFall_AndBadShapesAreRefusedNamingTheOption()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.TakeRows(RealData.Sms(ml), 320);
        var o = SmallText(5);
        o.WarmupFraction = 0.4;
        var rates = Deep(Sms(ml, o).Fit(data)).History.Select(e => e.LearningRate).ToArray();
        _out.WriteLine("learning rate at the end of each epoch: " + string.Join(", ", rates.Select(r => r.ToString("G3"))));
        Assert.True(rates[0] < rates[1], "the rate rises during warm-up");
        Assert.True(rates[2] > rates[3] && rates[3] > rates[4], "the rate falls after warm-up");

        var heads = Assert.Throws<ArgumentOutOfRangeException>(() => ml.BinaryClassification.Trainers.Transformer(new TransformerBinaryTrainer.Options { ModelWidth = 30, NumberOfHeads = 4 }));
        Assert.Equal(nameof(TransformerOptions.NumberOfHeads), heads.ParamName);
        var patch = Assert.Throws<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.Transformer(new TransformerMulticlassTrainer.Options { PatchSize = 5, NumberOfEpochs = 1 })
            .Fit(FashionMnist.Train(ml, 64)));
        Assert.Equal(nameof(TransformerOptions.PatchSize), patch.ParamName);
        Assert.Contains("28x28", patch.Message);
        var tokens = Assert.Throws<ArgumentOutOfRangeException>(() => Pipelines.SmsTokens(ml).Append(ml.BinaryClassification.Trainers.Transformer(new TransformerBinaryTrainer.Options { FeatureColumnName = "Tokens", PatchSize = 4 })).Fit(data));
        Assert.Equal(nameof(TransformerOptions.PatchSize), tokens.ParamName);
    }
}
