using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetDeep.TestData;
using Xunit;
using Xunit.Abstractions;

namespace MLNetDeep.Tests;

/// <summary>The recurrent family on token sequences (SMS) and numeric sequences (sunspot windows, Fashion-MNIST rows).</summary>
public sealed class RnnTests
{
    private readonly ITestOutputHelper _out;
    public RnnTests(ITestOutputHelper output) => _out = output;

    private static RnnBinaryTrainer.Options SmallText(int epochs = 2) => new()
    {
        LabelColumnName = "Label",
        FeatureColumnName = "Tokens",
        Cell = RecurrentCell.Gru,
        EmbeddingSize = 32,
        HiddenSize = 32,
        NumberOfEpochs = epochs,
        BatchSize = 64,
        LearningRate = 3e-3,
    };

    private static IEstimator<ITransformer> SmsGru(MLContext ml, RnnBinaryTrainer.Options o) =>
        Pipelines.SmsTokens(ml).Append(ml.BinaryClassification.Trainers.Rnn(o));

    public sealed class SmsIn
    {
        public string LabelText { get; set; } = "";
        public string Message { get; set; } = "";
        public bool Label { get; set; }
    }

    public sealed class BinaryOut
    {
        public float Score { get; set; }
        public float Probability { get; set; }
        public bool PredictedLabel { get; set; }
    }

    private static float[] Scores(IDataView scored) => TestUtil.Floats(scored, "Score");

    [Fact]
    public void SmsSpam_Gru_OnWordKeys_ReachesHighAccuracy_OnHeldOut20Percent()
    {
        // The sequences sample's recipe at half width and fewer epochs: BiGRU, max pooling, word dropout.
        var ml = new MLContext(seed: 1);
        var split = ml.Data.TrainTestSplit(RealData.Sms(ml), testFraction: 0.2, seed: 1);
        var o = SmallText(6);
        o.Bidirectional = true;
        o.Pooling = SequencePooling.Max;
        o.Dropout = 0.3f;
        o.TokenDropout = 0.2;
        o.BucketByLength = true;
        var model = SmsGru(ml, o).Fit(split.TrainSet);
        var m = ml.BinaryClassification.Evaluate(model.Transform(split.TestSet));
        _out.WriteLine($"sms-spam held-out 20%: BiGRU accuracy {m.Accuracy:F4} AUC {m.AreaUnderRocCurve:F4} F1 {m.F1Score:F4}");
        Assert.True(m.Accuracy >= 0.98, $"accuracy {m.Accuracy:F4} < 0.98");
        Assert.True(m.F1Score >= 0.92, $"F1 {m.F1Score:F4} < 0.92");
    }

    [Fact]
    public void TokenDropout_IsValidated_AndRefusedForNumericInput()
    {
        var ml = new MLContext(seed: 1);
        var bad = Assert.Throws<ArgumentOutOfRangeException>(() => ml.BinaryClassification.Trainers.Rnn(new RnnBinaryTrainer.Options { TokenDropout = 1 }));
        Assert.Equal(nameof(SequenceOptions.TokenDropout), bad.ParamName);
        var windows = Sunspots.Windows(ml, lookback: 11);
        var numeric = Assert.Throws<ArgumentException>(() => ml.Forecasting.Trainers.Rnn(new RnnForecaster.Options { TokenDropout = 0.1, NumberOfEpochs = 1 }).Fit(windows.Train));
        Assert.Equal(nameof(SequenceOptions.TokenDropout), numeric.ParamName);
        Assert.Contains("'Features'", numeric.Message);
    }

    [Theory]
    [InlineData(SequencePooling.Last, true)]
    [InlineData(SequencePooling.Mean, false)]
    [InlineData(SequencePooling.Max, true)]
    [InlineData(SequencePooling.Attention, false)]
    public void Padding_DoesNotChangeARowsPrediction(SequencePooling pooling, bool bidirectional)
    {
        // Each row scored alone (PredictionEngine: no padding) equals the same row inside batches padded to longer rows.
        var ml = new MLContext(seed: 2);
        var data = ml.Data.TakeRows(RealData.Sms(ml), 600);
        var o = SmallText(1);
        o.Pooling = pooling;
        o.Bidirectional = bidirectional;
        o.NumberOfLayers = 2;
        var model = SmsGru(ml, o).Fit(data);
        var batched = Scores(model.Transform(data));
        var engine = ml.Model.CreatePredictionEngine<SmsIn, BinaryOut>(model);
        var rows = ml.Data.CreateEnumerable<SmsIn>(data, reuseRowObject: false).ToList();
        Assert.Equal(rows.Count, batched.Length);
        double worst = 0;
        for (int i = 0; i < rows.Count; i++) worst = Math.Max(worst, Math.Abs(engine.Predict(rows[i]).Score - batched[i]));
        _out.WriteLine($"{pooling} bidirectional={bidirectional}: largest |alone - batched| = {worst:G3}");
        Assert.True(worst < 1e-4, $"a row's score changed by {worst} when padded in a batch");
    }

