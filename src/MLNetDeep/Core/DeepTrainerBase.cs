using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using Microsoft.ML.Trainers;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetDeep;

/// <summary>
/// Base of every MLNetDeep trainer: checks the input, reads the data into batches, builds the family's network,
/// runs the shared training loop and wraps the result in ML.NET's own prediction transformer, so that the output
/// columns are exactly those ML.NET's evaluators and <c>PredictionEngine</c> expect, scored in batches.
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
        _options = options ?? throw new ArgumentNullException(nameof(options));
        options.Validate();
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
        o.Validate();
        TorchEngine.EnsureLoaded();
        using var ch = Host.Start("Training");
        TrainingData.CheckFeatureColumn(trainData.Schema, o.FeatureColumnName, "training");
        var task = CreateTask(trainData.Schema);
        TrainingData.CheckLabelColumn(trainData.Schema, o.LabelColumnName, task.LabelKind, "training");
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

        TorchEngine.SetThreads(o.NumberOfThreads);
        var device = TorchEngine.ResolveDevice(o.Device, o.FallbackToCpu, ch);
        int classCount = task.LabelKind == LabelKind.Key ? task.OutputSize : 0;
        using var trainSet = TrainingData.Load(Host, ch, train, o.FeatureColumnName, o.LabelColumnName, "training", task.LabelKind, classCount, o.Caching, o.MaximumCacheMegabytes);
        using var validSet = validationData is null ? null
            : TrainingData.Load(Host, ch, validationData, o.FeatureColumnName, o.LabelColumnName, "validation", task.LabelKind, classCount, o.Caching, o.MaximumCacheMegabytes);
        if (validSet is not null && validSet.FeatureSize != trainSet.FeatureSize)
            throw new ArgumentOutOfRangeException(nameof(validationData),
                $"Feature column '{o.FeatureColumnName}' has {validSet.FeatureSize} values in the validation data but {trainSet.FeatureSize} in the training data.");

        using (task)
        {
            task.Prepare(trainSet, device);
            var spec = CreateNetworkSpec(trainSet.FeatureSize, task.OutputSize);
            torch.manual_seed(seed);
            var network = CreateNetwork(spec, trainSet.FeatureSize, task.OutputSize, ch);
            if (device.type != DeviceType.CPU) network.to(device);
            string description = spec.Describe(trainSet.FeatureSize, task.OutputSize);
            ch.Info($"MLNetDeep: training {description} ({network.parameters().Sum(p => p.numel())} parameters) on {device.type}, "
                + $"{trainSet.RowCount} rows, {o.NumberOfEpochs} epochs of batch {o.BatchSize}, {o.Optimizer} lr {o.LearningRate:G3}, seed {seed}.");
            var loop = new TrainingLoop(Host, ch, o, task, network, trainSet, validSet, device, seed, $"{task.GetType().Name}: {description}, {o.Optimizer}");
            var history = loop.Run();
            if (device.type != DeviceType.CPU) network.to(torch.CPU);
            var model = CreateModel(spec, network, trainSet.FeatureSize, task, history);
            return CreateTransformer(model, trainData.Schema);
        }
    }

    /// <summary>The output schema: the input columns plus the prediction columns of the task.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        if (inputSchema is null) throw new ArgumentNullException(nameof(inputSchema));
        if (!inputSchema.TryFindColumn(_options.FeatureColumnName, out var feature))
            throw new ArgumentOutOfRangeException(nameof(DeepTrainerOptions.FeatureColumnName), $"The input has no feature column '{_options.FeatureColumnName}'.");
        if (feature.Kind != SchemaShape.Column.VectorKind.Vector || feature.ItemType != NumberDataViewType.Single)
            throw new ArgumentOutOfRangeException(nameof(DeepTrainerOptions.FeatureColumnName),
                $"Feature column '{_options.FeatureColumnName}' must be a known-size vector of Single (float), but is {feature.GetTypeString()}.");
        var columns = inputSchema.ToDictionary(c => c.Name);
        foreach (var c in OutputColumns(inputSchema)) columns[c.Name] = c;
        return new SchemaShape(columns.Values);
    }

    /// <summary>The options this trainer was made with.</summary>
    private protected DeepTrainerOptions TrainerOptions => _options;

    /// <summary>Lets a family read what it needs of the training schema (e.g. image dimensions) before training.</summary>
    private protected virtual void InspectSchema(DataViewSchema schema) { }

    /// <summary>Builds the network to train; families override it to start from a trained model.</summary>
    private protected virtual nn.Module<Tensor, Tensor> CreateNetwork(NetworkSpec spec, int inputSize, int outputSize, IChannel ch)
        => spec.Build(inputSize, outputSize);

    /// <summary>The network family's architecture for these sizes.</summary>
    private protected abstract NetworkSpec CreateNetworkSpec(int inputSize, int outputSize);

    private protected abstract TaskAdapter CreateTask(DataViewSchema schema);

    private protected abstract TModel CreateModel(NetworkSpec spec, nn.Module<Tensor, Tensor> network, int inputSize, TaskAdapter task, List<EpochMetrics> history);

    private protected abstract TTransformer CreateTransformer(TModel model, DataViewSchema trainSchema);

    private protected abstract IEnumerable<SchemaShape.Column> OutputColumns(SchemaShape inputSchema);
}

/// <summary>Base of binary-classification trainers: <c>bool</c> label; outputs Score (logit), Probability and PredictedLabel.</summary>
public abstract class DeepBinaryTrainerBase : DeepTrainerBase<DeepPredictionTransformer<DeepBinaryModelParameters>, DeepBinaryModelParameters>
{
    private protected DeepBinaryTrainerBase(IHostEnvironment env, string name, DeepTrainerOptions options) : base(env, name, options) { }

