using System.Globalization;
using System.Reflection;
using System.Security.Cryptography;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using Microsoft.ML.Trainers;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetDeep;

/// <summary>
/// Base of every MLNetDeep trainer: checks the input, reads the data through the family's input encoder into batches,
/// builds the family's network, runs the shared training loop with the task's head and wraps the result in a prediction
/// transformer whose output columns are exactly those ML.NET's evaluators and <c>PredictionEngine</c> expect.
/// The options are copied when the trainer is made (changing them afterwards does not change this trainer).
/// </summary>
/// <typeparam name="TTransformer">ML.NET prediction transformer returned by <see cref="Fit(IDataView)"/>.</typeparam>
/// <typeparam name="TModel">The trained model parameters held by the transformer.</typeparam>
public abstract class DeepTrainerBase<TTransformer, TModel> : ITrainerEstimator<TTransformer, TModel>
    where TTransformer : ISingleFeaturePredictionTransformer<TModel>
    where TModel : DeepModelParameters
{
    private protected readonly IHost Host;
    private readonly IHostEnvironment _env;
    private readonly DeepTrainerOptions _options;

    private protected DeepTrainerBase(IHostEnvironment env, string name, DeepTrainerOptions options)
    {
        _env = env ?? throw new ArgumentNullException(nameof(env));
        Host = env.Register(name);
        if (options is null) throw new ArgumentNullException(nameof(options));
        options.Validate();
        _options = options.Copy();
        TaskHead.RejectForeignOptions(_options, TaskName);
    }

    /// <summary>What ML.NET needs to know of this trainer: it wants normalized features and accepts validation data.</summary>
    public TrainerInfo Info { get; } = new TrainerInfo(normalization: true, caching: false, supportValid: true);

    /// <summary>Trains on <paramref name="input"/> (validating on <see cref="DeepTrainerOptions.ValidationData"/> when set).</summary>
    public TTransformer Fit(IDataView input) => Fit(input, null);

    /// <summary>Trains on <paramref name="trainData"/>, validating after every epoch on <paramref name="validationData"/>.</summary>
    public TTransformer Fit(IDataView trainData, IDataView? validationData)
    {
        if (trainData is null) throw new ArgumentNullException(nameof(trainData));
        var o = _options;
        o.CheckDirectories();
        TorchEngine.EnsureLoaded();
        using var ch = Host.Start("Training");
        var encoder = CreateEncoder(trainData.Schema);
        var head = CreateHead(trainData.Schema);
        head.CheckLabel(trainData.Schema, o.LabelColumnName, "training");
        InspectSchema(trainData.Schema);
        int seed = (_env as IHostEnvironmentInternal)?.Seed ?? Random.Shared.Next();

        validationData ??= o.ValidationData;
        IDataView train = trainData;
        if (validationData is null && o.ValidationFraction > 0)
        {
            var split = new DataOperationsCatalog(_env).TrainTestSplit(trainData, o.ValidationFraction, seed: seed);
            train = split.TrainSet;
            validationData = split.TestSet;
        }

        var device = TorchEngine.ResolveDevice(o.Device, o.FallbackToCpu, ch);
        // From here to the last epoch the process-wide generator and thread count are this training's, and the work runs
        // on the engine's training thread (see TorchEngine.RunTraining). Reading the data is inside too, so a second
        // training's featurizers do not compete with the first's epochs for the cores the engine's threads already use.
        return TorchEngine.RunTraining(o.NumberOfThreads, o.CancellationToken, Host.CheckAlive, ch,
            () => Train(o, ch, encoder, head, seed, trainData, train, validationData, device));
    }

    private TTransformer Train(DeepTrainerOptions o, IChannel ch, InputEncoder encoder, TaskHead head, int seed, IDataView trainData, IDataView train,
        IDataView? validationData, torch.Device device)
    {
        try
        {
            using var trainSet = TrainingData.Load(ch, train, encoder, head, o.FeatureColumnName, o.LabelColumnName, "training", o.Caching, o.MaximumCacheMegabytes, o.CancellationToken, o.ExampleWeightColumnName);
            using var validSet = validationData is null ? null
                : TrainingData.Load(ch, validationData, encoder, head, o.FeatureColumnName, o.LabelColumnName, "validation", o.Caching, o.MaximumCacheMegabytes, o.CancellationToken);
            head.Prepare(trainSet, device);
            InspectTrainingData(trainSet, ch);
            var spec = CreateNetworkSpec(encoder, head.OutputSize);
            torch.manual_seed(seed);
            var network = CreateNetwork(spec, encoder, head.OutputSize, ch);
            if (device.type != DeviceType.CPU) network.to(device);
            string description = spec.Describe(encoder, head.OutputSize);
            ch.Info($"MLNetDeep: training {description} ({network.parameters().Sum(p => p.numel())} parameters) on {device.type}, "
                + $"{trainSet.RowCount} rows, {o.NumberOfEpochs} epochs of batch {o.BatchSize}, {o.Optimizer} lr {o.LearningRate:G3}, seed {seed}.");
            var fingerprint = TrainingFingerprint.Of(o, spec, encoder, head, seed, trainSet, validSet);
            var loop = new TrainingLoop(Host, ch, o, head, network, trainSet, validSet, device, seed, fingerprint);
            var history = loop.Run();
            if (device.type != DeviceType.CPU) network.to(torch.CPU);
            var model = CreateModel(new ModelCore(spec, network, encoder, head, history.ToArray()));
            return (TTransformer)(object)new DeepPredictionTransformer<TModel>(Host, model, trainData.Schema, o.FeatureColumnName, o.LabelColumnName);
        }
        finally
        {
            head.Dispose(); // training-only tensors (class weights); the head's scoring state stays
        }
    }

    /// <summary>The output schema: the input columns plus the prediction columns of the task.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        if (inputSchema is null) throw new ArgumentNullException(nameof(inputSchema));
        if (!inputSchema.TryFindColumn(_options.FeatureColumnName, out var feature))
            throw new ArgumentOutOfRangeException(nameof(DeepTrainerOptions.FeatureColumnName), $"The input has no feature column '{_options.FeatureColumnName}'.");
        CheckFeatureShape(feature);
        var columns = inputSchema.ToDictionary(c => c.Name);
        SchemaShape.Column? label = inputSchema.TryFindColumn(_options.LabelColumnName, out var l) ? l : null;
        foreach (var c in OutputShape(label)) columns[c.Name] = c;
        return new SchemaShape(columns.Values);
    }

    /// <summary>The options this trainer was made with (its own copy).</summary>
    private protected DeepTrainerOptions TrainerOptions => _options;

    /// <summary>The task: binary, multiclass, regression or forecasting.</summary>
    private protected abstract string TaskName { get; }

    /// <summary>Checks the feature column's shape for <see cref="GetOutputSchema"/>; families taking token sequences widen it.</summary>
    private protected virtual void CheckFeatureShape(SchemaShape.Column feature)
    {
        if (feature.Kind != SchemaShape.Column.VectorKind.Vector || feature.ItemType != NumberDataViewType.Single)
            throw new ArgumentOutOfRangeException(nameof(DeepTrainerOptions.FeatureColumnName),
                $"Feature column '{_options.FeatureColumnName}' must be a known-size vector of Single (float), but is {feature.GetTypeString()}.");
    }

    /// <summary>How the family reads the feature column; dense float vectors unless the family says otherwise.</summary>
    private protected virtual InputEncoder CreateEncoder(DataViewSchema schema) => DenseEncoder.FromSchema(schema, _options.FeatureColumnName, "training");

    /// <summary>Lets a family read what it needs of the training schema (e.g. image dimensions) before training.</summary>
    private protected virtual void InspectSchema(DataViewSchema schema) { }

    /// <summary>Lets a family look at what was read of the training data (e.g. the pixels' range) before the network is made.</summary>
    private protected virtual void InspectTrainingData(TrainingData train, IChannel ch) { }

    /// <summary>Builds the network to train; families override it to start from a trained model.</summary>
    private protected virtual nn.Module<Tensor, Tensor> CreateNetwork(NetworkSpec spec, InputEncoder input, int outputSize, IChannel ch)
        => spec.Build(input, outputSize);

    /// <summary>The network family's architecture for this input and number of outputs.</summary>
    private protected abstract NetworkSpec CreateNetworkSpec(InputEncoder input, int outputSize);

    private protected abstract TaskHead CreateHead(DataViewSchema schema);

    private protected abstract IEnumerable<SchemaShape.Column> OutputShape(SchemaShape.Column? label);

    private protected abstract TModel CreateModel(ModelCore core);
}

