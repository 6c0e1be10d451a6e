// MLP benchmark (the default): the ML.NET trainers against a hand-written TorchSharp loop on the same tensors,
// network, optimizer, loss, batch size, shuffle and epochs; plus peak memory. See README.md.
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using MLNetDeep.TestData;
using TorchSharp;
using static MLNetDeep.Benchmarks.MlpSettings;

namespace MLNetDeep.Benchmarks;

internal static class MlpBenchmark
{
    /// <summary>The whole MLP benchmark with the options in <see cref="MlpSettings"/>.</summary>
    public static int Run()
    {
        var total = Stopwatch.StartNew();
        if (Threads is int t) torch.set_num_threads(t);
        Header();
        Memory.Report("start (engine loaded)");

        var results = new List<(Case Case, Prepared Data, MlpCaseRun.Summary S)>();
        var prepared = new Dictionary<string, Prepared>();
        var cases = Case.All.Where(c => OnlyCases is null || OnlyCases.Any(o => c.Name.StartsWith(o, StringComparison.OrdinalIgnoreCase) || c.Data.Equals(o, StringComparison.OrdinalIgnoreCase))).ToList();
        foreach (var c in cases)
        {
            if (!prepared.TryGetValue(c.Data, out var data))
            {
                Memory.ResetPeak();
                data = Prepared.Load(c.Data);
                prepared[c.Data] = data;
                Bench.Settle();
                Console.WriteLine($"data '{data.Name}': {data.N} rows x {data.D} features, featurized + cached + read into tensors in {data.PrepareSeconds:F1}s");
                Memory.Report($"after preparing {data.Name}");
            }
            results.Add((c, data, MlpCaseRun.Run(c, data)));
        }

        if (Profile && cases.FirstOrDefault(c => c.Data == "bike" && c.Batch == 64) is Case pc)
            OverheadProfile.Run(pc, prepared[pc.Data]);

        PrintTable(results);
        if (SharedMachine.EngineErrors > 0) Console.WriteLine($"engine errors during the benchmark (measurements repeated): {SharedMachine.EngineErrors}");
        Memory.Report("end");
        Console.WriteLine($"total benchmark time {total.Elapsed.TotalMinutes:F1} min");
        foreach (var p in prepared.Values) p.Dispose();
        return 0;
    }

    private static void Header()
    {
        using (var probe = torch.zeros(1)) { } // loads libtorch through TorchSharp
        string torchSharp = typeof(torch).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion ?? typeof(torch).Assembly.GetName().Version!.ToString();
        Console.WriteLine("MLNetDeep benchmark: MLP trainer vs raw TorchSharp loop");
        Console.WriteLine($"  {DateTime.Now:yyyy-MM-dd HH:mm}, {RuntimeInformation.OSDescription}, {RuntimeInformation.FrameworkDescription}, {Environment.ProcessorCount} logical cores");
        Console.WriteLine($"  TorchSharp {torchSharp.Split('+')[0]}, torch.get_num_threads() = {torch.get_num_threads()}, interop threads = {torch.get_num_interop_threads()}");
        Console.WriteLine($"  epochs {Epochs} per run, repeats {Repeats} (median reported), AdamW lr {LearningRate} weight decay {WeightDecay}, ReLU, dropout 0, no batch norm, MSE / BCE-with-logits");
        Console.WriteLine($"  data: {DataPaths.Root}");
        Console.WriteLine();
    }

    private static void PrintTable(List<(Case Case, Prepared Data, MlpCaseRun.Summary S)> results)
    {
        Console.WriteLine($"=== summary ({Epochs} epochs per run, median of {Repeats} runs, torch threads {torch.get_num_threads()})");
        Console.WriteLine("| case | rows x features | raw rows/s | trainer rows/s | ratio trainer/raw | goal >= 0.95 | per-epoch ratio | separate runs: raw / trainer rows/s (ratio) | trainer whole Fit rows/s (Fit/raw) | peak RSS of the case / process | RSS growth of one run: raw / trainer | other load (max cores) |");
        Console.WriteLine("|---|---|---:|---:|---:|---|---:|---|---|---|---|---:|");
        foreach (var (c, p, s) in results)
            Console.WriteLine($"| {c.Name} | {p.N} x {p.D} | {s.RawRowsPerSecond:F0} | {s.TrainerRowsPerSecond:F0} | **{s.Ratio:F2}** | {(s.Ratio >= 0.95 ? "met" : "NOT met")} | {s.EpochPairRatio:F2} | "
                + $"{s.SeparateRawRowsPerSecond:F0} / {s.SeparateTrainerRowsPerSecond:F0} ({s.SeparateRatio:F2}) | {s.FitRowsPerSecond:F0} ({s.FitRatio:F2}) | {s.PeakRssMiB:F0} / {s.ProcessPeakRssMiB:F0} MiB | "
                + $"+{s.RawPeakMiB:F0} / +{s.TrainerPeakMiB:F0} MiB | {s.MaxForeignCores:F2}{(s.NoisyRuns > 0 ? $" ({s.NoisyRuns} noisy)" : "")} |");
        Console.WriteLine();
        foreach (var (c, _, s) in results)
            Console.WriteLine($"{c.Name}: ratio trainer/raw = {s.Ratio:F2} -> goal {(s.Ratio >= 0.95 ? "met" : "NOT met")} (separate runs {s.SeparateRatio:F2}); "
                + $"managed alloc per batch raw {s.RawAllocPerBatch:F0} B, trainer {s.TrainerAllocPerBatch:F0} B; Fit time outside the epochs {s.FitOverheadSeconds:F2}s; "
                + $"final training loss raw {s.RawLoss:F4}, trainer {s.TrainerLoss:F4}");
        Console.WriteLine();
    }

    /// <summary>One side of one case, for <see cref="MemoryProbe"/>'s child process.</summary>
    internal static void RunOnce(Prepared p, Case c, string side, Action<string>? trainerLog = null)
    {
        if (side == "raw") RawLoop.Train(p, c, 1, evaluate: false);
        else if (side == "trainer") TrainerSide.Train(p, c, 1, trainerLog);
        else // "trainer-xN": N one-epoch Fits in a row, as a hyper-parameter search or cross-validation would do
        {
            int count = int.Parse(side["trainer-x".Length..], CultureInfo.InvariantCulture);
            var line = new List<string>();
            for (int i = 0; i < count; i++)
            {
                TrainerSide.Train(p, c, 1).FinalLossModel = null;
                line.Add($"{Memory.RssKiB() / 1024.0:F0}/{Memory.HwmKiB() / 1024.0:F0}");
            }
            Console.WriteLine($"REPEATED RSS/peak MiB after each Fit: {string.Join(", ", line)}");
        }
    }
}
