using FsCheck;
using FsCheck.Fluent;
using Microsoft.ML;
using Microsoft.ML.Data;
using Xunit;
using Xunit.Abstractions;

namespace MLNetDeep.Tests;

/// <summary>
/// Property-based tests (FsCheck generators, fixed seeds so CI sees the same cases every run): random schemas, data
/// shapes, values and option values through every family. Each scenario must end in either a managed exception of an
/// expected kind with a message, or a trained model whose predictions are all finite — never a crash, a hang, a native
/// error or NaN output.
/// </summary>
public sealed class PropertyTests
{
    private readonly ITestOutputHelper _out;
    public PropertyTests(ITestOutputHelper output) => _out = output;

    public enum Family { MlpRegression, MlpBinary, MlpMulticlass, CnnBinary, GruBinary, TransformerBinary, MlpForecast }
    public enum Values { Normal, Zeros, Large, WithNaN, WithInfinity, Constant }

    public sealed record Scenario(
        Family Family, int Rows, int Width, int ScoreWidth, Values Values, bool OneClass, int BatchSize, int Epochs, double LearningRate,
        float Dropout, bool BatchNorm, int[] Hidden, DeepOptimizer Optimizer, LearningRateSchedule Schedule, int MaxLength, int[] Lengths, int Seed)
    {
        public override string ToString() =>
            $"{Family} rows {Rows} width {Width}->{ScoreWidth} values {Values} oneClass {OneClass} batch {BatchSize} epochs {Epochs} lr {LearningRate} "
            + $"dropout {Dropout} bn {BatchNorm} hidden [{string.Join(",", Hidden)}] {Optimizer} {Schedule} maxLen {MaxLength} lengths [{string.Join(",", Lengths.Take(6))}...] seed {Seed}";
    }

    private static Gen<Scenario> Scenarios() =>
        from family in Gen.Elements(Enum.GetValues<Family>())
        from rows in Gen.Elements(0, 1, 2, 3, 5, 17, 40, 65)
        from width in Gen.Choose(1, 6)
        from scoreDelta in Gen.Frequency((6, Gen.Constant(0)), (1, Gen.Constant(1)), (1, Gen.Constant(-1)))
        from values in Gen.Elements(Enum.GetValues<Values>())
        from oneClass in Gen.Frequency((5, Gen.Constant(false)), (1, Gen.Constant(true)))
        from batch in Gen.Elements(1, 2, 3, 16, 64)
        from epochs in Gen.Elements(1, 2)
        from lr in Gen.Elements(1e-4, 1e-3, 1e-2, 1.0, 1e3, 1e8)
        from dropout in Gen.Elements(0f, 0.3f, 0.9f)
        from bn in Gen.Elements(false, true)
        from hidden in Gen.Elements(new[] { 1 }, new[] { 4 }, new[] { 8, 3 })
        from optimizer in Gen.Elements(Enum.GetValues<DeepOptimizer>())
        from schedule in Gen.Elements(Enum.GetValues<LearningRateSchedule>())
        from maxLength in Gen.Elements(1, 3, 8, 256)
        from lengths in Gen.ArrayOf(Gen.Choose(0, 12), 70)
        from seed in Gen.Choose(0, 1000)
        select new Scenario(family, rows, width, Math.Max(0, width + scoreDelta), values, oneClass, batch, epochs, lr, dropout, bn, hidden, optimizer, schedule, maxLength, lengths, seed);

