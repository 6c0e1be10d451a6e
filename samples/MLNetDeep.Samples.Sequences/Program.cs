// MLNetDeep sequences sample: recurrent networks (LSTM / GRU) and Transformers on token sequences (SMS spam, GitHub issues, yelp) and
// numeric sequences (sunspot forecasting, Fashion-MNIST images read row by row or as patches), each beside ML.NET's classic trainers
// (and, for sunspots, R's forecast package) in the same run.
//
//   dotnet run -c Release --project samples/MLNetDeep.Samples.Sequences [-- --only sms,github,yelp,sunspots,fashion,vit]
//       [--r] [--sun-epochs 30] [--sun-ar-epochs 60] [--sun-hidden 32] [--sun-lookback 11]
//       [--sun-transformer-epochs 60] [--github-pretrain-epochs 100] [--text-pretrain-epochs 100] [--fashion-epochs 12] [--fashion-rows 60000]
//       [--vit-epochs 40] [--vit-patch 4] [--vit-layers 4] [--vit-width 96] [--vit-lr 1e-3]
//       [--vit-dropout 0] [--vit-pooling Mean] [--vit-augment none|flip|standard|strong] [--output DIR]
using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Text;
using MLNetDeep;
using MLNetDeep.Samples;
using MLNetDeep.TestData;
using static MLNetDeep.Samples.SampleKit;

string Arg(string name, string fallback) => args.SkipWhile(a => a != name).Skip(1).FirstOrDefault() ?? fallback;
var only = Arg("--only", "sms,github,yelp,sunspots,fashion,vit").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).ToHashSet();
bool runR = args.Contains("--r");
int fashionEpochs = int.Parse(Arg("--fashion-epochs", "12"));
int sunEpochs = int.Parse(Arg("--sun-epochs", "30")), sunArEpochs = int.Parse(Arg("--sun-ar-epochs", "60")), sunTransformerEpochs = int.Parse(Arg("--sun-transformer-epochs", "60")), sunHidden = int.Parse(Arg("--sun-hidden", "32")), sunLookback = int.Parse(Arg("--sun-lookback", "11"));
int? fashionRows = Arg("--fashion-rows", "") is { Length: > 0 } fr ? int.Parse(fr) : null;
int githubPretrainEpochs = int.Parse(Arg("--github-pretrain-epochs", "100"));
int textPretrainEpochs = int.Parse(Arg("--text-pretrain-epochs", "100"));
int vitEpochs = int.Parse(Arg("--vit-epochs", "40")), vitPatch = int.Parse(Arg("--vit-patch", "4")), vitLayers = int.Parse(Arg("--vit-layers", "4")), vitWidth = int.Parse(Arg("--vit-width", "96"));
float vitDropout = float.Parse(Arg("--vit-dropout", "0"), System.Globalization.CultureInfo.InvariantCulture);
double vitLearningRate = double.Parse(Arg("--vit-lr", "1e-3"), System.Globalization.CultureInfo.InvariantCulture);
var vitPooling = Enum.Parse<TransformerPooling>(Arg("--vit-pooling", "Mean"), ignoreCase: true);
var vitAugmentation = Arg("--vit-augment", "standard").ToLowerInvariant() switch
{
    "none" => ImageAugmentation.None,
    "flip" => new ImageAugmentation { HorizontalFlip = true },
    "standard" => ImageAugmentation.Standard,
    "strong" => ImageAugmentation.Strong,
    var other => throw new ArgumentException($"--vit-augment must be none, flip, standard or strong, not '{other}'."),
};
string output = Arg("--output", Path.Combine(Directory.GetCurrentDirectory(), "mlnetdeep-output"));
Directory.CreateDirectory(output);
var ml = new MLContext(seed: 1);
ml.Log += (_, e) => { if (e.RawMessage.StartsWith("MLNetDeep: epoch", StringComparison.Ordinal)) Console.WriteLine("    " + e.RawMessage["MLNetDeep: ".Length..]); };
Console.WriteLine($"MLNetDeep sequences sample — data from {DataPaths.Root}; models to {output}");

// Words as keys: the input of the recurrent nets (ML.NET's own text transforms do the tokenizing).
IEstimator<ITransformer> Tokens(string source) =>
    ml.Transforms.Text.NormalizeText("Normalized", source, keepPunctuations: false)
      .Append(ml.Transforms.Text.TokenizeIntoWords("Tokens", "Normalized"))
      .Append(ml.Transforms.Conversion.MapValueToKey("Tokens"));