/// <summary>Base of binary-classification trainers: <c>bool</c> label; outputs Score (logit), Probability and PredictedLabel.</summary>
public abstract class DeepBinaryTrainerBase : DeepTrainerBase<DeepPredictionTransformer<DeepBinaryModelParameters>, DeepBinaryModelParameters>
{
    private protected DeepBinaryTrainerBase(IHostEnvironment env, string name, DeepTrainerOptions options) : base(env, name, options) { }

    private protected override string TaskName => BinaryHead.KindName;
    private protected override TaskHead CreateHead(DataViewSchema schema) => new BinaryHead(TrainerOptions.PositiveClassWeight);
    private protected override IEnumerable<SchemaShape.Column> OutputShape(SchemaShape.Column? label) => new BinaryHead(1).OutputShape(label);
    private protected override DeepBinaryModelParameters CreateModel(ModelCore core) => new(Host, core);
}

/// <summary>Base of multiclass trainers: key-typed label; outputs Score (class probabilities) and PredictedLabel (a key with the label's values).</summary>
public abstract class DeepMulticlassTrainerBase : DeepTrainerBase<DeepPredictionTransformer<DeepMulticlassModelParameters>, DeepMulticlassModelParameters>
{
    private protected DeepMulticlassTrainerBase(IHostEnvironment env, string name, DeepTrainerOptions options) : base(env, name, options) { }

