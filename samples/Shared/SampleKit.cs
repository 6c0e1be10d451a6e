// What the samples share: timing a fit, a leaderboard table, and the save → reload → PredictionEngine round trip.
using System.Diagnostics;
using Microsoft.ML;

namespace MLNetDeep.Samples;

public static class SampleKit
{
    public static (ITransformer Model, double Seconds) Timed(Func<ITransformer> fit)
    {
        var w = Stopwatch.StartNew();
        var model = fit();
        return (model, w.Elapsed.TotalSeconds);
    }

    /// <summary>Save with mlContext.Model.Save, load in a fresh MLContext, predict through a PredictionEngine.</summary>
    public static void SaveReloadPredict<TIn, TOut>(MLContext ml, ITransformer model, DataViewSchema schema, string path, TIn example, Func<TOut, string> show)
        where TIn : class where TOut : class, new()
    {
        ml.Model.Save(model, schema, path);
        var fresh = new MLContext();
        var loaded = fresh.Model.Load(path, out _);
        var engine = fresh.Model.CreatePredictionEngine<TIn, TOut>(loaded);
        Console.WriteLine($"  saved {Path.GetFileName(path)} ({new FileInfo(path).Length / 1024} KiB), reloaded in a new MLContext: {show(engine.Predict(example))}");
        Console.WriteLine();
    }
}

public sealed class Leaderboard(string title, params string[] metrics)
{
    private readonly List<(string Name, double Seconds, double[] Values)> _rows = new();
    public void Add(string name, double seconds, params double[] values) => _rows.Add((name, seconds, values));
    public void Print()
    {
        Console.WriteLine();
        Console.WriteLine(title);
        Console.WriteLine($"  {"trainer",-48}" + string.Concat(metrics.Select(m => $"{m,11}")) + $"{"train s",10}");
        foreach (var r in _rows)
            Console.WriteLine($"  {r.Name,-48}" + string.Concat(r.Values.Select(v => $"{v,11:F4}")) + $"{r.Seconds,10:F1}");
    }
}
