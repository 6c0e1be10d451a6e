using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetDeep.TestData;
using Xunit;

namespace MLNetDeep.Tests;

/// <summary>
/// The catalogue of bad inputs (issue 11): every case is a distinct mistake a user can make with some family, and
/// asserts the exception's type and that its message names what to fix (the column, option, row or file). Cases that
/// are handled rather than refused (a batch of one at the end of an epoch with batch norm, more classes than rows,
/// sequences longer than the maximum) assert finite predictions instead.
/// </summary>
public sealed class BadInputCatalogueTests
{
    private sealed class Dense { public float Label { get; set; } [VectorType(3)] public float[] Features { get; set; } = new float[3]; }
    private sealed class WeightedDense { public float Label { get; set; } public float W { get; set; } = 1; public double D { get; set; } = 1; [VectorType(3)] public float[] Features { get; set; } = new float[3]; }
    private sealed class Dense4 { [VectorType(4)] public float[] Features { get; set; } = new float[4]; }
    private sealed class Dense3 { public float Label { get; set; } [VectorType(3)] public float[] Feats { get; set; } = new float[3]; }
    private sealed class VarDense { public float Label { get; set; } public float[] Features { get; set; } = new float[3]; }
    private sealed class DoubleDense { public float Label { get; set; } [VectorType(3)] public double[] Features { get; set; } = new double[3]; }
    private sealed class TextFeature { public float Label { get; set; } public string Features { get; set; } = ""; }
    private sealed class Bin { public bool Label { get; set; } [VectorType(3)] public float[] Features { get; set; } = new float[3]; }
    private sealed class StringLabel { public string Label { get; set; } = ""; [VectorType(3)] public float[] Features { get; set; } = new float[3]; }
    private sealed class Keyed { [KeyType(4)] public uint Label { get; set; } [VectorType(3)] public float[] Features { get; set; } = new float[3]; }
    private sealed class OneKey { [KeyType(1)] public uint Label { get; set; } [VectorType(3)] public float[] Features { get; set; } = new float[3]; }
    private sealed class Tok { public bool Label { get; set; } [KeyType(20)] public uint[] Tokens { get; set; } = Array.Empty<uint>(); }
    private sealed class FloatTokens { [VectorType(3)] public float[] Tokens { get; set; } = new float[3]; }
    private sealed class Tok30 { [KeyType(30)] public uint[] Tokens { get; set; } = Array.Empty<uint>(); }
    private sealed class Img { public bool Label { get; set; } [VectorType(1, 8, 8)] public float[] Pixels { get; set; } = new float[64]; }
    private sealed class Series { public float Value { get; set; } }
    private sealed class ScoreOut { public float Score { get; set; } }

    private static MLContext Ml() => new(seed: 1);

    private static IEnumerable<Dense> DenseRows(int n, Func<int, Dense?>? special = null) =>
        Enumerable.Range(0, n).Select(i => special?.Invoke(i) ?? new Dense { Label = i % 7, Features = new[] { i % 3f, i % 5f, 1f } });

    private static IEnumerable<Bin> BinRows(int n) => Enumerable.Range(0, n).Select(i => new Bin { Label = i % 2 == 0, Features = new[] { i % 2f, i % 5f, 1f } });

    private static IEnumerable<Tok> TokRows(int n, Func<int, uint[]>? tokens = null) =>
        Enumerable.Range(0, n).Select(i => new Tok { Label = i % 2 == 0, Tokens = tokens?.Invoke(i) ?? new[] { (uint)(i % 2 + 1), (uint)(i % 7 + 3), 5u } });

    private static IEnumerable<Img> ImgRows(int n) => Enumerable.Range(0, n).Select(i => new Img { Label = i % 2 == 0, Pixels = Enumerable.Range(0, 64).Select(p => (p + i) % 2 == 0 ? 1f : 0f).ToArray() });

    private static MlpRegressionTrainer.Options Reg(Action<MlpRegressionTrainer.Options>? edit = null)
    {
        var o = new MlpRegressionTrainer.Options { NumberOfEpochs = 1, HiddenLayers = new[] { 4 } };
        edit?.Invoke(o);
        return o;
    }

    private static IDataView Feats(MLContext ml) => ml.Data.LoadFromEnumerable(Enumerable.Range(0, 10).Select(i => new Dense3 { Label = i, Feats = new[] { i, 1f, 2f } }));