IEstimator<ITransformer> BagOfNgrams(string source) =>
    ml.Transforms.Text.FeaturizeText("Features", new TextFeaturizingEstimator.Options
    {
        WordFeatureExtractor = new WordBagEstimator.Options { NgramLength = 2 },
        CharFeatureExtractor = new WordBagEstimator.Options { NgramLength = 3, UseAllLengths = false },
    }, source).Append(ml.Transforms.FeatureSelection.SelectFeaturesBasedOnCount("Features", count: 3));

// The recurrent text classifier: a bidirectional GRU over word keys, max pooling, and word dropout (TokenDropout:
// a fifth of the training tokens become "unknown", so the net learns what to do with words it has never seen — at
// scoring every word outside the training vocabulary is unknown).
RnnBinaryTrainer.Options TextRnn(int epochs) => new()
{
    FeatureColumnName = "Tokens",
    Cell = RecurrentCell.Gru,
    Bidirectional = true,
    EmbeddingSize = 64,
    HiddenSize = 64,
    Pooling = SequencePooling.Max,
    Dropout = 0.3f,
    TokenDropout = 0.2,
    NumberOfEpochs = epochs,
    LearningRate = 3e-3,
    BucketByLength = true,
};

// The Transformer text classifier: 2 pre-norm layers of width 64 with 4 heads, word dropout, warm-up + cosine decay.
TransformerBinaryTrainer.Options TextTransformer(int epochs, TransformerPooling pooling, int batchSize) => new()
{
    FeatureColumnName = "Tokens",
    NumberOfLayers = 2,
    ModelWidth = 64,
    NumberOfHeads = 4,
    Pooling = pooling,
    TokenDropout = 0.1,
    NumberOfEpochs = epochs,
    BatchSize = batchSize,
    LearningRate = 5e-4,
    MaximumSequenceLength = 128,
    BucketByLength = true,
};

