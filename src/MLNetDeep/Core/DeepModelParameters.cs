using System.Runtime.InteropServices;
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

namespace MLNetDeep;

/// <summary>
/// A trained MLNetDeep network, as held by the prediction transformer's <c>Model</c> property. It is saved inside
/// the ML.NET model zip (architecture, weights, training history) and loaded back by <c>mlContext.Model.Load</c>
/// with no registration call. Scoring runs on the CPU, one row per call, with no tensor allocated for the input.
/// </summary>
public abstract class DeepModelParameters : ICanSaveModel
{
    private const string WeightsStream = "Weights.bin";
    private protected readonly IHost Host;
    internal readonly NetworkSpec Spec;
    internal readonly nn.Module<Tensor, Tensor> Network;
    private readonly EpochMetrics[] _history;

    /// <summary>Length of the feature vector the network reads.</summary>
    public int InputSize { get; }

    /// <summary>Number of network outputs (1 for binary and regression, the class count for multiclass).</summary>
    public int OutputSize { get; }

    /// <summary>Per-epoch training history (train loss, validation loss and metric, learning rate, seconds).</summary>
    public IReadOnlyList<EpochMetrics> History => _history;

    /// <summary>A one-line description of the architecture, e.g. <c>MLP 17 -> [128, 64] -> 1, Relu</c>.</summary>
    public string Architecture => Spec.Describe(InputSize, OutputSize);

    /// <summary>Number of trainable parameters.</summary>
    public long ParameterCount { get; }

    private protected DeepModelParameters(IHostEnvironment env, string name, NetworkSpec spec, nn.Module<Tensor, Tensor> network, int inputSize, int outputSize, IEnumerable<EpochMetrics> history)
    {
        Host = env.Register(name);
        Spec = spec;
        Network = network;
        Network.eval();
        InputSize = inputSize;
        OutputSize = outputSize;
        _history = history.ToArray();
        ParameterCount = network.parameters().Sum(p => p.numel());
    }

    /// <summary>Reads the common part of a saved model (see <see cref="SaveCommon"/>).</summary>
    private protected static (NetworkSpec Spec, nn.Module<Tensor, Tensor> Network, int Input, int Output, EpochMetrics[] History) LoadCommon(IHostEnvironment env, ModelLoadContext ctx)
    {
        TorchEngine.EnsureLoaded();
        var r = ctx.Reader;
        int format = r.ReadInt32();
        if (format != 1) throw new InvalidDataException($"MLNetDeep model format {format} is not supported by this version.");
        var spec = NetworkSpec.Read(r);
        int input = r.ReadInt32();
        int output = r.ReadInt32();
        if (input <= 0 || output <= 0) throw new InvalidDataException("MLNetDeep model file is corrupt: invalid network sizes.");
        var history = ReadHistory(r);
        byte[] expectedHash = r.ReadBytes(32);
        byte[]? weights = null;
        if (!ctx.TryLoadBinaryStream(WeightsStream, br => weights = ReadToEnd(br.BaseStream)))
            throw new InvalidDataException($"MLNetDeep model file is corrupt or truncated: its weights ({WeightsStream}) are missing.");
        if (!SHA256.HashData(weights!).AsSpan().SequenceEqual(expectedHash))
            throw new InvalidDataException($"MLNetDeep model file is corrupt: the network weights do not match their checksum.");
        using var scope = torch.NewDisposeScope();
        var network = spec.Build(input, output);
        try
        {
            using var ms = new MemoryStream(weights!);
            network.load(ms);
        }
        catch (Exception e)
        {
            throw new InvalidDataException($"MLNetDeep model file is corrupt: the weights do not fit the network '{spec.Describe(input, output)}': {e.Message}", e);
        }
        return (spec, network, input, output, history);
    }

    /// <summary>Writes the format version, network description, sizes, history and weights.</summary>
    private protected void SaveCommon(ModelSaveContext ctx)
    {
        var w = ctx.Writer;
        w.Write(1);
        Spec.Write(w);
        w.Write(InputSize);
        w.Write(OutputSize);
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
        int n = r.ReadInt32();
        if (n < 0 || n > 1_000_000) throw new InvalidDataException("MLNetDeep model file is corrupt: invalid history.");
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
        SaveCore(ctx);
    }

    private protected abstract void SaveCore(ModelSaveContext ctx);

    private protected static VersionInfo Version(string signature, string loaderSignature, Type type) => new(
        modelSignature: signature,
        verWrittenCur: 0x00010001,
        verReadableCur: 0x00010001,
        verWeCanReadBack: 0x00010001,
        loaderSignature: loaderSignature,
        loaderAssemblyName: type.Assembly.FullName);

