using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetDeep.TestData;
using Xunit;

namespace MLNetDeep.Tests;

/// <summary>
/// The command-line tool as a user gets it: MLNetDeep and MLNetDeep.Cli packed from a copy of the sources into a local
/// feed, the tool installed from it with <c>dotnet tool install</c>, then run on the shared data (SMS spam
/// classification, sunspots forecasting, a mistyped label column); the consumption project it writes is built against
/// the packed MLNetDeep and must predict exactly what the saved model predicts.
/// </summary>
public sealed partial class PackageConsumerTests
{
    [Fact]
    public void PackedCliTool_RunsExperiments_AndItsConsumptionProjectPredictsLikeTheModel()
    {
        if (!(OperatingSystem.IsLinux() && RuntimeInformation.OSArchitecture == Architecture.X64))
        {
            _out.WriteLine("skipped: the tool is packed for linux-x64 only in this test");
            return;
        }
        string repo = FindRepoRoot();
        string work = TestUtil.TempDir();
        string sources = Path.Combine(work, "repo"), feed = Path.Combine(work, "feed"), packages = Path.Combine(work, "packages");
        string tools = Path.Combine(work, "tools"), output = Path.Combine(work, "sms");
        Directory.CreateDirectory(feed);
        Directory.CreateDirectory(packages);

        // 1. Pack MLNetDeep and the tool (this platform's package only) with a version no cache holds; install the tool.
        CopySources(repo, sources);
        string version = PackageVersion(Path.Combine(repo, "src", "MLNetDeep.Cli", "MLNetDeep.Cli.csproj"));
        foreach (var packed in new[] { "MLNetDeep", "MLNetDeep.Cli" })
            Run("pack " + packed, sources, PackTimeout, "pack", Path.Combine(sources, "src", packed, packed + ".csproj"), "-c", "Release", "-o", feed,
                "-p:Version=" + version, "-p:ToolPackageRuntimeIdentifiers=linux-x64", "-p:UseSharedCompilation=false", "-nodeReuse:false");
        string config = Path.Combine(work, "nuget.config");
        File.WriteAllText(config, NuGetConfig(feed, packages, UserPackageCache()));
        Run("tool install", work, BuildTimeout, "tool", "install", "MLNetDeep.Cli", "--version", version, "--tool-path", tools, "--configfile", config);
        string tool = Path.Combine(tools, "mlnetdeep");
        Assert.True(File.Exists(tool), $"dotnet tool install did not write {tool}");

        // 2. Binary classification of SMS spam: a deep and a classic trainer, a held-out fifth, a consumption project.
        string sms = DataPaths.File("text/sms-spam.tsv");
        string text = RunFile(tool, "mlnetdeep classification", work, RunTimeout, "classification", "--dataset", sms, "--has-header", "false", "--label-col", "0",
            "--allow-quoting", "false", "--trainers", "MLP,Lbfgs", "--max-trials", "3", "--max-epochs", "2", "--test-fraction", "0.2",
            "--train-time", "36000", "--output", output, "--name", "Spam", "--package-source", feed);
        Assert.Contains("positive class: 'spam'", text);
        foreach (var file in new[] { "model.zip", "leaderboard.csv", "leaderboard.md", "leaderboard.png", "summary.md", "experiment/trials.jsonl" })
            Assert.True(File.Exists(Path.Combine(output, file)), $"the tool did not write {file}:\n{text}");
        var board = File.ReadAllLines(Path.Combine(output, "leaderboard.csv"));
        Assert.Equal(4, board.Length); // header + 3 trials
        Assert.Contains(board, l => l.Contains(",MLNetDeep MLP,Finished,", StringComparison.Ordinal));
        Assert.Contains(board, l => l.Contains(",LbfgsLogisticRegression,Finished,", StringComparison.Ordinal));
        double accuracy = double.Parse(System.Text.RegularExpressions.Regex.Match(text, @"Held-out test data, best model \(([^)]*)\): Accuracy ([0-9.]+)").Groups[2].Value, CultureInfo.InvariantCulture);
        Assert.True(accuracy > 0.95, $"held-out accuracy {accuracy} is too low:\n{text}");

        // 3. The consumption project references the packed MLNetDeep, builds, and predicts what the model predicts.
        string project = Path.Combine(output, "Spam.ConsoleApp");
        string csproj = File.ReadAllText(Path.Combine(project, "Spam.ConsoleApp.csproj"));
        Assert.Contains($"<PackageReference Include=\"MLNetDeep\" Version=\"[{version}]\" />", csproj);
        Assert.Contains(feed, File.ReadAllText(Path.Combine(project, "NuGet.config")));
        File.WriteAllText(Path.Combine(project, "NuGet.config"), NuGetConfig(feed, packages, UserPackageCache())); // hermetic: no write to the user's cache
        File.WriteAllText(Path.Combine(project, "Directory.Build.props"), "<Project />\n");
        File.WriteAllText(Path.Combine(project, "Directory.Build.targets"), "<Project />\n");
        Run("build consumption project", project, BuildTimeout, "build", "-c", "Release", "-p:UseSharedCompilation=false", "-nodeReuse:false");
        string rows = Path.Combine(work, "rows.tsv");
        File.WriteAllLines(rows, File.ReadLines(sms).Take(40));
        var printed = RunFile("dotnet", "run consumption project", project, RunTimeout, "run", "-c", "Release", "--no-build", "--", rows)
            .Split('\n').Select(l => l.Trim()).Where(l => l.StartsWith("Score=", StringComparison.Ordinal)).ToList();
        var expected = ExpectedSmsPredictions(Path.Combine(output, "model.zip"), rows);
        Assert.Equal(expected.Count, printed.Count);
        for (int i = 0; i < expected.Count; i++) Assert.Equal(expected[i], printed[i]);
        Assert.Contains(printed, p => p.EndsWith("PredictedLabel=True", StringComparison.Ordinal));

        // 4. Forecasting sunspots (MLP and GRU forecasters, two trials), with the naive baselines on the test part.
        string forecast = RunFile(tool, "mlnetdeep forecasting", work, RunTimeout, "forecasting", "--dataset", DataPaths.File("series/sunspots.csv"),
            "--target-col", "SUNACTIVITY", "--horizon", "5", "--lookback", "11", "--test-count", "30", "--season", "11", "--trainers", "MLP,GRU",
            "--max-trials", "2", "--max-epochs", "3", "--train-time", "36000", "--output", Path.Combine(work, "sunspots"));
        Assert.Contains("MLNetDeep MLP forecaster", forecast);
        Assert.Contains("MLNetDeep GRU forecaster", forecast);
        Assert.Contains("seasonal naive (period 11)", forecast);
        Assert.True(File.Exists(Path.Combine(work, "sunspots", "model.zip")), forecast);
        var forecasts = File.ReadAllLines(Path.Combine(work, "sunspots", "leaderboard.csv")).Skip(1).ToList();
        Assert.Equal(2, forecasts.Count);
        Assert.All(forecasts, l => Assert.Contains(",Finished,", l));

        // 5. A mistyped label column: exit code 2 and a message naming it and the columns there are.
        string wrong = RunFileExpecting(2, tool, "mlnetdeep with a wrong --label-col", work, RunTimeout, "regression", "--dataset", DataPaths.File("tabular/bike-hour-train.csv"),
            "--label-col", "count", "--output", Path.Combine(work, "bike"));
        Assert.Contains("--label-col: there is no column 'count'", wrong);
        Assert.Contains("cnt", wrong);
        TryDelete(work);
    }