    private static ITransformer TrainedDense(MLContext ml) => ml.Regression.Trainers.Mlp(Reg()).Fit(ml.Data.LoadFromEnumerable(DenseRows(40)));

    private static RnnBinaryTrainer.Options Gru(Action<RnnBinaryTrainer.Options>? edit = null)
    {
        var o = new RnnBinaryTrainer.Options { FeatureColumnName = "Tokens", Cell = RecurrentCell.Gru, EmbeddingSize = 8, HiddenSize = 8, NumberOfEpochs = 1, MaximumSequenceLength = 8 };
        edit?.Invoke(o);
        return o;
    }

    private static TransformerBinaryTrainer.Options Tiny(Action<TransformerBinaryTrainer.Options>? edit = null)
    {
        var o = new TransformerBinaryTrainer.Options { FeatureColumnName = "Tokens", NumberOfLayers = 1, ModelWidth = 16, NumberOfHeads = 2, NumberOfEpochs = 1, MaximumSequenceLength = 8 };
        edit?.Invoke(o);
        return o;
    }

    private static CnnBinaryTrainer.Options Cnn(Action<CnnBinaryTrainer.Options>? edit = null)
    {
        var o = new CnnBinaryTrainer.Options { FeatureColumnName = "Pixels", NumberOfEpochs = 1, Architecture = CnnArchitecture.LeNet5() };
        edit?.Invoke(o);
        return o;
    }

    /// <summary>A file standing where a directory should be.</summary>
    private static string AFile()
    {
        string f = Path.Combine(TestUtil.TempDir(), "not-a-directory");
        File.WriteAllText(f, "x");
        return f;
    }

    /// <summary>One catalogue entry: what the user does, the exception it must give, and what its message must name.</summary>
    private sealed record Case(Action Act, Type Expected, params string[] Names)
    {
        /// <summary>For a handled input: the scores it yields (all must be finite).</summary>
        public Func<float[]>? Scores { get; init; }
    }

    /// <summary>A bad input that is handled: training succeeds and every score is finite.</summary>
    private static Case Handled(Func<float[]> scores) => new(() => { }, typeof(void)) { Scores = scores };

    private static float[] AllScores(IDataView scored)
    {
        var col = scored.Schema["Score"];
        if (col.Type is VectorDataViewType)
            return scored.GetColumn<VBuffer<float>>("Score").SelectMany(v => v.DenseValues()).ToArray();
        return TestUtil.Floats(scored, "Score");
    }

    private static Case Option<T>(Func<T> make, string option, Type? type = null) =>
        new(() => make(), type ?? typeof(ArgumentException), option);

