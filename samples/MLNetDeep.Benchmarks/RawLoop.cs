// The MLP benchmark's reference: a minimal hand-written TorchSharp training loop over the prepared tensors.
using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;
using static MLNetDeep.Benchmarks.MlpSettings;

namespace MLNetDeep.Benchmarks;

/// <summary>Per-batch work the trainer's loop does and a minimal loop does not; added to raw loops in the profile section.</summary>
[Flags]
internal enum Extras
{
    None = 0,
    ItemPerBatch = 1,          // loss.item<float>() and a finiteness check, every batch
    SetLearningRate = 2,       // foreach (var g in optimizer.ParamGroups) g.LearningRate = lr, every batch
    StandardizePerBatch = 4,   // the trainer's RegressionHead.Loss, which standardizes the batch's label, instead of standardizing once up front
    ManagedPermutation = 8,    // Fisher-Yates on a long[] in C# + torch.tensor(perm) instead of torch.randperm
    ShapeAndCheck = 16,        // y.shape[0] (allocates a long[]) and a cancellation-style check, every batch
    All = 31,
}

internal sealed record RawResult(double Seconds, long Batches, long AllocatedBytes, int Gen0, double FinalLoss, double ForeignCores, double OwnCores, double[] EpochSeconds);

/// <summary>
/// The minimal TorchSharp loop over the trainer's network (<see cref="LibraryNetworks.Mlp"/>), one epoch per call (so
/// that its epochs can be interleaved with the trainer's): a permutation per epoch, then per batch index_select of x
/// and y, zero_grad, forward, loss, backward and an AdamW step, inside a dispose scope. <see cref="Extras"/> adds the trainer's per-batch work, for the profile.
/// </summary>
internal sealed class RawLoop : IDisposable
{
    private readonly Prepared _p;
    private readonly Case _c;
    private readonly Extras _extras;
    public Case Case => _c;
    private readonly nn.Module<Tensor, Tensor> _net;
    private readonly TorchSharp.Modules.OptimizerHelper _optimizer;
    private readonly Random _shuffle = new(Seed);
    private long _sink;

    /// <summary>The network this loop trains (the library's MLP).</summary>
    public nn.Module<Tensor, Tensor> Network => _net;

    public long Batches { get; private set; }
    public long AllocatedBytes { get; private set; }
    public int Gen0 { get; private set; }
    public List<double> EpochSeconds { get; } = new();

    public RawLoop(Prepared p, Case c, Extras extras = Extras.None)
    {
        _p = p;
        _c = c;
        _extras = extras;
        torch.manual_seed(Seed); // the trainer seeds the same way before building: same initial weights
        _net = LibraryNetworks.Mlp(TrainerSide.Options(p, c, 1), p.View.Schema, outputs: 1); // the trainer's network (one output: the value or the logit)
        _optimizer = torch.optim.AdamW(_net.parameters(), LearningRate, weight_decay: WeightDecay);
    }

    private bool Has(Extras e) => (_extras & e) != 0;