    private protected override string TaskName => MulticlassHead.KindName;

    private protected override TaskHead CreateHead(DataViewSchema schema) =>
        new MulticlassHead(MulticlassHead.ClassCount(schema, TrainerOptions.LabelColumnName), TrainerOptions.ClassWeights, TrainerOptions.LabelSmoothing);

    private protected override IEnumerable<SchemaShape.Column> OutputShape(SchemaShape.Column? label) => new MulticlassHead(2, null, 0).OutputShape(label);
    private protected override DeepMulticlassModelParameters CreateModel(ModelCore core) => new(Host, core);
}

/// <summary>Base of regression trainers: <c>float</c> label; outputs Score.</summary>
public abstract class DeepRegressionTrainerBase : DeepTrainerBase<DeepPredictionTransformer<DeepRegressionModelParameters>, DeepRegressionModelParameters>
{
    private protected DeepRegressionTrainerBase(IHostEnvironment env, string name, DeepTrainerOptions options) : base(env, name, options) { }

    private protected override string TaskName => RegressionHead.KindName;
    private protected override TaskHead CreateHead(DataViewSchema schema) => new RegressionHead(TrainerOptions.RegressionLoss, TrainerOptions.HuberDelta, TrainerOptions.StandardizeLabel);
    private protected override IEnumerable<SchemaShape.Column> OutputShape(SchemaShape.Column? label) => new RegressionHead(RegressionLoss.SquaredError, 1, true).OutputShape(label);
    private protected override DeepRegressionModelParameters CreateModel(ModelCore core) => new(Host, core);
}

/// <summary>Base of forecasting trainers: a known-size <c>vector&lt;float&gt;</c> label of H future values; outputs Score, a vector of H values.</summary>
public abstract class DeepForecastTrainerBase : DeepTrainerBase<DeepPredictionTransformer<DeepForecastModelParameters>, DeepForecastModelParameters>
{
    private protected DeepForecastTrainerBase(IHostEnvironment env, string name, DeepTrainerOptions options) : base(env, name, options) { }

    private protected override string TaskName => ForecastHead.KindName;

    private protected override TaskHead CreateHead(DataViewSchema schema) =>
        new ForecastHead(ForecastHead.Horizon(schema, TrainerOptions.LabelColumnName), TrainerOptions.RegressionLoss, TrainerOptions.HuberDelta, StandardizesLabel);

    /// <summary>Whether the head standardizes the label (a network that feeds its forecasts back needs them in the input's units).</summary>
    private protected virtual bool StandardizesLabel => TrainerOptions.StandardizeLabel;

    private protected override IEnumerable<SchemaShape.Column> OutputShape(SchemaShape.Column? label) => new ForecastHead(1, RegressionLoss.SquaredError, 1, true).OutputShape(label);
    private protected override DeepForecastModelParameters CreateModel(ModelCore core) => new(Host, core);
}