    private protected override TaskAdapter CreateTask(DataViewSchema schema) => new BinaryTask(TrainerOptions.PositiveClassWeight);

    private protected override DeepBinaryModelParameters CreateModel(NetworkSpec spec, nn.Module<Tensor, Tensor> network, int inputSize, TaskAdapter task, List<EpochMetrics> history)
        => new(Host, spec, network, inputSize, history);

    private protected override DeepPredictionTransformer<DeepBinaryModelParameters> CreateTransformer(DeepBinaryModelParameters model, DataViewSchema trainSchema)
        => new(Host, model, trainSchema, TrainerOptions.FeatureColumnName, null);

    private protected override IEnumerable<SchemaShape.Column> OutputColumns(SchemaShape inputSchema) => new[]
    {
        new SchemaShape.Column(DefaultColumnNames.Score, SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.Single, false, new SchemaShape(AnnotationUtils.GetTrainerOutputAnnotation())),
        new SchemaShape.Column(DefaultColumnNames.Probability, SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.Single, false, new SchemaShape(AnnotationUtils.GetTrainerOutputAnnotation(true))),
        new SchemaShape.Column(DefaultColumnNames.PredictedLabel, SchemaShape.Column.VectorKind.Scalar, BooleanDataViewType.Instance, false, new SchemaShape(AnnotationUtils.GetTrainerOutputAnnotation())),
    };
}

/// <summary>Base of multiclass trainers: key-typed label; outputs Score (class probabilities) and PredictedLabel (a key with the label's values).</summary>
public abstract class DeepMulticlassTrainerBase : DeepTrainerBase<DeepPredictionTransformer<DeepMulticlassModelParameters>, DeepMulticlassModelParameters>
{
    private protected DeepMulticlassTrainerBase(IHostEnvironment env, string name, DeepTrainerOptions options) : base(env, name, options) { }

    private protected override TaskAdapter CreateTask(DataViewSchema schema)
    {
        TrainingData.CheckLabelColumn(schema, TrainerOptions.LabelColumnName, LabelKind.Key, "training");
        return new MulticlassTask(TrainingData.ClassCount(schema, TrainerOptions.LabelColumnName), TrainerOptions.ClassWeights, TrainerOptions.LabelSmoothing);
    }

    private protected override DeepMulticlassModelParameters CreateModel(NetworkSpec spec, nn.Module<Tensor, Tensor> network, int inputSize, TaskAdapter task, List<EpochMetrics> history)
        => new(Host, spec, network, inputSize, task.OutputSize, history);

    private protected override DeepPredictionTransformer<DeepMulticlassModelParameters> CreateTransformer(DeepMulticlassModelParameters model, DataViewSchema trainSchema)
        => new(Host, model, trainSchema, TrainerOptions.FeatureColumnName, TrainerOptions.LabelColumnName);

    private protected override IEnumerable<SchemaShape.Column> OutputColumns(SchemaShape inputSchema)
    {
        if (!inputSchema.TryFindColumn(TrainerOptions.LabelColumnName, out var label))
            throw new ArgumentOutOfRangeException(nameof(DeepTrainerOptions.LabelColumnName), $"The input has no label column '{TrainerOptions.LabelColumnName}'.");
        if (!label.IsKey)
            throw new ArgumentOutOfRangeException(nameof(DeepTrainerOptions.LabelColumnName),
                $"Label column '{TrainerOptions.LabelColumnName}' is {label.GetTypeString()}; expected a key type for multiclass classification (use mlContext.Transforms.Conversion.MapValueToKey).");
        var annotations = new SchemaShape(label.Annotations.Where(a => a.Name == AnnotationUtils.Kinds.KeyValues).Concat(AnnotationUtils.GetTrainerOutputAnnotation()));
        return new[]
        {
            new SchemaShape.Column(DefaultColumnNames.Score, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false, new SchemaShape(AnnotationUtils.AnnotationsForMulticlassScoreColumn(label))),
            new SchemaShape.Column(DefaultColumnNames.PredictedLabel, SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.UInt32, true, annotations),
        };
    }
}

/// <summary>Base of regression trainers: <c>float</c> label; outputs Score.</summary>
public abstract class DeepRegressionTrainerBase : DeepTrainerBase<DeepPredictionTransformer<DeepRegressionModelParameters>, DeepRegressionModelParameters>
{
    private protected DeepRegressionTrainerBase(IHostEnvironment env, string name, DeepTrainerOptions options) : base(env, name, options) { }

    private protected override TaskAdapter CreateTask(DataViewSchema schema) => new RegressionTask(TrainerOptions.RegressionLoss, TrainerOptions.HuberDelta, TrainerOptions.StandardizeLabel);

    private protected override DeepRegressionModelParameters CreateModel(NetworkSpec spec, nn.Module<Tensor, Tensor> network, int inputSize, TaskAdapter task, List<EpochMetrics> history)
    {
        var r = (RegressionTask)task;
        return new(Host, spec, network, inputSize, r.Mean, r.Scale, history);
    }

    private protected override DeepPredictionTransformer<DeepRegressionModelParameters> CreateTransformer(DeepRegressionModelParameters model, DataViewSchema trainSchema)
        => new(Host, model, trainSchema, TrainerOptions.FeatureColumnName, null);

    private protected override IEnumerable<SchemaShape.Column> OutputColumns(SchemaShape inputSchema) => new[]
    {
        new SchemaShape.Column(DefaultColumnNames.Score, SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.Single, false, new SchemaShape(AnnotationUtils.GetTrainerOutputAnnotation())),
    };
}