void BinaryText(string title, IDataView data, string textColumn, int rnnEpochs, (int Epochs, TransformerPooling Pooling, int Batch) transformer, string savedName, object example)
{
    var split = ml.Data.TrainTestSplit(data, testFraction: 0.2, seed: 1);
    var board = new Leaderboard(title, "accuracy", "AUC", "F1");
    ITransformer? saved = null;
    var spreads = new List<(string Name, List<(double Accuracy, double F1)> Runs)>();
    // Pretraining on the training messages' own text (masked tokens, labels unused), once (seed 1), with the word keys
    // fitted on that text; the five fine-tuning runs below start from it. 0 epochs skips it.
    ITransformer? encoder = null;
    if (textPretrainEpochs > 0)
    {
        var trainTokens = Tokens(textColumn).Fit(split.TrainSet).Transform(split.TrainSet);
        double pretrainSeconds;
        (encoder, pretrainSeconds) = Timed(() => new MLContext(seed: 1).Transforms.Text.PretrainTransformerEncoder(new TransformerPretrainer.Options
        {
            FeatureColumnName = "Tokens", NumberOfLayers = 2, ModelWidth = 64, NumberOfHeads = 4, NumberOfEpochs = textPretrainEpochs, BatchSize = 32,
            LearningRate = 1e-3, MaximumSequenceLength = 128, BucketByLength = true,
        }).Fit(trainTokens));
        var history = ((DeepPredictionTransformer<DeepEncoderModelParameters>)encoder).Model.History;
        Console.WriteLine($"  pretrained on the {title.Split('(')[0].Trim()} training text: masked-token loss {history[0].TrainLoss:F3} -> {history[^1].TrainLoss:F3} in {textPretrainEpochs} epochs ({pretrainSeconds:F0} s)");
    }
    TransformerBinaryTrainer.Options Pretrained()
    {
        var o = TextTransformer(transformer.Epochs, transformer.Pooling, transformer.Batch);
        o.BaseModel = encoder;
        return o;
    }
    // The deep nets from five seeds (MLContext seeds 1–5, the same split): one seed's figure is a draw.
    foreach (var (name, make) in new (string, Func<MLContext, IEstimator<ITransformer>>?)[]
    {
        ("MLNetDeep BiGRU (word keys)", m => Tokens(textColumn).Append(m.BinaryClassification.Trainers.Rnn(TextRnn(rnnEpochs)))),
        ("MLNetDeep Transformer (word keys)", m => Tokens(textColumn).Append(m.BinaryClassification.Trainers.Transformer(TextTransformer(transformer.Epochs, transformer.Pooling, transformer.Batch)))),
        // The raw text as cl100k_base sub-words (the vocabulary ships in Microsoft.ML.Tokenizers.Data.Cl100kBase).
        ("MLNetDeep Transformer (cl100k sub-words)", m => m.Transforms.Text.TokenizeIntoSubwords("Tokens", textColumn, SubwordTokenizer.Cl100kBase())
            .Append(m.BinaryClassification.Trainers.Transformer(TextTransformer(transformer.Epochs, transformer.Pooling, transformer.Batch)))),
        ($"MLNetDeep Transformer (word keys), pretrained {textPretrainEpochs} ep", encoder is null ? null
            : m => Tokens(textColumn).Append(m.BinaryClassification.Trainers.Transformer(Pretrained()))),
    })
    {
        if (make is null) continue;
        var runs = new List<(double, double)>();
        for (int seed = 1; seed <= 5; seed++)
        {
            var seeded = new MLContext(seed: seed);
            var (model, seconds) = Timed(() => make(seeded).Fit(split.TrainSet));
            var m = ml.BinaryClassification.Evaluate(model.Transform(split.TestSet));
            board.Add($"{name}, seed {seed}", seconds, m.Accuracy, m.AreaUnderRocCurve, m.F1Score);
            runs.Add((m.Accuracy, m.F1Score));
            if (seed == 1 && name.Contains("Transformer (word keys)")) saved = model;
        }
        spreads.Add((name, runs));
    }
    foreach (var (name, pipeline) in new (string, IEstimator<ITransformer>)[]
    {
        ("MLNetDeep MLP [128] (n-grams)", BagOfNgrams(textColumn).Append(ml.BinaryClassification.Trainers.Mlp(new MlpBinaryTrainer.Options { HiddenLayers = new[] { 128 }, NumberOfEpochs = 5 }))),
        ("SDCA logistic regression (n-grams)", BagOfNgrams(textColumn).Append(ml.BinaryClassification.Trainers.SdcaLogisticRegression())),
    })
    {
        var (model, seconds) = Timed(() => pipeline.Fit(split.TrainSet));
        var m = ml.BinaryClassification.Evaluate(model.Transform(split.TestSet));
        board.Add(name, seconds, m.Accuracy, m.AreaUnderRocCurve, m.F1Score);
    }
    board.Print();
    foreach (var (name, runs) in spreads)
        Console.WriteLine($"  {name} over 5 seeds: accuracy mean {runs.Average(x => x.Accuracy):F4} (min {runs.Min(x => x.Accuracy):F4}, max {runs.Max(x => x.Accuracy):F4}), "
            + $"F1 mean {runs.Average(x => x.F1):F4} (min {runs.Min(x => x.F1):F4}, max {runs.Max(x => x.F1):F4})");
    if (example is SmsInput sms)
    {
        SaveReloadPredict<SmsInput, SpamPrediction>(ml, saved!, split.TrainSet.Schema, Path.Combine(output, savedName), sms, p => $"positive: {p.PredictedLabel} (probability {p.Probability:F3})");
        // Look inside: the Transformer's attention over the example message, as data and as a heat map.
        var attention = saved!.GetAttentionWeights(ml.Data.LoadFromEnumerable(new[] { sms }));
        string png = Path.Combine(output, Path.ChangeExtension(savedName, null) + "-attention.png");
        attention.SaveHeatmap(png);
        var fromCls = attention.GetMeanOverHeads(attention.LayerCount - 1).Take(attention.Length).ToArray();
        var top = Enumerable.Range(1, attention.Length - 1).OrderByDescending(k => fromCls[k]).Take(3).Select(k => $"'{attention.Positions[k]}' {fromCls[k]:F2}");
        Console.WriteLine($"  attention of [CLS] in the last layer (mean of heads), largest: {string.Join(", ", top)}; heat map {png}");
    }
    else
        SaveReloadPredict<YelpRow, SpamPrediction>(ml, saved!, split.TrainSet.Schema, Path.Combine(output, savedName), (YelpRow)example, p => $"positive: {p.PredictedLabel} (probability {p.Probability:F3})");
}