/// <summary>
/// What identifies a training run for its checkpoint: every option that changes training, the network (its full
/// description), the input, the task, the seed and the data (row count and a hash of the first rows). A checkpoint
/// written for another run is refused, naming what differs.
/// </summary>
internal static class TrainingFingerprint
{
    // Options that do not change what is trained: where and how it is watched, stored or run.
    private static readonly HashSet<string> Ignored = new(StringComparer.Ordinal)
    {
        nameof(DeepTrainerOptions.CheckpointDirectory), nameof(DeepTrainerOptions.CancellationToken), nameof(DeepTrainerOptions.EpochCallback),
        nameof(DeepTrainerOptions.ShowProgress), nameof(DeepTrainerOptions.PlotDirectory), nameof(DeepTrainerOptions.NumberOfThreads),
        nameof(DeepTrainerOptions.Device), nameof(DeepTrainerOptions.FallbackToCpu), nameof(DeepTrainerOptions.Caching),
        nameof(DeepTrainerOptions.MaximumCacheMegabytes), nameof(DeepTrainerOptions.ValidationData), nameof(DeepTrainerOptions.FeatureColumnName),
        nameof(DeepTrainerOptions.LabelColumnName), "Architecture", "BaseModel",
    };

    public static string Of(DeepTrainerOptions o, NetworkSpec spec, InputEncoder encoder, TaskHead head, int seed, TrainingData train, TrainingData? valid)
    {
        var entries = new List<(string, string)>
        {
            ("task", $"{head.Kind} with {head.OutputSize} outputs"),
            ("network", $"{spec.Describe(encoder, head.OutputSize)} [{Hash(w => spec.Write(w))}]"),
            ("input", $"{encoder.Describe()} [{Hash(w => encoder.Write(w))}]"),
            ("seed", seed.ToString(CultureInfo.InvariantCulture)),
            ("training data", train.Fingerprint),
            ("validation data", valid?.Fingerprint ?? "none"),
        };
        bool scheduleSpansEpochs = o.Schedule is LearningRateSchedule.Cosine or LearningRateSchedule.OneCycle or LearningRateSchedule.WarmupCosine or LearningRateSchedule.WarmupLinear;
        foreach (var p in o.GetType().GetProperties(BindingFlags.Public | BindingFlags.Instance).OrderBy(p => p.Name, StringComparer.Ordinal))
        {
            if (Ignored.Contains(p.Name) || p.GetIndexParameters().Length > 0) continue;
            if (p.Name == nameof(DeepTrainerOptions.NumberOfEpochs) && !scheduleSpansEpochs) continue; // more epochs may continue a run
            entries.Add((p.Name, Format(p.GetValue(o))));
        }
        return string.Join("\n", entries.Select(e => $"{e.Item1}={e.Item2}"));
    }

    /// <summary>The entries of two fingerprints that differ, for the refusal message.</summary>
    public static string Differences(string saved, string current)
    {
        static Dictionary<string, string> Parse(string f) => f.Split('\n')
            .Select(l => l.Split('=', 2)).Where(p => p.Length == 2).GroupBy(p => p[0]).ToDictionary(g => g.Key, g => g.First()[1]);
        var a = Parse(saved);
        var b = Parse(current);
        var diffs = a.Keys.Union(b.Keys).Where(k => !a.TryGetValue(k, out var x) || !b.TryGetValue(k, out var y) || x != y)
            .Select(k => $"{k} (checkpoint: {(a.TryGetValue(k, out var x) ? x : "absent")}; now: {(b.TryGetValue(k, out var y) ? y : "absent")})").ToList();
        return diffs.Count == 0 ? "an unreadable fingerprint" : string.Join("; ", diffs);
    }

    private static string Format(object? v) => v switch
    {
        null => "null",
        string s => s,
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        float f => f.ToString("R", CultureInfo.InvariantCulture),
        System.Collections.IEnumerable e => "[" + string.Join(", ", e.Cast<object?>().Select(Format)) + "]",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => v.ToString() ?? "",
    };

    private static string Hash(Action<BinaryWriter> write)
    {
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, System.Text.Encoding.UTF8, leaveOpen: true)) write(w);
        return Convert.ToHexString(SHA256.HashData(ms.ToArray()), 0, 8);
    }
}