    /// <summary>
    /// Runs the network on one row at a time. Each instance owns a pinned input buffer that a tensor aliases, so
    /// scoring allocates no input tensor; the output tensors live in a dispose scope per call. One per mapper
    /// delegate (ML.NET uses a mapper from one thread only).
    /// </summary>
    internal sealed class RowRunner
    {
        private readonly DeepModelParameters _owner;
        private readonly float[,] _buffer;
        private readonly Tensor _input;
        private readonly string _featureDescription;

        public RowRunner(DeepModelParameters owner)
        {
            TorchEngine.EnsureLoaded();
            _owner = owner;
            _buffer = new float[1, owner.InputSize];
            _input = torch.from_array(_buffer).DetachFromDisposeScope();
            _featureDescription = $"a vector of {owner.InputSize} floats";
        }

        /// <summary>Forward pass of one row; writes the raw network outputs to <paramref name="output"/>.</summary>
        public void Run(in VBuffer<float> features, Span<float> output)
        {
            if (features.Length != _owner.InputSize)
                throw new ArgumentOutOfRangeException(nameof(features),
                    $"The features column has {features.Length} values, but the MLNetDeep model was trained on {_featureDescription}.");
            var span = MemoryMarshal.CreateSpan(ref _buffer[0, 0], _owner.InputSize);
            features.CopyTo(span);
            using var noGrad = torch.no_grad();
            using var scope = torch.NewDisposeScope();
            var result = _owner.Network.forward(_input);
            result.data<float>().CopyTo(output);
        }
    }
}

/// <summary>A trained MLNetDeep binary classifier: Score is the logit, Probability its sigmoid.</summary>
public sealed class DeepBinaryModelParameters : DeepModelParameters, IPredictorProducing<float>, IValueMapperDist
{
    internal const string LoaderSignature = "MLNetDeepBinary";
    private static readonly VectorDataViewType[] NoTypes = Array.Empty<VectorDataViewType>();

    internal DeepBinaryModelParameters(IHostEnvironment env, NetworkSpec spec, nn.Module<Tensor, Tensor> network, int inputSize, IEnumerable<EpochMetrics> history)
        : base(env, LoaderSignature, spec, network, inputSize, 1, history) { }

    private static DeepBinaryModelParameters Create(IHostEnvironment env, ModelLoadContext ctx)
    {
        ctx.CheckAtModel(GetVersionInfo());
        var (spec, net, input, _, history) = LoadCommon(env, ctx);
        return new DeepBinaryModelParameters(env, spec, net, input, history);
    }

    private static VersionInfo GetVersionInfo() => Version("MLNDBINR", LoaderSignature, typeof(DeepBinaryModelParameters));

    private protected override void SaveCore(ModelSaveContext ctx)
    {
        ctx.SetVersionInfo(GetVersionInfo());
        SaveCommon(ctx);
    }

    PredictionKind IPredictor.PredictionKind => PredictionKind.BinaryClassification;
    DataViewType IValueMapper.InputType => new VectorDataViewType(NumberDataViewType.Single, InputSize);
    DataViewType IValueMapper.OutputType => NumberDataViewType.Single;
    DataViewType IValueMapperDist.DistType => NumberDataViewType.Single;

    ValueMapper<TIn, TOut> IValueMapper.GetMapper<TIn, TOut>()
    {
        Host.Check(typeof(TIn) == typeof(VBuffer<float>) && typeof(TOut) == typeof(float), "Invalid mapper types.");
        var runner = new RowRunner(this);
        float[] output = new float[1];
        ValueMapper<VBuffer<float>, float> map = (in VBuffer<float> src, ref float score) =>
        {
            runner.Run(in src, output);
            score = output[0];
        };
        return (ValueMapper<TIn, TOut>)(Delegate)map;
    }

    ValueMapper<TIn, TOut, TDist> IValueMapperDist.GetMapper<TIn, TOut, TDist>()
    {
        Host.Check(typeof(TIn) == typeof(VBuffer<float>) && typeof(TOut) == typeof(float) && typeof(TDist) == typeof(float), "Invalid mapper types.");
        var runner = new RowRunner(this);
        float[] output = new float[1];
        ValueMapper<VBuffer<float>, float, float> map = (in VBuffer<float> src, ref float score, ref float prob) =>
        {
            runner.Run(in src, output);
            score = output[0];
            prob = 1f / (1f + MathF.Exp(-score));
        };
        return (ValueMapper<TIn, TOut, TDist>)(Delegate)map;
    }
}

/// <summary>A trained MLNetDeep multiclass classifier: Score holds the class probabilities (softmax).</summary>
public sealed class DeepMulticlassModelParameters : DeepModelParameters, IPredictorProducing<VBuffer<float>>, IValueMapper
{
    internal const string LoaderSignature = "MLNetDeepMulticlass";

    internal DeepMulticlassModelParameters(IHostEnvironment env, NetworkSpec spec, nn.Module<Tensor, Tensor> network, int inputSize, int classCount, IEnumerable<EpochMetrics> history)
        : base(env, LoaderSignature, spec, network, inputSize, classCount, history) { }

