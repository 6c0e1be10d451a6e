using System.Security.Cryptography;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Model;
using Microsoft.ML.Runtime;
using MLNetDeep;
using TorchSharp;
using static TorchSharp.torch;

[assembly: LoadableClass(typeof(DeepBinaryModelParameters), null, typeof(SignatureLoadModel), "MLNetDeep binary classifier", DeepBinaryModelParameters.LoaderSignature)]
[assembly: LoadableClass(typeof(DeepMulticlassModelParameters), null, typeof(SignatureLoadModel), "MLNetDeep multiclass classifier", DeepMulticlassModelParameters.LoaderSignature)]
[assembly: LoadableClass(typeof(DeepRegressionModelParameters), null, typeof(SignatureLoadModel), "MLNetDeep regressor", DeepRegressionModelParameters.LoaderSignature)]
[assembly: LoadableClass(typeof(DeepForecastModelParameters), null, typeof(SignatureLoadModel), "MLNetDeep forecaster", DeepForecastModelParameters.LoaderSignature)]

namespace MLNetDeep;

/// <summary>What every trained model holds: the network, its description, its input encoder, its task head, its history.</summary>
internal sealed record ModelCore(NetworkSpec Spec, nn.Module<Tensor, Tensor> Network, InputEncoder Encoder, TaskHead Head, EpochMetrics[] History);

/// <summary>
/// A trained MLNetDeep network, as held by the prediction transformer's <c>Model</c> property. It is saved inside
/// the ML.NET model zip (architecture, input encoding, task state, weights, training history) and loaded back by
/// <c>mlContext.Model.Load</c> with no registration call.
/// </summary>
public abstract class DeepModelParameters : ICanSaveModel
{
    internal const string WeightsStream = "Weights.bin";
    private const int Format = 2;
    private protected readonly IHost Host;
    internal readonly NetworkSpec Spec;
    internal readonly nn.Module<Tensor, Tensor> Network;
    internal readonly InputEncoder Encoder;
    internal readonly TaskHead Head;
    private readonly EpochMetrics[] _history;

    /// <summary>
    /// Length of the feature vector the network reads; for token sequences, the most tokens of a row it reads
    /// (<c>MaximumSequenceLength</c>).
    /// </summary>
    public int InputSize => Encoder switch
    {
        DenseEncoder d => d.Size,
        TokenEncoder t => t.MaximumSequenceLength,
        _ => 0,
    };

    /// <summary>What the network reads, e.g. <c>a vector of 784 floats</c> or <c>token sequences (vector of keys, 8000 keys, ...)</c>.</summary>
    public string InputDescription => Encoder.Describe();

    /// <summary>Number of network outputs (1 for binary and regression, the class count for multiclass, the horizon for forecasting).</summary>
    public int OutputSize => Head.OutputSize;

    /// <summary>Per-epoch training history (train loss, validation loss and metric, learning rate, seconds).</summary>
    public IReadOnlyList<EpochMetrics> History => _history;

    /// <summary>A one-line description of the architecture, e.g. <c>MLP 17 -> [128, 64] -> 1, Relu</c>.</summary>
    public string Architecture => Spec.Describe(Encoder, OutputSize);

    /// <summary>Number of trainable parameters.</summary>
    public long ParameterCount { get; }

    private protected DeepModelParameters(IHostEnvironment env, string name, ModelCore core)
    {
        Host = env.Register(name);
        Spec = core.Spec;
        Network = core.Network;
        Network.eval();
        Encoder = core.Encoder;
        Head = core.Head;
        _history = core.History;
        ParameterCount = Network.parameters().Sum(p => p.numel());
    }

    /// <summary>The MLNetDeep model of a prediction transformer, or of the last one in a (nested) chain; null if none.</summary>
    internal static DeepModelParameters? Find(ITransformer t) =>
        TransformerSteps.Flatten(t).OfType<IPredictionTransformer<DeepModelParameters>>().LastOrDefault()?.Model;

