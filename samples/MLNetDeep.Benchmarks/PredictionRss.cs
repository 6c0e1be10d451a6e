using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetDeep;
using MLNetDeep.TestData;

/// <summary>
/// <c>--prediction-rss [count]</c>: README's Reliability figure. Trains a bike-sharing MLP, then makes <c>count</c>
/// (default 100 000) <c>PredictionEngine</c> predictions, printing the resident memory (VmRSS) four times on the way and
/// after a full collection at the end: growth per prediction would be a leak.
/// </summary>
internal static class PredictionRss
{
    public const string Flag = "--prediction-rss";

    public sealed class In { [VectorType(12)] public float[] Features { get; set; } = new float[12]; }
    public sealed class Out { public float Score { get; set; } }

    public static int Run(string[] args)
    {
        int count = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 100_000;
        var ml = new MLContext(seed: 1);
        var train = ml.Data.TakeRows(RealData.BikeTrain(ml), 3000);
        var features = ml.Transforms.Concatenate("Features", BikeRow.FeatureColumns).Append(ml.Transforms.NormalizeMeanVariance("Features")).Fit(train);
        var model = ml.Regression.Trainers.Mlp(new MlpRegressionTrainer.Options { NumberOfEpochs = 2 }).Fit(features.Transform(train));
        var engine = ml.Model.CreatePredictionEngine<In, Out>(model);
        var rows = features.Transform(RealData.BikeTest(ml)).GetColumn<float[]>("Features").Take(1000).Select(f => new In { Features = f }).ToArray();
        float sink = 0;
        for (int i = 0; i < 2000; i++) sink += engine.Predict(rows[i % rows.Length]).Score; // warm-up
        Collect();
        long before = MLNetDeep.Benchmarks.Memory.RssKiB() / 1024;
        Console.WriteLine($"RSS after warm-up: {before} MiB");
        for (int i = 0; i < count; i++)
        {
            sink += engine.Predict(rows[i % rows.Length]).Score;
            if ((i + 1) % Math.Max(1, count / 4) == 0) Console.WriteLine($"  after {i + 1} predictions: RSS {MLNetDeep.Benchmarks.Memory.RssKiB() / 1024} MiB");
        }
        Collect();
        long after = MLNetDeep.Benchmarks.Memory.RssKiB() / 1024;
        Console.WriteLine($"RSS after {count} predictions and a full collection: {after} MiB ({after - before:+0;-0} MiB); checksum {sink:G4}");
        return 0;
    }

    private static void Collect()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }
}
