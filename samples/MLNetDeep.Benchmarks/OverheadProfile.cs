// The MLP benchmark's profile: per-batch work the trainer's loop does and a minimal loop does not.
using System.Diagnostics;
using System.Runtime.InteropServices;
using TorchSharp;
using static MLNetDeep.Benchmarks.MlpSettings;

namespace MLNetDeep.Benchmarks;

internal static class OverheadProfile
{
    public static void Run(Case c, Prepared p)
    {
        long batchesPerEpoch = (p.N + c.Batch - 1) / c.Batch;
        Console.WriteLine($"=== profile: per-batch work the trainer's loop does and a minimal loop does not, on {c.Name} ({batchesPerEpoch} batches/epoch)");
        Console.WriteLine($"  every variant is a raw loop; their epochs are interleaved (rotating order) between the epochs of a trainer Fit, {Repeats} Fits of {Epochs} epochs");
        var variants = new (string Name, Extras E)[]
        {
            ("raw (minimal)", Extras.None),
            ("+ (y - mean) / std per batch", Extras.StandardizePerBatch),
            ("+ all the trainer's extras", Extras.All),
        };
        const string trainerName = "MLNetDeep trainer";
        RawLoop.Train(p, c, 1, Extras.All, evaluate: false); // warm-up
        var names = variants.Select(v => v.Name).Append(trainerName).ToArray();
        var epochs = names.ToDictionary(n => n, _ => new List<double>());
        var diffs = names.ToDictionary(n => n, _ => new List<double>()); // per epoch: variant - minimal, same round
        double maxForeign = 0;
        for (int r = 0; r < Repeats; r++)
        {
            for (int attempt = 1; ; attempt++)
            {
                SharedMachine.WaitForQuiet();
                var loops = variants.Select(v => new RawLoop(p, c, v.E)).ToArray();
                try
                {
                    var (t, foreign) = MlpCaseRun.Interleaved(p, c, Epochs, rawFirst: r % 2 == 1, loops);
                    t.FinalLossModel = null;
                    if (foreign > QuietThreshold && attempt < MaxAttempts && !OverBudget) continue;
                    maxForeign = Math.Max(maxForeign, foreign);
                    for (int e = 0; e < Epochs; e++)
                    {
                        double minimal = loops[0].EpochSeconds[e];
                        for (int v = 0; v < loops.Length; v++)
                        {
                            epochs[variants[v].Name].Add(loops[v].EpochSeconds[e]);
                            diffs[variants[v].Name].Add(loops[v].EpochSeconds[e] - minimal);
                        }
                        epochs[trainerName].Add(t.EpochSeconds[e]);
                        diffs[trainerName].Add(t.EpochSeconds[e] - minimal);
                    }
                    break;
                }
                catch (ExternalException e) when (attempt < MaxAttempts) { SharedMachine.EngineError(e); }
                finally
                {
                    foreach (var l in loops) l.Dispose();
                    Bench.Settle();
                }
            }
        }
        Console.WriteLine($"  (other processes used at most {maxForeign:F2} cores during these runs)");
        Console.WriteLine($"  {"variant",-36} {"median epoch",12} {"best epoch",11} {"median extra vs minimal (same round)",38}");
        foreach (var name in names)
        {
            double m = Bench.Median(epochs[name]), b = epochs[name].Min(), d = Bench.Median(diffs[name]);
            Console.WriteLine($"  {name,-36} {m * 1000,9:F1} ms {b * 1000,8:F1} ms {d * 1000,12:F2} ms/epoch = {d / batchesPerEpoch * 1e6,6:F1} us/batch ({d / Bench.Median(epochs[variants[0].Name]) * 100,5:F1} %)");
        }

        // Micro-benchmarks of single operations (200k iterations each).
        Console.WriteLine("  the trainer's extras: loss.item() + IsFinite, ParamGroups.LearningRate = lr, (y - mean) / std, C# Fisher-Yates permutation, y.shape[0], cancel check (per batch)");
        Console.WriteLine("  single operations (mean over 200000 calls, 2000 for the per-epoch ones):");
        using var probeNet = LibraryNetworks.Mlp(TrainerSide.Options(p, c, 1), p.View.Schema, outputs: 1);
        using var opt = torch.optim.AdamW(probeNet.parameters(), LearningRate, weight_decay: WeightDecay);
        using var someLoss = torch.tensor(0.5f);
        using var yb = p.YRaw.narrow(0, 0, c.Batch).clone();
        Micro("NewDisposeScope + Dispose", () => { using var s = torch.NewDisposeScope(); });
        double item = Micro("loss.item<float>()", () => { _ = someLoss.item<float>(); });
        double lr = Micro("foreach ParamGroups: LearningRate = lr", () => { foreach (var g in opt.ParamGroups) g.LearningRate = LearningRate; });
        double std = Micro("(y - mean) / std on a batch (in a scope)", () => { using var s = torch.NewDisposeScope(); _ = p.Standardize(yb); });
        double shape = Micro("y.shape[0]", () => { _ = yb.shape[0]; });
        Micro("y.size(0)", () => { _ = yb.size(0); });
        var shuffle = new Random(1);
        double fy = Micro($"Fisher-Yates of {p.N} + torch.tensor (per epoch)", () => { using var t = RawLoop.ManagedPermutation(p.N, shuffle); }, 2000);
        double rp = Micro($"torch.randperm({p.N}) (per epoch)", () => { using var t = torch.randperm(p.N); }, 2000);
        double perBatch = item + lr + std + shape + (fy - rp) / batchesPerEpoch;
        double minimalBatch = Bench.Median(epochs[variants[0].Name]) / batchesPerEpoch * 1e6;
        Console.WriteLine($"  sum of the extras: {perBatch:F1} us per batch = {perBatch / minimalBatch * 100:F1} % of a minimal-loop batch ({minimalBatch:F0} us, median epoch / batches);"
            + $" of which (y - mean) / std {std:F1} us");
        Console.WriteLine();
    }

    private static double Micro(string name, Action a, int n = 200_000)
    {
        for (int i = 0; i < Math.Min(1000, n); i++) a();
        long alloc = GC.GetAllocatedBytesForCurrentThread();
        var w = Stopwatch.StartNew();
        for (int i = 0; i < n; i++) a();
        w.Stop();
        alloc = GC.GetAllocatedBytesForCurrentThread() - alloc;
        Console.WriteLine($"    {name,-50} {w.Elapsed.TotalMilliseconds * 1000 / n,8:F2} us   {alloc / (double)n,7:F0} B managed");
        return w.Elapsed.TotalMilliseconds * 1000 / n;
    }
}
