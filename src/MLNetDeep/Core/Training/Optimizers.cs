using TorchSharp;
using static TorchSharp.torch;

namespace MLNetDeep;

/// <summary>
/// SGD (momentum, Nesterov), Adam and AdamW with PyTorch's update rules, written so that they survive garbage
/// collections at any moment. TorchSharp 0.107's own optimizers pass temporary <see cref="Scalar"/>s (implicit
/// conversions from double) to native calls without keeping them alive; when a collection runs during such a call
/// (another thread allocating, as in any server), the finalizer frees the scalar while libtorch reads it and the step
/// fails ("Unknown scalar type", "Expected false to be true") or silently uses garbage. Here every scalar is created
/// explicitly and held until the step ends, and every temporary tensor lives in a dispose scope.
/// </summary>
internal abstract class SafeOptimizer : IDisposable
{
    protected readonly IReadOnlyList<Tensor> Parameters;
    protected long Steps;

    protected SafeOptimizer(IEnumerable<Tensor> parameters, double learningRate, double weightDecay)
    {
        Parameters = parameters.ToList();
        LearningRate = learningRate;
        WeightDecay = weightDecay;
    }

    /// <summary>The learning rate of the next step (set by the schedule before every batch).</summary>
    public double LearningRate { get; set; }

    public double WeightDecay { get; }

    /// <summary>Per-parameter state tensors (momentum buffers, moment estimates), in a fixed order for checkpoints.</summary>
    protected abstract IEnumerable<Tensor> State { get; }

    public void ZeroGrad()
    {
        foreach (var p in Parameters)
        {
            using var g = p.grad;
            if (g is not null && !g.IsInvalid) g.zero_();
        }
    }

    /// <summary>One update of every parameter from its gradient.</summary>
    public void Step()
    {
        using var noGrad = torch.no_grad();
        Steps++;
        StepCore();
    }

    protected abstract void StepCore();

    /// <summary>A zero tensor shaped like <paramref name="p"/>, outside any dispose scope (optimizer state).</summary>
    protected static Tensor ZerosLike(Tensor p) => torch.zeros_like(p).DetachFromDisposeScope();

    public void Save(BinaryWriter w)
    {
        w.Write(Steps);
        var state = State.ToList();
        w.Write(state.Count);
        foreach (var t in state)
        {
            using var cpu = t.cpu();
            var bytes = cpu.bytes.ToArray();
            w.Write(bytes.Length);
            w.Write(bytes);
        }
    }

    public void Load(BinaryReader r)
    {
        Steps = r.ReadInt64();
        var state = State.ToList();
        int count = r.ReadInt32();
        if (count != state.Count) throw new InvalidDataException($"The checkpoint's optimizer state has {count} tensors; this optimizer has {state.Count}.");
        foreach (var t in state)
        {
            // The length is checked before the bytes are allocated: the checkpoint is untrusted.
            int length = r.ReadInt32();
            if (length != t.NumberOfElements * t.ElementSize) throw new InvalidDataException("The checkpoint's optimizer state does not match the network's parameters.");
            var bytes = r.ReadBytes(length);
            if (bytes.Length != length) throw new EndOfStreamException("The checkpoint's optimizer state is truncated.");
            using var loaded = torch.empty_like(t, device: torch.CPU);
            loaded.bytes = bytes;
            using var noGrad = torch.no_grad();
            t.copy_(loaded);
        }
    }

    public void Dispose()
    {
        foreach (var t in State) t.Dispose();
    }

    public static SafeOptimizer Create(DeepTrainerOptions o, IEnumerable<Tensor> parameters) => o.Optimizer switch
    {
        DeepOptimizer.Sgd => new Sgd(parameters, o.LearningRate, o.Momentum, o.Nesterov, o.WeightDecay),
        DeepOptimizer.Adam => new Adam(parameters, o.LearningRate, o.WeightDecay, decoupled: false, o.AdamBeta1, o.AdamBeta2, o.AdamEpsilon),
        _ => new Adam(parameters, o.LearningRate, o.WeightDecay, decoupled: true, o.AdamBeta1, o.AdamBeta2, o.AdamEpsilon),
    };
}