    [Fact]
    public void TokenIds_ReservePadding_AndKeepUnseenWordsAsUnknown()
    {
        // Keys 1..K become ids 2..K+1; ML.NET's missing key 0 (a word unseen when the keys were built) becomes the unknown id 1, never padding 0.
        var ml = new MLContext(seed: 1);
        var train = ml.Data.LoadFromEnumerable(new[] { new Text { Words = "free prize now" }, new Text { Words = "see you later" } });
        var keys = ml.Transforms.Text.TokenizeIntoWords("Tokens", nameof(Text.Words)).Append(ml.Transforms.Conversion.MapValueToKey("Tokens")).Fit(train);
        var scoring = keys.Transform(ml.Data.LoadFromEnumerable(new[] { new Text { Words = "free zebra" }, new Text { Words = "later" } }));
        var encoder = TokenEncoder.FromSchema(scoring.Schema, "Tokens", "input", 10);
        Assert.Equal(6, encoder.KeyCount);
        Assert.Equal(8, encoder.VocabularySize);
        using var store = encoder.CreateStore(4);
        using var cursor = scoring.GetRowCursor(scoring.Schema);
        store.Bind(cursor, scoring.Schema["Tokens"]);
        while (cursor.MoveNext()) store.Append(cursor.Position, "input");
        using var batch = store.Collate(0, 2);
        Assert.Equal(new long[] { 2, 2 }, batch.shape);
        Assert.Equal(new long[] { 2, TokenEncoder.UnknownId, 7, TokenEncoder.PaddingId }, batch.data<long>().ToArray());
    }

    public sealed class Text { public string Words { get; set; } = ""; }

