// One MLP case: interleaved runs, separate runs and the memory probes, summarised.
using System.Runtime.InteropServices;
using TorchSharp;
using static MLNetDeep.Benchmarks.MlpSettings;

namespace MLNetDeep.Benchmarks;

internal static class MlpCaseRun
{
    public sealed record Summary(
        double RawRowsPerSecond, double TrainerRowsPerSecond, double Ratio, double EpochPairRatio,
        double SeparateRawRowsPerSecond, double SeparateTrainerRowsPerSecond, double SeparateRatio,
        double FitRowsPerSecond, double FitRatio, double FitOverheadSeconds,
        double RawLoss, double TrainerLoss, double RawAllocPerBatch, double TrainerAllocPerBatch,
        double PeakRssMiB, double ProcessPeakRssMiB, double RawPeakMiB, double TrainerPeakMiB, double MaxForeignCores, int NoisyRuns);

    public static Summary Run(Case c, Prepared p)
    {
        Console.WriteLine($"=== {c.Name}: {c.Task}, {p.N} rows x {p.D} features, hidden [{string.Join(",", c.Hidden)}], batch {c.Batch}, {Epochs} epochs, {Repeats} repeats, torch threads {torch.get_num_threads()}");
        Memory.ResetPeak();
        double rowsPerRun = (double)p.N * Epochs;
        long batchesPerEpoch = (p.N + c.Batch - 1) / c.Batch;
        double maxForeign = 0;
        int noisy = 0;

        // Warm-up: one epoch of each (JIT, libtorch kernels and threads, allocator).
        var wr = RawLoop.Train(p, c, 1, evaluate: false);
        var wt = TrainerSide.Train(p, c, 1);
        long parameters;
        using (var loop = new RawLoop(p, c)) parameters = LibraryNetworks.SameParameterCount(loop.Network, wt.FinalLossModel!);
        wt.FinalLossModel = null;
        Console.WriteLine($"  warm-up: raw 1 epoch {wr.Seconds:F2}s; trainer 1 epoch {wt.LoopSeconds:F2}s (Fit {wt.FitSeconds:F2}s); the same network on both sides ({parameters} parameters)"
            + (Verbose ? $"; RSS now {Memory.RssKiB() / 1024.0:F0} MiB, peak since the case started {Memory.HwmKiB() / 1024.0:F0} MiB" : ""));
        Bench.Settle();

        // 1. Interleaved: the raw loop's epochs run between the trainer's epochs (inside its EpochCallback).
        Console.WriteLine("  interleaved (a raw epoch between two trainer epochs; trainer time = sum of EpochMetrics.Seconds):");
        var iRaw = new List<double>();
        var iTrainer = new List<double>();
        var iRatios = new List<double>();
        var epochRatios = new List<double>();
        for (int r = 0; r < Repeats; r++)
        {
            for (int attempt = 1; ; attempt++)
            {
                SharedMachine.WaitForQuiet();
                bool rawFirst = r % 2 == 1;
                double rawSum, trainerSum, foreign;
                double[] rawEpochs, trainerEpochs;
                try
                {
                    using var loop = new RawLoop(p, c);
                    var (t, f) = Interleaved(p, c, Epochs, rawFirst, new[] { loop });
                    t.FinalLossModel = null;
                    (rawSum, trainerSum, foreign, rawEpochs, trainerEpochs) = (loop.EpochSeconds.Sum(), t.LoopSeconds, f, loop.EpochSeconds.ToArray(), t.EpochSeconds);
                }
                catch (ExternalException e) when (attempt < MaxAttempts) { SharedMachine.EngineError(e); continue; }
                finally { Bench.Settle(); }
                Console.WriteLine($"    run {r + 1}{(attempt > 1 ? $" (attempt {attempt})" : "")}{(rawFirst ? ", raw first" : ", trainer first")}: raw {rawSum:F2}s = {rowsPerRun / rawSum,9:F0} rows/s | trainer {trainerSum:F2}s = {rowsPerRun / trainerSum,9:F0} rows/s | "
                    + $"ratio {rawSum / trainerSum:F3} | other processes {foreign:F2} cores");
                Details(rawEpochs, trainerEpochs);
                if (Keep(r, attempt, foreign, ref noisy, ref maxForeign))
                {
                    iRaw.Add(rawSum);
                    iTrainer.Add(trainerSum);
                    iRatios.Add(rawSum / trainerSum);
                    epochRatios.AddRange(rawEpochs.Zip(trainerEpochs, (a, b) => a / b));
                    break;
                }
            }
        }
        double rawRps = rowsPerRun / Bench.Median(iRaw), trainerRps = rowsPerRun / Bench.Median(iTrainer);
        double ratio = Bench.Median(iRatios), epochPairRatio = Bench.Median(epochRatios);
        Console.WriteLine($"    median: raw {rawRps:F0} rows/s ({Bench.Median(iRaw) / (batchesPerEpoch * Epochs) * 1e6:F0} us/batch), trainer {trainerRps:F0} rows/s ({Bench.Median(iTrainer) / (batchesPerEpoch * Epochs) * 1e6:F0} us/batch)");
        Console.WriteLine($"    ratio trainer/raw = {ratio:F2}  (goal >= 0.95: {(ratio >= 0.95 ? "MET" : "NOT MET")}; median of the {Repeats} per-run ratios; median of the {epochRatios.Count} per-epoch ratios {epochPairRatio:F2})");

        // 2. Separate runs, alternating which side goes first: the trainer's whole Fit wall time, allocations, the final loss.
        Console.WriteLine("  separate runs (each side alone, alternating order):");
        var raw = new List<RawResult>();
        var trainer = new List<TrainerResult>();
        for (int r = 0; r < Repeats; r++)
        {
            for (int attempt = 1; ; attempt++)
            {
                SharedMachine.WaitForQuiet();
                RawResult rr;
                TrainerResult tt;
                try
                {
                    if (r % 2 == 0) { RawLoop.PreWarm(p, c); rr = RawLoop.Train(p, c, Epochs); Bench.Settle(); RawLoop.PreWarm(p, c); tt = TrainerSide.Train(p, c, Epochs); Bench.Settle(); }
                    else { RawLoop.PreWarm(p, c); tt = TrainerSide.Train(p, c, Epochs); Bench.Settle(); RawLoop.PreWarm(p, c); rr = RawLoop.Train(p, c, Epochs); Bench.Settle(); }
                }
                catch (ExternalException e) when (attempt < MaxAttempts) { SharedMachine.EngineError(e); continue; }
                double foreign = Math.Max(rr.ForeignCores, tt.ForeignCores);
                Console.WriteLine($"    run {r + 1}{(attempt > 1 ? $" (attempt {attempt})" : "")}: raw {rr.Seconds:F2}s = {rowsPerRun / rr.Seconds,9:F0} rows/s | trainer loop {tt.LoopSeconds:F2}s = {rowsPerRun / tt.LoopSeconds,9:F0} rows/s, "
                    + $"Fit {tt.FitSeconds:F2}s = {rowsPerRun / tt.FitSeconds,9:F0} rows/s | CPU cores: own {rr.OwnCores:F2}/{tt.OwnCores:F2}, other processes {rr.ForeignCores:F2}/{tt.ForeignCores:F2}");
                Details(rr.EpochSeconds, tt.EpochSeconds);
                if (Keep(r, attempt, foreign, ref noisy, ref maxForeign))
                {
                    if (r != Repeats - 1) tt.FinalLossModel = null;
                    raw.Add(rr);
                    trainer.Add(tt);
                    break;
                }
                tt.FinalLossModel = null;
            }
        }
        double sRaw = rowsPerRun / Bench.Median(raw.Select(x => x.Seconds));
        double sTrainer = rowsPerRun / Bench.Median(trainer.Select(x => x.LoopSeconds));
        double fitRps = rowsPerRun / Bench.Median(trainer.Select(x => x.FitSeconds));
        double fitOverhead = Bench.Median(trainer.Select(x => x.FitSeconds - x.LoopSeconds));
        double rawLoss = raw[^1].FinalLoss;
        double trainerLoss = TrainerSide.FullLoss(p, trainer[^1].FinalLossModel!);
        trainer[^1].FinalLossModel = null;
        double rawAlloc = raw.Average(x => (double)x.AllocatedBytes / x.Batches);
        double trainerAlloc = trainer.Average(x => (double)x.LoopAllocatedBytes / x.Batches);
        Console.WriteLine($"    median: raw {sRaw:F0} rows/s, trainer loop {sTrainer:F0} rows/s (ratio {sTrainer / sRaw:F2}), trainer whole Fit {fitRps:F0} rows/s (Fit/raw {fitRps / sRaw:F2}; "
            + $"Fit time outside the epochs {fitOverhead:F2}s: reading the IDataView into a tensor, building the network, making the model)");
        Console.WriteLine($"    managed allocations per batch: raw {rawAlloc:F0} B, trainer {trainerAlloc:F0} B; gen0 GCs during the timed epochs: raw {raw.Sum(x => x.Gen0)}, trainer {trainer.Sum(x => x.Gen0)}");
        Console.WriteLine($"    full-data training loss after {Epochs} epochs: raw {rawLoss:F4}, trainer {trainerLoss:F4} ({(p.Task == TaskKind.Regression ? "MSE of the standardized label" : "BCE with logits")}; same initial weights, different shuffles)");
        double peak = Memory.PeakRssMiB(); // since the reset at the start of this case
        Memory.Report($"after {c.Name}");

        // 3. Peak memory of each side alone, each in a fresh process (here, memory the allocators kept from earlier runs hides growth).
        var rawProbe = MemoryProbe.RunChild(c, "raw");
        var trainerProbe = MemoryProbe.RunChild(c, "trainer");
        Console.WriteLine($"  memory of one 1-epoch run in a fresh process, above its RSS after data preparation (the data tensor alone is {p.N * p.D * 4 / 1048576.0:F0} MiB):");
        Console.WriteLine($"    raw     : {rawProbe?.ToString() ?? "probe failed"}");
        Console.WriteLine($"    trainer : {trainerProbe?.ToString() ?? "probe failed"}");
        if (p.N * p.D * 4L > 100L << 20)
        {
            // Several Fits in a row (hyper-parameter search, cross-validation), with no GC forced between them.
            var repeated = MemoryProbe.RunChild(c, "trainer-x5");
            Console.WriteLine($"    trainer, 5 one-epoch Fits in a row: {repeated?.Repeated ?? "probe failed"} (peak {repeated?.PeakMiB ?? double.NaN:F0} MiB)");
        }
        Console.WriteLine();
        return new Summary(rawRps, trainerRps, ratio, epochPairRatio, sRaw, sTrainer, sTrainer / sRaw, fitRps, fitRps / sRaw, fitOverhead,
            rawLoss, trainerLoss, rawAlloc, trainerAlloc, peak, Memory.ProcessPeakRssMiB(),
            rawProbe?.PeakAboveBaselineMiB ?? double.NaN, trainerProbe?.PeakAboveBaselineMiB ?? double.NaN, maxForeign, noisy);
    }