/// <summary>SGD as torch.optim.SGD: L2 weight decay added to the gradient, momentum buffer, optional Nesterov.</summary>
internal sealed class Sgd : SafeOptimizer
{
    private readonly double _momentum;
    private readonly bool _nesterov;
    private readonly Tensor[] _buffers;

    public Sgd(IEnumerable<Tensor> parameters, double learningRate, double momentum, bool nesterov, double weightDecay)
        : base(parameters, learningRate, weightDecay)
    {
        _momentum = momentum;
        _nesterov = nesterov;
        _buffers = momentum > 0 ? Parameters.Select(ZerosLike).ToArray() : Array.Empty<Tensor>();
    }

    protected override IEnumerable<Tensor> State => _buffers;

    protected override void StepCore()
    {
        using var decay = WeightDecay.ToScalar();
        using var momentum = _momentum.ToScalar();
        using var one = 1.0.ToScalar();
        using var minusLr = (-LearningRate).ToScalar();
        for (int i = 0; i < Parameters.Count; i++)
        {
            using var scope = torch.NewDisposeScope();
            var p = Parameters[i];
            var g = p.grad;
            if (g is null || g.IsInvalid) continue;
            if (WeightDecay != 0) g = g.add(p, decay);
            if (_momentum > 0)
            {
                var buf = _buffers[i];
                // The first step copies the gradient into the buffer (PyTorch: buf = clone(grad)), later ones do buf = m·buf + g.
                if (Steps == 1) buf.copy_(g); else buf.mul_(momentum).add_(g, one);
                g = _nesterov ? g.add(buf, momentum) : buf;
            }
            p.add_(g, minusLr);
        }
    }
}

/// <summary>Adam (L2 weight decay in the gradient) or AdamW (decoupled weight decay), as torch.optim.Adam / AdamW.</summary>
internal sealed class Adam : SafeOptimizer
{
    private readonly double Beta1, Beta2, Epsilon;
    private readonly bool _decoupled;
    private readonly Tensor[] _m, _v;

    public Adam(IEnumerable<Tensor> parameters, double learningRate, double weightDecay, bool decoupled, double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-8)
        : base(parameters, learningRate, weightDecay)
    {
        Beta1 = beta1;
        Beta2 = beta2;
        Epsilon = epsilon;
        _decoupled = decoupled;
        _m = Parameters.Select(ZerosLike).ToArray();
        _v = Parameters.Select(ZerosLike).ToArray();
    }

    protected override IEnumerable<Tensor> State => _m.Concat(_v);

    protected override void StepCore()
    {
        double bc1 = 1 - Math.Pow(Beta1, Steps), bc2 = 1 - Math.Pow(Beta2, Steps);
        using var beta1 = Beta1.ToScalar();
        using var beta2 = Beta2.ToScalar();
        using var oneMinusBeta1 = (1 - Beta1).ToScalar();
        using var oneMinusBeta2 = (1 - Beta2).ToScalar();
        using var decay = WeightDecay.ToScalar();
        using var shrink = (1 - LearningRate * WeightDecay).ToScalar();
        using var sqrtBc2 = Math.Sqrt(bc2).ToScalar();
        using var epsilon = Epsilon.ToScalar();
        using var minusStep = (-LearningRate / bc1).ToScalar();
        using var one = 1.0.ToScalar(); // add_(Scalar) without alpha would pass TorchSharp's own temporary 1
        for (int i = 0; i < Parameters.Count; i++)
        {
            using var scope = torch.NewDisposeScope();
            var p = Parameters[i];
            var g = p.grad;
            if (g is null || g.IsInvalid) continue;
            if (WeightDecay != 0)
            {
                if (_decoupled) p.mul_(shrink);
                else g = g.add(p, decay);
            }
            _m[i].mul_(beta1).add_(g, oneMinusBeta1);
            _v[i].mul_(beta2).addcmul_(g, g, oneMinusBeta2);
            var denominator = _v[i].sqrt().div_(sqrtBc2).add_(epsilon, one);
            p.addcdiv_(_m[i], denominator, minusStep);
        }
    }
}