    [Fact]
    public void RandomScenarios_EndInAClearExceptionOrFinitePredictions()
    {
        var scenarios = Gen.Sample(Scenarios(), 150, new Rnd(20261124UL, 0x9E3779B97F4A7C15UL), 50);
        int refused = 0, trained = 0;
        var kinds = new Dictionary<string, int>();
        foreach (var s in scenarios)
        {
            float[]? scores = null;
            Exception? error = null;
            try { scores = Run(s); }
            catch (Exception e) { error = e; }
            if (error is not null)
            {
                Assert.True(error is ArgumentException or InvalidOperationException or InvalidDataException,
                    $"{s}: unexpected {error.GetType().Name}: {error.Message}\n{error.StackTrace}");
                Assert.False(string.IsNullOrWhiteSpace(error.Message), $"{s}: an exception without a message");
                Assert.DoesNotContain("Exception has been thrown by the target", error.Message);
                refused++;
                string kind = error.GetType().Name;
                kinds[kind] = kinds.GetValueOrDefault(kind) + 1;
            }
            else
            {
                Assert.NotNull(scores);
                Assert.True(scores!.All(float.IsFinite), $"{s}: non-finite predictions {string.Join(", ", scores!.Where(v => !float.IsFinite(v)).Take(5))}");
                trained++;
            }
        }
        _out.WriteLine($"{scenarios.Length} generated scenarios: {trained} trained with finite predictions, {refused} refused ({string.Join(", ", kinds.Select(k => $"{k.Key} {k.Value}"))})");
        Assert.True(trained > 10 && refused > 10, $"the generator should exercise both outcomes: {trained} trained, {refused} refused");
    }

    // ---------------------------------------------------------------- running one scenario

    private sealed class DenseRow { public float Label { get; set; } public bool Flag { get; set; } public uint Class { get; set; } public float[] Features { get; set; } = Array.Empty<float>(); }
    private sealed class TokenRow { public bool Flag { get; set; } public uint[] Tokens { get; set; } = Array.Empty<uint>(); }

    private static float Value(Values kind, Random r, int row, int slot) => kind switch
    {
        Values.Zeros => 0,
        Values.Large => (float)(r.NextDouble() * 1e6),
        Values.WithNaN => row == 1 && slot == 0 ? float.NaN : (float)r.NextDouble(),
        Values.WithInfinity => row == 2 ? float.PositiveInfinity : (float)r.NextDouble(),
        Values.Constant => 1,
        _ => (float)(r.NextDouble() * 2 - 1),
    };