    /// <summary>
    /// Reads a saved model (written by <see cref="SaveCommon"/>); <paramref name="task"/> is the head kind of the loading
    /// class. The file is untrusted: every size is checked before anything is allocated for it, and whatever is wrong
    /// is thrown as an <see cref="InvalidDataException"/> saying so.
    /// </summary>
    private protected static ModelCore Load(ModelLoadContext ctx, string task)
    {
        TorchEngine.EnsureLoaded();
        try
        {
            return LoadCore(ctx, task);
        }
        catch (Exception e) when (ModelFileChecks.AsCorrupt(e) is { } corrupt)
        {
            throw corrupt;
        }
    }

    private static ModelCore LoadCore(ModelLoadContext ctx, string task)
    {
        var r = ctx.Reader;
        int format = r.ReadInt32();
        if (format is not (1 or 2)) throw new InvalidDataException($"MLNetDeep model format {format} is not supported by this version: the model file is corrupt, or was written by a newer MLNetDeep.");
        var spec = NetworkSpec.Read(r);
        InputEncoder encoder;
        TaskHead head;
        if (format == 1)
        {
            // 0.1.0: dense input, sizes, history; the regression statistics follow the weights' hash.
            int input = r.ReadInt32();
            int output = r.ReadInt32();
            if (input <= 0 || output <= 0) throw new InvalidDataException("MLNetDeep model file is corrupt: invalid network sizes.");
            encoder = new DenseEncoder(input, new[] { input });
            head = TaskHead.Create(task, output);
        }
        else
        {
            encoder = InputEncoder.Read(r);
            string kind = r.ReadString();
            if (kind != task) throw new InvalidDataException($"MLNetDeep model file is corrupt: a {kind} model stored as {task}.");
            int output = r.ReadInt32();
            if (output <= 0) throw new InvalidDataException("MLNetDeep model file is corrupt: invalid output size.");
            head = TaskHead.Create(task, output);
            head.Read(r);
        }
        var history = ReadHistory(r);
        byte[] expectedHash = r.ReadBytes(32);
        if (expectedHash.Length != 32) throw new EndOfStreamException("the weights' checksum is cut short.");
        if (format == 1) head.Read(r);
        byte[]? weights = null;
        if (!ctx.TryLoadBinaryStream(WeightsStream, br => weights = ReadToEnd(br.BaseStream)))
            throw new InvalidDataException($"MLNetDeep model file is corrupt or truncated: its weights ({WeightsStream}) are missing.");
        if (!SHA256.HashData(weights!).AsSpan().SequenceEqual(expectedHash))
            throw new InvalidDataException($"MLNetDeep model file is corrupt: the network weights do not match their checksum.");
        // The network is allocated before the weights are read into it: what its description implies must be in the
        // weights (every parameter and buffer is stored), or a crafted description could allocate without limit.
        long stored = StoredWeights.DataBytes(weights) / sizeof(float);
        long needed = spec.StateElements(encoder, head.OutputSize);
        if (needed > stored || head.OutputSize > stored)
            throw ModelFileChecks.Corrupt($"its network ({spec.Describe(encoder, head.OutputSize)}) has {needed} values, but its weights hold only {stored}.");
        // Built outside any dispose scope: a network's constructor may touch its parameters (initialisation), and a
        // parameter touched inside a scope would be disposed with it. Only the loading's temporaries go in the scope.
        var network = spec.Build(encoder, head.OutputSize);
        try
        {
            using var scope = torch.NewDisposeScope();
            using var ms = new MemoryStream(weights!);
            network.load(ms);
        }
        catch (Exception e)
        {
            network.Dispose();
            throw ModelFileChecks.Corrupt($"the weights do not fit the network '{spec.Describe(encoder, head.OutputSize)}': {ModelFileChecks.FirstLine(e.Message)}");
        }
        return new ModelCore(spec, network, encoder, head, history);
    }