    public double Epoch()
    {
        var p = _p;
        long n = p.N;
        int b = _c.Batch;
        long alloc = GC.GetAllocatedBytesForCurrentThread();
        int gen0 = GC.CollectionCount(0);
        var watch = Stopwatch.StartNew();
        _net.train();
        using (var perm = Has(Extras.ManagedPermutation) ? ManagedPermutation(n, _shuffle) : torch.randperm(n))
        {
            for (long start = 0; start < n; start += b)
            {
                if (Has(Extras.ShapeAndCheck) && Volatile.Read(ref _cancelled)) throw new OperationCanceledException();
                using var scope = torch.NewDisposeScope();
                long len = Math.Min(b, n - start);
                var idx = perm.narrow(0, start, len);
                var x = p.X.index_select(0, idx);
                var y = (Has(Extras.StandardizePerBatch) ? p.YRaw : p.Y).index_select(0, idx);
                if (Has(Extras.SetLearningRate))
                    foreach (var g in _optimizer.ParamGroups) g.LearningRate = LearningRate;
                _optimizer.zero_grad();
                var output = _net.forward(x);
                var loss = Has(Extras.StandardizePerBatch) && p.Head is { } head ? head.Loss(output, y) : Loss(p.Task, output, y);
                if (Has(Extras.ItemPerBatch))
                {
                    double value = loss.item<float>();
                    if (!double.IsFinite(value)) throw new InvalidOperationException("diverged");
                }
                loss.backward();
                _optimizer.step();
                if (Has(Extras.ShapeAndCheck)) _sink += y.shape[0];
                Batches++;
            }
        }
        watch.Stop();
        AllocatedBytes += GC.GetAllocatedBytesForCurrentThread() - alloc;
        Gen0 += GC.CollectionCount(0) - gen0;
        EpochSeconds.Add(watch.Elapsed.TotalSeconds);
        return watch.Elapsed.TotalSeconds;
    }

    public double FullLoss() => FullLoss(_p, _net);

    public void Dispose()
    {
        _optimizer.Dispose();
        _net.Dispose();
    }

    private static bool _cancelled = false; // stands for the trainer's host.CheckAlive() (a flag read per batch)

    public static Tensor ManagedPermutation(long n, Random shuffle)
    {
        var perm = new long[n];
        for (long i = 0; i < n; i++) perm[i] = i;
        for (long i = n - 1; i > 0; i--)
        {
            long j = shuffle.NextInt64(i + 1);
            (perm[i], perm[j]) = (perm[j], perm[i]);
        }
        return torch.tensor(perm).DetachFromDisposeScope();
    }

    /// <summary>
    /// Untimed epochs of a throw-away raw loop (at least one, at least <see cref="PreWarmSeconds"/>) right before a
    /// timed run: after the pauses between runs (garbage collection, waiting for other processes) this machine needs
    /// a while to get back to full speed, and the side that runs first would pay for it.
    /// </summary>
    public static void PreWarm(Prepared p, Case c)
    {
        using var warm = new RawLoop(p, c);
        var watch = Stopwatch.StartNew();
        do warm.Epoch(); while (watch.Elapsed.TotalSeconds < PreWarmSeconds);
    }

    /// <summary>A whole raw training run of <paramref name="epochs"/> epochs, timed as a block.</summary>
    public static RawResult Train(Prepared p, Case c, int epochs, Extras extras = Extras.None, bool evaluate = true)
    {
        using var loop = new RawLoop(p, c, extras);
        var cpu = CpuSnapshot.Take();
        var watch = Stopwatch.StartNew();
        for (int e = 0; e < epochs; e++) loop.Epoch();
        watch.Stop();
        var cpuEnd = CpuSnapshot.Take();
        return new RawResult(watch.Elapsed.TotalSeconds, loop.Batches, loop.AllocatedBytes, loop.Gen0, evaluate ? loop.FullLoss() : double.NaN,
            cpuEnd.ForeignCoresSince(cpu), cpuEnd.OwnCoresSince(cpu), loop.EpochSeconds.ToArray());
    }

    /// <summary>Loss of the trained network on all training rows (eval mode, untimed): a sanity check that both sides learn alike.</summary>
    public static double FullLoss(Prepared p, nn.Module<Tensor, Tensor> net)
    {
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        net.eval();
        var outputs = new List<Tensor>();
        for (long s = 0; s < p.N; s += 1024) outputs.Add(net.forward(p.X.narrow(0, s, Math.Min(1024, p.N - s))));
        var output = torch.cat(outputs, 0);
        return Loss(p.Task, output, p.Y).item<float>();
    }

    public static Tensor Loss(TaskKind task, Tensor output, Tensor target) => task == TaskKind.Regression
        ? F.mse_loss(output.squeeze(1), target)
        : F.binary_cross_entropy_with_logits(output.squeeze(1), target);
}