if (only.Contains("sms"))
    BinaryText("Binary — SMS spam (80/20 split of 5574 messages; spam F1)", RealData.Sms(ml), nameof(SmsRow.Message), 8, (8, TransformerPooling.Cls, 32), "sms-transformer.zip",
        new SmsInput { Message = "WINNER!! You have won a free prize, call 09061701461 now to claim" });

if (only.Contains("yelp"))
    BinaryText("Binary — yelp-labelled (80/20 split of 1000 sentences)", RealData.Yelp(ml), nameof(YelpRow.Text), 10, (15, TransformerPooling.Mean, 16), "yelp-transformer.zip",
        new YelpRow { Text = "The food was cold and the waiter was rude." });

if (only.Contains("github"))
{
    var split = ml.Data.TrainTestSplit(RealData.GitHubIssues(ml), testFraction: 0.2, seed: 1);
    var label = ml.Transforms.Conversion.MapValueToKey("Label", nameof(GitHubIssueRow.Area));
    var text = ml.Transforms.Concatenate("Text", nameof(GitHubIssueRow.Title), nameof(GitHubIssueRow.Description));
    var ngrams = label.Append(ml.Transforms.Text.FeaturizeText("TitleFeaturized", nameof(GitHubIssueRow.Title)))
        .Append(ml.Transforms.Text.FeaturizeText("DescriptionFeaturized", nameof(GitHubIssueRow.Description)))
        .Append(ml.Transforms.Concatenate("Features", "TitleFeaturized", "DescriptionFeaturized"));
    var words = label.Append(ml.Transforms.Text.NormalizeText("Normalized", nameof(GitHubIssueRow.Title), keepPunctuations: false))
        .Append(ml.Transforms.Text.NormalizeText("NormalizedDescription", nameof(GitHubIssueRow.Description), keepPunctuations: false))
        .Append(ml.Transforms.Text.TokenizeIntoWords("TitleTokens", "Normalized"))
        .Append(ml.Transforms.Text.TokenizeIntoWords("DescriptionTokens", "NormalizedDescription"))
        .Append(ml.Transforms.Concatenate("Tokens", "TitleTokens", "DescriptionTokens"))
        .Append(ml.Transforms.Conversion.MapValueToKey("Tokens"));
    var board = new Leaderboard("Multiclass — GitHub issues (80/20 split of 1615 issues, 22 areas)", "micro-acc", "macro-acc", "log-loss");
    foreach (var (name, pipeline) in new (string, IEstimator<ITransformer>)[]
    {
        ("MLNetDeep BiGRU (word keys)", words.Append(ml.MulticlassClassification.Trainers.Rnn(new RnnMulticlassTrainer.Options
        {
            FeatureColumnName = "Tokens", Cell = RecurrentCell.Gru, Bidirectional = true, EmbeddingSize = 64, HiddenSize = 64,
            Pooling = SequencePooling.Max, Dropout = 0.3f, TokenDropout = 0.2, NumberOfEpochs = 10, LearningRate = 3e-3, BatchSize = 32,
            MaximumSequenceLength = 100, BucketByLength = true,
        }))),
        ("MLNetDeep Transformer (word keys)", words.Append(ml.MulticlassClassification.Trainers.Transformer(new TransformerMulticlassTrainer.Options
        {
            FeatureColumnName = "Tokens", NumberOfLayers = 2, ModelWidth = 64, NumberOfHeads = 4, Pooling = TransformerPooling.Mean, TokenDropout = 0.1,
            NumberOfEpochs = 15, LearningRate = 1e-3, BatchSize = 32, MaximumSequenceLength = 128, BucketByLength = true,
        }))),
        ("MLNetDeep MLP [256] (n-grams)", ngrams.Append(ml.Transforms.FeatureSelection.SelectFeaturesBasedOnMutualInformation("Features", slotsInOutput: 5000))
            .Append(ml.MulticlassClassification.Trainers.Mlp(new MlpMulticlassTrainer.Options { HiddenLayers = new[] { 256 }, NumberOfEpochs = 15, Dropout = 0.3f }))),
        ("SdcaMaximumEntropy (n-grams)", ngrams.Append(ml.MulticlassClassification.Trainers.SdcaMaximumEntropy())),
    })
    {
        var (model, seconds) = Timed(() => pipeline.Fit(split.TrainSet));
        var m = ml.MulticlassClassification.Evaluate(model.Transform(split.TestSet));
        board.Add(name, seconds, m.MicroAccuracy, m.MacroAccuracy, m.LogLoss);
    }
    // The same Transformer, first pretrained on the training issues' own text (masked tokens; labels unused), then
    // fine-tuned. The token keys are fitted once on that text, so pretraining and fine-tuning share the vocabulary.
    var wordKeys = words.Fit(split.TrainSet);
    var trainTokens = wordKeys.Transform(split.TrainSet);
    var (encoder, pretrainSeconds) = Timed(() => ml.Transforms.Text.PretrainTransformerEncoder(new TransformerPretrainer.Options
    {
        FeatureColumnName = "Tokens", NumberOfLayers = 2, ModelWidth = 64, NumberOfHeads = 4, NumberOfEpochs = githubPretrainEpochs, BatchSize = 32,
        LearningRate = 1e-3, MaximumSequenceLength = 128, BucketByLength = true,
    }).Fit(trainTokens));
    var (tuned, tuneSeconds) = Timed(() => ml.MulticlassClassification.Trainers.Transformer(new TransformerMulticlassTrainer.Options
    {
        FeatureColumnName = "Tokens", BaseModel = encoder, Pooling = TransformerPooling.Mean, TokenDropout = 0.1,
        NumberOfEpochs = 15, LearningRate = 1e-3, BatchSize = 32, MaximumSequenceLength = 128, BucketByLength = true,
    }).Fit(trainTokens));
    var pm = ml.MulticlassClassification.Evaluate(tuned.Transform(wordKeys.Transform(split.TestSet)));
    board.Add($"MLNetDeep Transformer, pretrained {githubPretrainEpochs} ep", pretrainSeconds + tuneSeconds, pm.MicroAccuracy, pm.MacroAccuracy, pm.LogLoss);
    board.Print();
    Console.WriteLine($"  masked-token loss of the pretraining: {((DeepPredictionTransformer<DeepEncoderModelParameters>)encoder).Model.History[0].TrainLoss:F3} -> "
        + $"{((DeepPredictionTransformer<DeepEncoderModelParameters>)encoder).Model.History[^1].TrainLoss:F3} ({pretrainSeconds:F0} s)");
    Console.WriteLine();
}