    /// <summary>Writes the format version, network description, input encoder, task head, history and weights.</summary>
    private void SaveCommon(ModelSaveContext ctx)
    {
        var w = ctx.Writer;
        w.Write(Format);
        Spec.Write(w);
        Encoder.Write(w);
        w.Write(Head.Kind);
        w.Write(Head.OutputSize);
        Head.Write(w);
        WriteHistory(w, _history);
        byte[] weights = SerializeWeights(Network);
        w.Write(SHA256.HashData(weights));
        ctx.SaveBinaryStream(WeightsStream, bw => bw.Write(weights));
    }

    internal static byte[] SerializeWeights(nn.Module<Tensor, Tensor> network)
    {
        using var ms = new MemoryStream();
        network.save(ms);
        return ms.ToArray();
    }

    private static byte[] ReadToEnd(Stream s)
    {
        using var ms = new MemoryStream();
        s.CopyTo(ms);
        return ms.ToArray();
    }

    internal static void WriteHistory(BinaryWriter w, IReadOnlyList<EpochMetrics> history)
    {
        w.Write(history.Count);
        foreach (var h in history)
        {
            w.Write(h.Epoch);
            w.Write(h.TrainLoss);
            w.Write(h.ValidationLoss ?? double.NaN);
            w.Write(h.MetricName);
            w.Write(h.ValidationMetric ?? double.NaN);
            w.Write(h.LearningRate);
            w.Write(h.Seconds);
        }
    }

    internal static EpochMetrics[] ReadHistory(BinaryReader r)
    {
        // An epoch takes at least 45 bytes: an int, five doubles and the metric name's length byte.
        int n = ModelFileChecks.ReadCount(r, "the training history's epoch count", 1_000_000, 45);
        var result = new EpochMetrics[n];
        for (int i = 0; i < n; i++)
        {
            int epoch = r.ReadInt32();
            double train = r.ReadDouble();
            double val = r.ReadDouble();
            string name = r.ReadString();
            double metric = r.ReadDouble();
            double lr = r.ReadDouble();
            double secs = r.ReadDouble();
            result[i] = new EpochMetrics(epoch, train, double.IsNaN(val) ? null : val, name, double.IsNaN(metric) ? null : metric, lr, secs);
        }
        return result;
    }

    void ICanSaveModel.Save(ModelSaveContext ctx)
    {
        Host.CheckValue(ctx, nameof(ctx));
        ctx.CheckAtModel();
        ctx.SetVersionInfo(VersionInfo);
        SaveCommon(ctx);
    }

    private protected abstract VersionInfo VersionInfo { get; }

    /// <summary>Loader signature of the prediction transformer for this task.</summary>
    internal abstract string TransformerSignature { get; }

    /// <summary>Model signature of the prediction transformer for this task.</summary>
    internal abstract string TransformerModelSignature { get; }

    /// <summary>Reads this model's prediction transformer (ML.NET's loader has read the model first).</summary>
    internal abstract ITransformer LoadTransformer(IHostEnvironment env, ModelLoadContext ctx);

    private protected static VersionInfo Version(string signature, string loaderSignature, Type type) => new(
        modelSignature: signature,
        verWrittenCur: 0x00010002, // format 2: input encoder and task head
        verReadableCur: 0x00010002,
        verWeCanReadBack: 0x00010001,
        loaderSignature: loaderSignature,
        loaderAssemblyName: type.Assembly.FullName);

    /// <summary>ML.NET's value-mapper interface: one dense row at a time (token models are scored through the transformer).</summary>
    internal ValueMapper<VBuffer<float>, T> DenseMapper<T>(Func<float[], float[], T> result)
    {
        if (Encoder is not DenseEncoder dense)
            throw new InvalidOperationException($"This MLNetDeep model reads {Encoder.Describe()}; score it through its prediction transformer, not as a value mapper.");
        var runner = new RowRunner(this);
        var store = (DenseStore)runner.Store;
        return (in VBuffer<float> src, ref T dst) =>
        {
            store.Clear();
            store.Append(in src, 0, "input");
            runner.Run();
            dst = result(runner.Raw, runner.Values);
        };
    }