    private static readonly Dictionary<string, Case> Cases = new()
    {
        // ---------------------------------------------------------------- data: features
        ["NaN feature (MLP regression)"] = new(() => { var ml = Ml(); ml.Regression.Trainers.Mlp(Reg()).Fit(ml.Data.LoadFromEnumerable(DenseRows(30, i => i == 11 ? new Dense { Features = new[] { 1f, float.NaN, 0f } } : null))); },
            typeof(InvalidOperationException), "Feature column 'Features'", "row 11", "slot 1"),
        ["Infinite feature (MLP regression, streamed)"] = new(() => { var ml = Ml(); ml.Regression.Trainers.Mlp(Reg(o => o.Caching = DataCaching.None)).Fit(ml.Data.LoadFromEnumerable(DenseRows(30, i => i == 4 ? new Dense { Features = new[] { float.PositiveInfinity, 0f, 0f } } : null))); },
            typeof(InvalidOperationException), "Feature column 'Features'", "row 4"),
        ["NaN feature at scoring (Transform)"] = new(() => { var ml = Ml(); var m = TrainedDense(ml); m.Transform(ml.Data.LoadFromEnumerable(DenseRows(5, i => i == 3 ? new Dense { Features = new[] { float.NaN, 0f, 0f } } : null))).Preview(); },
            typeof(InvalidOperationException), "Feature column 'Features'", "row 3"),
        ["Variable-size feature vector at training"] = new(() => { var ml = Ml(); ml.Regression.Trainers.Mlp(Reg()).Fit(ml.Data.LoadFromEnumerable(Enumerable.Range(0, 10).Select(i => new VarDense { Features = new float[i % 3 + 1] }))); },
            typeof(ArgumentOutOfRangeException), "Feature column 'Features'", "known-size"),
        ["Feature vector of Double"] = new(() => { var ml = Ml(); ml.Regression.Trainers.Mlp(Reg()).Fit(ml.Data.LoadFromEnumerable(new[] { new DoubleDense() })); },
            typeof(ArgumentOutOfRangeException), "Feature column 'Features'", "Single"),
        ["Text feature column given to an MLP"] = new(() => { var ml = Ml(); ml.Regression.Trainers.Mlp(Reg()).Fit(ml.Data.LoadFromEnumerable(new[] { new TextFeature { Features = "a b" } })); },
            typeof(ArgumentOutOfRangeException), "Feature column 'Features'"),
        ["Missing feature column"] = new(() => { var ml = Ml(); ml.Regression.Trainers.Mlp(Reg(o => o.FeatureColumnName = "Pixels")).Fit(ml.Data.LoadFromEnumerable(DenseRows(10))); },
            typeof(ArgumentOutOfRangeException), "'Pixels'"),
        ["Validation data with another feature size"] = new(() => { var ml = Ml(); ml.Regression.Trainers.Mlp(Reg()).Fit(ml.Data.LoadFromEnumerable(DenseRows(20)), ml.Data.LoadFromEnumerable(new[] { new Dense4() })); },
            typeof(ArgumentOutOfRangeException), "Feature column 'Features'", "validation"),
        ["Wrong vector size at scoring (Transform)"] = new(() => { var ml = Ml(); TrainedDense(ml).Transform(ml.Data.LoadFromEnumerable(new[] { new Dense4() })).Preview(); },
            typeof(ArgumentOutOfRangeException), "Feature column 'Features'", "Vector<Single, 3>"),
        ["PredictionEngine row of a wrong declared size"] = new(() => { var ml = Ml(); ml.Model.CreatePredictionEngine<Dense4, ScoreOut>(TrainedDense(ml)).Predict(new Dense4()); },
            typeof(ArgumentOutOfRangeException), "Feature column 'Features'", "Vector<Single, 3>"),
        ["PredictionEngine row array too short"] = new(() => { var ml = Ml(); var m = ml.Regression.Trainers.Mlp(Reg(o => o.FeatureColumnName = "Feats")).Fit(Feats(ml));
                ml.Model.CreatePredictionEngine<Dense3, ScoreOut>(m).Predict(new Dense3 { Feats = new float[2] }); },
            typeof(InvalidOperationException), "Feats", "3"),
        ["PredictionEngine row array too long"] = new(() => { var ml = Ml(); var m = ml.Regression.Trainers.Mlp(Reg(o => o.FeatureColumnName = "Feats")).Fit(Feats(ml));
                ml.Model.CreatePredictionEngine<Dense3, ScoreOut>(m).Predict(new Dense3 { Feats = new float[5] }); },
            typeof(InvalidOperationException), "Feats", "3"),
        ["PredictionEngine row array empty"] = new(() => { var ml = Ml(); var m = ml.Regression.Trainers.Mlp(Reg(o => o.FeatureColumnName = "Feats")).Fit(Feats(ml));
                ml.Model.CreatePredictionEngine<Dense3, ScoreOut>(m).Predict(new Dense3 { Feats = Array.Empty<float>() }); },
            typeof(InvalidOperationException), "Feats", "3"),

        // ---------------------------------------------------------------- data: labels and rows
        ["NaN label (regression)"] = new(() => { var ml = Ml(); ml.Regression.Trainers.Mlp(Reg()).Fit(ml.Data.LoadFromEnumerable(DenseRows(30, i => i == 17 ? new Dense { Label = float.NaN } : null))); },
            typeof(InvalidOperationException), "Label column 'Label'", "row 17"),
        ["Infinite label (regression)"] = new(() => { var ml = Ml(); ml.Regression.Trainers.Mlp(Reg()).Fit(ml.Data.LoadFromEnumerable(DenseRows(30, i => i == 2 ? new Dense { Label = float.NegativeInfinity } : null))); },
            typeof(InvalidOperationException), "Label column 'Label'", "row 2"),
        ["Missing label column"] = new(() => { var ml = Ml(); ml.Regression.Trainers.Mlp(Reg(o => o.LabelColumnName = "Price")).Fit(ml.Data.LoadFromEnumerable(DenseRows(10))); },
            typeof(ArgumentOutOfRangeException), "'Price'"),
        ["Float label for binary classification"] = new(() => { var ml = Ml(); ml.BinaryClassification.Trainers.Mlp().Fit(ml.Data.LoadFromEnumerable(DenseRows(10))); },
            typeof(ArgumentOutOfRangeException), "'Label'", "Boolean"),
        ["Text label for regression"] = new(() => { var ml = Ml(); ml.Regression.Trainers.Mlp(Reg()).Fit(ml.Data.LoadFromEnumerable(new[] { new StringLabel { Label = "3" } })); },
            typeof(ArgumentOutOfRangeException), "'Label'"),
        ["Text label for multiclass (not a key)"] = new(() => { var ml = Ml(); ml.MulticlassClassification.Trainers.Mlp().Fit(ml.Data.LoadFromEnumerable(new[] { new StringLabel { Label = "a" } })); },
            typeof(ArgumentOutOfRangeException), "'Label'", "MapValueToKey"),
        ["Missing key label (multiclass, a value the key map never saw)"] = new(() =>
            {
                var ml = Ml();
                var map = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(new[] { "a", "b", "c" }.Select(l => new StringLabel { Label = l })));
                var data = map.Transform(ml.Data.LoadFromEnumerable(Enumerable.Range(0, 20).Select(i => new StringLabel { Label = i == 9 ? "z" : "abc"[i % 3].ToString() })));
                ml.MulticlassClassification.Trainers.Mlp(new MlpMulticlassTrainer.Options { NumberOfEpochs = 1 }).Fit(data);
            }, typeof(InvalidOperationException), "Label column 'Label'", "row 9"),
        ["One class only (binary)"] = new(() => { var ml = Ml(); ml.BinaryClassification.Trainers.Mlp(new MlpBinaryTrainer.Options { NumberOfEpochs = 1 }).Fit(ml.Data.LoadFromEnumerable(BinRows(20).Select(r => new Bin { Label = true, Features = r.Features }))); },
            typeof(InvalidOperationException), "Label column 'Label'", "one class"),
        ["One class only (multiclass key of one value)"] = new(() => { var ml = Ml(); ml.MulticlassClassification.Trainers.Mlp(new MlpMulticlassTrainer.Options { NumberOfEpochs = 1 }).Fit(ml.Data.LoadFromEnumerable(Enumerable.Range(0, 10).Select(_ => new OneKey { Label = 1 }))); },
            typeof(ArgumentOutOfRangeException), "Label column 'Label'", "class"),
        ["Empty training data"] = new(() => { var ml = Ml(); ml.Regression.Trainers.Mlp(Reg()).Fit(ml.Data.LoadFromEnumerable(DenseRows(0))); },
            typeof(InvalidOperationException), "training data is empty"),
        ["Empty validation data"] = new(() => { var ml = Ml(); ml.Regression.Trainers.Mlp(Reg()).Fit(ml.Data.LoadFromEnumerable(DenseRows(20)), ml.Data.LoadFromEnumerable(DenseRows(0))); },
            typeof(InvalidOperationException), "validation data is empty"),
        ["A single image (CNN)"] = new(() => { var ml = Ml(); ml.BinaryClassification.Trainers.Cnn(Cnn(o => o.Architecture = CnnArchitecture.SmallCnn())).Fit(ml.Data.LoadFromEnumerable(ImgRows(1))); },
            typeof(InvalidOperationException), "Label column 'Label'", "one class", "1 rows"),

