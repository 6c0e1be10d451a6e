using System.Diagnostics;
using Xunit;
using System.Reflection;
using Microsoft.ML;
using MLNetDeep.TestData;

namespace MLNetDeep.Tests;

internal static class TestUtil
{
    /// <summary>The values of a float column, in row order.</summary>
    public static float[] Floats(IDataView data, string column)
    {
        var col = data.Schema[column];
        using var cursor = data.GetRowCursor(new[] { col });
        var get = cursor.GetGetter<float>(col);
        var list = new List<float>();
        float v = 0;
        while (cursor.MoveNext()) { get(ref v); list.Add(v); }
        return list.ToArray();
    }

    /// <summary>A fresh temporary directory.</summary>
    public static string TempDir()
    {
        var d = Path.Combine(Path.GetTempPath(), "mlnetdeep-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(d);
        return d;
    }

    /// <summary>
    /// Runs the ModelLoader in another process; returns its prediction dump, or with <paramref name="keyColumn"/> the
    /// keys of that column (<see cref="PredictionDump.KeyLines"/>).
    /// </summary>
    public static string[] PredictInOtherProcess(string modelPath, string dataSet, string? keyColumn = null)
    {
        string loader = typeof(TestUtil).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "ModelLoader").Value!;
        Assert.True(File.Exists(loader), "model loader not built: " + loader);
        string output = Path.Combine(TempDir(), "predictions.txt");
        var args = new List<string> { loader, modelPath, dataSet, output };
        if (keyColumn is not null) args.Add(keyColumn);
        RunDotnet(args, environment: new Dictionary<string, string> { ["MLNETDEEP_DATA"] = DataPaths.Root }, what: "model loader");
        return File.ReadAllLines(output);
    }

    /// <summary>
    /// Runs <c>dotnet</c> with <paramref name="args"/> in another process (optionally in a folder, with extra environment
    /// variables, and without the variables named in <paramref name="unset"/>); fails the test with its stderr if it exits
    /// non-zero or takes over 10 minutes; returns its stdout.
    /// </summary>
    public static string RunDotnet(IEnumerable<string> args, string? workingDirectory = null, IDictionary<string, string>? environment = null, string? what = null, IEnumerable<string>? unset = null)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        if (workingDirectory is not null) psi.WorkingDirectory = workingDirectory;
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        foreach (var k in unset ?? Array.Empty<string>()) psi.Environment.Remove(k);
        what ??= "dotnet " + string.Join(' ', psi.ArgumentList);
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        Assert.True(p.WaitForExit(600_000), $"{what} timed out");
        Assert.True(p.ExitCode == 0, $"{what} failed ({p.ExitCode}):\n{stdout}\n{stderr.Result}");
        return stdout;
    }

    /// <summary>Small, fast bike-sharing regression pipeline for the core tests.</summary>
    public static IEstimator<ITransformer> BikeMlp(MLContext ml, MlpRegressionTrainer.Options options) =>
        Pipelines.BikeFeatures(ml).Append(ml.Regression.Trainers.Mlp(options));

    public static IDataView BikeTrainSubset(MLContext ml, int rows = 3000) => ml.Data.TakeRows(RealData.BikeTrain(ml), rows);
}