    /// <summary>With --verbose: every epoch's time of both sides in a run, and the memory now.</summary>
    private static void Details(double[] rawEpochs, double[] trainerEpochs)
    {
        if (!Verbose) return;
        Console.WriteLine($"      raw epoch ms:     {string.Join(" ", rawEpochs.Select(x => (x * 1000).ToString("F0")))}");
        Console.WriteLine($"      trainer epoch ms: {string.Join(" ", trainerEpochs.Select(x => (x * 1000).ToString("F0")))}");
        Console.WriteLine($"      RSS now {Memory.RssKiB() / 1024.0:F0} MiB, peak since the case started {Memory.HwmKiB() / 1024.0:F0} MiB");
    }

    /// <summary>
    /// Whether run <paramref name="r"/>'s measurement stands: other processes used at most the quiet threshold
    /// (<paramref name="foreign"/> cores), or no attempt or time is left, and then it is kept, flagged and counted in
    /// <paramref name="noisy"/>. False: measure again.
    /// </summary>
    private static bool Keep(int r, int attempt, double foreign, ref int noisy, ref double maxForeign)
    {
        bool quiet = !(foreign > QuietThreshold);
        if (!quiet && attempt < MaxAttempts && !OverBudget) return false;
        if (!quiet) { noisy++; Console.WriteLine($"    run {r + 1}: other processes used {foreign:F2} cores in all {attempt} attempt(s); kept (flagged)"); }
        maxForeign = Math.Max(maxForeign, foreign);
        return true;
    }

    /// <summary>
    /// One trainer Fit of <paramref name="epochs"/> epochs with an epoch of every raw loop between two of its epochs
    /// (and, when <paramref name="rawFirst"/>, one before its first): both sides meet the same machine state, so
    /// slow stretches (other processes, the host) hit both alike.
    /// </summary>
    public static (TrainerResult Trainer, double ForeignCores) Interleaved(Prepared p, Case c, int epochs, bool rawFirst, IReadOnlyList<RawLoop> loops)
    {
        void RawEpochs(int round)
        {
            for (int i = 0; i < loops.Count; i++) loops[(i + round) % loops.Count].Epoch(); // rotate the order
        }
        RawLoop.PreWarm(p, loops[0].Case);
        var cpu = CpuSnapshot.Take();
        if (rawFirst) RawEpochs(0);
        var t = TrainerSide.Train(p, c, epochs, afterEpoch: e => { if (!rawFirst || e < epochs) RawEpochs(e); });
        return (t, CpuSnapshot.Take().ForeignCoresSince(cpu));
    }
}
