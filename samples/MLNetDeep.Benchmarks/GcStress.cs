// --gc-stress: training while another thread allocates. See README.md.
using System.Diagnostics;
using Microsoft.ML;
using static MLNetDeep.Benchmarks.MlpSettings;

namespace MLNetDeep.Benchmarks;

/// <summary>
/// Training while another thread allocates (so that garbage collections happen at any moment, as in a server or
/// UI application). Stops each side after <paramref name="seconds"/> or at its first error.
/// </summary>
internal static class GcStress
{
    public static int Run(double seconds)
    {
        using var p = Prepared.Bike();
        var c = Case.All[0];
        Console.WriteLine($"GC stress: {c.Name} with a background thread allocating 2 KiB arrays, up to {seconds:F0}s per side");
        bool failed = false;
        failed |= Side("MLNetDeep trainer", seconds, (stop, epochs) =>
        {
            var ml = new MLContext(Seed);
            var o = new MlpRegressionTrainer.Options
            {
                HiddenLayers = c.Hidden, Dropout = 0, NumberOfEpochs = 100_000, BatchSize = c.Batch, Caching = DataCaching.Memory,
                EpochCallback = m => { epochs[0] = m.Epoch; if (stop.IsCancellationRequested) ml.CancelExecution(); },
            };
            try { ml.Regression.Trainers.Mlp(o).Fit(p.View); }
            catch (OperationCanceledException) when (stop.IsCancellationRequested) { }
        });
        failed |= Side("raw TorchSharp loop", seconds, (stop, epochs) =>
        {
            using var loop = new RawLoop(p, c);
            while (!stop.IsCancellationRequested) { loop.Epoch(); epochs[0]++; }
        });
        return failed ? 1 : 0;
    }

    private static bool Side(string name, double seconds, Action<CancellationToken, int[]> train)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
        var epochs = new int[1];
        bool stopAllocating = false;
        var allocator = new Thread(() =>
        {
            var keep = new object[1024];
            int i = 0;
            while (!Volatile.Read(ref stopAllocating)) keep[i++ & 1023] = new byte[2048];
        }) { IsBackground = true };
        int gcs = GC.CollectionCount(0);
        var watch = Stopwatch.StartNew();
        allocator.Start();
        try
        {
            train(cts.Token, epochs);
            Console.WriteLine($"  {name}: survived {watch.Elapsed.TotalSeconds:F0}s ({epochs[0]} epochs, {GC.CollectionCount(0) - gcs} gen0 GCs)");
            return false;
        }
        catch (Exception e)
        {
            var frames = (e.StackTrace ?? "").Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0).Take(6);
            Console.WriteLine($"  {name}: FAILED after {watch.Elapsed.TotalSeconds:F1}s ({epochs[0]} epochs, {GC.CollectionCount(0) - gcs} gen0 GCs): {e.GetType().Name}: {e.Message.Split('\n')[0]}");
            foreach (var f in frames) Console.WriteLine($"      {f}");
            return true;
        }
        finally
        {
            Volatile.Write(ref stopAllocating, true);
            allocator.Join();
        }
    }
}