        // ---------------------------------------------------------------- example weights
        ["Negative example weight"] = new(() => { var ml = Ml(); ml.Regression.Trainers.Mlp(Reg(o => o.ExampleWeightColumnName = "W")).Fit(ml.Data.LoadFromEnumerable(Enumerable.Range(0, 20).Select(i => new WeightedDense { Label = i, W = i == 7 ? -1 : 1 }))); },
            typeof(InvalidOperationException), "Example weight column 'W'", "row 7"),
        ["NaN example weight"] = new(() => { var ml = Ml(); ml.Regression.Trainers.Mlp(Reg(o => o.ExampleWeightColumnName = "W")).Fit(ml.Data.LoadFromEnumerable(Enumerable.Range(0, 20).Select(i => new WeightedDense { Label = i, W = i == 4 ? float.NaN : 1 }))); },
            typeof(InvalidOperationException), "Example weight column 'W'", "row 4"),
        ["Example weights all zero"] = new(() => { var ml = Ml(); ml.Regression.Trainers.Mlp(Reg(o => o.ExampleWeightColumnName = "W")).Fit(ml.Data.LoadFromEnumerable(Enumerable.Range(0, 20).Select(i => new WeightedDense { Label = i, W = 0 }))); },
            typeof(InvalidOperationException), "Example weight column 'W'", "zero in all 20 rows"),
        ["Example weight column missing"] = new(() => { var ml = Ml(); ml.Regression.Trainers.Mlp(Reg(o => o.ExampleWeightColumnName = "Importance")).Fit(ml.Data.LoadFromEnumerable(DenseRows(20))); },
            typeof(ArgumentOutOfRangeException), "ExampleWeightColumnName", "'Importance'"),
        ["Example weight column of Double"] = new(() => { var ml = Ml(); ml.Regression.Trainers.Mlp(Reg(o => o.ExampleWeightColumnName = "D")).Fit(ml.Data.LoadFromEnumerable(Enumerable.Range(0, 20).Select(i => new WeightedDense { Label = i }))); },
            typeof(ArgumentOutOfRangeException), "ExampleWeightColumnName", "'D'", "Single"),
        ["Example weights for masked-token pretraining"] = Option(() => new MLContext().Transforms.Text.PretrainTransformerEncoder(new TransformerPretrainer.Options { FeatureColumnName = "Tokens", ExampleWeightColumnName = "W" }), "ExampleWeightColumnName"),