    /// <summary>
    /// Runs the network on the rows of a fixed-capacity store (one row for PredictionEngine, a batch for Transform):
    /// the store reuses its buffers, the output tensors live in a dispose scope per call.
    /// </summary>
    internal sealed class RowRunner : IDisposable
    {
        private readonly DeepModelParameters _owner;

        public RowRunner(DeepModelParameters owner, int capacity = 1)
        {
            TorchEngine.EnsureLoaded();
            _owner = owner;
            Store = owner.Encoder.CreateStore(capacity);
            Raw = new float[capacity * owner.OutputSize];
            Values = new float[capacity * owner.Head.ValueWidth];
        }

        public FeatureStore Store { get; }

        /// <summary>Network outputs of the rows of the last run, row after row.</summary>
        public float[] Raw { get; }

        /// <summary>Post-processed values of the rows of the last run (probabilities, scores in label units).</summary>
        public float[] Values { get; }

        /// <summary>Scores the rows in the store.</summary>
        public void Run()
        {
            int n = (int)Store.Count;
            // One row stays on the caller's thread (its kernels are too small to start parallel work); a batch goes to
            // the engine's training thread when it is free (TorchEngine.RunScoringBatch).
            if (n == 1) Forward(n);
            else TorchEngine.RunScoringBatch(() => Forward(n));
            int o = _owner.OutputSize, v = _owner.Head.ValueWidth;
            for (int i = 0; i < n; i++) _owner.Head.PostProcess(Raw.AsSpan(i * o, o), Values.AsSpan(i * v, v));
        }

        private void Forward(int n)
        {
            using (torch.no_grad())
            using (var scope = torch.NewDisposeScope())
            {
                var x = Store.Collate(0, n);
                var result = _owner.Network.forward(x);
                result.data<float>().CopyTo(Raw.AsSpan(0, n * _owner.OutputSize));
            }
        }

        public void Dispose() => Store.Dispose();
    }
}

/// <summary>A trained MLNetDeep binary classifier: Score is the logit, Probability its sigmoid.</summary>
public sealed class DeepBinaryModelParameters : DeepModelParameters, IPredictorProducing<float>, IValueMapperDist
{
    internal const string LoaderSignature = "MLNetDeepBinary";

    internal DeepBinaryModelParameters(IHostEnvironment env, ModelCore core) : base(env, LoaderSignature, core) { }

    private static DeepBinaryModelParameters Create(IHostEnvironment env, ModelLoadContext ctx)
    {
        ctx.CheckAtModel(GetVersionInfo());
        return new DeepBinaryModelParameters(env, Load(ctx, BinaryHead.KindName));
    }

    private static VersionInfo GetVersionInfo() => Version("MLNDBINR", LoaderSignature, typeof(DeepBinaryModelParameters));
    private protected override VersionInfo VersionInfo => GetVersionInfo();
    internal override string TransformerSignature => DeepPredictionTransformerLoader.BinarySignature;
    internal override string TransformerModelSignature => "MLNDBXFM";
    internal override ITransformer LoadTransformer(IHostEnvironment env, ModelLoadContext ctx) => DeepPredictionTransformer<DeepBinaryModelParameters>.Load(env, ctx, this);

    PredictionKind IPredictor.PredictionKind => PredictionKind.BinaryClassification;
    DataViewType IValueMapper.InputType => new VectorDataViewType(NumberDataViewType.Single, InputSize);
    DataViewType IValueMapper.OutputType => NumberDataViewType.Single;
    DataViewType IValueMapperDist.DistType => NumberDataViewType.Single;

    ValueMapper<TIn, TOut> IValueMapper.GetMapper<TIn, TOut>()
    {
        Host.Check(typeof(TIn) == typeof(VBuffer<float>) && typeof(TOut) == typeof(float), "Invalid mapper types.");
        return (ValueMapper<TIn, TOut>)(Delegate)DenseMapper((raw, _) => raw[0]);
    }

