using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetDeep.TestData;
using Xunit;
using Xunit.Abstractions;

namespace MLNetDeep.Tests;

/// <summary>Masked-token pretraining of a Transformer encoder on unlabelled text, and fine-tuning from it.</summary>
public sealed class TransformerPretrainingTests
{
    private readonly ITestOutputHelper _out;
    public TransformerPretrainingTests(ITestOutputHelper output) => _out = output;

    private static TransformerPretrainer.Options Small(int epochs) => new()
    {
        FeatureColumnName = "Tokens", NumberOfLayers = 2, ModelWidth = 32, NumberOfHeads = 4, NumberOfEpochs = epochs, BatchSize = 32,
        LearningRate = 1e-3, MaximumSequenceLength = 64,
    };

    private static DeepModelParameters Deep(ITransformer model) =>
        ((IPredictionTransformer<DeepModelParameters>)((IEnumerable<ITransformer>)model).Last()).Model;

    [Fact]
    public void PretrainedEncoder_LearnsToPredictMaskedTokens_AndItsEmbeddingsLoadInAnotherProcess()
    {
        var ml = new MLContext(seed: 1);
        var text = ml.Data.TakeRows(RealData.Sms(ml), 2000); // labels unused
        var tokens = Pipelines.SmsTokens(ml).Fit(text);
        var o = Small(4);
        o.LearningRate = 3e-3;
        var encoder = ml.Transforms.Text.PretrainTransformerEncoder(o).Fit(tokens.Transform(text));
        var history = encoder.Model.History;
        _out.WriteLine(string.Join("\n", history));
        Assert.True(history[^1].TrainLoss < history[0].TrainLoss - 0.2, $"masked-token loss {history[0].TrainLoss:F3} -> {history[^1].TrainLoss:F3}");
        Assert.Contains("masked-token pretraining", encoder.Model.Architecture);

        var pipeline = tokens.Append(encoder);
        var embedded = pipeline.Transform(RealData.Sms(ml)); // what the other process scores
        var column = embedded.Schema["Embedding"];
        Assert.Equal(new VectorDataViewType(NumberDataViewType.Single, 32), column.Type);
        string path = Path.Combine(TestUtil.TempDir(), "encoder.zip");
        ml.Model.Save(pipeline, text.Schema, path);
        Assert.Equal(PredictionDump.Lines(embedded).ToArray(), TestUtil.PredictInOtherProcess(path, "sms"));
    }

    [Fact]
    public void FineTuning_FromAPretrainedEncoder_LearnsTheTask_AndKeepsFrozenLayersBitIdentical()
    {
        var ml = new MLContext(seed: 1);
        var all = RealData.Sms(ml);
        var split = ml.Data.TrainTestSplit(all, testFraction: 0.2, seed: 1);
        var tokens = Pipelines.SmsTokens(ml).Fit(all);
        var encoder = ml.Transforms.Text.PretrainTransformerEncoder(Small(1)).Fit(tokens.Transform(ml.Data.TakeRows(all, 2000)));
        string path = Path.Combine(TestUtil.TempDir(), "encoder.zip");
        ml.Model.Save(encoder, tokens.Transform(all).Schema, path);
        var train = tokens.Transform(split.TrainSet);
        TransformerBinaryTrainer.Options FineTune(int freeze, int epochs) => new()
        {
            FeatureColumnName = "Tokens", BaseModelPath = path, FreezeLayers = freeze, Pooling = TransformerPooling.Mean,
            NumberOfEpochs = epochs, BatchSize = 32, LearningRate = 1e-3, MaximumSequenceLength = 64,
        };

        // Everything fine-tuned: the task is learned.
        var classifier = ml.BinaryClassification.Trainers.Transformer(FineTune(0, 2)).Fit(train);
        var m = ml.BinaryClassification.Evaluate(classifier.Transform(tokens.Transform(split.TestSet)));
        _out.WriteLine($"fine-tuned from the pretrained encoder: accuracy {m.Accuracy:F4}, F1 {m.F1Score:F4}; {classifier.Model.Architecture}");
        Assert.True(m.Accuracy >= 0.95, $"accuracy {m.Accuracy:F4} < 0.95");

        // The embedding, positions and layer 0 frozen: those stay exactly as pretrained, layer 1 trains.
        var frozen = ml.BinaryClassification.Trainers.Transformer(FineTune(1, 1)).Fit(train);
        var before = ((TransformerNetwork)encoder.Model.Network).named_parameters().ToDictionary(p => p.name, p => p.parameter.data<float>().ToArray());
        var after = ((TransformerNetwork)frozen.Model.Network).named_parameters().ToDictionary(p => p.name, p => p.parameter.data<float>().ToArray());
        foreach (var name in new[] { "embedding.weight", "positions", "layers.0.attention.qkv.weight", "layers.0.ff2.bias", "layers.0.norm1.weight" })
        {
            var diff = Enumerable.Range(0, before[name].Length).Where(i => before[name][i] != after[name][i]).ToArray();
            Assert.True(diff.Length == 0, $"{name} changed although frozen: {diff.Length} of {before[name].Length} values, first at {diff.FirstOrDefault()}: {before[name][diff.FirstOrDefault()]} -> {after[name][diff.FirstOrDefault()]}");
        }
        Assert.False(before["layers.1.attention.qkv.weight"].SequenceEqual(after["layers.1.attention.qkv.weight"]), "the unfrozen layer 1 did not train");
    }

    [Fact]
    public void Pretraining_AndFineTuning_RefuseWhatTheyCannotUse_NamingTheOption()
    {
        var ml = new MLContext(seed: 1);
        var valid = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.Text.PretrainTransformerEncoder(new TransformerPretrainer.Options { ValidationFraction = 0.1 }));
        Assert.Equal(nameof(DeepTrainerOptions.ValidationFraction), valid.ParamName);
        var freeze = Assert.Throws<ArgumentException>(() => ml.BinaryClassification.Trainers.Transformer(new TransformerBinaryTrainer.Options { FreezeLayers = 1 }));
        Assert.Equal(nameof(TransformerOptions.FreezeLayers), freeze.ParamName);

        var windows = Sunspots.Windows(ml, lookback: 11);
        var numbers = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.Text.PretrainTransformerEncoder(new TransformerPretrainer.Options { NumberOfEpochs = 1 }).Fit(windows.Train));
        Assert.Equal(nameof(DeepTrainerOptions.FeatureColumnName), numbers.ParamName);

        // Another vocabulary: a token pipeline fitted on other text.
        var sms = ml.Data.TakeRows(RealData.Sms(ml), 300);
        var tokens = Pipelines.SmsTokens(ml).Fit(sms);
        var encoder = ml.Transforms.Text.PretrainTransformerEncoder(Small(1)).Fit(tokens.Transform(sms));
        var other = ml.Data.TakeRows(ml.Data.SkipRows(RealData.Sms(ml), 300), 300);
        var otherTokens = Pipelines.SmsTokens(ml).Fit(other).Transform(other);
        var vocabulary = Assert.Throws<ArgumentException>(() => ml.BinaryClassification.Trainers.Transformer(new TransformerBinaryTrainer.Options
        {
            FeatureColumnName = "Tokens", BaseModel = encoder, NumberOfEpochs = 1, MaximumSequenceLength = 64,
        }).Fit(otherTokens));
        Assert.Equal(nameof(TransformerOptions.BaseModel), vocabulary.ParamName);
        Assert.Contains("same fitted transforms", vocabulary.Message);
    }
}
