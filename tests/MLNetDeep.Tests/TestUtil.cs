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
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        psi.ArgumentList.Add(loader);
        psi.ArgumentList.Add(modelPath);
        psi.ArgumentList.Add(dataSet);
        psi.ArgumentList.Add(output);
        if (keyColumn is not null) psi.ArgumentList.Add(keyColumn);
        psi.Environment["MLNETDEEP_DATA"] = DataPaths.Root;
        using var p = Process.Start(psi)!;
        string stderr = p.StandardError.ReadToEnd();
        p.StandardOutput.ReadToEnd();
        Assert.True(p.WaitForExit(300_000), "model loader timed out");
        Assert.True(p.ExitCode == 0, $"model loader failed ({p.ExitCode}): {stderr}");
        return File.ReadAllLines(output);
    }

    /// <summary>Small, fast bike-sharing regression pipeline for the core tests.</summary>
    public static IEstimator<ITransformer> BikeMlp(MLContext ml, MlpRegressionTrainer.Options options) =>
        Pipelines.BikeFeatures(ml).Append(ml.Regression.Trainers.Mlp(options));

    public static IDataView BikeTrainSubset(MLContext ml, int rows = 3000) => ml.Data.TakeRows(RealData.BikeTrain(ml), rows);
}