    ValueMapper<TIn, TOut, TDist> IValueMapperDist.GetMapper<TIn, TOut, TDist>()
    {
        Host.Check(typeof(TIn) == typeof(VBuffer<float>) && typeof(TOut) == typeof(float) && typeof(TDist) == typeof(float), "Invalid mapper types.");
        var map = DenseMapper((raw, values) => (raw[0], values[0]));
        ValueMapper<VBuffer<float>, float, float> both = (in VBuffer<float> src, ref float score, ref float prob) =>
        {
            (float, float) r = default;
            map(in src, ref r);
            (score, prob) = r;
        };
        return (ValueMapper<TIn, TOut, TDist>)(Delegate)both;
    }
}

/// <summary>A trained MLNetDeep multiclass classifier: Score holds the class probabilities (softmax).</summary>
public sealed class DeepMulticlassModelParameters : DeepModelParameters, IPredictorProducing<VBuffer<float>>, IValueMapper
{
    internal const string LoaderSignature = "MLNetDeepMulticlass";

    internal DeepMulticlassModelParameters(IHostEnvironment env, ModelCore core) : base(env, LoaderSignature, core) { }

    /// <summary>Number of classes.</summary>
    public int ClassCount => OutputSize;

    private static DeepMulticlassModelParameters Create(IHostEnvironment env, ModelLoadContext ctx)
    {
        ctx.CheckAtModel(GetVersionInfo());
        return new DeepMulticlassModelParameters(env, Load(ctx, MulticlassHead.KindName));
    }

    private static VersionInfo GetVersionInfo() => Version("MLNDMULT", LoaderSignature, typeof(DeepMulticlassModelParameters));
    private protected override VersionInfo VersionInfo => GetVersionInfo();
    internal override string TransformerSignature => DeepPredictionTransformerLoader.MulticlassSignature;
    internal override string TransformerModelSignature => "MLNDMXFM";
    internal override ITransformer LoadTransformer(IHostEnvironment env, ModelLoadContext ctx) => DeepPredictionTransformer<DeepMulticlassModelParameters>.Load(env, ctx, this);

    PredictionKind IPredictor.PredictionKind => PredictionKind.MulticlassClassification;
    DataViewType IValueMapper.InputType => new VectorDataViewType(NumberDataViewType.Single, InputSize);
    DataViewType IValueMapper.OutputType => new VectorDataViewType(NumberDataViewType.Single, OutputSize);

    ValueMapper<TIn, TOut> IValueMapper.GetMapper<TIn, TOut>()
    {
        Host.Check(typeof(TIn) == typeof(VBuffer<float>) && typeof(TOut) == typeof(VBuffer<float>), "Invalid mapper types.");
        return (ValueMapper<TIn, TOut>)(Delegate)VectorMapper(this);
    }

    internal static ValueMapper<VBuffer<float>, VBuffer<float>> VectorMapper(DeepModelParameters model)
    {
        var values = model.DenseMapper<float[]>((_, v) => v);
        return (in VBuffer<float> src, ref VBuffer<float> dst) =>
        {
            float[] v = null!;
            values(in src, ref v);
            var editor = VBufferEditor.Create(ref dst, v.Length);
            v.AsSpan().CopyTo(editor.Values);
            dst = editor.Commit();
        };
    }
}

/// <summary>A trained MLNetDeep regressor. When the label was standardized in training, scores are mapped back to label units.</summary>
public sealed class DeepRegressionModelParameters : DeepModelParameters, IPredictorProducing<float>, IValueMapper
{
    internal const string LoaderSignature = "MLNetDeepRegression";

    internal DeepRegressionModelParameters(IHostEnvironment env, ModelCore core) : base(env, LoaderSignature, core) { }

    /// <summary>Mean the label was centred by in training (0 when not standardized).</summary>
    public double LabelMean => ((NumericHead)Head).Mean;

    /// <summary>Scale the label was divided by in training (1 when not standardized).</summary>
    public double LabelScale => ((NumericHead)Head).Scale;