        // ---------------------------------------------------------------- tokens, sequences, series, images
        ["Token column of another key count at scoring"] = new(() => { var ml = Ml(); var m = ml.BinaryClassification.Trainers.Rnn(Gru()).Fit(ml.Data.LoadFromEnumerable(TokRows(20))); m.Transform(ml.Data.LoadFromEnumerable(new[] { new Tok30 { Tokens = new[] { 25u } } })).Preview(); },
            typeof(ArgumentOutOfRangeException), "Feature column 'Tokens'", "20"),
        ["Float features given to a model trained on tokens"] = new(() => { var ml = Ml(); var m = ml.BinaryClassification.Trainers.Rnn(Gru()).Fit(ml.Data.LoadFromEnumerable(TokRows(20)));
                m.Transform(ml.Data.LoadFromEnumerable(new[] { new FloatTokens() })).Preview(); },
            typeof(ArgumentOutOfRangeException), "Feature column 'Tokens'", "token sequences"),
        ["Empty token sequences (GRU): handled"] = Handled(() => { var ml = Ml(); var data = ml.Data.LoadFromEnumerable(TokRows(20, i => i % 5 == 0 ? Array.Empty<uint>() : new[] { 1u, 2u }));
                return AllScores(ml.BinaryClassification.Trainers.Rnn(Gru()).Fit(data).Transform(data)); }),
        ["Empty token sequences (Transformer): handled"] = Handled(() => { var ml = Ml(); var data = ml.Data.LoadFromEnumerable(TokRows(20, i => i % 5 == 0 ? Array.Empty<uint>() : new[] { 1u, 2u }));
                return AllScores(ml.BinaryClassification.Trainers.Transformer(Tiny()).Fit(data).Transform(data)); }),
        ["Sequences longer than MaximumSequenceLength: truncated"] = Handled(() => { var ml = Ml(); var data = ml.Data.LoadFromEnumerable(TokRows(20, i => Enumerable.Range(0, 30 + i).Select(t => (uint)(t % 19 + 1)).ToArray()));
                return AllScores(ml.BinaryClassification.Trainers.Transformer(Tiny()).Fit(data).Transform(data)); }),
        ["A batch of one row at the end of an epoch, with batch norm: handled"] = Handled(() => { var ml = Ml(); var data = ml.Data.LoadFromEnumerable(DenseRows(65));
                return AllScores(ml.Regression.Trainers.Mlp(Reg(o => { o.BatchNorm = true; o.BatchSize = 64; o.NumberOfEpochs = 2; })).Fit(data).Transform(data)); }),
        ["Fewer rows than classes: handled"] = Handled(() => { var ml = Ml(); var data = ml.Data.LoadFromEnumerable(new[] { new Keyed { Label = 1 }, new Keyed { Label = 2, Features = new[] { 1f, 0f, 0f } }, new Keyed { Label = 3, Features = new[] { 0f, 1f, 0f } } });
                return AllScores(ml.MulticlassClassification.Trainers.Mlp(new MlpMulticlassTrainer.Options { NumberOfEpochs = 2 }).Fit(data).Transform(data)); }),
        ["BatchSize 1 with batch norm"] = new(() => { var ml = Ml(); ml.Regression.Trainers.Mlp(Reg(o => { o.BatchNorm = true; o.BatchSize = 1; })).Fit(ml.Data.LoadFromEnumerable(DenseRows(10))); },
            typeof(ArgumentOutOfRangeException), "BatchSize", "batch norm"),
        ["A single row with batch norm (MLP)"] = new(() => { var ml = Ml(); ml.Regression.Trainers.Mlp(Reg(o => o.BatchNorm = true)).Fit(ml.Data.LoadFromEnumerable(DenseRows(1))); },
            typeof(InvalidOperationException), "batch norm", "1 row"),
        ["Window longer than the series"] = new(() => { var ml = Ml(); ForecastWindows.Create(ml, ml.Data.LoadFromEnumerable(Enumerable.Range(0, 10).Select(i => new Series { Value = i })), new ForecastWindowOptions { TargetColumn = "Value", Lookback = 12, Horizon = 2 }); },
            typeof(ArgumentException), "Lookback", "10"),
        ["Missing value in a series"] = new(() => { var ml = Ml(); ForecastWindows.Create(ml, ml.Data.LoadFromEnumerable(Enumerable.Range(0, 40).Select(i => new Series { Value = i == 21 ? float.NaN : i })), new ForecastWindowOptions { TargetColumn = "Value", Lookback = 4, Horizon = 2 }); },
            typeof(InvalidOperationException), "'Value'", "row 21"),
        ["Series column missing"] = new(() => { var ml = Ml(); ForecastWindows.Create(ml, ml.Data.LoadFromEnumerable(Enumerable.Range(0, 40).Select(i => new Series { Value = i })), new ForecastWindowOptions { TargetColumn = "Sales", Lookback = 4 }); },
            typeof(ArgumentException), "'Sales'", "TargetColumn"),
        ["Image shape options that do not match the pixel count"] = new(() => { var ml = Ml(); ml.BinaryClassification.Trainers.Cnn(Cnn(o => { o.ImageChannels = 3; o.ImageHeight = 8; o.ImageWidth = 8; })).Fit(ml.Data.LoadFromEnumerable(ImgRows(10))); },
            typeof(ArgumentOutOfRangeException), "ImageChannels", "64"),
        ["Image too small for the architecture"] = new(() => { var ml = Ml(); ml.BinaryClassification.Trainers.Cnn(Cnn()).Fit(ml.Data.LoadFromEnumerable(ImgRows(10))); },
            typeof(ArgumentException), "Architecture", "4-pixel"),

