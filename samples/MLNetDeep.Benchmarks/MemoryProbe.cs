using System.Globalization;

namespace MLNetDeep.Benchmarks;

/// <summary>Peak memory of one side, measured in a child process: prepare the data, then one 1-epoch run.</summary>
internal sealed record MemoryProbe(double BaselineMiB, double PeakMiB, double AfterMiB, double ManagedHeapMiB, double PeakAfterLoadMiB, double ManagedBeforeMiB, double ManagedAfterOneGcMiB)
{
    /// <summary>For "trainer-xN": RSS/peak after each Fit.</summary>
    public string? Repeated { get; init; }

    public const string ChildFlag = "--memory-probe-child";

    public double PeakAboveBaselineMiB => PeakMiB - BaselineMiB;

    public override string ToString() =>
        $"peak RSS {PeakMiB:F0} MiB = baseline {BaselineMiB:F0} + {PeakAboveBaselineMiB:F0} MiB during the run"
        + (PeakAfterLoadMiB > 0 ? $" (+{PeakAfterLoadMiB - BaselineMiB:F0} MiB already when the trainer had loaded its data, before the first batch)" : "")
        + $"; managed live before {ManagedBeforeMiB:F0} MiB, after the run + 1 GC {ManagedAfterOneGcMiB:F0} MiB, + 2nd GC {ManagedHeapMiB:F0} MiB; RSS afterwards {AfterMiB:F0} MiB";

    public static MemoryProbe? RunChild(Case c, string side)
    {
        try
        {
            var (exitCode, output, error) = ChildProcess.RunSelf(ChildFlag, c.Name, side);
            var line = output.Split('\n').FirstOrDefault(l => l.StartsWith("MEMPROBE ", StringComparison.Ordinal));
            if (exitCode != 0 || line is null)
            {
                Console.WriteLine($"    (memory probe '{side}' failed, exit {exitCode}: {error})");
                return null;
            }
            var f = line.Split(' ').Skip(1).Select(x => double.Parse(x, CultureInfo.InvariantCulture)).ToArray();
            var repeated = output.Split('\n').FirstOrDefault(l => l.StartsWith("REPEATED ", StringComparison.Ordinal));
            return new MemoryProbe(f[0], f[1], f[2], f[3], f[4], f[5], f[6]) { Repeated = repeated?["REPEATED ".Length..].Trim() };
        }
        catch (Exception e)
        {
            Console.WriteLine($"    (memory probe '{side}' failed: {e.Message})");
            return null;
        }
    }

    public static int Child(string caseName, string side)
    {
        var c = Case.Find(caseName);
        using var p = Prepared.Load(c.Data);
        // Start from as little resident memory as possible: compact the managed heap (LOH included) and give
        // freed native memory back, so that the run's own allocations show up as growth of the RSS.
        System.Runtime.GCSettings.LargeObjectHeapCompactionMode = System.Runtime.GCLargeObjectHeapCompactionMode.CompactOnce;
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        Memory.TrimNative();
        double baseline = Memory.RssKiB() / 1024.0;
        double managedBefore = Memory.ManagedLiveMiB();
        Memory.ResetPeak();
        double peakAfterLoad = 0;
        // The trainer logs "... data cached in memory ..." right after reading its data, before building the network.
        MlpBenchmark.RunOnce(p, c, side, m => { if (m.Contains("data cached in memory", StringComparison.Ordinal) && peakAfterLoad == 0) peakAfterLoad = Memory.HwmKiB() / 1024.0; });
        double peak = Memory.HwmKiB() / 1024.0;
        // One collection frees what is unreachable; objects with finalizers (e.g. tensors nobody disposed, which
        // may pin arrays) are only freed by the collection after their finalizer ran.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        double afterOne = Memory.ManagedLiveMiB();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        Console.WriteLine(FormattableString.Invariant($"MEMPROBE {baseline:F1} {peak:F1} {Memory.RssKiB() / 1024.0:F1} {Memory.ManagedLiveMiB():F1} {peakAfterLoad:F1} {managedBefore:F1} {afterOne:F1}"));
        return 0;
    }
}