    private static DeepRegressionModelParameters Create(IHostEnvironment env, ModelLoadContext ctx)
    {
        ctx.CheckAtModel(GetVersionInfo());
        return new DeepRegressionModelParameters(env, Load(ctx, RegressionHead.KindName));
    }

    private static VersionInfo GetVersionInfo() => Version("MLNDREGR", LoaderSignature, typeof(DeepRegressionModelParameters));
    private protected override VersionInfo VersionInfo => GetVersionInfo();
    internal override string TransformerSignature => DeepPredictionTransformerLoader.RegressionSignature;
    internal override string TransformerModelSignature => "MLNDRXFM";
    internal override ITransformer LoadTransformer(IHostEnvironment env, ModelLoadContext ctx) => DeepPredictionTransformer<DeepRegressionModelParameters>.Load(env, ctx, this);

    PredictionKind IPredictor.PredictionKind => PredictionKind.Regression;
    DataViewType IValueMapper.InputType => new VectorDataViewType(NumberDataViewType.Single, InputSize);
    DataViewType IValueMapper.OutputType => NumberDataViewType.Single;

    ValueMapper<TIn, TOut> IValueMapper.GetMapper<TIn, TOut>()
    {
        Host.Check(typeof(TIn) == typeof(VBuffer<float>) && typeof(TOut) == typeof(float), "Invalid mapper types.");
        return (ValueMapper<TIn, TOut>)(Delegate)DenseMapper((_, values) => values[0]);
    }
}

/// <summary>
/// A trained MLNetDeep forecaster: Score holds the next H values (the horizon), in the label's units (mapped back
/// when the label was standardized in training).
/// </summary>
public sealed class DeepForecastModelParameters : DeepModelParameters, IPredictorProducing<VBuffer<float>>, IValueMapper
{
    internal const string LoaderSignature = "MLNetDeepForecast";

    internal DeepForecastModelParameters(IHostEnvironment env, ModelCore core) : base(env, LoaderSignature, core) { }

    /// <summary>Number of future values forecast per row.</summary>
    public int Horizon => OutputSize;

    /// <summary>Mean the label was centred by in training (0 when not standardized).</summary>
    public double LabelMean => ((NumericHead)Head).Mean;

    /// <summary>Scale the label was divided by in training (1 when not standardized).</summary>
    public double LabelScale => ((NumericHead)Head).Scale;

    private static DeepForecastModelParameters Create(IHostEnvironment env, ModelLoadContext ctx)
    {
        ctx.CheckAtModel(GetVersionInfo());
        return new DeepForecastModelParameters(env, Load(ctx, ForecastHead.KindName));
    }

    private static VersionInfo GetVersionInfo() => Version("MLNDFCST", LoaderSignature, typeof(DeepForecastModelParameters));
    private protected override VersionInfo VersionInfo => GetVersionInfo();
    internal override string TransformerSignature => DeepPredictionTransformerLoader.ForecastSignature;
    internal override string TransformerModelSignature => "MLNDFXFM";
    internal override ITransformer LoadTransformer(IHostEnvironment env, ModelLoadContext ctx) => DeepPredictionTransformer<DeepForecastModelParameters>.Load(env, ctx, this);

    PredictionKind IPredictor.PredictionKind => PredictionKind.MultiOutputRegression;
    DataViewType IValueMapper.InputType => new VectorDataViewType(NumberDataViewType.Single, InputSize);
    DataViewType IValueMapper.OutputType => new VectorDataViewType(NumberDataViewType.Single, OutputSize);

    ValueMapper<TIn, TOut> IValueMapper.GetMapper<TIn, TOut>()
    {
        Host.Check(typeof(TIn) == typeof(VBuffer<float>) && typeof(TOut) == typeof(VBuffer<float>), "Invalid mapper types.");
        return (ValueMapper<TIn, TOut>)(Delegate)DeepMulticlassModelParameters.VectorMapper(this);
    }
}