    /// <summary>What the saved model predicts for the rows, printed the way the generated program prints them.</summary>
    private static List<string> ExpectedSmsPredictions(string modelPath, string rowsPath)
    {
        var ml = new MLContext();
        var model = ml.Model.Load(modelPath, out _);
        var engine = ml.Model.CreatePredictionEngine<SmsCliInput, SmsCliOutput>(model);
        var rows = ml.Data.CreateEnumerable<SmsCliInput>(ml.Data.LoadFromTextFile<SmsCliInput>(rowsPath, separatorChar: '\t', hasHeader: false, allowQuoting: false), reuseRowObject: false);
        return rows.Select(r => engine.Predict(r)).Select(p => FormattableString.Invariant(
            $"Score={p.Score.ToString("R", CultureInfo.InvariantCulture)} Probability={p.Probability.ToString("R", CultureInfo.InvariantCulture)} PredictedLabel={p.PredictedLabel}")).ToList();
    }

    private sealed class SmsCliInput
    {
        [LoadColumn(0), ColumnName("col0")] public string Label { get; set; } = "";
        [LoadColumn(1), ColumnName("col1")] public string Message { get; set; } = "";
    }

    private sealed class SmsCliOutput
    {
        public bool PredictedLabel { get; set; }
        public float Score { get; set; }
        public float Probability { get; set; }
    }
}
