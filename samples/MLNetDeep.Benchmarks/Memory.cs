using System.Globalization;
using System.Runtime.InteropServices;

namespace MLNetDeep.Benchmarks;

/// <summary>Process memory from /proc/self/status (Linux) and the managed heap.</summary>
internal static class Memory
{
    private static bool _canReset = true;
    private static long _peakBeforeReset;

    [DllImport("libc", EntryPoint = "malloc_trim")]
    private static extern int MallocTrim(UIntPtr pad);

    /// <summary>Returns free glibc heap memory to the system (best effort).</summary>
    public static void TrimNative()
    {
        try { MallocTrim(UIntPtr.Zero); } catch (Exception) { }
    }

    public static long HwmKiB() => Field("VmHWM:");
    public static long RssKiB() => Field("VmRSS:");
    public static double PeakRssMiB() => HwmKiB() / 1024.0;
    /// <summary>Peak RSS since the process started (the high-water marks before every reset included).</summary>
    public static double ProcessPeakRssMiB() => Math.Max(_peakBeforeReset, HwmKiB()) / 1024.0;

    /// <summary>Resets the peak RSS (VmHWM) to the current RSS (Linux >= 4.0: write 5 to /proc/self/clear_refs).</summary>
    public static void ResetPeak()
    {
        if (!_canReset) return;
        _peakBeforeReset = Math.Max(_peakBeforeReset, HwmKiB());
        try { File.WriteAllText("/proc/self/clear_refs", "5"); }
        catch (Exception e)
        {
            _canReset = false;
            Console.WriteLine($"  (cannot reset the peak RSS: {e.Message}; peaks below are since process start)");
        }
    }

    /// <summary>Managed bytes in use at the last GC (heap size minus fragmentation), in MiB.</summary>
    public static double ManagedLiveMiB()
    {
        var info = GC.GetGCMemoryInfo();
        return (info.HeapSizeBytes - info.FragmentedBytes) / 1048576.0;
    }

    public static void Report(string when)
    {
        var info = GC.GetGCMemoryInfo();
        Console.WriteLine($"  memory {when}: peak RSS {(_canReset ? $"of this section {HwmKiB() / 1024.0:F0} MiB, of the process " : "")}{ProcessPeakRssMiB():F0} MiB (VmHWM), current RSS {RssKiB() / 1024.0:F0} MiB; "
            + $"managed: in use at the last GC {(info.HeapSizeBytes - info.FragmentedBytes) / 1048576.0:F0} MiB, GC heap size {info.HeapSizeBytes / 1048576.0:F0} MiB (fragmented {info.FragmentedBytes / 1048576.0:F0}), committed {info.TotalCommittedBytes / 1048576.0:F0} MiB");
    }

    private static long Field(string name)
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith(name, StringComparison.Ordinal))
                    return long.Parse(line.AsSpan(name.Length).Trim().ToString().Split(' ')[0], CultureInfo.InvariantCulture);
        }
        catch (IOException) { }
        return -1;
    }
}