    /// <summary>Number of classes.</summary>
    public int ClassCount => OutputSize;

    private static DeepMulticlassModelParameters Create(IHostEnvironment env, ModelLoadContext ctx)
    {
        ctx.CheckAtModel(GetVersionInfo());
        var (spec, net, input, output, history) = LoadCommon(env, ctx);
        return new DeepMulticlassModelParameters(env, spec, net, input, output, history);
    }

    private static VersionInfo GetVersionInfo() => Version("MLNDMULT", LoaderSignature, typeof(DeepMulticlassModelParameters));

    private protected override void SaveCore(ModelSaveContext ctx)
    {
        ctx.SetVersionInfo(GetVersionInfo());
        SaveCommon(ctx);
    }

    PredictionKind IPredictor.PredictionKind => PredictionKind.MulticlassClassification;
    DataViewType IValueMapper.InputType => new VectorDataViewType(NumberDataViewType.Single, InputSize);
    DataViewType IValueMapper.OutputType => new VectorDataViewType(NumberDataViewType.Single, OutputSize);

    ValueMapper<TIn, TOut> IValueMapper.GetMapper<TIn, TOut>()
    {
        Host.Check(typeof(TIn) == typeof(VBuffer<float>) && typeof(TOut) == typeof(VBuffer<float>), "Invalid mapper types.");
        var runner = new RowRunner(this);
        int k = OutputSize;
        float[] logits = new float[k];
        ValueMapper<VBuffer<float>, VBuffer<float>> map = (in VBuffer<float> src, ref VBuffer<float> dst) =>
        {
            runner.Run(in src, logits);
            var editor = VBufferEditor.Create(ref dst, k);
            Softmax(logits, editor.Values);
            dst = editor.Commit();
        };
        return (ValueMapper<TIn, TOut>)(Delegate)map;
    }

    internal static void Softmax(ReadOnlySpan<float> logits, Span<float> probabilities)
    {
        float max = float.NegativeInfinity;
        foreach (float v in logits) max = Math.Max(max, v);
        double sum = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            float e = MathF.Exp(logits[i] - max);
            probabilities[i] = e;
            sum += e;
        }
        for (int i = 0; i < logits.Length; i++) probabilities[i] = (float)(probabilities[i] / sum);
    }
}

/// <summary>A trained MLNetDeep regressor. When the label was standardized in training, scores are mapped back to label units.</summary>
public sealed class DeepRegressionModelParameters : DeepModelParameters, IPredictorProducing<float>, IValueMapper
{
    internal const string LoaderSignature = "MLNetDeepRegression";

    /// <summary>Mean the label was centred by in training (0 when not standardized).</summary>
    public double LabelMean { get; }

    /// <summary>Scale the label was divided by in training (1 when not standardized).</summary>
    public double LabelScale { get; }

    internal DeepRegressionModelParameters(IHostEnvironment env, NetworkSpec spec, nn.Module<Tensor, Tensor> network, int inputSize, double labelMean, double labelScale, IEnumerable<EpochMetrics> history)
        : base(env, LoaderSignature, spec, network, inputSize, 1, history)
    {
        LabelMean = labelMean;
        LabelScale = labelScale;
    }

    private static DeepRegressionModelParameters Create(IHostEnvironment env, ModelLoadContext ctx)
    {
        ctx.CheckAtModel(GetVersionInfo());
        var (spec, net, input, _, history) = LoadCommon(env, ctx);
        double mean = ctx.Reader.ReadDouble();
        double scale = ctx.Reader.ReadDouble();
        return new DeepRegressionModelParameters(env, spec, net, input, mean, scale, history);
    }

    private static VersionInfo GetVersionInfo() => Version("MLNDREGR", LoaderSignature, typeof(DeepRegressionModelParameters));

    private protected override void SaveCore(ModelSaveContext ctx)
    {
        ctx.SetVersionInfo(GetVersionInfo());
        SaveCommon(ctx);
        ctx.Writer.Write(LabelMean);
        ctx.Writer.Write(LabelScale);
    }

    PredictionKind IPredictor.PredictionKind => PredictionKind.Regression;
    DataViewType IValueMapper.InputType => new VectorDataViewType(NumberDataViewType.Single, InputSize);
    DataViewType IValueMapper.OutputType => NumberDataViewType.Single;

    ValueMapper<TIn, TOut> IValueMapper.GetMapper<TIn, TOut>()
    {
        Host.Check(typeof(TIn) == typeof(VBuffer<float>) && typeof(TOut) == typeof(float), "Invalid mapper types.");
        var runner = new RowRunner(this);
        float[] output = new float[1];
        float mean = (float)LabelMean, scale = (float)LabelScale;
        ValueMapper<VBuffer<float>, float> map = (in VBuffer<float> src, ref float score) =>
        {
            runner.Run(in src, output);
            score = output[0] * scale + mean;
        };
        return (ValueMapper<TIn, TOut>)(Delegate)map;
    }
}
