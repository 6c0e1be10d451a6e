// Small helpers every benchmark uses: medians and percentiles, latencies, row counts, a settled GC.
using System.Diagnostics;
using Microsoft.ML;

namespace MLNetDeep.Benchmarks;

internal static class Bench
{
    public static double Median(IEnumerable<double> values)
    {
        var v = values.OrderBy(x => x).ToArray();
        if (v.Length == 0) return double.NaN;
        return v.Length % 2 == 1 ? v[v.Length / 2] : (v[v.Length / 2 - 1] + v[v.Length / 2]) / 2;
    }

    /// <summary>Milliseconds of each of <paramref name="calls"/> calls (after 100 warm-up calls), sorted.</summary>
    public static double[] Latencies(Action<int> call, int calls)
    {
        for (int i = 0; i < 100; i++) call(i);
        var times = new double[calls];
        for (int i = 0; i < times.Length; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            call(i);
            times[i] = (Stopwatch.GetTimestamp() - t0) * 1000.0 / Stopwatch.Frequency;
        }
        Array.Sort(times);
        return times;
    }

    public static double Percentile(double[] sorted, double q) => sorted[Math.Min(sorted.Length - 1, (int)(q * sorted.Length))];

    public static long CountRows(IDataView view, DataViewSchema.Column column)
    {
        long n = 0;
        using var cursor = view.GetRowCursor(new[] { column });
        while (cursor.MoveNext()) n++;
        return n;
    }

    /// <summary>Collect between runs so that finalizers of the previous run's modules (the trainer's models) do not run inside the next one.</summary>
    public static void Settle()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }
}
