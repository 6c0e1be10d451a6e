// What a shared machine does to the MLP measurements: other processes' load (waited out) and engine errors (repeated).
using System.Diagnostics;
using static MLNetDeep.Benchmarks.MlpSettings;

namespace MLNetDeep.Benchmarks;

internal static class SharedMachine
{
    /// <summary>Engine errors met so far (each measurement repeated).</summary>
    public static int EngineErrors { get; private set; }

    /// <summary>
    /// An error from libtorch in the middle of training. Seen here as "Unknown scalar type" / "Expected false to be true"
    /// from AdamW.step: TorchSharp 0.107 lets the GC finalize an implicit Scalar while native code still uses it (see
    /// README and --gc-stress). The measurement is repeated; the count is printed at the end.
    /// </summary>
    public static void EngineError(Exception e)
    {
        EngineErrors++;
        var frame = (e.StackTrace ?? "").Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.Contains("TorchSharp.Modules", StringComparison.Ordinal) || l.Contains("MLNetDeep", StringComparison.Ordinal)) ?? "";
        Console.WriteLine($"    ENGINE ERROR (measurement repeated): {e.GetType().Name}: {e.Message.Split('\n')[0]} {frame}");
    }

    /// <summary>Waits (at most <see cref="MaxQuietWaitSeconds"/>) until other processes have used less than the quiet threshold for 2 s.</summary>
    public static void WaitForQuiet()
    {
        if (OverBudget) return;
        var deadline = Stopwatch.StartNew();
        int quiet = 0;
        while (deadline.Elapsed.TotalSeconds < MaxQuietWaitSeconds && quiet < 4)
        {
            var a = CpuSnapshot.Take();
            Thread.Sleep(500);
            double foreign = CpuSnapshot.Take().ForeignCoresSince(a);
            if (double.IsNaN(foreign)) return;
            quiet = foreign < QuietThreshold ? quiet + 1 : 0;
        }
        if (deadline.Elapsed.TotalSeconds > 5) Console.WriteLine($"  (waited {deadline.Elapsed.TotalSeconds:F0}s for other processes to go quiet{(quiet < 4 ? "; they did not" : "")})");
    }
}
