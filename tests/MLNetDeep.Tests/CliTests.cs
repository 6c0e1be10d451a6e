using System.Diagnostics;
using System.Reflection;
using System.Text;
using MLNetDeep.TestData;
using Xunit;

namespace MLNetDeep.Tests;

/// <summary>The command-line tool from its build output (the packed tool is tested in <see cref="PackageConsumerTests"/>).</summary>
public sealed class CliTests
{
    private static string Cli => typeof(CliTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "Cli").Value!;

    private static string[] Args(string data, string output) => new[]
    {
        Cli, "classification", "--dataset", data, "--has-header", "false", "--label-col", "0", "--allow-quoting", "false", "--trainers", "MLP",
        "--max-trials", "6", "--max-epochs", "3", "--threads", "1", "--train-time", "36000", "--output", output,
    };

    /// <summary>
    /// The process is killed in the middle of trial 4 (a barrier: the tool waits after its first epoch, and the test
    /// kills the whole process tree there); the same command run again replays the three recorded trials, trains the
    /// rest, and ends with the leaderboard of an uninterrupted run with the same trial count (all but the timings).
    /// </summary>
    [Fact]
    public async Task KilledInTheMiddleOfATrial_TheSameCommandResumes_ToTheUninterruptedLeaderboard()
    {
        Assert.True(File.Exists(Cli), "the tool is not built: " + Cli);
        string work = TestUtil.TempDir();
        string data = Path.Combine(work, "sms.tsv");
        File.WriteAllLines(data, File.ReadLines(DataPaths.File("text/sms-spam.tsv")).Take(1000));
        string whole = Path.Combine(work, "whole"), killed = Path.Combine(work, "killed");

        TestUtil.RunDotnet(Args(data, whole), what: "uninterrupted run");

        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var a in Args(data, killed)) psi.ArgumentList.Add(a);
        psi.Environment["MLNETDEEP_CLI_TEST_PAUSE"] = "4:1";
        var seen = new StringBuilder();
        using (var p = Process.Start(psi)!)
        {
            var stderr = p.StandardError.ReadToEndAsync();
            bool paused = false;
            for (string? line; (line = p.StandardOutput.ReadLine()) is not null;)
            {
                seen.AppendLine(line);
                if (line.StartsWith("PAUSED in trial 4 after epoch 1", StringComparison.Ordinal))
                {
                    paused = true;
                    p.Kill(entireProcessTree: true);
                    break;
                }
            }
            Assert.True(p.WaitForExit(120_000), "the killed process did not end");
            string errors = await stderr;
            Assert.True(paused, $"the tool never reached the pause in trial 4:\n{seen}\n{errors}");
        }
        string trials = Path.Combine(killed, "experiment", "trials.jsonl");
        Assert.Equal(3, File.ReadAllLines(trials).Length);
        Assert.False(File.Exists(Path.Combine(killed, "model.zip")), "the killed run wrote a final model");

        string resumed = TestUtil.RunDotnet(Args(data, killed), what: "resumed run");
        Assert.Equal(6, File.ReadAllLines(trials).Length);
        Assert.Equal(Comparable(Path.Combine(whole, "leaderboard.csv")), Comparable(Path.Combine(killed, "leaderboard.csv")));
        Assert.True(File.Exists(Path.Combine(killed, "model.zip")), resumed);
        try { Directory.Delete(work, recursive: true); } catch (IOException) { }
    }

    [Fact]
    public void ImageClassification_FromALabelFile_TrainsACnn_AndWritesAConsumptionProjectOverImagePaths()
    {
        string output = Path.Combine(TestUtil.TempDir(), "images");
        string text = TestUtil.RunDotnet(new[]
        {
            Cli, "image-classification", "--dataset", DataPaths.File("images/tags.tsv"), "--test-dataset", DataPaths.File("images/test-tags.tsv"),
            "--image-size", "32", "--trainers", "LeNet,SdcaMaximumEntropy", "--max-trials", "2", "--max-epochs", "2", "--train-time", "36000", "--output", output,
        }, what: "mlnetdeep image-classification");
        Assert.Contains("8 images, 3 labels ('appliance', 'food', 'toy'), read as RGB 32×32", text);
        var board = File.ReadAllLines(Path.Combine(output, "leaderboard.csv")).Skip(1).ToList();
        Assert.Equal(2, board.Count);
        Assert.Contains(board, l => l.Contains(",MLNetDeep CNN LeNet-5,Finished,", StringComparison.Ordinal));
        Assert.Contains(board, l => l.Contains(",SdcaMaximumEntropy,Finished,", StringComparison.Ordinal));
        Assert.Matches(@"Held-out test data, best model \([^)]+\): MicroAccuracy [0-9.]+", text);
        string code = File.ReadAllText(Path.Combine(output, "MLModel.ConsoleApp", "ConsumeModel.cs"));
        Assert.Contains("public string ImagePath { get; set; }", code);
        Assert.Contains("public string PredictedLabel { get; set; }", code); // the class name, mapped back from the key
        Assert.Contains("PredictAllLabels", code);
    }

    [Fact]
    public void TextClassification_AddsSequenceModelsOnTheWordKeys_AndBadOptionsNameThemselves()
    {
        string work = TestUtil.TempDir();
        string data = Path.Combine(work, "sms.tsv");
        File.WriteAllLines(data, File.ReadLines(DataPaths.File("text/sms-spam.tsv")).Take(600));
        string output = Path.Combine(work, "text");
        string text = TestUtil.RunDotnet(new[]
        {
            Cli, "text-classification", "--dataset", data, "--has-header", "false", "--label-col", "0", "--allow-quoting", "false",
            "--trainers", "GRU,Transformer", "--max-trials", "2", "--max-epochs", "1", "--no-refit", "--train-time", "36000", "--output", output,
        }, what: "mlnetdeep text-classification");
        var board = File.ReadAllLines(Path.Combine(output, "leaderboard.csv")).Skip(1).ToList();
        Assert.Equal(2, board.Count);
        Assert.Contains(board, l => l.Contains(",MLNetDeep GRU,Finished,", StringComparison.Ordinal));
        Assert.Contains(board, l => l.Contains(",MLNetDeep Transformer,Finished,", StringComparison.Ordinal));
        Assert.Contains("1 col1                     text", text);

        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { Cli, "text-classification", "--dataset", data, "--has-header", "false", "--label-col", "0", "--epochs", "3" }) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        string stderr = p.StandardError.ReadToEnd();
        p.StandardOutput.ReadToEnd();
        Assert.True(p.WaitForExit(60_000));
        Assert.Equal(2, p.ExitCode);
        Assert.Contains("The text-classification command has no option --epochs.", stderr);
    }

    /// <summary>The leaderboard without what depends on the machine's speed (training time, ms per row, peak memory).</summary>
    private static List<string> Comparable(string csv)
    {
        var lines = File.ReadAllLines(csv);
        var header = lines[0].Split(',');
        var drop = new[] { "training_seconds", "prediction_ms_per_row", "peak_memory_mib" }.Select(c => Array.IndexOf(header, c)).ToHashSet();
        Assert.DoesNotContain(-1, drop);
        // The hyperparameters and message columns are last and may be quoted; the dropped ones come before them.
        return lines.Select(l =>
        {
            var cells = l.Split(',');
            return string.Join(",", cells.Where((_, i) => !drop.Contains(i)));
        }).ToList();
    }
}