    private static IDataView Dense(MLContext ml, Scenario s, int rows, int width, Random r)
    {
        var data = Enumerable.Range(0, rows).Select(i => new DenseRow
        {
            Features = Enumerable.Range(0, width).Select(j => Value(s.Values, r, i, j)).ToArray(),
            Label = s.Values == Values.WithNaN && i == 3 ? float.NaN : (float)r.NextDouble() * 10,
            Flag = !s.OneClass && i % 2 == 1,
            Class = s.OneClass ? 1u : (uint)(i % 3 + 1),
        }).ToList();
        var schema = SchemaDefinition.Create(typeof(DenseRow));
        schema[nameof(DenseRow.Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, s.Family == Family.CnnBinary ? new[] { 1, 1, width } : new[] { width });
        schema[nameof(DenseRow.Class)].ColumnType = new KeyDataViewType(typeof(uint), 3);
        return ml.Data.LoadFromEnumerable(data, schema);
    }

    private static IDataView Tokens(MLContext ml, Scenario s, int rows)
    {
        var data = Enumerable.Range(0, rows).Select(i => new TokenRow
        {
            Tokens = Enumerable.Range(0, s.Lengths[i % s.Lengths.Length]).Select(t => (uint)((t * 7 + i) % 5 + 1)).ToArray(),
            Flag = !s.OneClass && i % 2 == 1,
        }).ToList();
        var schema = SchemaDefinition.Create(typeof(TokenRow));
        schema[nameof(TokenRow.Tokens)].ColumnType = new VectorDataViewType(new KeyDataViewType(typeof(uint), 5));
        return ml.Data.LoadFromEnumerable(data, schema);
    }

    private static T Common<T>(T o, Scenario s) where T : DeepTrainerOptions
    {
        o.NumberOfEpochs = s.Epochs;
        o.BatchSize = s.BatchSize;
        o.LearningRate = s.LearningRate;
        o.Optimizer = s.Optimizer;
        o.Schedule = s.Schedule;
        return o;
    }

    private static T Mlp<T>(T o, Scenario s) where T : MlpOptions
    {
        Common(o, s);
        o.HiddenLayers = s.Hidden;
        o.Dropout = s.Dropout;
        o.BatchNorm = s.BatchNorm;
        return o;
    }

    private static float[] Scores(IDataView scored)
    {
        var col = scored.Schema["Score"];
        return col.Type is VectorDataViewType
            ? scored.GetColumn<VBuffer<float>>(col.Name).SelectMany(v => v.DenseValues()).ToArray()
            : scored.GetColumn<float>(col.Name).ToArray();
    }

    /// <summary>Trains the scenario's model and scores a second data set of the scenario's scoring shape.</summary>
    private static float[] Run(Scenario s)
    {
        var ml = new MLContext(seed: s.Seed);
        var r = new System.Random(s.Seed);
        IDataView train, score;
        ITransformer model;
        switch (s.Family)
        {
            case Family.GruBinary:
            case Family.TransformerBinary:
                train = Tokens(ml, s, s.Rows);
                score = Tokens(ml, s with { Lengths = s.Lengths.Reverse().ToArray() }, 7);
                if (s.Family == Family.GruBinary)
                {
                    var o = Common(new RnnBinaryTrainer.Options { LabelColumnName = "Flag", FeatureColumnName = "Tokens", Cell = RecurrentCell.Gru, HiddenSize = 4, EmbeddingSize = 4 }, s);
                    o.Dropout = s.Dropout;
                    o.MaximumSequenceLength = s.MaxLength;
                    model = ml.BinaryClassification.Trainers.Rnn(o).Fit(train);
                }
                else
                {
                    var o = Common(new TransformerBinaryTrainer.Options { LabelColumnName = "Flag", FeatureColumnName = "Tokens", NumberOfLayers = 1, ModelWidth = 8, NumberOfHeads = 2 }, s);
                    o.Dropout = s.Dropout;
                    o.MaximumSequenceLength = s.MaxLength;
                    model = ml.BinaryClassification.Trainers.Transformer(o).Fit(train);
                }
                break;
            default:
                train = Dense(ml, s, s.Rows, s.Width, r);
                score = Dense(ml, s with { Values = Values.Normal }, 9, s.ScoreWidth, r);
                model = s.Family switch
                {
                    Family.MlpRegression => ml.Regression.Trainers.Mlp(Mlp(new MlpRegressionTrainer.Options(), s)).Fit(train),
                    Family.MlpBinary => ml.BinaryClassification.Trainers.Mlp(Mlp(new MlpBinaryTrainer.Options { LabelColumnName = "Flag" }, s)).Fit(train),
                    Family.MlpMulticlass => ml.MulticlassClassification.Trainers.Mlp(Mlp(new MlpMulticlassTrainer.Options { LabelColumnName = "Class" }, s)).Fit(train),
                    Family.CnnBinary => ml.BinaryClassification.Trainers.Cnn(Common(new CnnBinaryTrainer.Options
                    {
                        LabelColumnName = "Flag",
                        Architecture = CnnArchitecture.Custom(CnnLayer.Conv(2, kernelSize: 1), s.BatchNorm ? CnnLayer.BatchNorm() : CnnLayer.Relu(), CnnLayer.GlobalAveragePool()),
                    }, s)).Fit(train),
                    Family.MlpForecast => ml.Forecasting.Trainers.Mlp(Mlp(new MlpForecaster.Options { LabelColumnName = "Features", FeatureColumnName = "Features" }, s)).Fit(train),
                    _ => throw new ArgumentException(s.Family.ToString()),
                };
                break;
        }
        return Scores(model.Transform(score)).Concat(Scores(model.Transform(train))).ToArray();
    }
}