if (only.Contains("sunspots"))
{
    // R's forecast package's protocol: fit once on 1700–1978, rolling origin over 1979–2008, horizons 1–5.
    var windows = Sunspots.Windows(ml, sunLookback);
    var results = new List<ForecastMetrics>();
    var seconds = new List<(string, double)>();
    void Forecaster(string name, IEstimator<ITransformer> trainer)
    {
        var (model, s) = Timed(() => trainer.Fit(windows.Train));
        results.Add(windows.Evaluate(model.Transform(windows.Test!), name: name));
        seconds.Add((name, s));
    }
    Forecaster("MLNetDeep GRU", ml.Forecasting.Trainers.Rnn(new RnnForecaster.Options
    {
        Cell = RecurrentCell.Gru, HiddenSize = sunHidden, NumberOfEpochs = sunEpochs, BatchSize = 16, LearningRate = 3e-3, Dropout = 0,
        Schedule = LearningRateSchedule.Cosine,
    }));
    // Autoregressive: one year at a time, each forecast fed back as the next step (as R's nnetar iterates).
    Forecaster("MLNetDeep GRU autoregressive", ml.Forecasting.Trainers.Rnn(new RnnForecaster.Options
    {
        Cell = RecurrentCell.Gru, HiddenSize = sunHidden, NumberOfEpochs = sunArEpochs, BatchSize = 16, LearningRate = 3e-3, Dropout = 0,
        Schedule = LearningRateSchedule.Cosine, Decoding = ForecastDecoding.Autoregressive,
    }));
    Forecaster("MLNetDeep Transformer", ml.Forecasting.Trainers.Transformer(new TransformerForecaster.Options
    {
        NumberOfLayers = 2, ModelWidth = 32, NumberOfHeads = 4, NumberOfEpochs = sunTransformerEpochs, BatchSize = 16, LearningRate = 1e-3,
        Dropout = 0, AttentionDropout = 0, Pooling = TransformerPooling.Mean,
    }));
    Forecaster("MLNetDeep LSTM", ml.Forecasting.Trainers.Rnn(new RnnForecaster.Options
    {
        Cell = RecurrentCell.Lstm, HiddenSize = sunHidden, NumberOfEpochs = sunEpochs, BatchSize = 16, LearningRate = 3e-3, Dropout = 0,
        Schedule = LearningRateSchedule.Cosine,
    }));
    Forecaster($"MLNetDeep MLP [{sunHidden}]", ml.Forecasting.Trainers.Mlp(new MlpForecaster.Options
    {
        HiddenLayers = new[] { sunHidden }, NumberOfEpochs = sunEpochs, BatchSize = 16, LearningRate = 3e-3, Dropout = 0, Schedule = LearningRateSchedule.Cosine,
    }));
    var watch = Stopwatch.StartNew();
    results.Add(FastTreePerHorizon(ml, windows));
    seconds.Add(("FastTree (one per horizon)", watch.Elapsed.TotalSeconds));
    results.Add(windows.EvaluateNaive());
    results.Add(windows.EvaluateSeasonalNaive(11));
    Console.WriteLine();
    Console.WriteLine("Forecasting — sunspots, train 1700–1978, rolling origin 1979–2008, horizons 1–5 (series units)");
    Console.WriteLine(ForecastMetrics.ToTable(results.ToArray()));
    foreach (var (n, s) in seconds) Console.WriteLine($"  {n}: trained in {s:F1} s");
    if (runR)
    {
        Console.WriteLine("  R's forecast package on the same protocol (../shared/tools/series-baselines.R):");
        var psi = new ProcessStartInfo("Rscript") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { Path.Combine(DataPaths.Root, "..", "tools", "series-baselines.R"), DataPaths.File(Sunspots.RelativePath), "2", "30", "5", "11" }) psi.ArgumentList.Add(a);
        try
        {
            using var p = Process.Start(psi)!;
            string rOut = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            foreach (var line in rOut.Split('\n', StringSplitOptions.RemoveEmptyEntries)) Console.WriteLine("    " + line);
        }
        catch (System.ComponentModel.Win32Exception) { Console.WriteLine("    Rscript is not installed (apt-get install r-base-core r-cran-forecast)."); }
    }
    Console.WriteLine();
}

