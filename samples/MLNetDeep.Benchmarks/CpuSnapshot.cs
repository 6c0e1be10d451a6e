using System.Diagnostics;
using System.Globalization;

namespace MLNetDeep.Benchmarks;

/// <summary>
/// CPU time used by other processes during a measurement (from /proc/stat minus this process's /proc/self/stat), in
/// cores: this machine is shared, and with libtorch's intra-op threads on every core, another busy process slows
/// a training loop far more than its share. Runs that overlapped such load are flagged.
/// </summary>
internal readonly record struct CpuSnapshot(long TotalBusy, long Own, long Ticks)
{
    public static CpuSnapshot Take()
    {
        try
        {
            var f = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Select(long.Parse).ToArray();
            long idle = f[3] + (f.Length > 4 ? f[4] : 0);
            long busy = f.Take(Math.Min(8, f.Length)).Sum() - idle; // user nice system idle iowait irq softirq steal
            var st = File.ReadAllText("/proc/self/stat");
            var rest = st[(st.LastIndexOf(')') + 2)..].Split(' ');
            long own = long.Parse(rest[11], CultureInfo.InvariantCulture) + long.Parse(rest[12], CultureInfo.InvariantCulture); // utime, stime
            return new CpuSnapshot(busy, own, Stopwatch.GetTimestamp());
        }
        catch (Exception) { return new CpuSnapshot(-1, -1, Stopwatch.GetTimestamp()); }
    }

    /// <summary>Average number of cores other processes kept busy since <paramref name="start"/> (USER_HZ = 100).</summary>
    public double ForeignCoresSince(CpuSnapshot start)
    {
        if (TotalBusy < 0 || start.TotalBusy < 0) return double.NaN;
        double seconds = (Ticks - start.Ticks) / (double)Stopwatch.Frequency;
        return Math.Max(0, (TotalBusy - start.TotalBusy - (Own - start.Own)) / 100.0 / Math.Max(1e-3, seconds));
    }

    /// <summary>Average number of cores this process kept busy since <paramref name="start"/>.</summary>
    public double OwnCoresSince(CpuSnapshot start)
    {
        double seconds = (Ticks - start.Ticks) / (double)Stopwatch.Frequency;
        return (Own - start.Own) / 100.0 / Math.Max(1e-3, seconds);
    }
}
