using System.Diagnostics;
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetDeep;
using MLNetDeep.Benchmarks;
using MLNetDeep.TestData;

/// <summary>
/// <c>--training-threads [repeats]</c>: README's Reliability figure. Two 30-epoch MLP [256, 128] trainings on 8 000
/// bike rows after a warm-up training on the main thread, in four arrangements, each in a fresh process (libtorch's
/// OpenMP worker pools live as long as the threads that made them, so one arrangement would leave its pools to the
/// next): one after another on the main thread; one after another on two new threads; started together on two threads
/// (the second waits for the training lock); and on a new thread after a batch <c>Transform</c> on the main thread.
/// Prints the wall time of the two trainings (data preparation included) per run and the medians.
/// </summary>
internal static class TrainingThreads
{
    public const string Flag = "--training-threads";
    private const string ChildFlag = "--training-threads-child";
    private static readonly string[] Arrangements = { "main", "new-threads", "together", "after-transform" };

    public static int Run(string[] args)
    {
        if (args.Length == 2 && args[0] == ChildFlag) return Child(args[1]);
        int repeats = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 3;
        Console.WriteLine($"Two 30-epoch MLP [256,128] trainings on 8000 bike rows after a warm-up training on the main thread; each run a fresh process; {repeats} rounds, arrangements alternating.");
        var times = Arrangements.ToDictionary(a => a, _ => new List<double>());
        for (int r = 0; r < repeats; r++)
        {
            foreach (string a in Arrangements)
            {
                var (exit, output, error) = ChildProcess.RunSelf(ChildFlag, a);
                var line = output.Split('\n').FirstOrDefault(l => l.StartsWith("WALL ", StringComparison.Ordinal));
                if (exit != 0 || line is null) { Console.WriteLine($"  {a}: failed ({exit}): {error}"); return 1; }
                double wall = double.Parse(line[5..], CultureInfo.InvariantCulture);
                times[a].Add(wall);
                Console.WriteLine($"  round {r + 1}, {a,-16}: {wall:F2} s");
            }
        }
        Console.WriteLine("| arrangement | median s | all |");
        Console.WriteLine("|---|---:|---|");
        foreach (string a in Arrangements)
            Console.WriteLine($"| {a} | {Bench.Median(times[a]):F2} | {string.Join(", ", times[a].Select(t => t.ToString("F2", CultureInfo.InvariantCulture)))} |");
        return 0;
    }

    private static IDataView Prepare(MLContext ml, out ITransformer features)
    {
        var train = ml.Data.TakeRows(RealData.BikeTrain(ml), 8000);
        features = ml.Transforms.Concatenate("Features", BikeRow.FeatureColumns).Append(ml.Transforms.NormalizeMeanVariance("Features")).Fit(train);
        return ml.Data.Cache(features.Transform(train));
    }

    private static ITransformer Train(int seed)
    {
        var ml = new MLContext(seed: seed);
        var data = Prepare(ml, out _);
        return ml.Regression.Trainers.Mlp(new MlpRegressionTrainer.Options { HiddenLayers = new[] { 256, 128 }, NumberOfEpochs = 30 }).Fit(data);
    }

    private static void OnNewThread(Action work)
    {
        var t = new Thread(() => work());
        t.Start();
        t.Join();
    }

    private static int Child(string arrangement)
    {
        var warm = Train(9);
        if (arrangement == "after-transform")
        {
            var ml = new MLContext(seed: 3);
            var data = Prepare(ml, out _);
            float sum = 0;
            for (int i = 0; i < 5; i++) sum += warm.Transform(data).GetColumn<float>("Score").Sum();
            Console.WriteLine($"batch scoring checksum {sum:G4}");
        }
        var watch = Stopwatch.StartNew();
        switch (arrangement)
        {
            case "main": Train(1); Train(2); break;
            case "new-threads": case "after-transform": OnNewThread(() => Train(1)); OnNewThread(() => Train(2)); break;
            case "together":
                var a = new Thread(() => Train(1));
                var b = new Thread(() => Train(2));
                a.Start(); b.Start(); a.Join(); b.Join();
                break;
            default: throw new ArgumentException("unknown arrangement " + arrangement);
        }
        Console.WriteLine("WALL " + watch.Elapsed.TotalSeconds.ToString("R", CultureInfo.InvariantCulture));
        return 0;
    }
}