        // ---------------------------------------------------------------- directories and training
        ["CheckpointDirectory is a file"] = new(() => { var ml = Ml(); var f = AFile(); ml.Regression.Trainers.Mlp(Reg(o => o.CheckpointDirectory = f)).Fit(ml.Data.LoadFromEnumerable(DenseRows(20))); },
            typeof(ArgumentException), "CheckpointDirectory", "not-a-directory"),
        ["CheckpointDirectory cannot be created"] = new(() => { var ml = Ml(); var f = Path.Combine(AFile(), "sub"); ml.Regression.Trainers.Mlp(Reg(o => o.CheckpointDirectory = f)).Fit(ml.Data.LoadFromEnumerable(DenseRows(20))); },
            typeof(ArgumentException), "CheckpointDirectory", "sub"),
        ["PlotDirectory is a file"] = new(() => { var ml = Ml(); var f = AFile(); ml.Regression.Trainers.Mlp(Reg(o => o.PlotDirectory = f)).Fit(ml.Data.LoadFromEnumerable(DenseRows(20))); },
            typeof(ArgumentException), "PlotDirectory", "not-a-directory"),
        ["Checkpoint of other data (same network)"] = new(() =>
            {
                var ml = Ml(); var dir = TestUtil.TempDir();
                ml.Regression.Trainers.Mlp(Reg(o => o.CheckpointDirectory = dir)).Fit(ml.Data.LoadFromEnumerable(DenseRows(20)));
                ml.Regression.Trainers.Mlp(Reg(o => o.CheckpointDirectory = dir)).Fit(ml.Data.LoadFromEnumerable(DenseRows(25)));
            }, typeof(InvalidOperationException), "CheckpointDirectory", "training data"),
        ["Diverging learning rate"] = new(() => { var ml = Ml(); ml.Regression.Trainers.Mlp(Reg(o => { o.LearningRate = 1e12; o.Optimizer = DeepOptimizer.Sgd; o.NumberOfEpochs = 5; o.StandardizeLabel = false; })).Fit(ml.Data.LoadFromEnumerable(DenseRows(64, i => new Dense { Label = i * 1000, Features = new[] { i * 100f, i, 1f } }))); },
            typeof(InvalidOperationException), "diverged", "LearningRate"),
        ["Word vectors file missing"] = Option(() => new MLContext().BinaryClassification.Trainers.Rnn(Gru(o => o.WordVectorsPath = "/no/such/vectors.txt")), "/no/such/vectors.txt", typeof(FileNotFoundException)),
        ["Base model file missing"] = Option(() => new MLContext().BinaryClassification.Trainers.Cnn(Cnn(o => o.BaseModelPath = "/no/such/model.zip")), "/no/such/model.zip", typeof(FileNotFoundException)),