if (only.Contains("fashion"))
{
    // Each 28×28 image is 28 steps of 28 pixels (IdxImages records the 1×28×28 dimensions; the last one is the step).
    var board = new Leaderboard($"Multiclass — Fashion-MNIST as sequences ({fashionRows?.ToString() ?? "60000"} training images, 10 000 test)", "micro-acc", "macro-acc", "log-loss");
    var epochTimes = new List<double>();
    var trainer = ml.MulticlassClassification.Trainers.Rnn(new RnnMulticlassTrainer.Options
    {
        Cell = RecurrentCell.Gru, HiddenSize = 128, NumberOfLayers = 2, Dropout = 0.2f, NumberOfEpochs = fashionEpochs, BatchSize = 128,
        LearningRate = 3e-3, Schedule = LearningRateSchedule.OneCycle, EpochCallback = e => epochTimes.Add(e.Seconds),
    });
    var (model, s) = Timed(() => trainer.Fit(FashionMnist.Train(ml, fashionRows)));
    var m = ml.MulticlassClassification.Evaluate(model.Transform(FashionMnist.Test(ml)));
    board.Add($"MLNetDeep GRU 2x128, {fashionEpochs} epochs", s, m.MicroAccuracy, m.MacroAccuracy, m.LogLoss);
    board.Print();
    Console.WriteLine($"  seconds per epoch: median {epochTimes.Order().ElementAt(epochTimes.Count / 2):F1} (published row-wise GRU 0.888, with dropout 0.897)");
    Console.WriteLine();
}
if (only.Contains("vit"))
{
    // A Vision Transformer over Fashion-MNIST: the 1×28×28 pixels cut into patches, each projected to the model width.
    var board = new Leaderboard($"Multiclass — Fashion-MNIST, Vision Transformer ({fashionRows?.ToString() ?? "60000"} training images, 10 000 test)", "micro-acc", "macro-acc", "log-loss");
    var epochTimes = new List<double>();
    var trainer = ml.MulticlassClassification.Trainers.Transformer(new TransformerMulticlassTrainer.Options
    {
        PatchSize = vitPatch, NumberOfLayers = vitLayers, ModelWidth = vitWidth, NumberOfHeads = 4, NumberOfEpochs = vitEpochs, BatchSize = 128,
        LearningRate = vitLearningRate, WeightDecay = 0.05, Dropout = vitDropout, AttentionDropout = 0, Pooling = vitPooling,
        Augmentation = vitAugmentation, EpochCallback = e => { epochTimes.Add(e.Seconds); Console.WriteLine($"  epoch {e.Epoch}: loss {e.TrainLoss:F4}, {e.Seconds:F1} s"); },
    });
    var (model, s) = Timed(() => trainer.Fit(FashionMnist.Train(ml, fashionRows)));
    var m = ml.MulticlassClassification.Evaluate(model.Transform(FashionMnist.Test(ml)));
    board.Add($"MLNetDeep ViT {vitLayers}x{vitWidth} patch {vitPatch}, {vitPooling} pooling, dropout {vitDropout}, aug {vitAugmentation}, {vitEpochs} ep", s, m.MicroAccuracy, m.MacroAccuracy, m.LogLoss);
    board.Print();
    Console.WriteLine($"  {((DeepPredictionTransformer<DeepMulticlassModelParameters>)model).Model.ParameterCount} parameters; seconds per epoch: median {epochTimes.Order().ElementAt(epochTimes.Count / 2):F1} (published ~400k-parameter ViT, patch 4, long training: 0.93)");
    Console.WriteLine();
}
return 0;