    [Fact]
    public void EmptyAndOverlongSequences_GetDefinedPredictions()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.TakeRows(RealData.Sms(ml), 500);
        var o = SmallText(1);
        o.MaximumSequenceLength = 5;
        var model = SmsGru(ml, o).Fit(data);
        var engine = ml.Model.CreatePredictionEngine<SmsIn, BinaryOut>(model);
        // Every token removed (only punctuation): one padding step, a finite prediction, the same through Transform.
        var empty = engine.Predict(new SmsIn { Message = "?! ... !!" });
        Assert.True(float.IsFinite(empty.Score) && float.IsFinite(empty.Probability));
        var emptyBatch = Scores(model.Transform(ml.Data.LoadFromEnumerable(new[] { new SmsIn { Message = "?! ... !!" }, new SmsIn { Message = "free entry now" } })));
        Assert.Equal(empty.Score, emptyBatch[0], 5);
        // Longer than MaximumSequenceLength: only the first 5 tokens count.
        var longer = engine.Predict(new SmsIn { Message = "call me when you get home tonight please" }).Score;
        var firstFive = engine.Predict(new SmsIn { Message = "call me when you get" }).Score;
        var firstFour = engine.Predict(new SmsIn { Message = "call me when you" }).Score;
        Assert.Equal(firstFive, longer);
        Assert.NotEqual(firstFour, longer);
    }

    [Fact]
    public void KeyCountThatDiffersAtScoring_IsRejectedNamingTheColumnAndBothCounts()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.TakeRows(RealData.Sms(ml), 300);
        var keys = Pipelines.SmsTokens(ml).Fit(data);
        var rnn = ml.BinaryClassification.Trainers.Rnn(SmallText(1)).Fit(keys.Transform(data));
        // Keys built on other rows: another vocabulary.
        var otherKeys = Pipelines.SmsTokens(ml).Fit(ml.Data.SkipRows(RealData.Sms(ml), 300));
        var other = otherKeys.Transform(ml.Data.SkipRows(RealData.Sms(ml), 300));
        long trained = (long)((KeyDataViewType)((VectorDataViewType)keys.Transform(data).Schema["Tokens"].Type).ItemType).Count;
        long now = (long)((KeyDataViewType)((VectorDataViewType)other.Schema["Tokens"].Type).ItemType).Count;
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => rnn.Transform(other));
        Assert.Contains("'Tokens'", e.Message);
        Assert.Contains($"{trained} values", e.Message);
        Assert.Contains($"{now} values", e.Message);
    }

    [Fact]
    public void TokenModel_LoadsInAnotherProcess_WithIdenticalPredictions()
    {
        var ml = new MLContext(seed: 3);
        var data = RealData.Sms(ml);
        var o = SmallText(1);
        o.Bidirectional = true;
        o.Pooling = SequencePooling.Attention;
        var model = SmsGru(ml, o).Fit(ml.Data.TakeRows(data, 1500));
        string path = Path.Combine(TestUtil.TempDir(), "model.zip");
        ml.Model.Save(model, data.Schema, path);
        var here = PredictionDump.Lines(model.Transform(data)).ToArray();
        var there = TestUtil.PredictInOtherProcess(path, "sms");
        Assert.Equal(5574, here.Length);
        Assert.Equal(here, there);
    }

    [Fact]
    public void SameSeed_SamePredictions_AndCheckpointResume_EndsWhereAnUninterruptedRunEnds()
    {
        var ml1 = new MLContext(seed: 5);
        var data = ml1.Data.TakeRows(RealData.Sms(ml1), 800);
        var o = SmallText(3);
        o.BucketByLength = true;
        o.BatchSize = 8; // 800 rows are two pools of 50 batches: bucketing sorts each pool
        var a = Scores(SmsGru(ml1, o).Fit(data).Transform(data));
        var b = Scores(SmsGru(new MLContext(seed: 5), o).Fit(data).Transform(data));
        Assert.Equal(a, b);

        // Interrupted after epoch 2 by cancellation, then resumed from the checkpoint.
        string dir = TestUtil.TempDir();
        var ml2 = new MLContext(seed: 5);
        var first = SmallText(3);
        first.BucketByLength = true;
        first.BatchSize = 8;
        first.CheckpointDirectory = dir;
        first.EpochCallback = m => { if (m.Epoch == 2) ml2.CancelExecution(); };
        Assert.ThrowsAny<OperationCanceledException>(() => SmsGru(ml2, first).Fit(data));
        var resumed = SmallText(3);
        resumed.BucketByLength = true;
        resumed.BatchSize = 8;
        resumed.CheckpointDirectory = dir;
        var c = Scores(SmsGru(new MLContext(seed: 5), resumed).Fit(data).Transform(data));
        Assert.Equal(a, c);
    }

    [Fact]
    public void NumericSequence_WithAWrongStepShape_IsRejectedNamingFeaturesPerStep()
    {
        var ml = new MLContext(seed: 1);
        var windows = Sunspots.Windows(ml, lookback: 20);
        var o = new RnnForecaster.Options { FeaturesPerStep = 3, NumberOfEpochs = 1 };
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Forecasting.Trainers.Rnn(o).Fit(windows.Train));
        Assert.Equal(nameof(SequenceOptions.FeaturesPerStep), e.ParamName);
        Assert.Contains("20 values", e.Message);
    }

    [Fact]
    public void Sunspots_GruForecaster_BeatsNaiveAndSeasonalNaive_AndLoadsInAnotherProcess()
    {
        var ml = new MLContext(seed: 1);
        var windows = Sunspots.Windows(ml);
        var model = ml.Forecasting.Trainers.Rnn(new RnnForecaster.Options
        {
            Cell = RecurrentCell.Gru,
            HiddenSize = 32,
            NumberOfEpochs = 60,
            BatchSize = 16,
            LearningRate = 3e-3,
            Dropout = 0,
        }).Fit(windows.Train);
        var scored = model.Transform(windows.Test!);
        var gru = windows.Evaluate(scored, name: "GRU");
        var naive = windows.EvaluateNaive();
        var seasonal = windows.EvaluateSeasonalNaive(11);
        _out.WriteLine(ForecastMetrics.ToTable(gru, naive, seasonal));
        Assert.True(gru.MeanAbsoluteError < seasonal.MeanAbsoluteError, $"GRU mean MAE {gru.MeanAbsoluteError:F2} >= seasonal naive {seasonal.MeanAbsoluteError:F2}");
        Assert.Equal(5, model.Model.Horizon);

        string path = Path.Combine(TestUtil.TempDir(), "forecaster.zip");
        ml.Model.Save(model, windows.Train.Schema, path);
        Assert.Equal(PredictionDump.Lines(scored).ToArray(), TestUtil.PredictInOtherProcess(path, "sunspots"));
    }

    [Fact]
    public void Sunspots_AutoregressiveGru_BeatsTheDirectOne_AndLoadsInAnotherProcess()
    {
        // Same windows, same GRU; one emits the five years at once, the other one year at a time fed back.
        var ml = new MLContext(seed: 1);
        var windows = Sunspots.Windows(ml, lookback: 11);
        RnnForecaster.Options Gru(ForecastDecoding decoding, int epochs) => new()
        {
            Cell = RecurrentCell.Gru, HiddenSize = 32, NumberOfEpochs = epochs, BatchSize = 16, LearningRate = 3e-3, Dropout = 0,
            Schedule = LearningRateSchedule.Cosine, Decoding = decoding,
        };
        var direct = ml.Forecasting.Trainers.Rnn(Gru(ForecastDecoding.Direct, 30)).Fit(windows.Train);
        var auto = ml.Forecasting.Trainers.Rnn(Gru(ForecastDecoding.Autoregressive, 60)).Fit(windows.Train);
        var scored = auto.Transform(windows.Test!);
        var a = windows.Evaluate(scored, name: "GRU autoregressive");
        var d = windows.Evaluate(direct.Transform(windows.Test!), name: "GRU direct");
        _out.WriteLine(ForecastMetrics.ToTable(a, d, windows.EvaluateSeasonalNaive(11)));
        Assert.True(a.MeanAbsoluteError < d.MeanAbsoluteError, $"autoregressive {a.MeanAbsoluteError:F2} >= direct {d.MeanAbsoluteError:F2}");
        Assert.True(a.MeanAbsoluteError < 14, $"autoregressive mean MAE {a.MeanAbsoluteError:F2} >= 14 (R's auto.arima: 25.99, nnetar 12.64)");
        Assert.Equal(5, auto.Model.Horizon);
        Assert.Contains("autoregressive over 5 steps", auto.Model.Architecture);

        string path = Path.Combine(TestUtil.TempDir(), "autoregressive.zip");
        ml.Model.Save(auto, windows.Train.Schema, path);
        Assert.Equal(PredictionDump.Lines(scored).ToArray(), TestUtil.PredictInOtherProcess(path, "sunspots11"));
    }

    [Fact]
    public void AbsoluteErrorLoss_TrainsAForecasterToTheMedian()
    {
        // A sine with rare unpredictable spikes: the squared loss is pulled towards them (the mean), the absolute loss
        // keeps to the typical value (the median), which is what MAE rewards.
        var ml = new MLContext(seed: 1);
        var random = new Random(3);
        var rows = Enumerable.Range(0, 400).Select(i => new SeriesPoint { Value = (float)Math.Sin(i * 0.3) + (random.NextDouble() < 0.1 ? 20f : 0f) }).ToArray();
        var windows = ForecastWindows.Create(ml, ml.Data.LoadFromEnumerable(rows), new ForecastWindowOptions { TargetColumn = nameof(SeriesPoint.Value), Lookback = 8, Horizon = 1, TestCount = 60 });
        ForecastMetrics Train(RegressionLoss loss) => windows.Evaluate(ml.Forecasting.Trainers.Rnn(new RnnForecaster.Options
        {
            Cell = RecurrentCell.Gru, HiddenSize = 16, NumberOfEpochs = 20, BatchSize = 16, LearningRate = 3e-3, Dropout = 0, RegressionLoss = loss,
        }).Fit(windows.Train).Transform(windows.Test!), name: loss.ToString());
        var l1 = Train(RegressionLoss.AbsoluteError);
        var l2 = Train(RegressionLoss.SquaredError);
        _out.WriteLine(ForecastMetrics.ToTable(l1, l2));
        Assert.True(l1.MeanAbsoluteError < l2.MeanAbsoluteError, $"absolute-error loss MAE {l1.MeanAbsoluteError:F3} >= squared-error loss MAE {l2.MeanAbsoluteError:F3}");
    }

    public sealed class SeriesPoint { public float Value { get; set; } }

    [Fact]
    public void AutoregressiveDecoding_RefusesWhatItCannotFeedBack_NamingTheOption()
    {
        var ml = new MLContext(seed: 1);
        var bi = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Forecasting.Trainers.Rnn(new RnnForecaster.Options { Decoding = ForecastDecoding.Autoregressive, Bidirectional = true }));
        Assert.Equal(nameof(RnnOptions.Bidirectional), bi.ParamName);
        var pool = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Forecasting.Trainers.Rnn(new RnnForecaster.Options { Decoding = ForecastDecoding.Autoregressive, Pooling = SequencePooling.Mean }));
        Assert.Equal(nameof(RnnOptions.Pooling), pool.ParamName);

        // A covariate makes two values per step: the future covariate is not a forecast to feed back.
        var windows = ForecastWindows.Create(ml, Sunspots.Load(ml), new ForecastWindowOptions
        {
            TargetColumn = nameof(SunspotRow.SUNACTIVITY), CovariateColumns = new[] { nameof(SunspotRow.YEAR) }, Lookback = 11, Horizon = 5, TestCount = 30,
        });
        var two = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Forecasting.Trainers.Rnn(new RnnForecaster.Options { Decoding = ForecastDecoding.Autoregressive, NumberOfEpochs = 1 }).Fit(windows.Train));
        Assert.Equal(nameof(RnnForecaster.Options.Decoding), two.ParamName);
        Assert.Contains("2 per step", two.Message);
    }

    [Fact]
    public void FashionMnistRows_Lstm_LearnsFromTwentyEightStepsOfTwentyEightPixels()
    {
        var ml = new MLContext(seed: 1);
        var model = ml.MulticlassClassification.Trainers.Rnn(new RnnMulticlassTrainer.Options
        {
            HiddenSize = 64,
            NumberOfEpochs = 2,
            BatchSize = 128,
            LearningRate = 3e-3,
        }).Fit(FashionMnist.Train(ml, 4000));
        Assert.Contains("28 steps x 28", model.Model.Architecture);
        var m = ml.MulticlassClassification.Evaluate(model.Transform(FashionMnist.Test(ml, 1000)));
        _out.WriteLine($"fashion rows, 4000 training images, 2 epochs: LSTM accuracy {m.MicroAccuracy:F4}");
        Assert.True(m.MicroAccuracy >= 0.65, $"accuracy {m.MicroAccuracy:F4} < 0.65");
    }

    [Fact]
    public void WordVectors_InitialiseTheEmbeddingRowsOfKnownWords_AndFreezeKeepsThem()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.TakeRows(RealData.Sms(ml), 400);
        string path = Path.Combine(TestUtil.TempDir(), "vectors.vec");
        File.WriteAllLines(path, new[] { "3 4", "free 0.5 -0.25 1 2", "call 1 1 1 1", "notaword 9 9 9 9" });
        var o = SmallText(1);
        o.EmbeddingSize = 4;
        o.WordVectorsPath = path;
        o.FreezeEmbeddings = true;
        var model = ((IEnumerable<ITransformer>)SmsGru(ml, o).Fit(data)).OfType<DeepPredictionTransformer<DeepBinaryModelParameters>>().Single();
        var keys = Pipelines.SmsTokens(ml).Fit(data).Transform(data).Schema["Tokens"];
        VBuffer<ReadOnlyMemory<char>> words = default;
        keys.GetKeyValues(ref words);
        var list = words.DenseValues().Select(w => w.ToString()).ToList();
        var weights = ((RnnNetwork)model.Model.Network).embedding!.weight!;
        float[] Row(string w) => weights[list.IndexOf(w) + 2].data<float>().ToArray();
        Assert.Equal(new[] { 0.5f, -0.25f, 1f, 2f }, Row("free"));
        Assert.Equal(new[] { 1f, 1f, 1f, 1f }, Row("call"));
        Assert.Equal(new float[4], weights[TokenEncoder.PaddingId].data<float>().ToArray());

        o.EmbeddingSize = 5;
        var e = Assert.ThrowsAny<Exception>(() => SmsGru(ml, o).Fit(data));
        Assert.Contains("EmbeddingSize is 5", e.Message);
    }
}