        // ---------------------------------------------------------------- options (refused when the trainer is made)
        ["BatchSize 0"] = Option(() => new MLContext().Regression.Trainers.Mlp(Reg(o => o.BatchSize = 0)), "BatchSize"),
        ["NumberOfEpochs negative"] = Option(() => new MLContext().Regression.Trainers.Mlp(Reg(o => o.NumberOfEpochs = -1)), "NumberOfEpochs"),
        ["LearningRate NaN"] = Option(() => new MLContext().Regression.Trainers.Mlp(Reg(o => o.LearningRate = double.NaN)), "LearningRate"),
        ["HiddenLayers with a zero"] = Option(() => new MLContext().Regression.Trainers.Mlp(Reg(o => o.HiddenLayers = new[] { 16, 0 })), "HiddenLayers"),
        ["Dropout 1"] = Option(() => new MLContext().Regression.Trainers.Mlp(Reg(o => o.Dropout = 1)), "Dropout"),
        ["ValidationFraction 1.5"] = Option(() => new MLContext().Regression.Trainers.Mlp(Reg(o => o.ValidationFraction = 1.5)), "ValidationFraction"),
        ["Nesterov without SGD"] = Option(() => new MLContext().Regression.Trainers.Mlp(Reg(o => o.Nesterov = true)), "Nesterov"),
        ["AdamBeta2 1"] = Option(() => new MLContext().Regression.Trainers.Mlp(Reg(o => o.AdamBeta2 = 1)), "AdamBeta2"),
        ["GradientClipNorm negative"] = Option(() => new MLContext().Regression.Trainers.Mlp(Reg(o => o.GradientClipNorm = -1)), "GradientClipNorm"),
        ["NumberOfThreads 0"] = Option(() => new MLContext().Regression.Trainers.Mlp(Reg(o => o.NumberOfThreads = 0)), "NumberOfThreads"),
        ["MaximumCacheMegabytes 0"] = Option(() => new MLContext().Regression.Trainers.Mlp(Reg(o => o.MaximumCacheMegabytes = 0)), "MaximumCacheMegabytes"),
        ["EarlyStoppingMinDelta NaN"] = Option(() => new MLContext().Regression.Trainers.Mlp(Reg(o => { o.EarlyStoppingPatience = 2; o.EarlyStoppingMinDelta = double.NaN; })), "EarlyStoppingMinDelta"),
        ["Undefined optimizer value"] = Option(() => new MLContext().Regression.Trainers.Mlp(Reg(o => o.Optimizer = (DeepOptimizer)42)), "Optimizer"),
        ["Undefined caching value"] = Option(() => new MLContext().Regression.Trainers.Mlp(Reg(o => o.Caching = (DataCaching)9)), "Caching"),
        ["HuberDelta 0"] = Option(() => new MLContext().Regression.Trainers.Mlp(Reg(o => { o.RegressionLoss = RegressionLoss.Huber; o.HuberDelta = 0; })), "HuberDelta"),
        ["LabelSmoothing 1 (multiclass)"] = Option(() => new MLContext().MulticlassClassification.Trainers.Mlp(new MlpMulticlassTrainer.Options { LabelSmoothing = 1 }), "LabelSmoothing"),
        ["PositiveClassWeight on a regression"] = Option(() => new MLContext().Regression.Trainers.Mlp(Reg(o => o.PositiveClassWeight = 3)), "PositiveClassWeight"),
        ["RNN HiddenSize 0"] = Option(() => new MLContext().BinaryClassification.Trainers.Rnn(Gru(o => o.HiddenSize = 0)), "HiddenSize"),
        ["RNN NumberOfLayers 0"] = Option(() => new MLContext().BinaryClassification.Trainers.Rnn(Gru(o => o.NumberOfLayers = 0)), "NumberOfLayers"),
        ["MaximumSequenceLength 0"] = Option(() => new MLContext().BinaryClassification.Trainers.Rnn(Gru(o => o.MaximumSequenceLength = 0)), "MaximumSequenceLength"),
        ["TokenDropout 1"] = Option(() => new MLContext().BinaryClassification.Trainers.Rnn(Gru(o => o.TokenDropout = 1)), "TokenDropout"),
        ["Transformer heads that do not divide the width"] = Option(() => new MLContext().BinaryClassification.Trainers.Transformer(Tiny(o => o.NumberOfHeads = 3)), "NumberOfHeads"),
        ["Transformer LayerNormEpsilon 0"] = Option(() => new MLContext().BinaryClassification.Trainers.Transformer(Tiny(o => o.LayerNormEpsilon = 0)), "LayerNormEpsilon"),
        ["CNN image shape partly given"] = Option(() => new MLContext().BinaryClassification.Trainers.Cnn(Cnn(o => o.ImageHeight = 8)), "ImageChannels"),
        ["CNN InputScale 0"] = Option(() => new MLContext().BinaryClassification.Trainers.Cnn(Cnn(o => o.InputScale = 0)), "InputScale"),
        ["CNN Architecture null"] = Option(() => new MLContext().BinaryClassification.Trainers.Cnn(Cnn(o => o.Architecture = null!)), "Architecture"),
        ["Forecast window Horizon 0"] = new(() => { var ml = Ml(); ForecastWindows.Create(ml, ml.Data.LoadFromEnumerable(Enumerable.Range(0, 40).Select(i => new Series { Value = i })), new ForecastWindowOptions { TargetColumn = "Value", Horizon = 0 }); },
            typeof(ArgumentException), "Horizon"),
        ["ScoringBatchSize 0"] = new(() => { var ml = Ml(); var m = (DeepPredictionTransformer<DeepRegressionModelParameters>)TrainedDense(ml); m.ScoringBatchSize = 0; },
            typeof(ArgumentOutOfRangeException), "ScoringBatchSize"),
    };

    /// <summary>The case names (the theory's data).</summary>
    public static IEnumerable<object[]> Names() => Cases.Keys.Select(k => new object[] { k });

    [Fact]
    public void TheCatalogueHoldsAtLeastFortyDistinctBadInputs() => Assert.True(Cases.Count >= 40, $"{Cases.Count} cases");

    [Theory]
    [MemberData(nameof(Names))]
    public void BadInput_GivesTheRightExceptionNamingWhatToFix(string name)
    {
        var c = Cases[name];
        if (c.Scores is not null)
        {
            var scores = c.Scores();
            Assert.NotEmpty(scores);
            Assert.True(scores.All(float.IsFinite), $"{name}: non-finite scores {string.Join(", ", scores.Where(v => !float.IsFinite(v)).Take(5))}");
            return;
        }
        var e = Record.Exception(c.Act);
        Assert.True(e is not null, $"{name}: no exception");
        Assert.True(c.Expected.IsInstanceOfType(e), $"{name}: expected {c.Expected.Name}, got {e!.GetType().Name}: {e.Message}");
        foreach (var n in c.Names)
            Assert.True(e!.Message.Contains(n, StringComparison.Ordinal), $"{name}: the message does not name '{n}': {e.Message}");
    }
}