static ForecastMetrics FastTreePerHorizon(MLContext ml, ForecastWindows windows)
{
    // One FastTree regressor per horizon step on the same (scaled) windows, their forecasts joined into a Score vector.
    int h = windows.Horizon, d = windows.Lookback * windows.FeaturesPerStep;
    var train = ml.Data.CreateEnumerable<WindowIn>(windows.Train, reuseRowObject: false).ToList();
    var test = ml.Data.CreateEnumerable<WindowIn>(windows.Test!, reuseRowObject: false).ToList();
    var scalarSchema = SchemaDefinition.Create(typeof(Step));
    scalarSchema[nameof(Step.Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, d);
    var scores = test.Select(_ => new float[h]).ToList();
    for (int k = 0; k < h; k++)
    {
        var rows = train.Select(w => new Step { Features = w.Features, Label = w.Label[k] });
        var model = ml.Regression.Trainers.FastTree(new Microsoft.ML.Trainers.FastTree.FastTreeRegressionTrainer.Options { NumberOfLeaves = 8, NumberOfTrees = 200, MinimumExampleCountPerLeaf = 5 })
            .Fit(ml.Data.LoadFromEnumerable(rows, scalarSchema));
        var predicted = ml.Data.CreateEnumerable<Step>(model.Transform(ml.Data.LoadFromEnumerable(test.Select(w => new Step { Features = w.Features }), scalarSchema)), false).ToList();
        for (int i = 0; i < test.Count; i++) scores[i][k] = predicted[i].Score;
    }
    var joined = SchemaDefinition.Create(typeof(Window));
    joined[nameof(Window.Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, d);
    joined[nameof(Window.Label)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, h);
    joined[nameof(Window.Score)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, h);
    var scored = ml.Data.LoadFromEnumerable(test.Select((w, i) => new Window { Features = w.Features, Label = w.Label, Score = scores[i] }), joined);
    return windows.Evaluate(scored, name: "FastTree (one per horizon)");
}

sealed class WindowIn
{
    public float[] Features { get; set; } = Array.Empty<float>();
    public float[] Label { get; set; } = Array.Empty<float>();
}

sealed class Window
{
    public float[] Features { get; set; } = Array.Empty<float>();
    public float[] Label { get; set; } = Array.Empty<float>();
    public float[] Score { get; set; } = Array.Empty<float>();
}

sealed class Step
{
    public float[] Features { get; set; } = Array.Empty<float>();
    public float Label { get; set; }
    public float Score { get; set; }
}

sealed class SmsInput { public string Message { get; set; } = ""; public bool Label { get; set; } }
sealed class SpamPrediction { public bool PredictedLabel { get; set; } public float Probability { get; set; } }
